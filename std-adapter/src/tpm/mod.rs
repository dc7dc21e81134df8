//! Talking to a TPM from a host: the selector that names it (`device:/dev/tpmrm0`,
//! `swtpm:127.0.0.1:2321`, `mssim:127.0.0.1:2321`), opening it, and the logic of
//! `trustpool tpm info|pcrs|quote` and `trustpool attest`.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use trustpool_core::credential::CredentialBlob;
use trustpool_core::eventlog::Workarounds;
use trustpool_core::pcr::PcrValues;
use trustpool_core::tpm::rc::code;
use trustpool_core::tpm::{
    self as core_tpm, manufacturer_name, AkTemplate, EkTemplate, Hierarchy, StartupType, Tpm,
    TpmProperties, TransportError,
};
use trustpool_core::{Attest, Digest, HashAlg, PcrSet, Signature, SignatureVerifier};

use crate::evidence::{self, AkEvidence, Evidence, ImaFormat, ImaLog, QuoteParts, TpmIdentity};
use crate::files::{self, FileError};
use crate::quote_cmd::VerifyFailure;
use crate::verify_cmd::{self, VerdictReport};

mod transport;

pub use transport::{
    mssim_proto, retry_pause, swtpm_ctrl, AnyTransport, Device, Mssim, SocketOptions, Swtpm,
};

/// The TPM used when none is named: the kernel's resource manager.
pub const DEFAULT_TPM: &str = "device:/dev/tpmrm0";
/// Default TCP port of swtpm and the simulators (data/command; control/platform is +1).
pub const DEFAULT_PORT: u16 = 2321;
/// Where Linux exposes the IMA log in text form.
pub const SYSFS_IMA_ASCII: &str = "/sys/kernel/security/ima/ascii_runtime_measurements";
/// PCRs quoted when none are named: the firmware's.
pub const DEFAULT_SELECTION: &str = "sha256:0-7";
/// The driver's buffer: a whole command plus the largest response (4 KiB) with room to spare.
const BUFFER_SIZE: usize = 8192;
/// Quote/PCR-read pairs tried before giving up on PCRs that keep changing.
const QUOTE_ATTEMPTS: usize = 3;

/// A TPM opened on the host.
pub type StdTpm = Tpm<AnyTransport, Vec<u8>>;

/// Where the TPM is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmUri {
    /// A Linux character device (`/dev/tpmrm0`, `/dev/tpm0`).
    Device(PathBuf),
    /// swtpm's TCP sockets: data `port`, control `ctrl_port`.
    Swtpm {
        host: String,
        port: u16,
        ctrl_port: u16,
    },
    /// The Microsoft/IBM simulator: command `port`, platform `platform_port`.
    Mssim {
        host: String,
        port: u16,
        platform_port: u16,
    },
}

/// Why a TPM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("TPM selector {selector:?}: {msg}")]
    Selector { selector: String, msg: String },
    #[error("cannot open {target}: {source}")]
    Open {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: {}", describe(.error))]
    Command {
        op: &'static str,
        error: core_tpm::Error,
    },
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    File(#[from] FileError),
}

impl TpmError {
    /// The TPM's response code, when the TPM refused a command.
    pub fn response_code(&self) -> Option<core_tpm::ResponseCode> {
        match self {
            TpmError::Command { error, .. } => error.response_code(),
            _ => None,
        }
    }
}

/// A core TPM error, with the OS's words for an OS error.
pub fn describe(e: &core_tpm::Error) -> String {
    match e {
        core_tpm::Error::Transport(TransportError::Io {
            what,
            os_error: Some(n),
        }) => format!(
            "transport: {what}: {}",
            std::io::Error::from_raw_os_error(*n)
        ),
        other => other.to_string(),
    }
}

fn cmd_err(op: &'static str) -> impl FnOnce(core_tpm::Error) -> TpmError {
    move |error| TpmError::Command { op, error }
}

/// `host:port`, `host`, `[v6]:port`, empty, or TCTI style `host=H,port=P`.
fn parse_host_port(rest: &str) -> Result<(String, u16), String> {
    let default_host = "127.0.0.1".to_string();
    if rest.is_empty() {
        return Ok((default_host, DEFAULT_PORT));
    }
    if rest.contains('=') {
        let mut host = default_host;
        let mut port = DEFAULT_PORT;
        for kv in rest.split(',').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("host", h)) => host = h.to_string(),
                Some(("port", p)) => port = p.parse().map_err(|_| format!("bad port {p:?}"))?,
                _ => return Err(format!("unknown option {kv:?} (host=…, port=…)")),
            }
        }
        return Ok((host, port));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| "unclosed '[' in IPv6 address".to_string())?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    let port = match port {
        None | Some("") => DEFAULT_PORT,
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
    };
    let host = if host.is_empty() { default_host } else { host };
    Ok((host, port))
}

