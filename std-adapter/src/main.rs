//! The `trustpool` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trustpool::eventlog_cmd;
use trustpool::files::{self, AkFile, KeylimeQuote};
use trustpool::policy::{self, Policy};
use trustpool::quote_cmd::{self, QuoteEvidence, VerifyFailure};
use trustpool::verify_cmd::{self, VerifyInput};
use trustpool_core::eventlog::{EventLog, Workarounds};
use trustpool_core::{HashAlg, RustCrypto, SigScheme, SignatureVerifier};

#[derive(Parser)]
#[command(
    name = "trustpool",
    version,
    about = "Decide whether a machine may be trusted, from evidence its TPM signed"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Appraise a quote and event log against a whitelist: exit 0 trusted, 1 untrusted,
    /// 2 unusable input.
    Verify(VerifyArgs),
    /// TPM 2.0 quotes.
    #[command(subcommand)]
    Quote(QuoteCmd),
    /// TCG PC Client firmware event logs.
    #[command(subcommand)]
    Eventlog(EventlogCmd),
    /// Whitelists: compile, show, learn.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Linux IMA runtime measurement logs.
    #[command(subcommand)]
    Ima(ImaCmd),
    /// Talk to a TPM: device, swtpm or simulator.
    #[command(subcommand)]
    Tpm(TpmCmd),
    /// Collect evidence from the TPM with a fresh nonce and appraise it at once: exit 0
    /// trusted, 1 untrusted, 2 unusable.
    Attest {
        #[command(flatten)]
        t: TpmArgs,
        #[command(flatten)]
        q: TpmQuoteArgs,
        /// The whitelist: compiled (.tpw) or TOML/JSON.
        #[arg(long)]
        policy: PathBuf,
        #[command(flatten)]
        wa: WorkaroundArgs,
        #[arg(long)]
        json: bool,
    },
    /// The host agent: enroll with a registrar, then answer verifiers over mutual TLS with
    /// the Keylime agent API (2.1-2.6).
    Agent(Box<AgentCmdArgs>),
    /// The attestation server: registrar, poller, PollHosts (Nova, oVirt), management API.
    Server {
        /// Configuration file (TOML; see docs/server.toml). Default /etc/trustpool/server.toml
        /// when it exists.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Hosts of a trustpool server (management API).
    #[command(subcommand)]
    Hosts(HostsCmd),
    /// Host groups of a trustpool server.
    #[command(subcommand)]
    Groups(GroupsCmd),
    /// Named data keys of a trustpool server's key provider.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// A host's latest verdict (with --history N, its last N).
    Results {
        host: String,
        #[arg(long, default_value_t = 1)]
        history: usize,
        #[command(flatten)]
        m: MgmtArgs,
    },
    /// Signed attestation results (EAR tokens, ES256 JWT).
    #[command(subcommand, name = "result")]
    EarResult(ResultCmd),
}

