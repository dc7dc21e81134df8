//! The swtpm test harness shared by the TPM integration tests: a real software TPM on
//! loopback (swtpm, Debian `swtpm`/`swtpm-tools`), started per test on free ports and killed on
//! drop, and helpers around tpm2-tools. Skips with a message when the tools are missing,
//! except in CI.
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use trustpool::evidence::Evidence;
use trustpool::files::{self, AkFile};
use trustpool::policy::Policy;
use trustpool::tpm::{
    self, tpm_info, tpm_pcrs, tpm_quote, Device, LogSource, QuoteOptions, TpmError, TpmSession,
    TpmUri,
};
use trustpool::verify_cmd::{learn, verify};
use trustpool_core::eventlog::{EventLog, Workarounds};
use trustpool_core::tpm::{AkTemplate, Hierarchy, Tpm};
use trustpool_core::{AttestationKey, Digest, HashAlg, PcrValues, Quote, QuoteError};

// --- harness -------------------------------------------------------------------------------

pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

pub fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(bin).is_file()))
}

/// Whether the tools are here; in CI their absence fails the test.
pub fn have(bins: &[&str]) -> bool {
    let missing: Vec<&str> = bins.iter().copied().filter(|b| !on_path(b)).collect();
    if missing.is_empty() {
        return true;
    }
    if ci() {
        panic!("{missing:?} not installed, and CI is set: install swtpm, swtpm-tools, tpm2-tools");
    }
    eprintln!("skipping: {missing:?} not installed (apt-get install swtpm swtpm-tools tpm2-tools)");
    false
}

pub fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/test-vectors")
        .join(rel);
    if p.is_file() {
        Some(p)
    } else if ci() {
        panic!("{} is missing in CI", p.display());
    } else {
        eprintln!("skipping: {} not present", p.display());
        None
    }
}

pub static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A directory under the target's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "tpm-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration of a local CA for `swtpm_setup --create-ek-cert --create-platform-cert`,
/// all in `dir` (nothing read from or written to /etc or /var/lib/swtpm-localca): a
/// `swtpm_setup.conf` naming `swtpm_localca` with its own `swtpm-localca.conf` (CA state in
/// `dir/ca`, created on first use) and options file. Returns the `swtpm_setup.conf` path, or
/// `None` when `swtpm_localca` is not installed.
pub fn localca_config(dir: &Path) -> Option<PathBuf> {
    let tool = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("swtpm_localca"))
            .find(|p| p.is_file())
    })?;
    let ca = dir.join("ca");
    std::fs::create_dir_all(&ca).unwrap();
    let localca = dir.join("swtpm-localca.conf");
    std::fs::write(
        &localca,
        format!(
            "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n\
             certserial = {ca}/certserial\n",
            ca = ca.display()
        ),
    )
    .unwrap();
    let options = dir.join("swtpm-localca.options");
    std::fs::write(
        &options,
        "--platform-manufacturer trustpool\n--platform-version 2.1\n--platform-model swtpm\n",
    )
    .unwrap();
    let setup = dir.join("swtpm_setup.conf");
    std::fs::write(
        &setup,
        format!(
            "create_certs_tool = {}\ncreate_certs_tool_config = {}\n\
             create_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
            tool.display(),
            localca.display(),
            options.display()
        ),
    )
    .unwrap();
    Some(setup)
}