impl FromStr for TpmUri {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<TpmUri, TpmError> {
        let err = |msg: String| TpmError::Selector {
            selector: s.to_string(),
            msg,
        };
        let s = s.trim();
        if s.starts_with('/') {
            return Ok(TpmUri::Device(PathBuf::from(s)));
        }
        let (kind, rest) = s.split_once(':').unwrap_or((s, ""));
        let next = |port: u16| {
            port.checked_add(1)
                .ok_or_else(|| err(format!("port {port} leaves no room for port + 1")))
        };
        match kind {
            "device" => Ok(TpmUri::Device(PathBuf::from(if rest.is_empty() {
                "/dev/tpmrm0"
            } else {
                rest
            }))),
            "swtpm" => {
                let (host, port) = parse_host_port(rest).map_err(err)?;
                Ok(TpmUri::Swtpm {
                    host,
                    port,
                    ctrl_port: next(port)?,
                })
            }
            "mssim" => {
                let (host, port) = parse_host_port(rest).map_err(err)?;
                Ok(TpmUri::Mssim {
                    host,
                    port,
                    platform_port: next(port)?,
                })
            }
            other => Err(err(format!(
                "unknown kind {other:?}: device:/dev/tpmrm0, swtpm:HOST:PORT or mssim:HOST:PORT"
            ))),
        }
    }
}

fn host_text(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

impl fmt::Display for TpmUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TpmUri::Device(p) => write!(f, "device:{}", p.display()),
            TpmUri::Swtpm { host, port, .. } => write!(f, "swtpm:{}:{port}", host_text(host)),
            TpmUri::Mssim { host, port, .. } => write!(f, "mssim:{}:{port}", host_text(host)),
        }
    }
}

/// Open a TPM and make sure it has been started: simulators are powered on and sent
/// TPM2_Startup(CLEAR) (which a started TPM refuses harmlessly); an swtpm that was never
/// initialised gets `CMD_INIT` first. Devices are used as the firmware left them.
pub fn open(uri: &TpmUri, opts: &SocketOptions) -> Result<StdTpm, TpmError> {
    let open_err = |source| TpmError::Open {
        target: uri.to_string(),
        source,
    };
    let transport = match uri {
        TpmUri::Device(path) => AnyTransport::Device(Device::open(path).map_err(open_err)?),
        TpmUri::Swtpm {
            host,
            port,
            ctrl_port,
        } => AnyTransport::Swtpm(Swtpm::connect(host, *port, *ctrl_port, opts).map_err(open_err)?),
        TpmUri::Mssim {
            host,
            port,
            platform_port,
        } => AnyTransport::Mssim(
            Mssim::connect(host, *port, *platform_port, opts).map_err(open_err)?,
        ),
    };
    let mut tpm = Tpm::new(transport, vec![0u8; BUFFER_SIZE]);
    if matches!(uri, TpmUri::Device(_)) {
        return Ok(tpm);
    }
    match tpm.startup(StartupType::Clear) {
        Ok(_) => Ok(tpm),
        Err(core_tpm::Error::Tpm(rc)) if rc.base() == code::FAILURE => {
            // swtpm answers TPM_RC_FAILURE until its control channel initialises it.
            if let AnyTransport::Swtpm(s) = tpm.transport_mut() {
                s.init().map_err(open_err)?;
                tpm.startup(StartupType::Clear)
                    .map_err(cmd_err("TPM2_Startup"))?;
                Ok(tpm)
            } else {
                Err(TpmError::Command {
                    op: "TPM2_Startup",
                    error: core_tpm::Error::Tpm(rc),
                })
            }
        }
        Err(e) => Err(cmd_err("TPM2_Startup")(e)),
    }
}

/// Parse `sha256:0-7,10+sha1:0` (banks joined by `+`; `all` for PCRs 0–23) into (bank, mask)
/// pairs; a bank named twice has its PCRs merged.
pub fn parse_selection(s: &str) -> Result<Vec<(HashAlg, u32)>, TpmError> {
    let mut out: Vec<(HashAlg, u32)> = Vec::new();
    for part in s.split('+').map(str::trim).filter(|p| !p.is_empty()) {
        let (alg, mask) = match part.split_once(':') {
            Some((bank, "all")) => (
                HashAlg::from_name(bank)
                    .ok_or_else(|| TpmError::Input(format!("{part:?}: unknown bank {bank:?}")))?,
                0x00ff_ffff,
            ),
            _ => crate::policy::parse_pcr_selection(part).map_err(TpmError::Input)?,
        };
        match out.iter_mut().find(|(a, _)| *a == alg) {
            Some((_, m)) => *m |= mask,
            None => out.push((alg, mask)),
        }
    }
    out.retain(|(_, m)| *m != 0);
    if out.is_empty() {
        return Err(TpmError::Input(format!(
            "PCR selection {s:?} selects nothing (e.g. sha256:0-7,10+sha1:0)"
        )));
    }
    Ok(out)
}

