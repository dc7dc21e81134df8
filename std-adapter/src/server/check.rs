//! One poll's appraisal, without I/O: an agent's answer to `GET /quotes/integrity` (Keylime
//! agent API), checked against the host's enrolled AK, the nonce sent, the transport-key
//! binding in PCR 16, the TPM's counters from the previous poll, and the group's whitelist.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trustpool_core::attest::Attest;
use trustpool_core::{HashAlg, PcrValues};

use crate::files::{self, AkFile, KeylimeQuote};
use crate::oat::TrustLevel;
use crate::verify_cmd::{self, FindingReport, VerifyInput};

/// The data PCR Keylime binds the transport key to.
pub const DATA_PCR: u8 = 16;
/// IMA's PCR.
pub const IMA_PCR: u8 = 10;

pub use super::store::{Counters, ImaProgress};

/// A finding as stored and shown: a rule, where (PCR, event), and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcr: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(rule: &str, pcr: Option<u8>, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.to_string(),
            pcr,
            event_index: None,
            event: None,
            message: message.into(),
        }
    }

    fn from_report(f: &FindingReport) -> Finding {
        Finding {
            rule: f.rule.to_string(),
            pcr: f.pcr,
            event_index: f.event_index,
            event: f.event.clone(),
            message: f.message.clone(),
        }
    }
}

/// What one poll concluded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub level: TrustLevel,
    pub findings: Vec<Finding>,
    /// `sha256:…` of the whitelist appraised against.
    pub whitelist: String,
    /// The counters to keep (unchanged from `previous` when the quote was not accepted).
    pub counters: Option<Counters>,
    /// The host's boot time the agent reported (seconds since the epoch).
    pub boottime: i64,
    /// The TPM was reset (a reboot) since the previous poll.
    pub rebooted: bool,
    /// IMA entries seen in total (the next `ima_ml_entry`).
    pub ima_entries: u64,
    /// Where the next poll's IMA replay starts: entries covered by a quote and PCR 10 after
    /// them. `None`: keep what was stored (no IMA list in this answer).
    pub ima: Option<ImaProgress>,
}

impl Outcome {
    fn untrusted(finding: Finding, previous: Option<Counters>) -> Outcome {
        Outcome {
            level: TrustLevel::Untrusted,
            findings: vec![finding],
            whitelist: String::new(),
            counters: previous,
            boottime: 0,
            rebooted: false,
            ima_entries: 0,
            ima: None,
        }
    }
}

