//! `trustpool eventlog show|replay|check`: event logs for people (YAML-like text) and machines
//! (JSON).

use std::fmt::Write as _;

use serde::Serialize;
use trustpool_core::eventlog::{
    check_event, decode, BootSummary, DigestCheck, Event, EventData, EventLog, Replay, ALL_PCRS,
};
use trustpool_core::HashAlg;

/// Default log location on Linux.
pub const SYSFS_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// A short description of an event's data.
pub fn describe(ev: &Event<'_>, uintn: usize) -> String {
    match decode(ev, uintn) {
        EventData::SpecId(s) => {
            let algs: Vec<String> = s
                .algorithms()
                .iter()
                .map(|a| {
                    HashAlg::from_id(a.alg)
                        .map_or_else(|| format!("{:#06x}", a.alg), |h| h.to_string())
                })
                .collect();
            format!(
                "Spec ID Event03, spec {}.{} errata {}, banks {}",
                s.spec_version_major,
                s.spec_version_minor,
                s.spec_errata,
                algs.join(",")
            )
        }
        EventData::StartupLocality(l) => format!("StartupLocality {l}"),
        EventData::NoAction(d) => format!("no action ({} bytes)", d.len()),
        EventData::Separator(v) => format!("separator {v:#x}"),
        EventData::Variable(v) => {
            let mut s = format!("{}:{}", v.guid, v.name);
            match v.as_bool() {
                Some(b) if v.data.len() == 1 => {
                    let _ = write!(s, " = {}", u8::from(b));
                }
                _ => {
                    if let Some(order) = v.boot_order().filter(|_| v.name.eq_str("BootOrder")) {
                        let o: Vec<String> = order.map(|n| format!("{n:04X}")).collect();
                        let _ = write!(s, " = {}", o.join(","));
                    } else if let Ok(lo) = v.load_option().map_err(|_| ()).and_then(|lo| {
                        if v.boot_option_number().is_some() {
                            Ok(lo)
                        } else {
                            Err(())
                        }
                    }) {
                        let _ = write!(s, " = {:?} {}", lo.description.to_string(), lo.file_path);
                    } else {
                        let lists = v
                            .signature_lists()
                            .filter_map(Result::ok)
                            .map(|l| l.len())
                            .sum::<usize>();
                        if lists > 0 {
                            let _ = write!(s, " ({} bytes, {lists} signatures)", v.data.len());
                        } else {
                            let _ = write!(s, " ({} bytes)", v.data.len());
                        }
                    }
                }
            }
            s
        }
        EventData::ImageLoad(i) => format!("{}", i.device_path),
        EventData::Gpt(g) => format!("GPT, {} partitions", g.partitions().count()),
        EventData::FirmwareBlob(b) => {
            format!("firmware blob at {:#x}, {:#x} bytes", b.base, b.length)
        }
        EventData::FirmwareBlob2(b) => format!(
            "firmware blob {:?} at {:#x}, {:#x} bytes",
            b.description_str().unwrap_or(""),
            b.base,
            b.length
        ),
        EventData::CrtmVersion(v) => format!("S-CRTM version {v}"),
        EventData::Text(t) => format!("{t}"),
        EventData::Raw(d) => format!("{} bytes", d.len()),
        EventData::Malformed(e) => format!("malformed: {e}"),
    }
}

#[derive(Serialize)]
pub struct EventJson {
    pub index: u32,
    pub offset: usize,
    pub pcr: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    pub type_value: u32,
    pub digests: serde_json::Map<String, serde_json::Value>,
    pub data: String,
    pub description: String,
    pub digest_check: DigestCheck,
}

fn digest_map(ev: &Event<'_>) -> serde_json::Map<String, serde_json::Value> {
    ev.digests
        .iter()
        .map(|d| {
            let name = HashAlg::from_id(d.alg)
                .map_or_else(|| format!("{:#06x}", d.alg), |h| h.to_string());
            (name, serde_json::Value::String(hex::encode(d.bytes)))
        })
        .collect()
}

pub fn show_json(log: &EventLog<'_>) -> serde_json::Value {
    let events: Vec<EventJson> = log
        .events()
        .map(|ev| EventJson {
            index: ev.index,
            offset: ev.offset,
            pcr: ev.pcr,
            event_type: ev.event_type.to_string(),
            type_value: ev.event_type.0,
            digests: digest_map(&ev),
            data: hex::encode(ev.data),
            description: describe(&ev, log.uintn_bytes()),
            digest_check: check_event(&ev),
        })
        .collect();
    serde_json::json!({
        "format": format!("{:?}", log.format()),
        "events": events,
        "padding": log.padding(),
    })
}