/// A PCR mask as `0-7,10`.
pub fn mask_text(mask: u32) -> String {
    let mut parts = Vec::new();
    let mut i = 0u32;
    while i < 32 {
        if mask & (1 << i) == 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i + 1 < 32 && mask & (1 << (i + 1)) != 0 {
            i += 1;
        }
        parts.push(if start == i {
            start.to_string()
        } else {
            format!("{start}-{i}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(",")
    }
}

/// A selection as `sha256:0-7+sha1:0`.
pub fn selection_text(sel: &[(HashAlg, u32)]) -> String {
    sel.iter()
        .map(|(a, m)| format!("{a}:{}", mask_text(*m)))
        .collect::<Vec<_>>()
        .join("+")
}

/// Where a log comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LogSource {
    /// The running kernel's file, when it exists.
    #[default]
    System,
    /// This file (it must exist).
    File(PathBuf),
    /// No log.
    Skip,
}

/// How `tpm quote` and `attest` make their evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteOptions {
    pub ak: AkTemplate,
    /// The hierarchy the AK is a primary key of. In the endorsement hierarchy (the default),
    /// the same template gives the same key after every reboot and TPM2_Clear.
    pub hierarchy: Hierarchy,
    pub eventlog: LogSource,
    pub ima_log: LogSource,
}

impl Default for QuoteOptions {
    fn default() -> Self {
        QuoteOptions {
            ak: AkTemplate::EccP256,
            hierarchy: Hierarchy::Endorsement,
            eventlog: LogSource::System,
            ima_log: LogSource::System,
        }
    }
}

/// An attestation key loaded in the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ak {
    pub handle: u32,
    /// `TPM2B_PUBLIC`.
    pub public: Vec<u8>,
    pub template: AkTemplate,
}

/// An endorsement key loaded in the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ek {
    pub handle: u32,
    /// `TPM2B_PUBLIC`.
    pub public: Vec<u8>,
    /// The EK's Name (nameAlg id ‖ digest of its `TPMT_PUBLIC`).
    pub name: Vec<u8>,
    pub template: EkTemplate,
}

/// A key made with TPM2_Create under the SRK ([`core_tpm::SRK_RSA2048`]) and loaded. Keep
/// `public` and `private` to load it again later ([`TpmSession::load_binding_key`]): the
/// private part is encrypted to the SRK, which the TPM re-creates from the owner seed, so
/// only this TPM (until TPM2_Clear) can load it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingKey {
    pub handle: u32,
    /// `TPM2B_PUBLIC` (as `tpm2_create -u` writes it).
    pub public: Vec<u8>,
    /// `TPM2B_PRIVATE` (as `tpm2_create -r` writes it).
    pub private: Vec<u8>,
    /// The key's Name (nameAlg id ‖ digest of its `TPMT_PUBLIC`).
    pub name: Vec<u8>,
}

/// One bank of `TPM_CAP_PCRS`.
#[derive(Debug, Clone, Serialize)]
pub struct BankInfo {
    pub bank: String,
    /// Allocated PCRs, `0-23`, or `none`.
    pub pcrs: String,
}

/// An EK certificate found in NV.
#[derive(Debug, Clone, Serialize)]
pub struct EkCertInfo {
    pub index: String,
    pub key: &'static str,
    pub size: usize,
    pub sha256: String,
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// What `trustpool tpm info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct TpmInfo {
    pub tpm: String,
    pub manufacturer: String,
    pub manufacturer_name: Option<String>,
    pub manufacturer_id: Option<String>,
    pub vendor: String,
    /// As quotes report it: `0x` + 16 hex digits.
    pub firmware_version: Option<String>,
    /// The same as four 16-bit numbers, as vendors print it.
    pub firmware_version_dotted: Option<String>,
    pub family: String,
    /// Specification revision, e.g. `1.59`.
    pub revision: Option<String>,
    pub level: Option<u32>,
    pub year: Option<u32>,
    pub day_of_year: Option<u32>,
    pub pcr_banks: Vec<BankInfo>,
    pub pcr_count: Option<u32>,
    pub nv_buffer_max: Option<u32>,
    pub max_response_size: Option<u32>,
    pub ek_certificates: Vec<EkCertInfo>,
}

/// The evidence's `tpm` section from a TPM's properties.
pub fn identity(p: &TpmProperties) -> TpmIdentity {
    TpmIdentity {
        manufacturer: p.manufacturer_text().to_string(),
        vendor: p.vendor_string().to_string(),
        firmware_version: p
            .firmware_version()
            .map(|v| format!("{v:#018x}"))
            .unwrap_or_default(),
    }
}

/// An open TPM with the operations the commands are made of.
pub struct TpmSession {
    tpm: StdTpm,
    uri: TpmUri,
    props: Option<TpmProperties>,
}

impl TpmSession {
    /// Open by selector string with default timeouts.
    pub fn open(selector: &str) -> Result<TpmSession, TpmError> {
        Self::open_with(&selector.parse()?, &SocketOptions::default())
    }

    pub fn open_with(uri: &TpmUri, opts: &SocketOptions) -> Result<TpmSession, TpmError> {
        Ok(TpmSession {
            tpm: open(uri, opts)?,
            uri: uri.clone(),
            props: None,
        })
    }

    pub fn uri(&self) -> &TpmUri {
        &self.uri
    }

    /// The driver, for commands the session does not wrap.
    pub fn tpm(&mut self) -> &mut StdTpm {
        &mut self.tpm
    }

    /// Fixed properties (read once per session).
    pub fn properties(&mut self) -> Result<TpmProperties, TpmError> {
        if let Some(p) = self.props {
            return Ok(p);
        }
        let p = self
            .tpm
            .properties()
            .map_err(cmd_err("TPM2_GetCapability(TPM_PROPERTIES)"))?;
        self.props = Some(p);
        Ok(p)
    }

