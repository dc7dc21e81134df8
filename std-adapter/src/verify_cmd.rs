//! `trustpool verify` (appraise evidence against a whitelist) and `trustpool policy learn`
//! (write a whitelist from a known-good host's log).

use std::fmt::Write as _;

use serde::Serialize;
use trustpool_core::appraise::{appraise, Evidence, Finding, Severity, Verdict};
use trustpool_core::eventlog::{
    check_event, BootSummary, EventLog, EventType, Replay, Workarounds, ALL_PCRS,
};
use trustpool_core::whitelist::Whitelist;
use trustpool_core::{HashAlg, PcrSet, SignatureVerifier};

use crate::eventlog_cmd::describe;
use crate::files::{self, AkFile};
use crate::quote_cmd::VerifyFailure;

/// Capacity of a verdict's findings list in the std adapter.
pub const FINDINGS: usize = 64;

/// Everything `verify` reads, owned.
pub struct VerifyInput {
    pub ak: AkFile,
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
    pub pcrs: Option<Vec<u8>>,
    pub nonce: Vec<u8>,
    pub event_log: Option<Vec<u8>>,
    /// The compiled whitelist.
    pub policy: Vec<u8>,
    pub workarounds: Workarounds,
    pub plain_scheme: Option<trustpool_core::SigScheme>,
}