pub fn show_text(log: &EventLog<'_>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "format: {:?}", log.format());
    let _ = writeln!(s, "events:");
    for ev in log.events() {
        let _ = writeln!(s, "- index: {}", ev.index);
        let _ = writeln!(s, "  offset: {:#x}", ev.offset);
        let _ = writeln!(
            s,
            "  pcr: {}",
            if ev.pcr == u32::MAX {
                "-1".to_string()
            } else {
                ev.pcr.to_string()
            }
        );
        let _ = writeln!(s, "  type: {} ({:#x})", ev.event_type, ev.event_type.0);
        let _ = writeln!(s, "  digests:");
        for d in ev.digests.iter() {
            let name = HashAlg::from_id(d.alg)
                .map_or_else(|| format!("{:#06x}", d.alg), |h| h.to_string());
            let _ = writeln!(s, "    {name}: {}", hex::encode(d.bytes));
        }
        let _ = writeln!(s, "  size: {}", ev.data.len());
        let _ = writeln!(s, "  event: {}", describe(&ev, log.uintn_bytes()));
        if let DigestCheck::Inconsistent { alg } = check_event(&ev) {
            let name =
                HashAlg::from_id(alg).map_or_else(|| format!("{alg:#06x}"), |h| h.to_string());
            let _ = writeln!(s, "  warning: {name} digest does not match the event data");
        }
    }
    if log.padding() > 0 {
        let _ = writeln!(s, "padding: {} zero bytes", log.padding());
    }
    s
}

/// Replay the log into the given banks (all the log's replayable banks when empty).
pub fn replay(log: &EventLog<'_>, banks: &[HashAlg]) -> anyhow::Result<Replay> {
    if banks.is_empty() {
        Ok(Replay::log(log, ALL_PCRS))
    } else {
        let mut r = Replay::new(banks, ALL_PCRS).map_err(|e| anyhow::anyhow!("{e}"))?;
        r.feed_all(log.events());
        Ok(r)
    }
}

/// PCRs a log extends (bit i: PCR i).
pub fn extended_pcrs(log: &EventLog<'_>) -> u32 {
    log.events()
        .filter(|e| e.extends())
        .fold(0u32, |m, e| m | 1u32.checked_shl(e.pcr).unwrap_or(0))
}

pub fn replay_json(log: &EventLog<'_>, r: &Replay) -> serde_json::Value {
    let mask = extended_pcrs(log);
    let mut banks = serde_json::Map::new();
    for alg in r.algorithms() {
        let Some(bank) = r.bank(alg) else { continue };
        let missing = r.missing(alg);
        let mut m = serde_json::Map::new();
        for (i, v) in bank.iter() {
            if mask & (1 << i) != 0 && missing & (1 << i) == 0 {
                m.insert(
                    i.to_string(),
                    serde_json::Value::String(hex::encode(v.as_bytes())),
                );
            }
        }
        banks.insert(alg.to_string(), serde_json::Value::Object(m));
    }
    serde_json::json!({ "pcrs": banks, "startup_locality": r.startup_locality(), "events": log.len() })
}

pub fn replay_text(log: &EventLog<'_>, r: &Replay) -> String {
    let mask = extended_pcrs(log);
    let mut s = String::from("pcrs:\n");
    for alg in r.algorithms() {
        let Some(bank) = r.bank(alg) else { continue };
        let missing = r.missing(alg);
        let _ = writeln!(s, "  {alg}:");
        for (i, v) in bank.iter() {
            if mask & (1 << i) == 0 {
                continue;
            }
            if missing & (1 << i) != 0 {
                let _ = writeln!(
                    s,
                    "    {i:<2} : (unknown: an event lacks this bank's digest)"
                );
            } else {
                let _ = writeln!(s, "    {i:<2} : 0x{}", hex::encode_upper(v.as_bytes()));
            }
        }
    }
    s
}

/// Summary for `eventlog show --summary`.
pub fn summary_text(log: &EventLog<'_>) -> String {
    let sm = BootSummary::from_log(log);
    let mut s = String::new();
    let d = |x: Option<trustpool_core::eventlog::Fact<[u8; 32]>>| {
        x.map_or("(not measured)".to_string(), |f| {
            format!("sha256:{} (event #{})", hex::encode(f.value), f.index)
        })
    };
    let _ = writeln!(
        s,
        "secure boot: {}",
        sm.secure_boot.map_or("(not measured)".into(), |f| format!(
            "{} (event #{})",
            if f.value { "enabled" } else { "disabled" },
            f.index
        ))
    );
    let _ = writeln!(s, "PK:  {}", d(sm.pk));
    let _ = writeln!(s, "KEK: {}", d(sm.kek));
    let _ = writeln!(s, "db:  {}", d(sm.db));
    let _ = writeln!(s, "dbx: {}", d(sm.dbx));
    if let Some(v) = sm.crtm_version {
        let _ = writeln!(s, "S-CRTM version: {} (event #{})", v.value, v.index);
    }
    let _ = writeln!(s, "boot applications:");
    for a in &sm.boot_applications {
        let path = a.device_path(log).map_or(String::new(), |p| p.to_string());
        let _ = writeln!(
            s,
            "  - #{} {} {}",
            a.index,
            a.authenticode_sha256
                .map_or("(no sha256)".into(), |d| format!(
                    "sha256:{}",
                    hex::encode(d)
                )),
            path
        );
    }
    if let Some(c) = sm.kernel_cmdline {
        let text = match c.value {
            trustpool_core::eventlog::KernelCmdline::Grub(t) => t.to_string(),
            trustpool_core::eventlog::KernelCmdline::Utf16(u) => u.to_string(),
        };
        let _ = writeln!(s, "kernel command line: {text} (event #{})", c.index);
    }
    let seps: Vec<String> = (0..8)
        .filter(|i| sm.separators & (1 << i) != 0)
        .map(|i: u8| i.to_string())
        .collect();
    let _ = writeln!(s, "separators on PCRs: {}", seps.join(","));
    if sm.inconsistent_events > 0 {
        let _ = writeln!(
            s,
            "events whose digest does not match their data: {} (first #{})",
            sm.inconsistent_events,
            sm.first_inconsistent.unwrap_or(0)
        );
    }
    s
}