/// A TPM state made once per test process by `swtpm_setup` (both banks, EK certificates if
/// the local CA works), copied for every swtpm started. With certificates, swtpm_setup makes
/// the RSA-2048 EK (persistent 0x81010001, certificate at NV 0x01c00002) and an ECC NIST
/// P-384 EK (persistent 0x81010016, certificate at NV 0x01c00016), and a platform
/// certificate (NV 0x01c08000), signed by a local CA made in a temporary directory.
pub fn template_state() -> &'static (PathBuf, bool) {
    static STATE: OnceLock<(PathBuf, bool)> = OnceLock::new();
    STATE.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Templates of test processes that are gone.
        for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name
                .strip_prefix("tpm-state-template-")
                .or_else(|| name.strip_prefix("tpm-localca-"))
            {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("tpm-state-template-{}", std::process::id()));
        let ca_dir = tmp.join(format!("tpm-localca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&ca_dir);
        let config = localca_config(&ca_dir);
        let setup = |certs: bool| {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let mut c = Command::new("swtpm_setup");
            c.args(["--tpm2", "--pcr-banks", "sha1,sha256", "--tpmstate"])
                .arg(&dir);
            if certs {
                c.arg("--config")
                    .arg(config.as_ref().unwrap())
                    .args(["--create-ek-cert", "--create-platform-cert"]);
            }
            let out = c.stdin(Stdio::null()).output().unwrap();
            if !out.status.success() {
                eprintln!(
                    "swtpm_setup{} failed: {}{}",
                    if certs { " (with certificates)" } else { "" },
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            out.status.success()
        };
        let certs = config.is_some() && setup(true);
        if !certs {
            assert!(setup(false), "swtpm_setup failed");
        }
        (dir, certs)
    })
}

/// A running swtpm on 127.0.0.1 with a fresh copy of the template state; killed on drop.
pub struct Swtpm {
    pub child: Child,
    pub port: u16,
    pub _dir: TempDir,
}

pub fn free_port_pair() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

impl Swtpm {
    pub fn start() -> Swtpm {
        Self::start_with(true)
    }

    /// `initialized`: started with `--flags not-need-init,startup-clear`.
    pub fn start_with(initialized: bool) -> Swtpm {
        Self::spawn(initialized, true)
    }

    /// A swtpm with an empty state: a TPM manufactured at start, with seeds of its own (no
    /// EK made, no certificates). Every [`Swtpm::start`] copies one template state, so those
    /// TPMs share their seeds: the same primary keys, and blobs of one load in the others.
    pub fn start_blank() -> Swtpm {
        Self::spawn(true, false)
    }

    fn spawn(initialized: bool, copy_template: bool) -> Swtpm {
        for _ in 0..10 {
            let dir = TempDir::new("swtpm");
            if copy_template {
                let (template, _) = template_state();
                for e in std::fs::read_dir(template).unwrap() {
                    let e = e.unwrap();
                    std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
                }
            }
            let port = free_port_pair();
            let mut c = Command::new("swtpm");
            c.args(["socket", "--tpm2"])
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.path().display()));
            if initialized {
                c.args(["--flags", "not-need-init,startup-clear"]);
            }
            let mut child = c
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut up = false;
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break; // port taken: try another
                }
                if TcpStream::connect(("127.0.0.1", port + 1)).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                return Swtpm {
                    child,
                    port,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start");
    }

    /// A swtpm whose state has EK certificates (see [`template_state`]); `None`, with a
    /// message, when `swtpm_setup` could not make them (a failure in CI).
    pub fn start_with_ek_certs() -> Option<Swtpm> {
        if template_state().1 {
            return Some(Swtpm::start());
        }
        if ci() {
            panic!("swtpm_setup --create-ek-cert failed, and CI is set");
        }
        eprintln!("skipping: swtpm_setup could not create EK certificates");
        None
    }

    pub fn uri(&self) -> String {
        format!("swtpm:127.0.0.1:{}", self.port)
    }

    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    pub fn session(&self) -> TpmSession {
        TpmSession::open(&self.uri()).unwrap()
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn no_logs(ak: AkTemplate) -> QuoteOptions {
    QuoteOptions {
        ak,
        hierarchy: Hierarchy::Endorsement,
        eventlog: LogSource::Skip,
        ima_log: LogSource::Skip,
    }
}

/// Verify evidence with the core: signature, nonce, then the PCR values.
pub fn core_verify(ev: &Evidence, nonce: &[u8]) -> Result<(), QuoteError> {
    let ak_file = ev.ak_file("evidence").unwrap();
    let ak: AttestationKey<'_> = ak_file.ak().unwrap();
    let q = Quote::verify(&ev.quote.attest, &ev.quote.signature, &ak, nonce)?;
    q.check_pcrs(&ev.pcr_set().unwrap())
}

pub fn extend_random(s: &mut TpmSession, pcrs: &[u32]) {
    for &pcr in pcrs {
        let r1 = s.random(20).unwrap();
        let r2 = s.random(32).unwrap();
        s.extend(
            pcr,
            &[
                Digest::from_slice(HashAlg::Sha1, &r1).unwrap(),
                Digest::from_slice(HashAlg::Sha256, &r2).unwrap(),
            ],
        )
        .unwrap();
    }
}

pub fn run_tool(bin: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    out
}

// --- tests ---------------------------------------------------------------------------------

// --- trustpool processes (agents, servers) on loopback -----------------------------------------

/// A whitelist a freshly started swtpm satisfies: PCRs 0 and 7 of the SHA-256 bank zero.
pub const FRESH_SWTPM_POLICY: &str = r#"
name = "swtpm fresh"
require_eventlog = false
[quote]
require_pcrs = ["sha256:0-7"]
[[pcr]]
index = 7
values = ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
[[pcr]]
index = 0
values = ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
"#;

/// A child process killed (SIGKILL) and reaped on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until something listens on `port` (60 s).
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `child` listens on `port`; if it exits first (or 60 s pass), fail with its log.
pub fn wait_child_port(port: u16, child: &mut Child, log: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            panic!(
                "{what} did not start:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `trustpool ARGS…` in the background, its stderr appended to `log`, waited for on `port`.
pub fn start_trustpool(args: &[&std::ffi::OsStr], log: &Path, port: u16, what: &str) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trustpool"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    wait_child_port(port, &mut child, log, what);
    Proc(child)
}

/// An agent configuration for `tpm`, listening on `port`, enrolling with the registrar on
/// `registrar`, trusting client certificates from `ca`, serving no logs; state in dir/uuid.
pub fn agent_config(
    dir: &Path,
    tpm: &Swtpm,
    uuid: &str,
    port: u16,
    registrar: u16,
    ca: &Path,
) -> PathBuf {
    let cfg = dir.join(format!("{uuid}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "tpm = \"{}\"\nlisten = \"127.0.0.1:{port}\"\nuuid = \"{uuid}\"\nregistrar = \"http://127.0.0.1:{registrar}\"\nstate_dir = \"{}\"\nclient_ca = \"{}\"\neventlog = \"\"\nima_log = \"\"\n",
            tpm.uri(),
            dir.join(uuid).display(),
            ca.display()
        ),
    )
    .unwrap();
    cfg
}

/// `trustpool agent` with [`agent_config`], its log in dir/uuid.log.
pub fn start_agent(
    dir: &Path,
    tpm: &Swtpm,
    uuid: &str,
    port: u16,
    registrar: u16,
    ca: &Path,
) -> Proc {
    let cfg = agent_config(dir, tpm, uuid, port, registrar, ca);
    start_agent_config(&cfg, &dir.join(format!("{uuid}.log")), port)
}

/// `trustpool agent --config CFG`.
pub fn start_agent_config(cfg: &Path, log: &Path, port: u16) -> Proc {
    start_trustpool(
        &["agent".as_ref(), "--config".as_ref(), cfg.as_os_str()],
        log,
        port,
        "agent",
    )
}

/// `trustpool server --config CFG`.
pub fn start_server(cfg: &Path, log: &Path, port: u16) -> Proc {
    start_trustpool(
        &["server".as_ref(), "--config".as_ref(), cfg.as_os_str()],
        log,
        port,
        "server",
    )
}