/// Appraise an agent's answer. `nonce` is what was sent (its ASCII bytes are the quote's
/// extraData); `aik_tpm` the enrolled AK (TPM2B_PUBLIC); `policy` the compiled whitelist.
pub fn check_answer(
    answer: &Value,
    nonce: &str,
    aik_tpm: &[u8],
    policy: &[u8],
    previous: Option<Counters>,
    previous_boottime: Option<i64>,
    ima_progress: &ImaProgress,
) -> Outcome {
    let bad = |rule: &str, msg: String| Outcome::untrusted(Finding::new(rule, None, msg), previous);
    let Some(results) = answer.get("results") else {
        return bad("agent-answer", "the agent's answer has no results".into());
    };
    let Some(quote) = results.get("quote").and_then(Value::as_str) else {
        return bad("agent-answer", "the agent's answer has no quote".into());
    };
    let q = match KeylimeQuote::parse(quote) {
        Ok(q) => q,
        Err(e) => return bad("agent-answer", format!("quote: {e}")),
    };
    let Some(pubkey) = results.get("pubkey").and_then(Value::as_str) else {
        return bad(
            "agent-answer",
            "the agent's answer has no pubkey (asked with partial=0)".into(),
        );
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let event_log = match results.get("mb_measurement_list") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match b64.decode(s) {
            Ok(b) => Some(b),
            Err(e) => {
                return bad(
                    "agent-answer",
                    format!("mb_measurement_list is not base64: {e}"),
                )
            }
        },
        Some(_) => return bad("agent-answer", "mb_measurement_list is not a string".into()),
    };
    // An empty list is still a list: nothing new since the last poll (or an empty log).
    let ima = results.get("ima_measurement_list").and_then(Value::as_str);
    let boottime = results.get("boottime").and_then(Value::as_i64).unwrap_or(0);
    let ak = match AkFile::from_bytes(aik_tpm.to_vec(), "enrolled AK") {
        Ok(a) => a,
        Err(e) => return bad("enrollment", format!("enrolled AK: {e}")),
    };
    let inp = VerifyInput {
        ak,
        attest: q.attest.clone(),
        signature: q.signature.clone(),
        pcrs: Some(q.pcrs.clone()),
        nonce: nonce.as_bytes().to_vec(),
        event_log,
        policy: policy.to_vec(),
        workarounds: Default::default(),
        plain_scheme: None,
    };
    let runtime = (1u32 << DATA_PCR) | if ima.is_some() { 1 << IMA_PCR } else { 0 };
    let report = match verify_cmd::verify_with_runtime(&crate::Ring, &inp, runtime) {
        Ok(r) => r,
        Err(e) => return bad("quote", format!("{e}")),
    };
    let mut findings: Vec<Finding> = report.findings.iter().map(Finding::from_report).collect();
    let mut trusted = report.trusted;
    // The quote verified, so both parse; once here for what follows.
    let attest = Attest::parse(&q.attest).ok();
    let pcrs = files::parse_pcrs(&q.pcrs, "PCR values").ok();
    let ima_start = results
        .get("ima_measurement_list_entry")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut ima_next = None;
    if let Some(log) = ima {
        let (next, ima_findings) = ima_step(log, ima_start, ima_progress, pcrs.as_ref(), policy);
        if !ima_findings.is_empty() {
            trusted = false;
            findings.extend(ima_findings);
        }
        ima_next = Some(next);
    }

    // The quote verified: its PCR values hash to its digest. Now the binding and counters.
    let bank = attest
        .as_ref()
        .and_then(|a| match a.attested {
            trustpool_core::attest::Attested::Quote(info) => {
                info.pcr_select.iter().next().map(|(b, _)| b)
            }
            _ => None,
        })
        .and_then(HashAlg::from_id)
        .unwrap_or(HashAlg::Sha256);
    let expected16 = bank.hash(pubkey.as_bytes()).and_then(|inner| {
        let mut buf = vec![0u8; bank.size()];
        buf.extend_from_slice(inner.as_bytes());
        bank.hash(&buf)
    });
    let seen16 = pcrs.as_ref().and_then(|p| p.pcr(bank, DATA_PCR));
    match (seen16, expected16) {
        (Some(s), Some(e)) if s.as_bytes() == e.as_bytes() => {}
        (None, _) => {
            trusted = false;
            findings.push(Finding::new(
                "transport-key-binding",
                Some(DATA_PCR),
                "PCR 16 is not in the quote: the transport key is not bound to it",
            ));
        }
        _ => {
            trusted = false;
            findings.push(Finding::new(
                "transport-key-binding",
                Some(DATA_PCR),
                "PCR 16 is not H(0…0 ‖ H(pubkey)): the transport key the agent sent is not the one bound in its TPM",
            ));
        }
    }

    let clock = attest.as_ref().map(|a| a.clock_info);
    let mut rebooted = false;
    let mut counters = previous;
    if let Some(c) = clock {
        let now = Counters {
            clock: c.clock,
            reset_count: c.reset_count,
            restart_count: c.restart_count,
        };
        let mut ok = true;
        if !c.safe {
            ok = false;
            findings.push(Finding::new(
                "clock-unsafe",
                None,
                "the TPM's clock is not safe (it may have been rolled back)",
            ));
        }
        if let Some(p) = previous {
            if now.reset_count < p.reset_count
                || (now.reset_count == p.reset_count && now.restart_count < p.restart_count)
            {
                ok = false;
                findings.push(Finding::new(
                    "counters-decreased",
                    None,
                    format!(
                        "resetCount/restartCount went back from {}/{} to {}/{}: a replayed or foreign quote",
                        p.reset_count, p.restart_count, now.reset_count, now.restart_count
                    ),
                ));
            } else if now.clock <= p.clock {
                ok = false;
                findings.push(Finding::new(
                    "clock-not-increasing",
                    None,
                    format!(
                        "the TPM clock did not increase ({} ms, previously {} ms): a replayed quote",
                        now.clock, p.clock
                    ),
                ));
            }
            rebooted = now.reset_count > p.reset_count
                || previous_boottime.is_some_and(|b| b != 0 && b != boottime);
        }
        if ok {
            counters = Some(now);
        } else {
            trusted = false;
        }
    }
    let ima_entries = ima
        .map_or(0, |l| l.lines().count() as u64)
        .saturating_add(ima_start);
    Outcome {
        level: if trusted {
            TrustLevel::Trusted
        } else {
            TrustLevel::Untrusted
        },
        findings,
        whitelist: report.whitelist,
        counters,
        boottime,
        rebooted,
        ima_entries,
        ima: ima_next,
    }
}

