//! Appraisal in the core alone: the swtpm event-log case against its compiled whitelist
//! (`test-vectors/swtpm/eventlog/policy.tpw`), trusted; tampered, untrusted; and a verdict
//! whose findings exceed its capacity still says untrusted and how many were dropped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use trustpool_core::appraise::{appraise, Evidence, Rule, Severity, Verdict};
use trustpool_core::eventlog::Workarounds;
use trustpool_core::pcr::parse_tpm2_tools_pcrs;
use trustpool_core::whitelist::Whitelist;
use trustpool_core::{AttestationKey, PcrSet, Public, RustCrypto, Signature};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../test-vectors/swtpm/eventlog/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Case {
    ak: Vec<u8>,
    attest: Vec<u8>,
    sig: Vec<u8>,
    pcrs: PcrSet,
    nonce: Vec<u8>,
    log: Vec<u8>,
    wl: Vec<u8>,
}

fn case() -> Case {
    let mut pcrs = PcrSet::new();
    parse_tpm2_tools_pcrs(&read("quote.pcrs"), &mut pcrs).unwrap();
    Case {
        ak: read("ak.pub"),
        attest: read("quote.attest"),
        sig: read("quote.sig"),
        pcrs,
        nonce: hex::decode(String::from_utf8(read("nonce.hex")).unwrap().trim()).unwrap(),
        log: read("synthetic.bin"),
        wl: read("policy.tpw"),
    }
}

fn run<'a, const N: usize>(c: &'a Case, log: &'a [u8], wl: &'a Whitelist<'a>) -> Verdict<'a, N> {
    let ev = Evidence {
        attest: &c.attest,
        signature: Signature::parse(&c.sig).unwrap(),
        ak: AttestationKey::from_public(Public::parse_tpm2b(&c.ak).unwrap()).unwrap(),
        nonce: &c.nonce,
        pcrs: Some(&c.pcrs),
        event_log: Some(log),
        workarounds: Workarounds::default(),
        runtime_pcrs: 0,
    };
    appraise(&RustCrypto, &ev, wl)
}

#[test]
fn trusted_then_tampered() {
    let c = case();
    let wl = Whitelist::parse(&c.wl).unwrap();
    assert_eq!(wl.settings().name(), "swtpm-synthetic");
    let v: Verdict<'_, 8> = run(&c, &c.log, &wl);
    assert!(v.trusted, "{:?}", v.findings);
    assert_eq!(v.events_checked, 21);
    assert_eq!(&v.whitelist, wl.digest());

    // Change the GRUB command line's text but not its digest: the replay still matches, the
    // event no longer matches its digest, and the whitelist's command line rules cannot pass
    // by the command line's absence.
    let mut log = c.log.clone();
    let at = log.windows(5).rposition(|w| w == b"quiet").unwrap();
    log[at] = b'Q';
    let v: Verdict<'_, 8> = run(&c, &log, &wl);
    assert!(!v.trusted);
    let f = v.failures().next().unwrap();
    assert_eq!(
        (f.rule, f.pcr, f.event_index),
        (Rule::KernelCmdlineUnknown, Some(8), Some(19))
    );
    assert!(v
        .findings
        .iter()
        .any(|f| f.rule == Rule::DigestInconsistent && f.severity == Severity::Info));

    // Change a PCR 8 digest: the replay no longer gives the quoted PCR 8.
    let mut log = c.log.clone();
    let parsed = trustpool_core::EventLog::parse(&c.log).unwrap();
    let d = parsed
        .event(19)
        .unwrap()
        .digest(trustpool_core::HashAlg::Sha256)
        .unwrap()
        .to_vec();
    let pos = log.windows(32).position(|w| w == d.as_slice()).unwrap();
    log[pos] ^= 1;
    let v: Verdict<'_, 8> = run(&c, &log, &wl);
    assert!(!v.trusted);
    let f = v.failures().next().unwrap();
    assert_eq!((f.rule, f.pcr), (Rule::LogReplay, Some(8)));
    assert!(f.to_string().starts_with("PCR 8, sha256:"), "{f}");
    assert!(
        f.to_string()
            .contains("is the event log's replay; the quote says sha256:83f5f62f"),
        "{f}"
    );
}

#[test]
fn findings_beyond_capacity_are_counted() {
    let c = case();
    let wl = Whitelist::parse(&c.wl).unwrap();
    // Every event byte of PCR 0-7 digests changed: many findings for a capacity of 2.
    let mut log = c.log.clone();
    let parsed = trustpool_core::EventLog::parse(&c.log).unwrap();
    for e in parsed.events().filter(|e| e.extends() && e.pcr < 8) {
        let d = e.digest(trustpool_core::HashAlg::Sha256).unwrap().to_vec();
        let pos = log.windows(32).position(|w| w == d.as_slice()).unwrap();
        log[pos] ^= 0xff;
    }
    let v: Verdict<'_, 2> = run(&c, &log, &wl);
    assert!(!v.trusted);
    assert_eq!(v.findings.len(), 2);
    assert!(v.findings.iter().all(|f| f.severity == Severity::Fail));
    assert!(v.dropped >= 6, "dropped {}", v.dropped);
}
