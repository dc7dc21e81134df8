//! The `trustpool` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use trustpool::files::{self, AkFile, KeylimeQuote};
use trustpool::policy::{self, Policy};
use trustpool::quote_cmd::{self, QuoteEvidence, VerifyFailure};
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
    /// TPM 2.0 quotes.
    #[command(subcommand)]
    Quote(QuoteCmd),
    /// Whitelists: compile, show, learn.
    #[command(subcommand)]
    Policy(PolicyCmd),
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
}

#[derive(Subcommand)]
enum QuoteCmd {
    /// Verify a quote's signature, nonce and (optionally) PCR values.
    Verify(QuoteVerifyArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// ring where it has the algorithm, RustCrypto otherwise.
    Ring,
    /// RustCrypto only (the core's pure-Rust backend).
    Rustcrypto,
}

#[derive(Args)]
struct QuoteVerifyArgs {
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
    /// Print JSON.
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

fn quote_verify(a: &QuoteVerifyArgs) -> Result<quote_cmd::QuoteReport, VerifyFailure> {
    let ak = AkFile::load(&a.ak)?;
    let nonce = files::parse_hex(&a.nonce, "--nonce")?;
    let ev = match &a.keylime_quote {
        Some(p) => {
            let text = String::from_utf8_lossy(&files::read(p)?).into_owned();
            QuoteEvidence::from(KeylimeQuote::parse(&text)?)
        }
        None => QuoteEvidence {
            attest: files::read(a.quote.as_ref().expect("clap requires --quote"))?,
            signature: files::read(a.signature.as_ref().expect("clap requires --signature"))?,
            pcrs: a.pcrs.as_ref().map(files::read).transpose()?,
        },
    };
    let backend: &dyn SignatureVerifier = match a.backend {
        Backend::Ring => &trustpool::Ring,
        Backend::Rustcrypto => &RustCrypto,
    };
    quote_cmd::verify_quote(backend, &ak, &ev, &nonce, a.scheme).map(|(r, _)| r)
}

/// Load a whitelist: compiled (.tpw, by its magic) or TOML/JSON, compiled in memory.
fn load_policy(file: &std::path::Path, group: Option<&str>) -> anyhow::Result<Vec<u8>> {
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

fn policy_cmd(cmd: PolicyCmd) -> anyhow::Result<()> {
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
            Ok(())
        }
        PolicyCmd::Show { file, group, json } => {
            let bin = load_policy(&file, group.as_deref())?;
            let wl = trustpool_core::whitelist::Whitelist::parse(&bin)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let report = policy::show(&wl);
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", policy::show_text(&report));
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Policy(cmd) => match policy_cmd(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("trustpool: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::Quote(QuoteCmd::Verify(a)) => match quote_verify(&a) {
            Ok(report) => {
                if a.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("report serializes")
                    );
                } else {
                    print!("{}", quote_cmd::summary(&report));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                if a.json {
                    let v = serde_json::json!({"verified": false, "error": e.code(), "message": e.to_string()});
                    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
                } else {
                    eprintln!("trustpool: quote rejected ({}): {e}", e.code());
                }
                ExitCode::from(e.exit_code() as u8)
            }
        },
    }
}
