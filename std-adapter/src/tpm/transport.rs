//! std transports to a TPM: Linux character devices, swtpm's TCP sockets and the Microsoft/IBM
//! simulator protocol (mssim). Every socket operation is time-bound.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use trustpool_core::tpm::{Transport, TransportError};

/// Response header size: tag, size, code.
const HEADER: usize = 10;

/// Timeouts for socket transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOptions {
    /// Bound on establishing each connection.
    pub connect_timeout: Duration,
    /// Bound on each read and write (a TPM command's execution included: RSA key generation
    /// on a simulator can take seconds).
    pub io_timeout: Duration,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// The pause before the `attempt`-th retry of a command the TPM asked to see again.
pub fn retry_pause(attempt: u32) -> Duration {
    let ms = 10u64.saturating_mul(1u64 << attempt.min(6));
    Duration::from_millis(ms.min(500))
}

fn io_error(what: &'static str, e: &io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => TransportError::Timeout { what },
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TransportError::Closed,
        _ => TransportError::Io {
            what,
            os_error: e.raw_os_error(),
        },
    }
}

/// The `responseSize` field of a response header.
fn header_size(header: &[u8]) -> Option<usize> {
    let b: [u8; 4] = header.get(2..6)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(b)).ok()
}

/// Read one TPM response from a stream: the header, then the rest its size states.
fn read_response(s: &mut impl Read, rsp: &mut [u8]) -> Result<usize, TransportError> {
    let capacity = rsp.len();
    let head = rsp
        .get_mut(..HEADER)
        .ok_or(TransportError::ResponseTooLarge {
            size: HEADER,
            capacity,
        })?;
    s.read_exact(head)
        .map_err(|e| io_error("reading the response header", &e))?;
    let size = header_size(head).unwrap_or(0);
    if size < HEADER {
        return Err(TransportError::Protocol {
            what: "responseSize smaller than the header",
            value: u32::try_from(size).unwrap_or(u32::MAX),
        });
    }
    let body = rsp
        .get_mut(HEADER..size)
        .ok_or(TransportError::ResponseTooLarge { size, capacity })?;
    s.read_exact(body)
        .map_err(|e| io_error("reading the response", &e))?;
    Ok(size)
}

/// A Linux TPM character device: `/dev/tpmrm0` (the kernel's resource manager, shared) or
/// `/dev/tpm0` (exclusive). One `write` carries the command, `read` returns the response.
///
/// Generic over the file so tests can put any `Read + Write` behind it.
#[derive(Debug)]
pub struct Device<F = File> {
    file: F,
}

impl Device<File> {
    pub fn open(path: &std::path::Path) -> io::Result<Device<File>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Device { file })
    }
}

impl<F: Read + Write> Device<F> {
    pub fn from_io(file: F) -> Device<F> {
        Device { file }
    }
}

impl<F: Read + Write> Transport for Device<F> {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        // The kernel takes the command in one write() and fails a partial one.
        let n = self
            .file
            .write(cmd)
            .map_err(|e| io_error("writing the command", &e))?;
        if n != cmd.len() {
            return Err(TransportError::Protocol {
                what: "the device took part of the command",
                value: u32::try_from(n).unwrap_or(u32::MAX),
            });
        }
        // The kernel hands the whole response to the first read() with room for it; keep
        // reading only if a (test) stream splits it.
        let mut got = 0usize;
        loop {
            let capacity = rsp.len();
            let dst = rsp.get_mut(got..).unwrap_or(&mut []);
            if dst.is_empty() {
                return Err(TransportError::ResponseTooLarge {
                    size: got.saturating_add(1),
                    capacity,
                });
            }
            let n = self
                .file
                .read(dst)
                .map_err(|e| io_error("reading the response", &e))?;
            if n == 0 {
                return Err(TransportError::Closed);
            }
            got = got.saturating_add(n);
            if let Some(size) = rsp
                .get(..got)
                .filter(|h| h.len() >= HEADER)
                .and_then(header_size)
            {
                if size > capacity {
                    return Err(TransportError::ResponseTooLarge { size, capacity });
                }
                if got >= size {
                    return Ok(got);
                }
            }
        }
    }

    fn retry_delay(&mut self, attempt: u32) {
        std::thread::sleep(retry_pause(attempt));
    }
}

fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port).to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no address to connect to"),
        )
    })
}

fn connect(addr: SocketAddr, opts: &SocketOptions) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, opts.connect_timeout)?;
    s.set_read_timeout(Some(opts.io_timeout))?;
    s.set_write_timeout(Some(opts.io_timeout))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// swtpm's control commands (`CMD_*` in swtpm's `tpm_ioctl.h`): big-endian, a u32 command
/// then the request; the answer starts with a u32 `ptm_res` (0 = success).
pub mod swtpm_ctrl {
    pub const CMD_GET_CAPABILITY: u32 = 0x01;
    pub const CMD_INIT: u32 = 0x02;
    pub const CMD_SHUTDOWN: u32 = 0x03;
    pub const CMD_GET_TPMESTABLISHED: u32 = 0x04;
    pub const CMD_SET_LOCALITY: u32 = 0x05;
    pub const CMD_CANCEL_TPM_CMD: u32 = 0x09;
    pub const CMD_STOP: u32 = 0x0e;
    /// `CMD_INIT` flag: drop the volatile state instead of resuming from it.
    pub const INIT_FLAG_DELETE_VOLATILE: u32 = 1;
}

/// swtpm's socket interface (`swtpm socket --server type=tcp,port=P --ctrl type=tcp,port=P+1`):
/// raw TPM commands and responses on the data port; the control channel (one connection per
/// control command) powers the TPM up (`CMD_INIT`).
#[derive(Debug)]
pub struct Swtpm {
    data: TcpStream,
    ctrl: SocketAddr,
    opts: SocketOptions,
}

impl Swtpm {
    /// Connect to the data port `port`; the control channel is at `ctrl_port`.
    pub fn connect(
        host: &str,
        port: u16,
        ctrl_port: u16,
        opts: &SocketOptions,
    ) -> io::Result<Swtpm> {
        let data = connect(resolve(host, port)?, opts)?;
        Ok(Swtpm {
            data,
            ctrl: resolve(host, ctrl_port)?,
            opts: *opts,
        })
    }

    /// Send one control command and return the `ptm_res` and `extra` further bytes.
    pub fn control(&self, cmd: u32, request: &[u8], extra: usize) -> io::Result<(u32, Vec<u8>)> {
        let mut s = connect(self.ctrl, &self.opts)?;
        let mut msg = cmd.to_be_bytes().to_vec();
        msg.extend_from_slice(request);
        s.write_all(&msg)?;
        let mut res = [0u8; 4];
        s.read_exact(&mut res)?;
        let mut more = vec![0u8; extra];
        s.read_exact(&mut more)?;
        Ok((u32::from_be_bytes(res), more))
    }

    /// `CMD_INIT`: power the TPM on (or reset it). The TPM then needs TPM2_Startup.
    pub fn init(&self) -> io::Result<()> {
        let (res, _) = self.control(swtpm_ctrl::CMD_INIT, &0u32.to_be_bytes(), 0)?;
        if res != 0 {
            return Err(io::Error::other(format!(
                "swtpm CMD_INIT failed with result {res:#x}"
            )));
        }
        Ok(())
    }
}

impl Transport for Swtpm {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        self.data
            .write_all(cmd)
            .map_err(|e| io_error("sending the command to swtpm", &e))?;
        read_response(&mut self.data, rsp)
    }

    fn retry_delay(&mut self, attempt: u32) {
        std::thread::sleep(retry_pause(attempt));
    }
}

/// The Microsoft/IBM simulator protocol (`TpmTcpProtocol.h` of the reference implementation).
pub mod mssim_proto {
    pub const TPM_SIGNAL_POWER_ON: u32 = 1;
    pub const TPM_SIGNAL_POWER_OFF: u32 = 2;
    pub const TPM_SEND_COMMAND: u32 = 8;
    pub const TPM_SIGNAL_NV_ON: u32 = 11;
    pub const TPM_SESSION_END: u32 = 20;
}