/// The IMA entries of one answer, from entry `start`: appraised against the whitelist's
/// runtime rules, and replayed — from zero when `start` is 0 (the first poll, or a reboot),
/// else from PCR 10 as the previous poll left it — until the replay equals the quoted PCR 10.
/// Returns where the next poll starts, and the findings. An answer that does not start where
/// the previous one ended, or a replay that never reaches the quote, resets the progress so
/// that the next poll asks for the whole list.
fn ima_step(
    log: &str,
    start: u64,
    prev: &ImaProgress,
    pcrs: Option<&trustpool_core::pcr::PcrSet>,
    policy: &[u8],
) -> (ImaProgress, Vec<Finding>) {
    let mut findings = Vec::new();
    let reset = ImaProgress::default();
    let quoted = pcrs.and_then(|set| {
        [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha1]
            .into_iter()
            .find_map(|a| set.bank(a).filter(|b| b.get(IMA_PCR).is_some()).cloned())
    });
    let Some(quoted) = quoted else {
        findings.push(Finding::new(
            "ima-unbound",
            Some(IMA_PCR),
            "PCR 10 is not among the quoted PCRs: the IMA list cannot be bound to the quote",
        ));
        return (reset, findings);
    };
    let from = if start == 0 {
        None
    } else if start == prev.next_index && prev.pcr10.is_some() {
        prev.pcr10
            .as_deref()
            .and_then(|v| trustpool_core::Digest::from_slice(quoted.alg(), v))
    } else {
        findings.push(Finding::new(
            "ima-progress",
            Some(IMA_PCR),
            format!(
                "the agent's IMA list starts at entry {start}, not at {} where the last poll ended",
                prev.next_index
            ),
        ));
        return (reset, findings);
    };
    // The whitelist's runtime rules, on the new entries only.
    match crate::ima_policy::ima_check(log.as_bytes(), None, HashAlg::Sha1, policy, None, None) {
        Ok(c) => {
            for f in c.findings.iter().filter(|f| f.fatal).take(32) {
                findings.push(Finding {
                    rule: "ima".into(),
                    pcr: Some(IMA_PCR),
                    event_index: u32::try_from(f.index.saturating_add(start)).ok(),
                    event: Some(f.name.clone()),
                    message: format!(
                        "IMA entry #{} {} {}: {:?}",
                        f.index.saturating_add(start),
                        f.name,
                        f.digest.as_deref().unwrap_or(""),
                        f.kind
                    ),
                });
            }
        }
        Err(e) => findings.push(Finding::new("ima", Some(IMA_PCR), format!("IMA list: {e}"))),
    }
    match crate::ima_policy::ima_replay_from(log.as_bytes(), HashAlg::Sha1, from.as_ref(), &quoted)
    {
        Ok((_, Some(n))) => {
            let next = ImaProgress {
                next_index: start.saturating_add(n),
                pcr10: quoted.get(IMA_PCR).map(|d| d.as_bytes().to_vec()),
            };
            (next, findings)
        }
        Ok((entries, None)) => {
            findings.push(Finding::new(
                "ima-replay",
                Some(IMA_PCR),
                format!(
                    "IMA entries {start}..{} do not replay to the quoted PCR 10{}",
                    start.saturating_add(entries),
                    if from.is_some() {
                        " from where the last poll left it"
                    } else {
                        ""
                    }
                ),
            ));
            (reset, findings)
        }
        Err(e) => {
            findings.push(Finding::new(
                "ima-replay",
                Some(IMA_PCR),
                format!("IMA list: {e}"),
            ));
            (reset, findings)
        }
    }
}

/// `n` letters and digits from the OS RNG (Keylime's form of nonces and credentials):
/// uniform, by rejection sampling. An RNG failure is an error, never a short or empty string.
pub fn random_alnum(n: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("OS RNG: {e}"))?;
        // 248 = 4 * 62: bytes at or above it would bias the choice.
        for b in buf.iter().filter(|b| **b < 248).take(n - out.len()) {
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
        }
    }
    Ok(out)
}

/// A nonce for one poll: 20 letters and digits.
pub fn fresh_nonce() -> anyhow::Result<String> {
    random_alnum(20)
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_alnum_is_exactly_n_letters_and_digits() {
        for n in [0, 1, 20, 32, 200] {
            let s = super::random_alnum(n).unwrap();
            assert_eq!(s.len(), n);
            assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(super::fresh_nonce().unwrap(), super::fresh_nonce().unwrap());
    }
}