    /// PCR banks with their allocated PCRs.
    pub fn pcr_banks(&mut self) -> Result<Vec<(HashAlg, u32)>, TpmError> {
        Ok(self
            .tpm
            .pcr_banks()
            .map_err(cmd_err("TPM2_GetCapability(PCRS)"))?
            .to_vec())
    }

    /// Read PCRs (as many TPM2_PCR_Read rounds as needed).
    pub fn read_pcrs(&mut self, selection: &[(HashAlg, u32)]) -> Result<PcrSet, TpmError> {
        let mut set = PcrSet::new();
        self.tpm
            .read_pcrs(selection, &mut set)
            .map_err(cmd_err("TPM2_PCR_Read"))?;
        Ok(set)
    }

    /// TPM2_GetRandom.
    pub fn random(&mut self, n: usize) -> Result<Vec<u8>, TpmError> {
        let mut out = vec![0u8; n];
        self.tpm
            .get_random(&mut out)
            .map_err(cmd_err("TPM2_GetRandom"))?;
        Ok(out)
    }

    /// TPM2_PCR_Extend with one digest per bank.
    pub fn extend(&mut self, pcr: u32, digests: &[Digest]) -> Result<(), TpmError> {
        self.tpm
            .pcr_extend(pcr, digests)
            .map_err(cmd_err("TPM2_PCR_Extend"))
    }

    /// Flush every transient object (TPM_CAP_HANDLES from 0x80000000). For a TPM without a
    /// resource manager (swtpm, the simulator) that this process owns: objects a previous run
    /// left loaded would otherwise fill the TPM's few object slots. Returns how many.
    pub fn flush_transient(&mut self) -> Result<usize, TpmError> {
        use core_tpm::response::CapabilityData;
        let handles: Vec<u32> = {
            let r = self
                .tpm
                .get_capability(core_tpm::cap::HANDLES, 0x8000_0000, 64)
                .map_err(cmd_err("TPM2_GetCapability(HANDLES)"))?;
            match r.data {
                CapabilityData::Other { data, .. } => data
                    .get(4..)
                    .unwrap_or(&[])
                    .chunks_exact(4)
                    .filter_map(|h| <[u8; 4]>::try_from(h).ok().map(u32::from_be_bytes))
                    .filter(|h| h >> 24 == 0x80)
                    .collect(),
                _ => Vec::new(),
            }
        };
        for h in &handles {
            self.flush(*h)?;
        }
        Ok(handles.len())
    }

    /// TPM2_PCR_Reset.
    pub fn reset_pcr(&mut self, pcr: u32) -> Result<(), TpmError> {
        self.tpm.pcr_reset(pcr).map_err(cmd_err("TPM2_PCR_Reset"))
    }

    /// Create an attestation key as a primary key (TPM2_CreatePrimary).
    pub fn create_ak(
        &mut self,
        template: AkTemplate,
        hierarchy: Hierarchy,
    ) -> Result<Ak, TpmError> {
        let r = self
            .tpm
            .create_primary(hierarchy, template.public())
            .map_err(cmd_err("TPM2_CreatePrimary"))?;
        Ok(Ak {
            handle: r.handle,
            public: r.public.to_vec(),
            template,
        })
    }

    /// Create the TCG default endorsement key of `template` (TPM2_CreatePrimary in the
    /// endorsement hierarchy): the same key `tpm2_createek` makes.
    pub fn create_ek(&mut self, template: EkTemplate) -> Result<Ek, TpmError> {
        let r = self
            .tpm
            .create_primary(Hierarchy::Endorsement, template.public())
            .map_err(cmd_err("TPM2_CreatePrimary(EK)"))?;
        Ok(Ek {
            handle: r.handle,
            public: r.public.to_vec(),
            name: r.name.to_vec(),
            template,
        })
    }

    /// The Name of a loaded object (TPM2_ReadPublic).
    pub fn name(&mut self, handle: u32) -> Result<Vec<u8>, TpmError> {
        Ok(self
            .tpm
            .read_public(handle)
            .map_err(cmd_err("TPM2_ReadPublic"))?
            .name
            .to_vec())
    }

    /// TPM2_ActivateCredential of a credential blob (the tpm2-tools / Keylime file:
    /// `TPM2B_ID_OBJECT` ‖ `TPM2B_ENCRYPTED_SECRET`) for `ak` under `ek`, the EK authorized by
    /// its policy (TPM2_StartAuthSession, TPM2_PolicySecret(`TPM_RH_ENDORSEMENT`)). The policy
    /// session is gone afterwards, whatever happened; the keys stay loaded.
    pub fn activate(&mut self, ak: &Ak, ek: &Ek, blob: &[u8]) -> Result<Vec<u8>, TpmError> {
        let parsed = CredentialBlob::parse(blob)
            .map_err(|e| TpmError::Input(format!("credential blob: {e}")))?;
        let id_object = parsed.id_object_bytes.get(2..).unwrap_or(&[]);
        let nonce = self.random(32)?;
        let session = self
            .tpm
            .ek_policy_session(&nonce)
            .map_err(cmd_err("TPM2_StartAuthSession/TPM2_PolicySecret"))?;
        let r = self
            .tpm
            .activate_credential(
                ak.handle,
                ek.handle,
                session,
                id_object,
                parsed.encrypted_secret,
            )
            .map(<[u8]>::to_vec)
            .map_err(cmd_err("TPM2_ActivateCredential"));
        if r.is_err() {
            // A failed command leaves the session loaded.
            let _ = self.tpm.flush_context(session);
        }
        r
    }