/// The Microsoft/IBM TPM 2.0 simulator (`tpm_server`, ms-tpm-20-ref): commands framed as
/// `TPM_SEND_COMMAND`, u8 locality, u32 size, bytes; answered with u32 size, bytes, u32
/// acknowledgement. The platform port (command port + 1) takes power and NV signals.
#[derive(Debug)]
pub struct Mssim {
    cmd: TcpStream,
    platform: TcpStream,
    locality: u8,
}

impl Mssim {
    /// Connect to the command port and the platform port, and power the simulator on
    /// (`TPM_SIGNAL_POWER_ON`, `TPM_SIGNAL_NV_ON`; both do nothing to a simulator already on).
    pub fn connect(
        host: &str,
        port: u16,
        platform_port: u16,
        opts: &SocketOptions,
    ) -> io::Result<Mssim> {
        let cmd = connect(resolve(host, port)?, opts)?;
        let platform = connect(resolve(host, platform_port)?, opts)?;
        let mut m = Mssim {
            cmd,
            platform,
            locality: 0,
        };
        m.signal(mssim_proto::TPM_SIGNAL_POWER_ON)?;
        m.signal(mssim_proto::TPM_SIGNAL_NV_ON)?;
        Ok(m)
    }

    pub fn set_locality(&mut self, locality: u8) {
        self.locality = locality;
    }

    /// Send a platform signal and check its acknowledgement.
    pub fn signal(&mut self, signal: u32) -> io::Result<()> {
        self.platform.write_all(&signal.to_be_bytes())?;
        let mut ack = [0u8; 4];
        self.platform.read_exact(&mut ack)?;
        match u32::from_be_bytes(ack) {
            0 => Ok(()),
            a => Err(io::Error::other(format!(
                "mssim platform signal {signal} answered {a:#x}"
            ))),
        }
    }
}

impl Transport for Mssim {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        let len = u32::try_from(cmd.len()).map_err(|_| TransportError::Protocol {
            what: "command too large for the simulator",
            value: u32::MAX,
        })?;
        let mut msg = Vec::with_capacity(cmd.len().saturating_add(9));
        msg.extend_from_slice(&mssim_proto::TPM_SEND_COMMAND.to_be_bytes());
        msg.push(self.locality);
        msg.extend_from_slice(&len.to_be_bytes());
        msg.extend_from_slice(cmd);
        self.cmd
            .write_all(&msg)
            .map_err(|e| io_error("sending the command to the simulator", &e))?;
        let mut size = [0u8; 4];
        self.cmd
            .read_exact(&mut size)
            .map_err(|e| io_error("reading the response size", &e))?;
        let size = usize::try_from(u32::from_be_bytes(size)).unwrap_or(usize::MAX);
        let capacity = rsp.len();
        let body = rsp
            .get_mut(..size)
            .ok_or(TransportError::ResponseTooLarge { size, capacity })?;
        self.cmd
            .read_exact(body)
            .map_err(|e| io_error("reading the response", &e))?;
        let mut ack = [0u8; 4];
        self.cmd
            .read_exact(&mut ack)
            .map_err(|e| io_error("reading the acknowledgement", &e))?;
        match u32::from_be_bytes(ack) {
            0 => Ok(size),
            a => Err(TransportError::Protocol {
                what: "simulator acknowledgement",
                value: a,
            }),
        }
    }

    fn retry_delay(&mut self, attempt: u32) {
        std::thread::sleep(retry_pause(attempt));
    }
}

impl Drop for Mssim {
    fn drop(&mut self) {
        // Tell the simulator this client is gone, so it accepts the next one.
        let end = mssim_proto::TPM_SESSION_END.to_be_bytes();
        let _ = self.cmd.write_all(&end);
        let _ = self.platform.write_all(&end);
    }
}

/// Whichever transport a selector named.
#[derive(Debug)]
pub enum AnyTransport {
    Device(Device),
    Swtpm(Swtpm),
    Mssim(Mssim),
}

impl Transport for AnyTransport {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        match self {
            AnyTransport::Device(t) => t.transact(cmd, rsp),
            AnyTransport::Swtpm(t) => t.transact(cmd, rsp),
            AnyTransport::Mssim(t) => t.transact(cmd, rsp),
        }
    }

    fn retry_delay(&mut self, attempt: u32) {
        std::thread::sleep(retry_pause(attempt));
    }
}