#[derive(Debug, Serialize)]
pub struct FindingReport {
    pub rule: &'static str,
    pub severity: Severity,
    pub pcr: Option<u8>,
    pub event_index: Option<u32>,
    pub event_type: Option<String>,
    /// Decoded event data (image path, variable, string), when the finding is about an event.
    pub event: Option<String>,
    pub seen: Option<String>,
    pub expected: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct VerdictReport {
    pub trusted: bool,
    pub whitelist_name: String,
    pub whitelist: String,
    pub findings: Vec<FindingReport>,
    pub dropped_findings: u32,
    pub events_checked: u32,
    pub tpm_firmware_version: Option<String>,
    /// The runtime (IMA) appraisal, when an IMA log was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ima: Option<crate::ima_policy::CheckReport>,
}

fn finding_report(f: &Finding<'_>, log: Option<&EventLog<'_>>) -> FindingReport {
    let event = f
        .event_index
        .and_then(|i| log.and_then(|l| l.event(i).map(|e| describe(&e, l.uintn_bytes()))));
    let mut message = String::new();
    let _ = f.write_with(
        &mut message,
        event.as_ref().map(|e| e as &dyn std::fmt::Display),
    );
    FindingReport {
        rule: f.rule.name(),
        severity: f.severity,
        pcr: f.pcr,
        event_index: f.event_index,
        event_type: f.event_type.map(|t| t.to_string()),
        event,
        seen: f.seen.map(|d| d.to_string()),
        expected: f.expected.map(|d| d.to_string()),
        message,
    }
}

/// Appraise; `Err` only for input that cannot be used at all.
pub fn verify(
    backend: &dyn SignatureVerifier,
    inp: &VerifyInput,
) -> Result<VerdictReport, VerifyFailure> {
    verify_with_runtime(backend, inp, 0)
}

/// As [`verify`], with `runtime_pcrs` (e.g. IMA's PCR 10 when an IMA log comes too) left to
/// the runtime logs instead of the firmware log.
pub fn verify_with_runtime(
    backend: &dyn SignatureVerifier,
    inp: &VerifyInput,
    runtime_pcrs: u32,
) -> Result<VerdictReport, VerifyFailure> {
    let wl = Whitelist::parse(&inp.policy).map_err(|error| {
        VerifyFailure::Input(files::FileError::Parse {
            what: "whitelist".into(),
            error,
        })
    })?;
    let ak = inp.ak.ak().map_err(VerifyFailure::Quote)?;
    let scheme = inp
        .plain_scheme
        .or_else(|| ak.public.and_then(|p| p.scheme()));
    let signature = files::parse_signature(&inp.signature, scheme, "signature")?;
    let pcrs = inp
        .pcrs
        .as_ref()
        .map(|b| files::parse_pcrs(b, "PCR values"))
        .transpose()?;
    let ev = Evidence {
        attest: &inp.attest,
        signature,
        ak,
        nonce: &inp.nonce,
        pcrs: pcrs.as_ref(),
        event_log: inp.event_log.as_deref(),
        workarounds: inp.workarounds,
        runtime_pcrs,
    };
    let verdict: Verdict<'_, FINDINGS> = appraise(backend, &ev, &wl);
    // A quote that cannot even be parsed is unusable input, not an untrusted host.
    if let Some(e) = verdict.findings.iter().find_map(|f| match f.detail {
        trustpool_core::appraise::Detail::Quote(
            e @ (trustpool_core::QuoteError::Attest(_) | trustpool_core::QuoteError::Signature(_)),
        ) if f.rule == trustpool_core::appraise::Rule::Quote => Some(e),
        _ => None,
    }) {
        return Err(VerifyFailure::Quote(e));
    }
    let log = inp
        .event_log
        .as_deref()
        .and_then(|b| EventLog::parse(b).ok());
    Ok(VerdictReport {
        trusted: verdict.trusted,
        whitelist_name: wl.settings().name().to_string(),
        whitelist: format!("sha256:{}", hex::encode(verdict.whitelist)),
        findings: verdict
            .findings
            .iter()
            .map(|f| finding_report(f, log.as_ref()))
            .collect(),
        dropped_findings: verdict.dropped,
        events_checked: verdict.events_checked,
        tpm_firmware_version: verdict.firmware_version.map(|v| format!("{v:#018x}")),
        ima: None,
    })
}

/// Appraise an IMA log too: replayed against the quoted PCR 10 (from the PCR values that came
/// with the quote, already checked against its digest) and checked against the whitelist's
/// runtime rules. Failures join the verdict's findings.
pub fn add_ima(
    report: &mut VerdictReport,
    inp: &VerifyInput,
    ima_log: &[u8],
    template_alg: HashAlg,
) -> Result<(), VerifyFailure> {
    use trustpool_core::appraise::Severity;
    let pcrs = inp
        .pcrs
        .as_ref()
        .map(|b| files::parse_pcrs(b, "PCR values"))
        .transpose()?;
    // The bank to compare: the template hash's own bank if quoted, else SHA-256, else SHA-1.
    let quoted = pcrs.as_ref().and_then(|set| {
        [template_alg, HashAlg::Sha256, HashAlg::Sha1]
            .into_iter()
            .find_map(|a| set.bank(a).filter(|b| b.get(10).is_some()))
            .cloned()
    });
    let check = crate::ima_policy::ima_check(
        ima_log,
        None,
        template_alg,
        &inp.policy,
        None,
        quoted.as_ref(),
    )
    .map_err(|msg| {
        VerifyFailure::Input(files::FileError::Format {
            what: "IMA log".into(),
            msg,
        })
    })?;
    let mut push = |rule: &'static str, message: String| {
        report.trusted = false;
        report.findings.push(FindingReport {
            rule,
            severity: Severity::Fail,
            pcr: Some(10),
            event_index: None,
            event_type: None,
            event: None,
            seen: None,
            expected: None,
            message,
        });
    };
    match (&quoted, check.replay.quote_matched_after) {
        (None, _) => push(
            "ima-unbound",
            "PCR 10 is not among the quoted PCR values: the IMA log cannot be bound to the quote"
                .into(),
        ),
        (Some(_), None) => push(
            "ima-replay",
            format!(
                "no prefix of the IMA log ({} entries) replays to the quoted PCR 10",
                check.replay.entries
            ),
        ),
        _ => {}
    }
    for f in check.findings.iter().filter(|f| f.fatal).take(32) {
        push(
            "ima",
            format!(
                "IMA entry #{} {} {}: {:?}",
                f.index,
                f.name,
                f.digest.as_deref().unwrap_or(""),
                f.kind
            ),
        );
    }
    if !check.passed && check.fatal_findings == 0 {
        push("ima", "IMA appraisal failed".into());
    }
    report.ima = Some(check);
    Ok(())
}