/// One quoted PCR against the log's replay.
#[derive(Debug, Serialize)]
pub struct PcrCheck {
    pub bank: String,
    pub pcr: u8,
    pub status: trustpool_core::eventlog::PcrStatus,
    pub quoted: Option<String>,
    pub replayed: Option<String>,
    /// For a mismatch: the events that fed this PCR (index, type, description).
    pub events: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub quote: crate::quote_cmd::QuoteReport,
    /// Whether every quoted PCR matches the replay.
    pub all_match: bool,
    /// Without PCR values from the quote, whether the replay hashes to the quote's digest.
    pub replay_matches_digest: Option<bool>,
    pub pcrs: Vec<PcrCheck>,
}

/// Verify the quote, replay the log and compare every quoted PCR.
pub fn check(
    backend: &dyn trustpool_core::SignatureVerifier,
    log: &EventLog<'_>,
    ak: &crate::files::AkFile,
    ev: &crate::quote_cmd::QuoteEvidence,
    nonce: &[u8],
    scheme: Option<trustpool_core::SigScheme>,
    workarounds: trustpool_core::eventlog::Workarounds,
) -> Result<CheckReport, crate::quote_cmd::VerifyFailure> {
    use trustpool_core::eventlog::{compare_pcr, PcrStatus};
    use trustpool_core::PcrValues;
    let (verified, quote, supplied) =
        crate::quote_cmd::verify_quote_view(backend, ak, ev, nonce, scheme)?;
    let replay = Replay::log(log, ALL_PCRS);
    let uintn = log.uintn_bytes();
    let mut pcrs = Vec::new();
    let mut all_match = true;
    let mut replay_matches_digest = None;
    for p in &quote.pcrs {
        let alg = HashAlg::from_name(&p.bank);
        let replayed = alg
            .and_then(|a| replay.bank(a))
            .and_then(|b| b.get(p.pcr))
            .copied();
        let quoted = alg.and_then(|a| supplied.as_ref().and_then(|s| s.pcr(a, p.pcr)));
        let status = match quoted {
            Some(q) => compare_pcr(&replay, p.pcr, q, workarounds),
            None => PcrStatus::NoQuotedValue,
        };
        let events = if status.is_match() || quoted.is_none() {
            Vec::new()
        } else {
            log.events_for_pcr(u32::from(p.pcr))
                .map(|e| format!("#{} {} {}", e.index, e.event_type, describe(&e, uintn)))
                .collect()
        };
        all_match &= status.is_match() || quoted.is_none();
        pcrs.push(PcrCheck {
            bank: p.bank.clone(),
            pcr: p.pcr,
            status,
            quoted: quoted.map(|d| hex::encode(d.as_bytes())),
            replayed: replayed.map(|d| hex::encode(d.as_bytes())),
            events,
        });
    }
    if supplied.is_none() {
        // Without quoted values the replay itself must give the quote's digest.
        let ok = verified.check_pcrs(&replay).is_ok();
        replay_matches_digest = Some(ok);
        all_match = ok;
    }
    Ok(CheckReport {
        quote,
        all_match,
        replay_matches_digest,
        pcrs,
    })
}

pub fn check_text(r: &CheckReport) -> String {
    let mut s = crate::quote_cmd::summary(&r.quote);
    if let Some(ok) = r.replay_matches_digest {
        let _ = writeln!(
            s,
            "event log replay {} the quote's PCR digest",
            if ok { "matches" } else { "does NOT match" }
        );
    }
    for p in &r.pcrs {
        let st = match p.status {
            trustpool_core::eventlog::PcrStatus::Match => "match".to_string(),
            trustpool_core::eventlog::PcrStatus::MatchWithWorkaround { workaround } => {
                format!("match (workaround {workaround})")
            }
            other => format!("{other:?}"),
        };
        let _ = writeln!(s, "  {}:{:<2} {}", p.bank, p.pcr, st);
        if !p.events.is_empty() {
            let _ = writeln!(s, "      quoted   {}", p.quoted.as_deref().unwrap_or("-"));
            let _ = writeln!(s, "      replayed {}", p.replayed.as_deref().unwrap_or("-"));
            for e in &p.events {
                let _ = writeln!(s, "      {e}");
            }
        }
    }
    let _ = writeln!(
        s,
        "{}",
        if r.all_match {
            "log matches the quote"
        } else {
            "log does NOT match the quote"
        }
    );
    s
}