    /// TPM2_FlushContext.
    pub fn flush(&mut self, handle: u32) -> Result<(), TpmError> {
        self.tpm
            .flush_context(handle)
            .map_err(cmd_err("TPM2_FlushContext"))
    }

    /// The storage root key: TPM2_CreatePrimary of [`core_tpm::SRK_RSA2048`] in the owner
    /// hierarchy (the same key every time until TPM2_Clear). Flush it when done.
    pub fn create_srk(&mut self) -> Result<u32, TpmError> {
        Ok(self
            .tpm
            .create_primary(Hierarchy::Owner, &core_tpm::SRK_RSA2048)
            .map_err(cmd_err("TPM2_CreatePrimary(SRK)"))?
            .handle)
    }

    /// Create a key from `template` (a `TPMT_PUBLIC`) under the SRK and load it: TPM2_Create
    /// and TPM2_Load; the SRK is flushed afterwards, the key stays loaded.
    pub fn create_key(&mut self, template: &[u8]) -> Result<BindingKey, TpmError> {
        let srk = self.create_srk()?;
        let r = self.create_and_load(srk, template);
        let flushed = self.flush(srk);
        let key = r?;
        flushed?;
        Ok(key)
    }

    fn create_and_load(&mut self, srk: u32, template: &[u8]) -> Result<BindingKey, TpmError> {
        let (public, private) = {
            let c = self
                .tpm
                .create(srk, template)
                .map_err(cmd_err("TPM2_Create"))?;
            (c.public.to_vec(), c.private.to_vec())
        };
        self.load_under(srk, public, private)
    }

    fn load_under(
        &mut self,
        srk: u32,
        public: Vec<u8>,
        private: Vec<u8>,
    ) -> Result<BindingKey, TpmError> {
        let contents = |b: &[u8], what: &str| -> Result<Vec<u8>, TpmError> {
            match b {
                [hi, lo, rest @ ..]
                    if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() =>
                {
                    Ok(rest.to_vec())
                }
                _ => Err(TpmError::Input(format!(
                    "{what}: not a TPM2B (size field and length disagree)"
                ))),
            }
        };
        let public_area = contents(&public, "TPM2B_PUBLIC")?;
        let private_area = contents(&private, "TPM2B_PRIVATE")?;
        let l = self
            .tpm
            .load(srk, &private_area, &public_area)
            .map_err(cmd_err("TPM2_Load"))?;
        Ok(BindingKey {
            handle: l.handle,
            name: l.name.to_vec(),
            public,
            private,
        })
    }

    /// A binding key ([`core_tpm::BINDING_KEY_RSA2048`]: RSA 2048 decryption key, fixedTPM,
    /// fixedParent, sensitiveDataOrigin) under the SRK, loaded.
    pub fn create_binding_key(&mut self) -> Result<BindingKey, TpmError> {
        self.create_key(&core_tpm::BINDING_KEY_RSA2048)
    }

    /// Load a key saved earlier (its `TPM2B_PUBLIC` and `TPM2B_PRIVATE`) under the SRK,
    /// which is made again and flushed afterwards. A key made in another TPM (or before
    /// TPM2_Clear) fails with `TPM_RC_INTEGRITY` (the parent's keys differ).
    pub fn load_binding_key(
        &mut self,
        public: &[u8],
        private: &[u8],
    ) -> Result<BindingKey, TpmError> {
        let srk = self.create_srk()?;
        let r = self.load_under(srk, public.to_vec(), private.to_vec());
        let flushed = self.flush(srk);
        let key = r?;
        flushed?;
        Ok(key)
    }

    /// TPM2_Certify of a loaded key by the AK with `nonce`: (`TPMS_ATTEST`,
    /// `TPMT_SIGNATURE`), for [`trustpool_core::certify::verify_certification`].
    pub fn certify(
        &mut self,
        key: &BindingKey,
        ak: &Ak,
        nonce: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let c = self
            .tpm
            .certify(key.handle, ak.handle, nonce)
            .map_err(cmd_err("TPM2_Certify"))?;
        Ok((c.attest.to_vec(), c.signature.to_vec()))
    }

    /// TPM2_RSA_Decrypt with OAEP-SHA-256 and no label: unwrap what
    /// [`trustpool_core::certify::wrap_rsa_oaep`] wrapped to this key.
    pub fn rsa_decrypt(
        &mut self,
        key: &BindingKey,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        Ok(self
            .tpm
            .rsa_decrypt(key.handle, ciphertext, HashAlg::Sha256, &[])
            .map_err(cmd_err("TPM2_RSA_Decrypt"))?
            .to_vec())
    }