pub fn verdict_text(r: &VerdictReport) -> String {
    let fails = r
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Fail)
        .count();
    let mut s = if r.trusted {
        format!(
            "TRUSTED (whitelist {:?} {})\n",
            r.whitelist_name, r.whitelist
        )
    } else {
        format!(
            "UNTRUSTED: {fails} finding(s) (whitelist {:?} {})\n",
            r.whitelist_name, r.whitelist
        )
    };
    for f in &r.findings {
        let tag = match f.severity {
            Severity::Fail => "FAIL",
            Severity::Info => "note",
        };
        let _ = writeln!(s, "  {tag} [{}] {}", f.rule, f.message);
    }
    if r.dropped_findings > 0 {
        let _ = writeln!(
            s,
            "  … and {} more finding(s) not shown",
            r.dropped_findings
        );
    }
    let _ = writeln!(
        s,
        "  events checked against the whitelist: {}",
        r.events_checked
    );
    s
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect()
}

/// Write a whitelist (TOML) from a known-good host's event log and, optionally, its quoted PCR
/// values and attestation key, with comments naming the events each rule came from.
pub fn learn(
    log_bytes: &[u8],
    log_name: &str,
    pcrs: Option<&PcrSet>,
    ak: Option<&AkFile>,
    name: &str,
) -> anyhow::Result<String> {
    let log = EventLog::parse(log_bytes).map_err(|e| anyhow::anyhow!("{log_name}: {e}"))?;
    let uintn = log.uintn_bytes();
    let has = |alg: HashAlg| {
        log.events()
            .filter(|e| e.extends())
            .all(|e| e.digest(alg).is_some())
    };
    let bank = [
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sha1,
    ]
    .into_iter()
    .find(|a| has(*a))
    .ok_or_else(|| anyhow::anyhow!("{log_name}: no bank has a digest for every event"))?;
    let replay = Replay::log(&log, ALL_PCRS);
    let summary = BootSummary::from_log(&log);
    let extended: Vec<u8> = (0u8..24)
        .filter(|i| log.events().any(|e| e.extends() && e.pcr == u32::from(*i)))
        .collect();
    let low: Vec<u8> = extended.iter().copied().filter(|i| *i < 8).collect();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Learned by `trustpool policy learn` from {} ({} events, {bank} bank).",
        comment(log_name),
        log.len()
    );
    let _ = writeln!(
        s,
        "# Review before use: every event of this host is whitelisted as it was."
    );
    let _ = writeln!(s, "name = {}", toml_str(name));
    let _ = writeln!(s, "require_eventlog = true\n");
    let _ = writeln!(s, "[quote]");
    let sel = low.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    if !low.is_empty() {
        let _ = writeln!(s, "require_pcrs = [{}]", toml_str(&format!("{bank}:{sel}")));
    }
    if let Some(ak) = ak {
        let view = ak
            .ak()
            .map_err(|e| anyhow::anyhow!("attestation key: {e}"))?;
        if let Some(n) = view.name() {
            let _ = writeln!(s, "ak_names = [{}]", toml_str(&n.to_string()));
        }
        if let Some(d) = trustpool_core::appraise::key_digest(&view.key) {
            let _ = writeln!(s, "ak_key_digests = [{}]", toml_str(&d.to_string()));
        }
    }
    let _ = writeln!(s);
    // Golden PCR values: the quoted ones when given, else the replay's for PCRs 0-7.
    let mut golden: Vec<(u8, trustpool_core::Digest, &str)> = Vec::new();
    match pcrs {
        Some(set) => {
            for b in set.banks() {
                for (i, d) in b.iter() {
                    golden.push((i, *d, "quoted value"));
                }
            }
        }
        None => {
            if let Some(b) = replay.bank(bank) {
                let missing = replay.missing(bank);
                for i in &low {
                    if missing & (1 << i) == 0 {
                        if let Some(d) = b.get(*i) {
                            golden.push((*i, *d, "replayed from the log"));
                        }
                    }
                }
            }
        }
    }
    for (i, d, why) in &golden {
        let _ = writeln!(
            s,
            "[[pcr]] # {why}\nindex = {i}\nvalues = [{}]\n",
            toml_str(&d.to_string())
        );
    }
    let _ = writeln!(s, "[events]");
    let _ = writeln!(
        s,
        "pcrs = [{}]",
        extended
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(s, "allow_unknown = []\n");
    for e in log.events() {
        if !e.extends() || e.pcr > 23 {
            continue;
        }
        let Some(d) = e.digest(bank) else { continue };
        let _ = writeln!(
            s,
            "[[events.rule]] # event #{} {}: {}",
            e.index,
            e.event_type,
            comment(&describe(&e, uintn))
        );
        let t = if e.event_type.name().is_some() {
            toml_str(&e.event_type.to_string())
        } else {
            toml_str(&format!("{:#x}", e.event_type.0))
        };
        let _ = writeln!(
            s,
            "pcr = {}\ntype = {t}\ndigests = [{}]\n",
            e.pcr,
            toml_str(&format!("{bank}:{}", hex::encode(d)))
        );
    }
    let _ = writeln!(s, "[secure_boot]");
    if let Some(f) = summary.secure_boot {
        let _ = writeln!(s, "# SecureBoot variable: event #{}", f.index);
        let _ = writeln!(s, "enabled = {}", f.value);
    }
    for (key, fact) in [
        ("pk", summary.pk),
        ("kek", summary.kek),
        ("db", summary.db),
        ("dbx", summary.dbx),
    ] {
        if let Some(f) = fact {
            let _ = writeln!(
                s,
                "{key} = [{}] # event #{}",
                toml_str(&format!("sha256:{}", hex::encode(f.value))),
                f.index
            );
        }
    }
    let auth: Vec<String> = log
        .events_for_pcr(7)
        .filter(|e| {
            e.event_type == EventType::EFI_VARIABLE_AUTHORITY && check_event(e).is_consistent()
        })
        .filter_map(|e| {
            HashAlg::Sha256.hash(e.data).map(|d| {
                format!(
                    "  {}, # event #{}: {}",
                    toml_str(&d.to_string()),
                    e.index,
                    comment(&describe(&e, uintn))
                )
            })
        })
        .collect();
    if !auth.is_empty() {
        let _ = writeln!(s, "authorities = [\n{}\n]", auth.join("\n"));
    }
    let _ = writeln!(s, "\n[kernel_cmdline]");
    if let Some(c) = summary.kernel_cmdline {
        let text = match c.value {
            trustpool_core::eventlog::KernelCmdline::Grub(t) => t.to_string(),
            trustpool_core::eventlog::KernelCmdline::Utf16(u) => u.to_string(),
        };
        let _ = writeln!(s, "# measured (event #{}): {}", c.index, comment(&text));
    }
    // Command line rules need a command line the log can establish (see the appraisal's
    // kernel-cmdline-unknown rule).
    let hidden = [8u32, 12]
        .into_iter()
        .flat_map(|p| log.events_for_pcr(p))
        .find(|e| {
            matches!(e.event_type, EventType::IPL | EventType::EFI_ACTION)
                && matches!(
                    check_event(e),
                    trustpool_core::eventlog::DigestCheck::Inconsistent { .. }
                )
        });
    match hidden {
        Some(e) => {
            let _ = writeln!(
                s,
                "# No rules: event #{} ({}) does not match its digest, so this host's command line cannot be established.",
                e.index, e.event_type
            );
        }
        None => {
            let _ = writeln!(
                s,
                "forbid = [\"selinux=0\", \"enforcing=0\", \"module.sig_enforce=0\"]"
            );
        }
    }
    Ok(s)
}
