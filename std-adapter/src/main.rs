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
    ak: PathBuf,
    /// TPMS_ATTEST (`tpm2_quote -m`).
    #[arg(long, required_unless_present = "keylime_quote")]
    quote: Option<PathBuf>,
    /// TPMT_SIGNATURE (`tpm2_quote -s`), or a plain signature with --scheme.
    #[arg(long, required_unless_present = "keylime_quote")]
    signature: Option<PathBuf>,
    /// PCR values (`tpm2_quote -o`).
    #[arg(long)]
    pcrs: Option<PathBuf>,
    /// A Keylime agent quote string `r<attest>:<sig>:<pcrs>` (file), instead of the three files.
    #[arg(long, conflicts_with_all = ["quote", "signature", "pcrs"])]
    keylime_quote: Option<PathBuf>,
    /// Expected nonce (extraData), hex; empty for none.
    #[arg(long, allow_hyphen_values = true)]
    nonce: String,
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

    fn load(&self) -> Result<(AkFile, QuoteEvidence, Vec<u8>), VerifyFailure> {
        let ak = AkFile::load(&self.ak)?;
        let nonce = files::parse_hex(&self.nonce, "--nonce")?;
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

fn verify(a: &VerifyArgs) -> ExitCode {
    let input = (|| -> Result<VerifyInput, VerifyFailure> {
        let (ak, q, nonce) = a.ev.load()?;
        let policy = load_policy(&a.policy, a.group.as_deref()).map_err(|e| {
            VerifyFailure::Input(files::FileError::Format {
                what: a.policy.display().to_string(),
                msg: format!("{e:#}"),
            })
        })?;
        Ok(VerifyInput {
            ak,
            attest: q.attest,
            signature: q.signature,
            pcrs: q.pcrs,
            nonce,
            event_log: a.eventlog.as_ref().map(files::read).transpose()?,
            policy,
            workarounds: a.wa.get(),
            plain_scheme: a.ev.scheme,
        })
    })();
    let report = input.and_then(|i| verify_cmd::verify(a.ev.backend(), &i));
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
    };
    res.unwrap_or_else(|e| {
        eprintln!("trustpool: {e:#}");
        ExitCode::from(2)
    })
}