#[derive(Subcommand)]
enum ResultCmd {
    /// Check an EAR token's signature and times and show each host's status: exit 0 when
    /// they hold (whatever the status), 1 when not.
    Verify {
        /// The token, or a file holding it.
        token: String,
        /// The server's JWK Set: a file, or an https:// URL (fetched with --server-cert
        /// pinned).
        #[arg(long)]
        jwks: String,
        /// The server's certificate (PEM, pinned) for an https:// --jwks.
        #[arg(long, env = "TRUSTPOOL_SERVER_CERT")]
        server_cert: Option<PathBuf>,
        /// Print the token's claims as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct MgmtArgs {
    /// The server's address (host:port of its HTTPS listener).
    #[arg(long, env = "TRUSTPOOL_SERVER", default_value = "127.0.0.1:8443")]
    server: String,
    /// The server's certificate (pinned), default STATE_DIR/server-cert.pem.
    #[arg(long, env = "TRUSTPOOL_SERVER_CERT")]
    server_cert: Option<PathBuf>,
    /// The management token, default read from STATE_DIR/api-token.
    #[arg(long, env = "TRUSTPOOL_TOKEN")]
    token: Option<String>,
    /// The server's state directory (where it keeps its certificate and token).
    #[arg(long, default_value = "/var/lib/trustpool/server")]
    state_dir: PathBuf,
}

#[derive(Subcommand)]
enum HostsCmd {
    /// Add a host: the name the scheduler uses, its agent's address and UUID.
    Add {
        name: String,
        #[arg(long)]
        uuid: String,
        #[arg(long, default_value = "127.0.0.1")]
        ip: String,
        #[arg(long, default_value_t = 9002)]
        port: u16,
        #[arg(long, default_value = "default")]
        group: String,
        #[command(flatten)]
        m: MgmtArgs,
    },
    List {
        #[command(flatten)]
        m: MgmtArgs,
    },
    Show {
        name: String,
        #[command(flatten)]
        m: MgmtArgs,
    },
    Remove {
        name: String,
        #[command(flatten)]
        m: MgmtArgs,
    },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Make a new AES-256 data key (random, sealed under the server's master key), released
    /// only to trusted hosts of GROUPS whose verdict is at most MAX_AGE seconds old.
    Create {
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        groups: Vec<String>,
        #[arg(long, default_value_t = 300)]
        max_age: i64,
        #[command(flatten)]
        m: MgmtArgs,
    },
    List {
        #[command(flatten)]
        m: MgmtArgs,
    },
    /// Change who may receive a key.
    Policy {
        name: String,
        #[arg(long, value_delimiter = ',', required = true)]
        groups: Vec<String>,
        #[arg(long, default_value_t = 300)]
        max_age: i64,
        #[command(flatten)]
        m: MgmtArgs,
    },
    /// Never release this key again.
    Revoke {
        name: String,
        #[command(flatten)]
        m: MgmtArgs,
    },
}

#[derive(Subcommand)]
enum GroupsCmd {
    /// Set a group's whitelist (TOML policy file); a new version is kept.
    SetPolicy {
        group: String,
        file: PathBuf,
        #[command(flatten)]
        m: MgmtArgs,
    },
}

/// `trustpool result verify`.
fn result_verify(
    token: &str,
    jwks: &str,
    server_cert: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use anyhow::anyhow;
    use trustpool::server::ear;
    let token = match std::fs::read_to_string(token) {
        Ok(t) => t,
        Err(_) if token.matches('.').count() == 2 => token.to_string(),
        Err(e) => return Err(anyhow!("reading the token {token}: {e}")),
    };
    let jwks: serde_json::Value = if let Some(rest) = jwks.strip_prefix("https://") {
        let cert_path =
            server_cert.ok_or_else(|| anyhow!("an https:// --jwks needs --server-cert"))?;
        let cert = std::fs::read_to_string(cert_path)
            .map_err(|e| anyhow!("reading {}: {e}", cert_path.display()))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let addr = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.ends_with(']'))
        {
            authority.to_string()
        } else {
            format!("{authority}:443")
        };
        let path = if path.is_empty() { "/" } else { path };
        let client = trustpool::agent::client::AgentClient::management(
            &addr,
            &cert,
            "none",
            std::time::Duration::from_secs(30),
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (code, v) = rt.block_on(client.get(path))?;
        if !(200..300).contains(&code) {
            return Err(anyhow!("{addr}{path}: the server answered {code}"));
        }
        v
    } else {
        let text = std::fs::read_to_string(jwks).map_err(|e| anyhow!("reading {jwks}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| anyhow!("{jwks}: not JSON: {e}"))?
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let claims = match ear::verify(&token, &jwks, now) {
        Ok(c) => c,
        Err(e) => {
            if json {
                print_json(&serde_json::json!({"valid": false, "error": e.to_string()}));
            }
            eprintln!("trustpool: EAR token: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        print_json(&claims);
        return Ok(ExitCode::SUCCESS);
    }
    let time = |k: &str| {
        claims[k].as_i64().map_or_else(
            String::new,
            |t| trustpool::oat::iso8601_utc(t.max(0) as u64),
        )
    };
    println!(
        "signature good, issued {}, expires {}",
        time("iat"),
        time("exp")
    );
    if let Some(subs) = claims["submods"].as_object() {
        for (host, sub) in subs {
            let vector = sub["ear.trustworthiness-vector"]
                .as_object()
                .map(|v| {
                    v.iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            println!(
                "{host}: {} ({vector}) policy {}",
                sub["ear.status"].as_str().unwrap_or("?"),
                sub["ear.appraisal-policy-id"].as_str().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn mgmt(
    m: &MgmtArgs,
    method: &str,
    path: &str,
    body: Option<bytes::Bytes>,
) -> anyhow::Result<ExitCode> {
    let cert_path = m
        .server_cert
        .clone()
        .unwrap_or_else(|| m.state_dir.join("server-cert.pem"));
    let cert = std::fs::read_to_string(&cert_path).map_err(|e| {
        anyhow::anyhow!(
            "reading the server certificate {}: {e}",
            cert_path.display()
        )
    })?;
    let token = match &m.token {
        Some(t) => t.clone(),
        None => std::fs::read_to_string(m.state_dir.join("api-token"))
            .map_err(|e| {
                anyhow::anyhow!(
                    "no --token and {}: {e}",
                    m.state_dir.join("api-token").display()
                )
            })?
            .trim()
            .to_string(),
    };
    let client = trustpool::agent::client::AgentClient::management(
        &m.server,
        &cert,
        &token,
        std::time::Duration::from_secs(30),
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (code, v) = rt.block_on(client.request_raw(method, path, body.unwrap_or_default()))?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(if (200..300).contains(&code) {
        ExitCode::SUCCESS
    } else {
        eprintln!("trustpool: server answered {code}");
        ExitCode::from(1)
    })
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AgentCmdArgs {
    #[command(subcommand)]
    sub: Option<AgentSub>,
    #[command(flatten)]
    args: AgentArgs,
}

#[derive(Subcommand)]
enum AgentSub {
    /// Fetch a data key from a trustpool server: released only to a trusted host, wrapped to
    /// a key inside this TPM and unwrapped there. Writes the raw key to --out or stdout
    /// (e.g. `| cryptsetup open --key-file - …`).
    FetchKey {
        name: String,
        /// The server's HTTPS address (host:port).
        #[arg(long)]
        server: String,
        /// The server's certificate (pinned).
        #[arg(long)]
        server_cert: PathBuf,
        /// Write the key here (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        args: AgentArgs,
    },
}

#[derive(Args)]
struct AgentArgs {
    /// Configuration file (TOML; see docs/agent.toml). Default /etc/trustpool/agent.toml
    /// when it exists.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The TPM: device:/dev/tpmrm0, swtpm:HOST:PORT or mssim:HOST:PORT.
    #[arg(long)]
    tpm: Option<String>,
    /// Address to listen on, e.g. 0.0.0.0:9002.
    #[arg(long)]
    listen: Option<String>,
    /// The agent's UUID.
    #[arg(long)]
    uuid: Option<String>,
    /// Registrar URL, e.g. http://127.0.0.1:8890 ("" to skip registration).
    #[arg(long)]
    registrar: Option<String>,
    /// State directory (keys, certificate, UUID).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// CA of the verifiers' client certificates (PEM).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// The IMA log served ("" for none).
    #[arg(long)]
    ima_log: Option<String>,
    /// The firmware event log served ("" for none).
    #[arg(long)]
    eventlog: Option<String>,
    /// Serve plain HTTP without client certificates (tests only).
    #[arg(long)]
    insecure_http: bool,
}

impl AgentArgs {
    fn config(self) -> anyhow::Result<trustpool::agent::config::AgentConfig> {
        use trustpool::agent::config::{AgentConfig, DEFAULT_CONFIG};
        let mut c = match &self.config {
            Some(p) => AgentConfig::load(p)?,
            None if std::path::Path::new(DEFAULT_CONFIG).is_file() => {
                AgentConfig::load(std::path::Path::new(DEFAULT_CONFIG))?
            }
            None => AgentConfig::default(),
        };
        if let Some(v) = self.tpm {
            c.tpm = v;
        }
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.uuid {
            c.uuid = Some(v);
        }
        if let Some(v) = self.registrar {
            c.registrar = v;
        }
        if let Some(v) = self.state_dir {
            c.state_dir = v;
        }
        if let Some(v) = self.client_ca {
            c.client_ca = Some(v);
        }
        if let Some(v) = self.ima_log {
            c.ima_log = v;
        }
        if let Some(v) = self.eventlog {
            c.eventlog = v;
        }
        if self.insecure_http {
            c.insecure_http = true;
        }
        Ok(c)
    }
}

#[derive(Args)]
struct TpmArgs {
    /// The TPM: device:/dev/tpmrm0, swtpm:HOST:PORT or mssim:HOST:PORT.
    #[arg(long, default_value = trustpool::tpm::DEFAULT_TPM)]
    tpm: String,
}

#[derive(Args)]
struct TpmQuoteArgs {
    /// PCRs to quote, e.g. sha256:0-7,10+sha1:0.
    #[arg(long, default_value = trustpool::tpm::DEFAULT_SELECTION)]
    pcrs: String,
    /// Attestation key template.
    #[arg(long, value_parser = ["ecc", "rsa"], default_value = "ecc")]
    ak: String,
    /// The firmware event log to include (default: the running kernel's, when it exists).
    #[arg(long)]
    eventlog: Option<PathBuf>,
    /// The IMA log to include (default: the running kernel's ASCII log, when it exists).
    #[arg(long)]
    ima: Option<PathBuf>,
    /// Include no logs.
    #[arg(long)]
    no_logs: bool,
}

impl TpmQuoteArgs {
    fn options(&self) -> trustpool::tpm::QuoteOptions {
        use trustpool::tpm::{LogSource, QuoteOptions};
        let src = |p: &Option<PathBuf>| match (self.no_logs, p) {
            (true, _) => LogSource::Skip,
            (false, Some(p)) => LogSource::File(p.clone()),
            (false, None) => LogSource::System,
        };
        QuoteOptions {
            ak: if self.ak == "rsa" {
                trustpool_core::tpm::AkTemplate::Rsa2048
            } else {
                trustpool_core::tpm::AkTemplate::EccP256
            },
            eventlog: src(&self.eventlog),
            ima_log: src(&self.ima),
            ..QuoteOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum TpmCmd {
    /// Manufacturer, firmware, PCR banks, EK certificates.
    Info {
        #[command(flatten)]
        t: TpmArgs,
        #[arg(long)]
        json: bool,
    },
    /// Read PCR values.
    Pcrs {
        #[command(flatten)]
        t: TpmArgs,
        /// Banks, e.g. sha256,sha1 (default: every allocated bank).
        #[arg(long, value_delimiter = ',')]
        banks: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Quote PCRs with a nonce and write an evidence bundle (JSON).
    Quote {
        #[command(flatten)]
        t: TpmArgs,
        #[command(flatten)]
        q: TpmQuoteArgs,
        /// The verifier's nonce, hex (at most 64 bytes).
        #[arg(long)]
        nonce: String,
        /// Write the bundle here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImaCmd {
    /// Every entry, decoded.
    Show {
        #[arg(default_value = IMA_LOG)]
        file: PathBuf,
        #[command(flatten)]
        fmt: ImaFormatArgs,
        /// Show at most this many entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Check template hashes and replay PCR 10 per bank.
    Replay {
        #[arg(default_value = IMA_LOG)]
        file: PathBuf,
        #[command(flatten)]
        fmt: ImaFormatArgs,
        /// Banks to replay, e.g. sha1,sha256 (default: the template hash's bank).
        #[arg(long, value_delimiter = ',')]
        banks: Vec<String>,
        /// Extend non-template banks with the zero-padded SHA-1 digest (kernels before 5.8).
        #[arg(long)]
        padded_sha1: bool,
        #[arg(long)]
        json: bool,
    },
    /// Appraise the log against a whitelist's runtime rules.
    Check {
        #[arg(default_value = IMA_LOG)]
        file: PathBuf,
        #[command(flatten)]
        fmt: ImaFormatArgs,
        /// The whitelist: compiled (.tpw) or TOML/JSON.
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

const IMA_LOG: &str = "/sys/kernel/security/ima/binary_runtime_measurements";

#[derive(Args)]
struct ImaFormatArgs {
    /// Log format (default: detected).
    #[arg(long, value_parser = ["binary", "ascii"])]
    format: Option<String>,
    /// Hash algorithm of the template digests (sha1 for `binary_runtime_measurements`,
    /// the suffix for `binary_runtime_measurements_<alg>`).
    #[arg(long, default_value = "sha1")]
    template_alg: String,
}

impl ImaFormatArgs {
    fn get(&self) -> anyhow::Result<(Option<trustpool::ima_policy::LogFormat>, HashAlg)> {
        use trustpool::ima_policy::LogFormat;
        let f = self.format.as_deref().map(|f| {
            if f == "ascii" {
                LogFormat::Ascii
            } else {
                LogFormat::Binary
            }
        });
        let alg = HashAlg::from_name(&self.template_alg)
            .ok_or_else(|| anyhow::anyhow!("unknown hash {:?}", self.template_alg))?;
        Ok((f, alg))
    }
}

#[derive(Subcommand)]
enum QuoteCmd {
    /// Verify a quote's signature, nonce and (optionally) PCR values.
    Verify {
        #[command(flatten)]
        ev: EvidenceArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum EventlogCmd {
    /// Every event, decoded (YAML-like text, or JSON).
    Show {
        /// The log (default: the running kernel's).
        #[arg(default_value = eventlog_cmd::SYSFS_LOG)]
        file: PathBuf,
        /// Also print the derived facts (Secure Boot, boot applications, command line).
        #[arg(long)]
        summary: bool,
        #[arg(long)]
        json: bool,
    },
    /// Replay the log: final PCR values per bank.
    Replay {
        #[arg(default_value = eventlog_cmd::SYSFS_LOG)]
        file: PathBuf,
        /// Banks to replay, e.g. sha256,sha1 (default: every bank the log has).
        #[arg(long, value_delimiter = ',')]
        banks: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replay the log and check it against a verified quote.
    Check {
        #[arg(default_value = eventlog_cmd::SYSFS_LOG)]
        file: PathBuf,
        #[command(flatten)]
        ev: EvidenceArgs,
        #[command(flatten)]
        wa: WorkaroundArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Compile a TOML (or JSON) whitelist into the compact binary form.
    Compile {
        /// The whitelist, TOML (or JSON when it ends in .json).
        file: PathBuf,
        /// Output file (.tpw).
        #[arg(short, long)]
        output: PathBuf,
        /// Host group whose overrides apply.
        #[arg(long)]
        group: Option<String>,
    },
    /// Describe a compiled whitelist (or a TOML one, compiled in memory).
    Show {
        file: PathBuf,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a whitelist (TOML, to stdout) from a known-good host's event log.
    Learn {
        #[arg(long, default_value = eventlog_cmd::SYSFS_LOG)]
        eventlog: PathBuf,
        /// The host's quoted PCR values (`tpm2_quote -o`), for golden PCR values.
        #[arg(long)]
        pcrs: Option<PathBuf>,
        /// The host's attestation key, to accept only it.
        #[arg(long)]
        ak: Option<PathBuf>,
        #[arg(long, default_value = "learned")]
        name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// ring where it has the algorithm, RustCrypto otherwise.
    Ring,
    /// RustCrypto only (the core's pure-Rust backend).
    Rustcrypto,
}

#[derive(Args)]
struct EvidenceArgs {
    /// Attestation key: TPM2B_PUBLIC, TPMT_PUBLIC, DER or PEM SubjectPublicKeyInfo.
    #[arg(long)]
    ak: Option<PathBuf>,
    /// TPMS_ATTEST (`tpm2_quote -m`).
    #[arg(long)]
    quote: Option<PathBuf>,
    /// TPMT_SIGNATURE (`tpm2_quote -s`), or a plain signature with --scheme.
    #[arg(long)]
    signature: Option<PathBuf>,
    /// PCR values (`tpm2_quote -o`).
    #[arg(long)]
    pcrs: Option<PathBuf>,
    /// A Keylime agent quote string `r<attest>:<sig>:<pcrs>` (file), instead of the three files.
    #[arg(long, conflicts_with_all = ["quote", "signature", "pcrs"])]
    keylime_quote: Option<PathBuf>,
    /// Expected nonce (extraData), hex; empty for none. Required: the verifier's own copy.
    #[arg(long, allow_hyphen_values = true)]
    nonce: Option<String>,
    /// Scheme of a plain signature, e.g. rsassa-sha256, rsapss-sha256, ecdsa-sha384.
    #[arg(long, value_parser = parse_scheme)]
    scheme: Option<SigScheme>,
    /// Signature backend.
    #[arg(long, value_enum, default_value = "ring")]
    backend: Backend,
}

#[derive(Args)]
struct WorkaroundArgs {
    /// Opt-in workaround: firmware (GCE) that extends PCR 5 with the ExitBootServices events
    /// without logging them. Reported in the verdict when it is used.
    #[arg(long)]
    workaround_ebs_missing: bool,
}

impl WorkaroundArgs {
    fn get(&self) -> Workarounds {
        Workarounds {
            ebs_events_missing: self.workaround_ebs_missing,
        }
    }
}

#[derive(Args)]
struct VerifyArgs {
    /// An evidence bundle (`trustpool tpm quote -o`) instead of --ak/--quote/--signature/--pcrs
    /// and the logs; --nonce is still required.
    #[arg(long, conflicts_with_all = ["ak", "quote", "signature", "pcrs", "keylime_quote", "eventlog", "ima"])]
    evidence: Option<PathBuf>,
    #[command(flatten)]
    ev: EvidenceArgs,
    /// The firmware event log.
    #[arg(long)]
    eventlog: Option<PathBuf>,
    /// The whitelist: compiled (.tpw) or TOML/JSON.
    #[arg(long)]
    policy: PathBuf,
    /// Host group of a TOML whitelist.
    #[arg(long)]
    group: Option<String>,
    #[command(flatten)]
    wa: WorkaroundArgs,
    /// The IMA runtime measurement log (binary or ASCII); PCR 10 must be in --pcrs.
    #[arg(long)]
    ima: Option<PathBuf>,
    /// Hash algorithm of the IMA log's template digests.
    #[arg(long, default_value = "sha1")]
    ima_template_alg: String,
    #[arg(long)]
    json: bool,
}

fn parse_scheme(s: &str) -> Result<SigScheme, String> {
    let (kind, hash) = s
        .split_once('-')
        .ok_or("expected <scheme>-<hash>, e.g. rsassa-sha256")?;
    let hash = HashAlg::from_name(hash).ok_or_else(|| format!("unknown hash {hash:?}"))?;
    match kind {
        "rsassa" => Ok(SigScheme::RsaSsa(hash)),
        "rsapss" => Ok(SigScheme::RsaPss(hash)),
        "ecdsa" => Ok(SigScheme::Ecdsa(hash)),
        _ => Err(format!("unknown scheme {kind:?}: rsassa, rsapss or ecdsa")),
    }
}

impl EvidenceArgs {
    fn backend(&self) -> &'static dyn SignatureVerifier {
        match self.backend {
            Backend::Ring => &trustpool::Ring,
            Backend::Rustcrypto => &RustCrypto,
        }
    }

    fn nonce(&self) -> Result<Vec<u8>, VerifyFailure> {
        let n = self
            .nonce
            .as_deref()
            .ok_or_else(|| missing("--nonce (the nonce you asked the TPM to sign, hex)"))?;
        Ok(files::parse_hex(n, "--nonce")?)
    }

    fn load(&self) -> Result<(AkFile, QuoteEvidence, Vec<u8>), VerifyFailure> {
        let ak = AkFile::load(self.ak.as_ref().ok_or_else(|| missing("--ak"))?)?;
        let nonce = self.nonce()?;
        let ev = match (&self.keylime_quote, &self.quote, &self.signature) {
            (Some(p), _, _) => {
                let text = String::from_utf8_lossy(&files::read(p)?).into_owned();
                QuoteEvidence::from(KeylimeQuote::parse(&text)?)
            }
            (None, Some(q), Some(s)) => QuoteEvidence {
                attest: files::read(q)?,
                signature: files::read(s)?,
                pcrs: self.pcrs.as_ref().map(files::read).transpose()?,
            },
            _ => {
                return Err(VerifyFailure::Input(files::FileError::Format {
                    what: "arguments".into(),
                    msg: "--quote and --signature (or --keylime-quote) are required".into(),
                }))
            }
        };
        Ok((ak, ev, nonce))
    }
}

fn missing(what: &str) -> VerifyFailure {
    VerifyFailure::Input(files::FileError::Format {
        what: "arguments".into(),
        msg: format!("{what} is required"),
    })
}

/// Load a whitelist: compiled (.tpw, by its magic) or TOML/JSON, compiled in memory.
fn load_policy(file: &Path, group: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let bytes = files::read(file)?;
    if bytes.starts_with(&trustpool_core::whitelist::MAGIC) {
        anyhow::ensure!(
            group.is_none(),
            "--group applies to TOML whitelists; {} is compiled",
            file.display()
        );
        return Ok(bytes);
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{}: neither a compiled whitelist nor UTF-8 text",
            file.display()
        )
    })?;
    let name = file.display().to_string();
    let policy = if file.extension().is_some_and(|e| e == "json") {
        Policy::from_json(&text, &name)?
    } else {
        Policy::from_toml(&text, &name)?
    };
    Ok(policy.compile(group)?)
}

fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("trustpool: cannot serialize output: {e}"),
    }
}

/// Report a failure: JSON on stdout with --json, one line on stderr otherwise.
fn fail(e: &VerifyFailure, json: bool, what: &str) -> ExitCode {
    if json {
        print_json(
            &serde_json::json!({"verified": false, "error": e.code(), "message": e.to_string()}),
        );
    } else {
        eprintln!("trustpool: {what} ({}): {e}", e.code());
    }
    ExitCode::from(e.exit_code() as u8)
}

fn quote_verify(ev: &EvidenceArgs, json: bool) -> ExitCode {
    let res = ev.load().and_then(|(ak, q, nonce)| {
        quote_cmd::verify_quote(ev.backend(), &ak, &q, &nonce, ev.scheme)
    });
    match res {
        Ok((report, _)) => {
            if json {
                print_json(&report);
            } else {
                print!("{}", quote_cmd::summary(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, json, "quote rejected"),
    }
}

fn read_log(file: &Path) -> anyhow::Result<Vec<u8>> {
    Ok(files::read(file)?)
}

fn eventlog_cmd(cmd: EventlogCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        EventlogCmd::Show {
            file,
            summary,
            json,
        } => {
            let bytes = read_log(&file)?;
            let log =
                EventLog::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                let mut v = eventlog_cmd::show_json(&log);
                if summary {
                    v["summary"] = serde_json::Value::String(eventlog_cmd::summary_text(&log));
                }
                print_json(&v);
            } else {
                print!("{}", eventlog_cmd::show_text(&log));
                if summary {
                    print!("summary:\n{}", eventlog_cmd::summary_text(&log));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        EventlogCmd::Replay { file, banks, json } => {
            let bytes = read_log(&file)?;
            let log =
                EventLog::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let banks: Vec<HashAlg> = banks
                .iter()
                .map(|b| HashAlg::from_name(b).ok_or_else(|| anyhow::anyhow!("unknown bank {b:?}")))
                .collect::<anyhow::Result<_>>()?;
            let r = eventlog_cmd::replay(&log, &banks)?;
            if json {
                print_json(&eventlog_cmd::replay_json(&log, &r));
            } else {
                print!("{}", eventlog_cmd::replay_text(&log, &r));
            }
            Ok(ExitCode::SUCCESS)
        }
        EventlogCmd::Check { file, ev, wa, json } => {
            let bytes = read_log(&file)?;
            let log =
                EventLog::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let (ak, q, nonce) = match ev.load() {
                Ok(x) => x,
                Err(e) => return Ok(fail(&e, json, "quote rejected")),
            };
            match trustpool::eventlog_cmd::check(
                ev.backend(),
                &log,
                &ak,
                &q,
                &nonce,
                ev.scheme,
                wa.get(),
            ) {
                Ok(report) => {
                    let ok = report.all_match;
                    if json {
                        print_json(&report);
                    } else {
                        print!("{}", eventlog_cmd::check_text(&report));
                    }
                    Ok(if ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => Ok(fail(&e, json, "quote rejected")),
            }
        }
    }
}

fn policy_cmd(cmd: PolicyCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCmd::Compile {
            file,
            output,
            group,
        } => {
            let bin = load_policy(&file, group.as_deref())?;
            let wl = trustpool_core::whitelist::Whitelist::parse(&bin)
                .map_err(|e| anyhow::anyhow!("compiled whitelist invalid: {e}"))?;
            std::fs::write(&output, &bin)
                .map_err(|e| anyhow::anyhow!("{}: {e}", output.display()))?;
            eprintln!(
                "wrote {} ({} bytes, sha256:{})",
                output.display(),
                bin.len(),
                hex::encode(wl.digest())
            );
        }
        PolicyCmd::Show { file, group, json } => {
            let bin = load_policy(&file, group.as_deref())?;
            let wl = trustpool_core::whitelist::Whitelist::parse(&bin)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let report = policy::show(&wl);
            if json {
                print_json(&report);
            } else {
                print!("{}", policy::show_text(&report));
            }
        }
        PolicyCmd::Learn {
            eventlog,
            pcrs,
            ak,
            name,
        } => {
            let bytes = read_log(&eventlog)?;
            let pcrs = pcrs
                .map(|p| -> anyhow::Result<_> {
                    Ok(files::parse_pcrs(
                        &files::read(&p)?,
                        &p.display().to_string(),
                    )?)
                })
                .transpose()?;
            let ak = ak.map(AkFile::load).transpose()?;
            let text = verify_cmd::learn(
                &bytes,
                &eventlog.display().to_string(),
                pcrs.as_ref(),
                ak.as_ref(),
                &name,
            )?;
            print!("{text}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tpm_cmd(cmd: TpmCmd) -> anyhow::Result<ExitCode> {
    use trustpool::tpm;
    match cmd {
        TpmCmd::Info { t, json } => {
            let i = tpm::tpm_info(&t.tpm)?;
            if json {
                print_json(&i);
            } else {
                print!("{}", tpm::tpm_info_text(&i));
            }
        }
        TpmCmd::Pcrs { t, banks, json } => {
            let banks: Vec<HashAlg> = banks
                .iter()
                .map(|b| HashAlg::from_name(b).ok_or_else(|| anyhow::anyhow!("unknown bank {b:?}")))
                .collect::<anyhow::Result<_>>()?;
            let set = tpm::tpm_pcrs(&t.tpm, &banks)?;
            if json {
                print_json(&tpm::pcrs_json(&set));
            } else {
                print!("{}", tpm::pcrs_text(&set));
            }
        }
        TpmCmd::Quote {
            t,
            q,
            nonce,
            output,
        } => {
            let nonce = files::parse_hex(&nonce, "--nonce")?;
            let ev = tpm::tpm_quote(&t.tpm, &nonce, &q.pcrs, &q.options())?;
            match output {
                Some(p) => std::fs::write(&p, ev.to_json())
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                None => println!("{}", ev.to_json()),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ima_cmd(cmd: ImaCmd) -> anyhow::Result<ExitCode> {
    use trustpool::ima_policy;
    use trustpool_core::ima::BankMode;
    match cmd {
        ImaCmd::Show { file, fmt, limit } => {
            let (f, alg) = fmt.get()?;
            let text = ima_policy::ima_show(&files::read(&file)?, f, alg, limit)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        ImaCmd::Replay {
            file,
            fmt,
            banks,
            padded_sha1,
            json,
        } => {
            let (f, alg) = fmt.get()?;
            let banks: Vec<(HashAlg, BankMode)> = if banks.is_empty() {
                vec![(alg, BankMode::TemplateHash)]
            } else {
                banks
                    .iter()
                    .map(|b| {
                        let h = HashAlg::from_name(b)
                            .ok_or_else(|| anyhow::anyhow!("unknown bank {b:?}"))?;
                        let mode = if padded_sha1 && h != alg {
                            BankMode::PaddedSha1
                        } else {
                            BankMode::TemplateHash
                        };
                        Ok((h, mode))
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let r = ima_policy::ima_replay(&files::read(&file)?, f, alg, &banks, None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                print_json(&r);
            } else {
                print!("{}", r.text());
            }
            Ok(if r.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ImaCmd::Check {
            file,
            fmt,
            policy,
            json,
        } => {
            let (f, alg) = fmt.get()?;
            let wl = load_policy(&policy, None)?;
            let r = ima_policy::ima_check(&files::read(&file)?, f, alg, &wl, None, None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if json {
                print_json(&r);
            } else {
                print!("{}", r.text());
            }
            Ok(if r.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn verify(a: &VerifyArgs) -> ExitCode {
    let policy = |group| {
        load_policy(&a.policy, group).map_err(|e| {
            VerifyFailure::Input(files::FileError::Format {
                what: a.policy.display().to_string(),
                msg: format!("{e:#}"),
            })
        })
    };
    let mut bundled_ima: Option<(Vec<u8>, HashAlg)> = None;
    let input = (|| -> Result<VerifyInput, VerifyFailure> {
        if let Some(path) = &a.evidence {
            let bundle = trustpool::evidence::Evidence::load(path)?;
            let want = a.ev.nonce()?;
            let mut input = bundle.to_verify_input(policy(a.group.as_deref())?, a.wa.get())?;
            // The bundle's nonce is the prover's claim; the verifier's own copy decides.
            input.nonce = want;
            if let Some(ima) = &bundle.ima_log {
                bundled_ima = Some((ima.data.clone(), HashAlg::Sha1));
            }
            return Ok(input);
        }
        let (ak, q, nonce) = a.ev.load()?;
        Ok(VerifyInput {
            ak,
            attest: q.attest,
            signature: q.signature,
            pcrs: q.pcrs,
            nonce,
            event_log: a.eventlog.as_ref().map(files::read).transpose()?,
            policy: policy(a.group.as_deref())?,
            workarounds: a.wa.get(),
            plain_scheme: a.ev.scheme,
        })
    })();
    let report = input.and_then(|i| {
        let runtime = if bundled_ima.is_some() || a.ima.is_some() {
            1 << 10
        } else {
            0
        };
        let mut r = verify_cmd::verify_with_runtime(a.ev.backend(), &i, runtime)?;
        if let Some((log, alg)) = &bundled_ima {
            verify_cmd::add_ima(&mut r, &i, log, *alg)?;
        }
        if let Some(p) = &a.ima {
            let alg = HashAlg::from_name(&a.ima_template_alg).ok_or_else(|| {
                VerifyFailure::Input(files::FileError::Format {
                    what: "--ima-template-alg".into(),
                    msg: format!("unknown hash {:?}", a.ima_template_alg),
                })
            })?;
            verify_cmd::add_ima(&mut r, &i, &files::read(p)?, alg)?;
        }
        Ok(r)
    });
    match report {
        Ok(r) => {
            if a.json {
                print_json(&r);
            } else {
                print!("{}", verify_cmd::verdict_text(&r));
            }
            if r.trusted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let code = ExitCode::from(2);
            if a.json {
                print_json(
                    &serde_json::json!({"trusted": false, "error": e.code(), "message": e.to_string()}),
                );
            } else {
                eprintln!("trustpool: unusable input ({}): {e}", e.code());
            }
            code
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Verify(a) => Ok(verify(&a)),
        Cmd::Quote(QuoteCmd::Verify { ev, json }) => Ok(quote_verify(&ev, json)),
        Cmd::Eventlog(cmd) => eventlog_cmd(cmd),
        Cmd::Policy(cmd) => policy_cmd(cmd),
        Cmd::Ima(cmd) => ima_cmd(cmd),
        Cmd::Tpm(cmd) => tpm_cmd(cmd),
        Cmd::Server { config } => (|| {
            use trustpool::server::config::{ServerConfig, DEFAULT_CONFIG};
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            let cfg = match config {
                Some(p) => ServerConfig::load(&p)?,
                None if std::path::Path::new(DEFAULT_CONFIG).is_file() => {
                    ServerConfig::load(std::path::Path::new(DEFAULT_CONFIG))?
                }
                None => ServerConfig::default(),
            };
            trustpool::server::run::run(cfg)?;
            Ok(ExitCode::SUCCESS)
        })(),
        Cmd::Hosts(HostsCmd::Add {
            name,
            uuid,
            ip,
            port,
            group,
            m,
        }) => {
            let body = serde_json::json!({"name": name, "uuid": uuid, "ip": ip, "port": port, "group": group});
            mgmt(&m, "POST", "/v1/hosts", Some(body.to_string().into()))
        }
        Cmd::Hosts(HostsCmd::List { m }) => mgmt(&m, "GET", "/v1/hosts", None),
        Cmd::Hosts(HostsCmd::Show { name, m }) => mgmt(
            &m,
            "GET",
            &format!("/v1/hosts/{}", trustpool::agent::api::encode_segment(&name)),
            None,
        ),
        Cmd::Hosts(HostsCmd::Remove { name, m }) => mgmt(
            &m,
            "DELETE",
            &format!("/v1/hosts/{}", trustpool::agent::api::encode_segment(&name)),
            None,
        ),
        Cmd::Groups(GroupsCmd::SetPolicy { group, file, m }) => (|| {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            mgmt(
                &m,
                "PUT",
                &format!(
                    "/v1/groups/{}/policy",
                    trustpool::agent::api::encode_segment(&group)
                ),
                Some(text.into()),
            )
        })(),
        Cmd::Keys(KeysCmd::Create {
            name,
            groups,
            max_age,
            m,
        }) => {
            let body = serde_json::json!({"name": name, "groups": groups, "max_age_secs": max_age});
            mgmt(&m, "POST", "/v1/keys", Some(body.to_string().into()))
        }
        Cmd::Keys(KeysCmd::List { m }) => mgmt(&m, "GET", "/v1/keys", None),
        Cmd::Keys(KeysCmd::Policy {
            name,
            groups,
            max_age,
            m,
        }) => {
            let body = serde_json::json!({"groups": groups, "max_age_secs": max_age});
            mgmt(
                &m,
                "PUT",
                &format!(
                    "/v1/keys/{}/policy",
                    trustpool::agent::api::encode_segment(&name)
                ),
                Some(body.to_string().into()),
            )
        }
        Cmd::Keys(KeysCmd::Revoke { name, m }) => mgmt(
            &m,
            "POST",
            &format!(
                "/v1/keys/{}/revoke",
                trustpool::agent::api::encode_segment(&name)
            ),
            None,
        ),
        Cmd::Results { host, history, m } => mgmt(
            &m,
            "GET",
            &format!(
                "/v1/hosts/{}/results?history={history}",
                trustpool::agent::api::encode_segment(&host)
            ),
            None,
        ),
        Cmd::EarResult(ResultCmd::Verify {
            token,
            jwks,
            server_cert,
            json,
        }) => result_verify(&token, &jwks, server_cert.as_deref(), json),
        Cmd::Agent(a) => (|| {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            match a.sub {
                None => {
                    trustpool::agent::run(a.args.config()?)?;
                    Ok(ExitCode::SUCCESS)
                }
                Some(AgentSub::FetchKey {
                    name,
                    server,
                    server_cert,
                    out,
                    args,
                }) => {
                    let pem = std::fs::read_to_string(&server_cert)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", server_cert.display()))?;
                    let key = trustpool::agent::fetch_key(&args.config()?, &server, &pem, &name)?;
                    match out {
                        Some(p) => trustpool::agent::state::write_private(&p, &key)?,
                        None => {
                            use std::io::Write;
                            std::io::stdout().write_all(&key)?;
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        })(),
        Cmd::Attest {
            t,
            q,
            policy,
            wa,
            json,
        } => (|| {
            let wl = load_policy(&policy, None)?;
            match trustpool::tpm::attest(
                &t.tpm,
                &wl,
                &q.pcrs,
                &q.options(),
                wa.get(),
                &trustpool::Ring,
            ) {
                Ok(r) => {
                    if json {
                        print_json(&r);
                    } else {
                        print!("{}", verify_cmd::verdict_text(&r.verdict));
                    }
                    Ok(if r.verdict.trusted {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
                Err(e) => {
                    eprintln!("trustpool: {e}");
                    Ok(ExitCode::from(e.exit_code() as u8))
                }
            }
        })(),
    };
    res.unwrap_or_else(|e| {
        eprintln!("trustpool: {e:#}");
        ExitCode::from(2)
    })
}