    /// TPM2_Quote: (`TPMS_ATTEST`, `TPMT_SIGNATURE`).
    pub fn quote(
        &mut self,
        ak: &Ak,
        nonce: &[u8],
        selection: &[(HashAlg, u32)],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let q = self
            .tpm
            .quote(ak.handle, nonce, selection)
            .map_err(cmd_err("TPM2_Quote"))?;
        Ok((q.attest.to_vec(), q.signature.to_vec()))
    }

    /// A quote and the PCR values it covers, read right after it; when a PCR changed in
    /// between (the values do not hash to the quote's digest), both are taken again.
    pub fn quote_with_pcrs(
        &mut self,
        ak: &Ak,
        nonce: &[u8],
        selection: &[(HashAlg, u32)],
    ) -> Result<(Vec<u8>, Vec<u8>, PcrSet), TpmError> {
        for _ in 0..QUOTE_ATTEMPTS {
            let (attest, signature) = self.quote(ak, nonce, selection)?;
            let pcrs = self.read_pcrs(selection)?;
            if pcr_digest_matches(&attest, &signature, &pcrs) {
                return Ok((attest, signature, pcrs));
            }
        }
        Err(TpmError::Input(format!(
            "PCRs kept changing between TPM2_Quote and TPM2_PCR_Read ({QUOTE_ATTEMPTS} attempts)"
        )))
    }

    /// Evidence from an AK already loaded: quote, PCR values, the TPM's identity and logs.
    pub fn collect(
        &mut self,
        ak: &Ak,
        nonce: &[u8],
        selection: &[(HashAlg, u32)],
        eventlog: &LogSource,
        ima_log: &LogSource,
    ) -> Result<Evidence, TpmError> {
        let tpm = identity(&self.properties()?);
        let (attest, signature, pcrs) = self.quote_with_pcrs(ak, nonce, selection)?;
        // Logs are read after the quote: they may have grown since, never shrunk, and a
        // verifier replays the prefix the quote covers.
        let eventlog = read_log(eventlog, crate::eventlog_cmd::SYSFS_LOG)?;
        let ima_log = read_log(ima_log, SYSFS_IMA_ASCII)?.map(|(data, path)| ImaLog {
            format: ima_format(&path, &data),
            data,
            from_entry: 0,
        });
        Ok(Evidence {
            version: evidence::EVIDENCE_VERSION,
            tpm,
            ak: AkEvidence {
                tpm2b_public: ak.public.clone(),
            },
            nonce: nonce.to_vec(),
            quote: QuoteParts { attest, signature },
            pcrs: evidence::pcr_map(&pcrs),
            eventlog: eventlog.map(|(d, _)| d),
            ima_log,
        })
    }

    /// EK certificates at the TCG NV indices that hold one.
    pub fn ek_certificates(&mut self) -> Result<Vec<EkCertInfo>, TpmError> {
        let chunk = self
            .properties()?
            .nv_buffer_max()
            .map_or(core_tpm::DEFAULT_NV_CHUNK, |n| {
                u16::try_from(n.min(2048)).unwrap_or(core_tpm::DEFAULT_NV_CHUNK)
            });
        let mut out = Vec::new();
        for (index, key) in core_tpm::nv::EK_CERTIFICATES {
            match self.tpm.nv_read_public(index) {
                Ok(_) => {}
                // Absent (TPM_RC_HANDLE) or not readable: not an EK certificate we can show.
                Err(core_tpm::Error::Tpm(_)) => continue,
                Err(e) => return Err(cmd_err("TPM2_NV_ReadPublic")(e)),
            }
            let mut buf = vec![0u8; usize::from(u16::MAX)];
            // EK certificate indices are readable with their own (empty) authorization; fall
            // back to the owner's; skip one that neither can read.
            let n = match self.tpm.nv_read_all(index, index, chunk, &mut buf) {
                Ok(n) => n,
                Err(core_tpm::Error::Tpm(_)) => {
                    match self
                        .tpm
                        .nv_read_all(core_tpm::rh::OWNER, index, chunk, &mut buf)
                    {
                        Ok(n) => n,
                        Err(core_tpm::Error::Tpm(_)) => continue,
                        Err(e) => return Err(cmd_err("TPM2_NV_Read")(e)),
                    }
                }
                Err(e) => return Err(cmd_err("TPM2_NV_Read")(e)),
            };
            buf.truncate(n);
            let sha256 = HashAlg::Sha256
                .hash(&buf)
                .map(|d| hex::encode(d.as_bytes()))
                .unwrap_or_default();
            out.push(EkCertInfo {
                index: format!("{index:#010x}"),
                key,
                size: n,
                sha256,
                der: buf,
            });
        }
        Ok(out)
    }

    /// Everything `trustpool tpm info` shows.
    pub fn info(&mut self) -> Result<TpmInfo, TpmError> {
        let p = self.properties()?;
        let banks = self.pcr_banks()?;
        let ek = self.ek_certificates()?;
        let id = identity(&p);
        Ok(TpmInfo {
            tpm: self.uri.to_string(),
            manufacturer: id.manufacturer,
            manufacturer_name: p
                .manufacturer()
                .and_then(manufacturer_name)
                .map(str::to_string),
            manufacturer_id: p.manufacturer().map(|m| format!("{m:#010x}")),
            vendor: id.vendor,
            firmware_version: p.firmware_version().map(|v| format!("{v:#018x}")),
            firmware_version_dotted: p.firmware_version().map(|v| {
                format!(
                    "{}.{}.{}.{}",
                    v >> 48,
                    (v >> 32) & 0xffff,
                    (v >> 16) & 0xffff,
                    v & 0xffff
                )
            }),
            family: p.family().to_string(),
            revision: p.revision().map(|r| format!("{}.{:02}", r / 100, r % 100)),
            level: p.get(core_tpm::pt::LEVEL),
            year: p.get(core_tpm::pt::YEAR),
            day_of_year: p.get(core_tpm::pt::DAY_OF_YEAR),
            pcr_banks: banks
                .iter()
                .map(|(a, m)| BankInfo {
                    bank: a.name().to_string(),
                    pcrs: mask_text(*m),
                })
                .collect(),
            pcr_count: p.pcr_count(),
            nv_buffer_max: p.nv_buffer_max(),
            max_response_size: p.max_response_size(),
            ek_certificates: ek,
        })
    }
}

/// Whether PCR values hash (with the signature's hash) to a quote's `pcrDigest`.
fn pcr_digest_matches(attest: &[u8], signature: &[u8], pcrs: &PcrSet) -> bool {
    let (Ok(a), Ok(sig)) = (Attest::parse(attest), Signature::parse(signature)) else {
        return false;
    };
    let Some(info) = a.quote() else { return false };
    let Some(mut h) = sig.scheme().hash().hasher() else {
        return false;
    };
    for (bank, pcr) in info.pcr_select.iter() {
        match HashAlg::from_id(bank).and_then(|alg| pcrs.pcr(alg, pcr)) {
            Some(v) => h.update(v.as_bytes()),
            None => return false,
        }
    }
    h.finalize().as_bytes() == info.pcr_digest
}

/// Read a log: `System` reads `default` when it exists.
fn read_log(src: &LogSource, default: &str) -> Result<Option<(Vec<u8>, PathBuf)>, TpmError> {
    let path = match src {
        LogSource::Skip => return Ok(None),
        LogSource::File(p) => p.clone(),
        LogSource::System => {
            let p = PathBuf::from(default);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    Ok(Some((files::read(&path)?, path)))
}

/// ASCII or binary IMA log: by the kernel's file name, else by the content (the ASCII form
/// starts with the PCR number in decimal).
pub fn ima_format(path: &Path, data: &[u8]) -> ImaFormat {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.contains("ascii") {
        return ImaFormat::Ascii;
    }
    if name.contains("binary") {
        return ImaFormat::Binary;
    }
    let text = data.iter().take(64).all(|b| b.is_ascii() && *b != 0);
    if text
        && data
            .first()
            .is_some_and(|b| b.is_ascii_digit() || *b == b' ')
    {
        ImaFormat::Ascii
    } else {
        ImaFormat::Binary
    }
}

/// `trustpool tpm info`.
pub fn tpm_info(tpm: &str) -> Result<TpmInfo, TpmError> {
    TpmSession::open(tpm)?.info()
}

/// Text form of [`TpmInfo`].
pub fn tpm_info_text(i: &TpmInfo) -> String {
    let mut s = String::new();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not reported)".into());
    let _ = writeln!(s, "TPM:               {}", i.tpm);
    let _ = writeln!(
        s,
        "manufacturer:      {}{}{}",
        i.manufacturer,
        i.manufacturer_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        i.manufacturer_id
            .as_ref()
            .map(|m| format!(" [{m}]"))
            .unwrap_or_default()
    );
    let _ = writeln!(s, "vendor:            {}", i.vendor);
    let _ = writeln!(
        s,
        "firmware version:  {} ({})",
        opt(&i.firmware_version),
        opt(&i.firmware_version_dotted)
    );
    let _ = writeln!(
        s,
        "specification:     TPM {} level {} revision {}{}",
        i.family,
        i.level.map_or("?".into(), |l| l.to_string()),
        opt(&i.revision),
        match (i.year, i.day_of_year) {
            (Some(y), Some(d)) => format!(" ({y}, day {d})"),
            _ => String::new(),
        }
    );
    let banks: Vec<String> = i
        .pcr_banks
        .iter()
        .map(|b| format!("{}: {}", b.bank, b.pcrs))
        .collect();
    let _ = writeln!(s, "PCR banks:         {}", banks.join("; "));
    if let Some(n) = i.nv_buffer_max {
        let _ = writeln!(s, "NV buffer:         {n} bytes");
    }
    if i.ek_certificates.is_empty() {
        let _ = writeln!(s, "EK certificates:   none");
    }
    for c in &i.ek_certificates {
        let _ = writeln!(
            s,
            "EK certificate:    {} {} ({} bytes, sha256:{})",
            c.index, c.key, c.size, c.sha256
        );
    }
    s
}

/// `trustpool tpm pcrs`: the values of every allocated PCR of `banks` (all allocated banks
/// when empty).
pub fn tpm_pcrs(tpm: &str, banks: &[HashAlg]) -> Result<PcrSet, TpmError> {
    let mut s = TpmSession::open(tpm)?;
    let allocated = s.pcr_banks()?;
    let selection: Vec<(HashAlg, u32)> = if banks.is_empty() {
        allocated.into_iter().filter(|(_, m)| *m != 0).collect()
    } else {
        banks
            .iter()
            .map(|b| {
                allocated
                    .iter()
                    .find(|(a, m)| a == b && *m != 0)
                    .copied()
                    .ok_or_else(|| {
                        TpmError::Input(format!("the TPM has no allocated {b} PCR bank"))
                    })
            })
            .collect::<Result<_, _>>()?
    };
    s.read_pcrs(&selection)
}

/// PCR values as text, one `bank:index: hex` line each (`tpm2_pcrread`'s order).
pub fn pcrs_text(set: &PcrSet) -> String {
    let mut s = String::new();
    for b in set.banks() {
        let _ = writeln!(s, "{}:", b.alg());
        for (i, d) in b.iter() {
            let _ = writeln!(s, "  {i:>2}: 0x{}", hex::encode_upper(d.as_bytes()));
        }
    }
    s
}

/// PCR values as JSON: `{"sha256": {"0": "hex", …}}` (the evidence's `pcrs`).
pub fn pcrs_json(set: &PcrSet) -> serde_json::Value {
    let map: std::collections::BTreeMap<&str, std::collections::BTreeMap<u8, String>> = set
        .banks()
        .iter()
        .map(|b| {
            (
                b.alg().name(),
                b.iter()
                    .map(|(i, d)| (i, hex::encode(d.as_bytes())))
                    .collect(),
            )
        })
        .collect();
    serde_json::to_value(map).unwrap_or_default()
}

/// `trustpool tpm quote`: create the AK, quote `selection` with `nonce`, read the PCR values,
/// flush the AK, and bundle it all with the logs as [`Evidence`].
pub fn tpm_quote(
    tpm: &str,
    nonce: &[u8],
    selection: &str,
    opts: &QuoteOptions,
) -> Result<Evidence, TpmError> {
    let sel = parse_selection(selection)?;
    if nonce.len() > 64 {
        return Err(TpmError::Input(format!(
            "nonce of {} bytes: TPM2_Quote takes at most 64",
            nonce.len()
        )));
    }
    let mut s = TpmSession::open(tpm)?;
    let ak = s.create_ak(opts.ak, opts.hierarchy)?;
    let ev = s.collect(&ak, nonce, &sel, &opts.eventlog, &opts.ima_log);
    let flushed = s.flush(ak.handle);
    let ev = ev?;
    flushed?;
    Ok(ev)
}

/// Enrollment by credential activation (the Keylime registrar protocol): create the RSA EK
/// (TCG "Template L-1") and the AK of `ak_template` in the hierarchy `tpm quote` uses (see
/// [`QuoteOptions::default`]), recover the secret of the credential blob `blob` (the
/// tpm2-tools / Keylime file) with TPM2_ActivateCredential, flush both keys, and return the
/// secret.
pub fn activate_credential(
    tpm: &str,
    ak_template: AkTemplate,
    blob: &[u8],
) -> Result<Vec<u8>, TpmError> {
    let mut s = TpmSession::open(tpm)?;
    let ek = s.create_ek(EkTemplate::Rsa2048)?;
    let ak = match s.create_ak(ak_template, QuoteOptions::default().hierarchy) {
        Ok(ak) => ak,
        Err(e) => {
            let _ = s.flush(ek.handle);
            return Err(e);
        }
    };
    let secret = s.activate(&ak, &ek, blob);
    let flushed_ak = s.flush(ak.handle);
    let flushed_ek = s.flush(ek.handle);
    let secret = secret?;
    flushed_ak?;
    flushed_ek?;
    Ok(secret)
}

/// Why `attest` failed.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error("collecting evidence: {0}")]
    Collect(#[from] TpmError),
    #[error("{0}")]
    Verify(#[from] VerifyFailure),
}

impl AttestError {
    /// 2 for evidence that could not be had or used, else as `trustpool verify`.
    pub fn exit_code(&self) -> i32 {
        match self {
            AttestError::Collect(_) => 2,
            AttestError::Verify(v) => v.exit_code(),
        }
    }
}

/// What `attest` found.
#[derive(Debug, Serialize)]
pub struct AttestReport {
    pub evidence: Evidence,
    pub verdict: VerdictReport,
}

/// `trustpool attest`: collect evidence from the local TPM with a fresh random nonce and
/// appraise it at once against `policy` (a compiled whitelist).
pub fn attest(
    tpm: &str,
    policy: &[u8],
    selection: &str,
    opts: &QuoteOptions,
    workarounds: Workarounds,
    backend: &dyn SignatureVerifier,
) -> Result<AttestReport, AttestError> {
    let mut nonce = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| TpmError::Input("no randomness from the OS for the nonce".into()))?;
    let evidence = tpm_quote(tpm, &nonce, selection, opts)?;
    let input = evidence.to_verify_input(policy.to_vec(), workarounds)?;
    let verdict = verify_cmd::verify(backend, &input)?;
    Ok(AttestReport { evidence, verdict })
}
