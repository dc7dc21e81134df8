//! Event log tests against real logs (`../shared/test-vectors`, skipped when absent unless `CI`
//! is set), the repository's synthetic swtpm log and quote, and properties.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::PathBuf;

use base64::Engine as _;
use proptest::prelude::*;
use trustpool_core::alg::{Digest, HashAlg};
use trustpool_core::eventlog::uefi::{guids, Guid, SignatureKind};
use trustpool_core::eventlog::*;
use trustpool_core::pcr::{parse_tpm2_tools_pcrs, PcrSet, PcrValues};
use trustpool_core::{AttestationKey, ErrorKind, Public, Quote, QuoteError};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/test-vectors");
const SWTPM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../test-vectors/swtpm/eventlog"
);

/// The shared vectors folder, or `None` (skip) when it is absent and `CI` is not set.
fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(SHARED);
    if p.is_dir() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{SHARED} is missing and CI is set"
    );
    eprintln!("skipping: {SHARED} not found");
    None
}

macro_rules! shared_or_skip {
    () => {
        match shared() {
            Some(p) => p,
            None => return,
        }
    };
}

fn read(dir: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn json(dir: &std::path::Path, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(dir, rel)).unwrap()
}

fn b64(v: &serde_json::Value, ptr: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.pointer(ptr).and_then(|s| s.as_str()).unwrap())
        .unwrap()
}

fn digest(alg: HashAlg, hex_str: &str) -> Digest {
    Digest::from_slice(alg, &hex::decode(hex_str).unwrap()).unwrap()
}

fn hash_alg(name: &str) -> HashAlg {
    HashAlg::from_name(name).unwrap()
}

/// Check `replay` against a `{"sha1": {"0": hex, ...}, ...}` object; returns PCRs checked.
fn assert_pcrs(what: &str, replay: &Replay, expected: &serde_json::Value, skip: &[u8]) -> usize {
    let mut n = 0;
    for (bank, pcrs) in expected.as_object().unwrap() {
        let alg = hash_alg(bank);
        for (pcr, value) in pcrs.as_object().unwrap() {
            let pcr: u8 = pcr.parse().unwrap();
            if skip.contains(&pcr) {
                continue;
            }
            let want = digest(alg, value.as_str().unwrap());
            let status = compare_pcr(replay, pcr, &want, Workarounds::default());
            assert_eq!(status, PcrStatus::Match, "{what} {bank}:{pcr}");
            n += 1;
        }
    }
    n
}

/// Every real log with its event count (the Spec ID event counts, as in tpm2-tools), format
/// and number of banks. Counts for tpm2-tools logs come from its expected YAML.
const REAL_LOGS: &[(&str, usize, LogFormat, usize)] = &[
    (
        "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog",
        76,
        LogFormat::CryptoAgile,
        3,
    ),
    (
        "go-attestation/crypto_agile_eventlog",
        27,
        LogFormat::CryptoAgile,
        1,
    ),
    (
        "go-attestation/ebs_event_missing_eventlog",
        38,
        LogFormat::Sha1,
        1,
    ),
    ("go-attestation/option_rom_eventlog", 61, LogFormat::Sha1, 1),
    (
        "go-attestation/sb_cert_eventlog",
        15,
        LogFormat::CryptoAgile,
        3,
    ),
    (
        "go-attestation/short_no_action_eventlog",
        1,
        LogFormat::Sha1,
        1,
    ),
    (
        "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
        106,
        LogFormat::CryptoAgile,
        3,
    ),
    (
        "keylime/create-mb-policy/binary_bios_measurements",
        121,
        LogFormat::CryptoAgile,
        2,
    ),
    (
        "tpm2-tools/event-arch-linux.bin",
        25,
        LogFormat::CryptoAgile,
        2,
    ),
    (
        "tpm2-tools/event-bootorder.bin",
        104,
        LogFormat::CryptoAgile,
        2,
    ),
    (
        "tpm2-tools/event-gce-ubuntu-2104-log.bin",
        112,
        LogFormat::CryptoAgile,
        3,
    ),
    (
        "tpm2-tools/event-moklisttrusted.bin",
        97,
        LogFormat::CryptoAgile,
        1,
    ),
    (
        "tpm2-tools/event-postcode.bin",
        59,
        LogFormat::CryptoAgile,
        2,
    ),
    (
        "tpm2-tools/event-sd-boot-fedora37.bin",
        28,
        LogFormat::CryptoAgile,
        1,
    ),
    ("tpm2-tools/event-uefi-sha1-log.bin", 17, LogFormat::Sha1, 1),
    (
        "tpm2-tools/event-uefiaction.bin",
        2,
        LogFormat::CryptoAgile,
        4,
    ),
    (
        "tpm2-tools/event-uefiservices.bin",
        2,
        LogFormat::CryptoAgile,
        2,
    ),
    ("tpm2-tools/event-uefivar.bin", 2, LogFormat::CryptoAgile, 4),
    ("tpm2-tools/event.bin", 2, LogFormat::CryptoAgile, 4),
];

fn windows_bundle(dir: &std::path::Path) -> (serde_json::Value, Vec<u8>) {
    let j = json(dir, "go-attestation/windows_gcp_shielded_vm.json");
    let raw = b64(&j, "/Log/Raw");
    (j, raw)
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn parses_every_real_log() {
    let dir = shared_or_skip!();
    for &(rel, count, format, banks) in REAL_LOGS {
        let bytes = read(&dir, rel);
        let log = EventLog::parse(&bytes).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(log.len(), count, "{rel}");
        assert_eq!(log.events().count(), count, "{rel}");
        assert_eq!(log.format(), format, "{rel}");
        assert_eq!(log.algorithms().len(), banks, "{rel}");
        assert_eq!(log.padding(), 0, "{rel}");
        // Events tile the log: each starts where the previous ended, indices count up.
        let mut end = 0;
        for (i, ev) in log.events().enumerate() {
            assert_eq!(ev.index as usize, i);
            assert_eq!(ev.offset, end, "{rel} event {i}");
            end = ev.data.as_ptr() as usize - bytes.as_ptr() as usize + ev.data.len();
        }
        assert_eq!(end, bytes.len(), "{rel}");
        if rel.starts_with("tpm2-tools/") {
            let name = rel.trim_start_matches("tpm2-tools/");
            let yaml =
                String::from_utf8(read(&dir, &format!("tpm2-tools/expected-yaml/{name}.yaml")))
                    .unwrap();
            let yaml_events = yaml
                .lines()
                .filter(|l| l.trim_start().starts_with("PCRIndex:"))
                .count();
            assert_eq!(count, yaml_events, "{rel} vs tpm2-tools YAML");
        }
    }
    let (_, raw) = windows_bundle(&dir);
    let log = EventLog::parse(&raw).unwrap();
    assert_eq!((log.len(), log.format()), (21, LogFormat::Sha1));
}

#[test]
fn spec_id_event_fields() {
    let dir = shared_or_skip!();
    let bytes = read(&dir, "tpm2-tools/event.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let spec = log.spec_id().unwrap();
    assert_eq!(
        (
            spec.platform_class,
            spec.spec_version_major,
            spec.spec_version_minor,
            spec.spec_errata,
            spec.uintn_size
        ),
        (0, 2, 0, 0, 2)
    );
    let algs: Vec<_> = spec.algorithms().iter().map(|a| (a.alg, a.size)).collect();
    assert_eq!(algs, [(0x4, 20), (0xb, 32), (0xc, 48), (0xd, 64)]);
    assert!(spec.vendor_info.is_empty());
    assert_eq!(log.uintn_bytes(), 8);
    let ev = log.event(1).unwrap();
    assert_eq!(
        (ev.pcr, ev.event_type),
        (0, EventType::EFI_PLATFORM_FIRMWARE_BLOB)
    );
    assert_eq!(ev.digests.len(), 4);
    assert_eq!(
        hex::encode(ev.digest(HashAlg::Sha384).unwrap()),
        "160222ca09aba572bbe7316db5762c91a41cff111c7e0f58ae6ca6581b898fcd16c422a2aca960d72562faf617a916c0"
    );
    match decode(&ev, log.uintn_bytes()) {
        EventData::FirmwareBlob(b) => assert_eq!((b.base, b.length), (0x900000, 0xb00000)),
        other => panic!("{other:?}"),
    }
    // The header event is event 0: EV_NO_ACTION with a zero SHA-1 digest.
    let ev0 = log.event(0).unwrap();
    assert_eq!(ev0.event_type, EventType::NO_ACTION);
    assert_eq!(ev0.digest(HashAlg::Sha1), Some(&[0u8; 20][..]));
    assert!(matches!(decode(&ev0, 8), EventData::SpecId(s) if s == *spec));
}

#[test]
fn broken_logs_fail_with_the_right_error() {
    let dir = shared_or_skip!();
    let e = EventLog::parse(&read(
        &dir,
        "keylime/create-mb-policy/binary_bios_measurements-empty",
    ))
    .unwrap_err();
    assert_eq!(e, EventLogError::Empty { len: 0 });
    assert_eq!(e.to_string(), "event log is empty");

    // ASCII text: its first four bytes, read as pcrIndex, are far out of range.
    let e = EventLog::parse(&read(
        &dir,
        "keylime/create-mb-policy/binary_bios_measurements-bogus",
    ))
    .unwrap_err();
    let EventLogError::Event {
        index,
        event_offset,
        error,
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!((index, event_offset), (0, 0));
    assert_eq!(
        error.kind,
        ErrorKind::InvalidValue {
            value: u64::from(u32::from_le_bytes(*b"bogu"))
        }
    );
    assert_eq!(
        (error.structure, error.field, error.offset),
        ("TCG_PCClientPCREvent", "pcrIndex", 0)
    );
    assert_eq!(
        e.to_string(),
        "event 0 (at byte 0): TCG_PCClientPCREvent.pcrIndex at byte 0: invalid value 0x75676f62"
    );

    // tpm2-tools' fixture declares vendorInfoSize 4 in a 37-byte Spec ID event: the vendor
    // bytes lie outside the event (tpm2-tools reads past eventSize; this parser does not).
    let e = EventLog::parse(&read(&dir, "tpm2-tools/specid-vendordata.bin")).unwrap_err();
    let err = e.field_error().unwrap();
    assert_eq!(
        err.kind,
        ErrorKind::Truncated {
            needed: 4,
            available: 0
        }
    );
    assert_eq!(
        (err.structure, err.field, err.offset),
        ("TCG_EfiSpecIDEvent", "vendorInfo", 69)
    );

    // A log of nothing but zeros has no events.
    assert_eq!(
        EventLog::parse(&[0u8; 100]).unwrap_err(),
        EventLogError::Empty { len: 100 }
    );
}

#[test]
fn padding_after_the_last_event_is_accepted() {
    let dir = shared_or_skip!();
    let mut bytes = read(&dir, "go-attestation/sb_cert_eventlog");
    let n = bytes.len();
    bytes.extend_from_slice(&[0u8; 4096]);
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!((log.len(), log.padding()), (15, 4096));
    // One non-zero byte in the padding makes it a (truncated) record.
    bytes[n + 100] = 1;
    let e = EventLog::parse(&bytes).unwrap_err();
    assert!(
        matches!(e, EventLogError::Event { index: 15, event_offset, .. } if event_offset == n),
        "{e:?}"
    );
}

#[test]
fn record_errors_name_index_and_offset() {
    let mut log = synthetic_bytes();
    let ev_offset = EventLog::parse(&log).unwrap().event(3).unwrap().offset;
    // An algorithm absent from the Spec ID list.
    let at = ev_offset + 12;
    log[at..at + 2].copy_from_slice(&0x0012u16.to_le_bytes());
    let e = EventLog::parse(&log).unwrap_err();
    let err = *e.field_error().unwrap();
    assert!(
        matches!(e, EventLogError::Event { index: 3, event_offset, .. } if event_offset == ev_offset)
    );
    assert_eq!(
        (err.kind, err.field, err.offset),
        (
            ErrorKind::UnknownAlgorithm { alg: 0x12 },
            "digests.hashAlg",
            at
        )
    );
    // A PCR index above 31.
    let mut log = synthetic_bytes();
    log[ev_offset..ev_offset + 4].copy_from_slice(&32u32.to_le_bytes());
    let err = *EventLog::parse(&log).unwrap_err().field_error().unwrap();
    assert_eq!(
        (err.kind, err.field),
        (ErrorKind::InvalidValue { value: 32 }, "pcrIndex")
    );
    // A duplicated digest algorithm.
    let mut log = synthetic_bytes();
    log[ev_offset + 12 + 22..ev_offset + 12 + 24].copy_from_slice(&4u16.to_le_bytes());
    let err = *EventLog::parse(&log).unwrap_err().field_error().unwrap();
    assert_eq!(
        (err.kind, err.field),
        (ErrorKind::InvalidValue { value: 4 }, "digests.hashAlg")
    );
    // eventSize past the end.
    let mut log = synthetic_bytes();
    let last = EventLog::parse(&log)
        .unwrap()
        .events()
        .last()
        .unwrap()
        .offset;
    let size_at = last + 12 + 22 + 34;
    log[size_at..size_at + 4].copy_from_slice(&1000u32.to_le_bytes());
    let err = *EventLog::parse(&log).unwrap_err().field_error().unwrap();
    assert_eq!((err.field, err.offset), ("event", size_at + 4));
    assert!(matches!(
        err.kind,
        ErrorKind::Truncated { needed: 1000, .. }
    ));
    // eventSize above the sanity bound.
    log[size_at..size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = *EventLog::parse(&log).unwrap_err().field_error().unwrap();
    assert_eq!(
        err.kind,
        ErrorKind::TooLarge {
            size: u32::MAX as usize,
            max: MAX_EVENT_SIZE
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Replay

#[test]
fn replays_to_tpm2_tools_expected_pcrs() {
    let dir = shared_or_skip!();
    let expected = json(&dir, "expected/tpm2-tools-pcrs.json");
    let mut checked = 0;
    for (name, e) in expected.as_object().unwrap() {
        let pcrs = &e["pcrs"];
        if pcrs.as_object().unwrap().is_empty() {
            continue; // specid-vendordata.bin: no events to replay (and rejected, see above)
        }
        let bytes = read(&dir, &format!("tpm2-tools/{name}"));
        let log = EventLog::parse(&bytes).unwrap();
        let replay = Replay::log(&log, ALL_PCRS);
        checked += assert_pcrs(name, &replay, pcrs, &[]);
    }
    assert_eq!(checked, 130);
}

#[test]
fn replays_to_go_attestation_expected_pcrs() {
    let dir = shared_or_skip!();
    let expected = json(&dir, "expected/go-attestation-pcrs.json");
    let bytes = read(&dir, "go-attestation/sb_cert_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    let replay = Replay::log(&log, ALL_PCRS);
    // PCR 10 is IMA's, not in this log.
    assert_eq!(
        assert_pcrs("sb_cert", &replay, &expected["sb_cert_eventlog"], &[10]),
        46
    );
    let ima = digest(
        HashAlg::Sha1,
        expected["sb_cert_eventlog"]["sha1"]["10"].as_str().unwrap(),
    );
    assert_eq!(
        compare_pcr(&replay, 10, &ima, Workarounds::default()),
        PcrStatus::Mismatch
    );
    assert_eq!(log.events_for_pcr(10).count(), 0);

    let bytes = read(&dir, "go-attestation/option_rom_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    let replay = Replay::log(&log, ALL_PCRS);
    assert_eq!(
        assert_pcrs("option_rom", &replay, &expected["option_rom_eventlog"], &[]),
        8
    );
    // Windows' trailing EV_NO_ACTION with pcrIndex 0xFFFFFFFF is parsed, not replayed.
    let last = log.events().last().unwrap();
    assert_eq!(
        (last.index, last.pcr, last.event_type),
        (60, PCR_INDEX_NONE, EventType::NO_ACTION)
    );
    assert_eq!(replay.ignored_pcrs(), 0);
}

#[test]
fn windows_bundle_quote_and_log() {
    let dir = shared_or_skip!();
    let (j, raw) = windows_bundle(&dir);
    let public = b64(&j, "/AK/Public");
    let ak = AttestationKey::from_public(Public::parse(&public).unwrap()).unwrap();
    let attest = b64(&j, "/Quote/Quote");
    let sig = b64(&j, "/Quote/Signature");
    let nonce = b64(&j, "/Quote/Nonce");
    assert!(nonce.is_empty());
    let quote = Quote::verify(&attest, &sig, &ak, &nonce).unwrap();
    let mut quoted = PcrSet::new();
    for p in j["Log"]["PCRs"].as_array().unwrap() {
        assert_eq!(p["DigestAlg"], 3); // Go's crypto.SHA1
        let index = p["Index"].as_u64().unwrap() as u8;
        let value = base64::engine::general_purpose::STANDARD
            .decode(p["Digest"].as_str().unwrap())
            .unwrap();
        assert!(quoted.set(HashAlg::Sha1, index, &value));
    }
    let log = EventLog::parse(&raw).unwrap();
    let replay = Replay::log(&log, ALL_PCRS);
    let results: Vec<_> = compare_quote(&replay, &quote, &quoted, Workarounds::default())
        .unwrap()
        .collect();
    assert_eq!(results.len(), 24);
    assert!(
        results
            .iter()
            .all(|c| c.alg == 0x4 && c.status == PcrStatus::Match),
        "{results:?}"
    );
    assert_eq!(
        hex::encode(replay.pcr(HashAlg::Sha1, 7).unwrap().as_bytes()),
        hex::encode(quoted.pcr(HashAlg::Sha1, 7).unwrap().as_bytes())
    );
    // Secure Boot enabled (go-attestation secureboot_test.go).
    let s = BootSummary::from_log(&log);
    assert_eq!(s.secure_boot.map(|f| f.value), Some(true));
    assert_eq!(s.inconsistent_events, 0);
}

#[test]
fn ebs_events_missing_workaround() {
    let dir = shared_or_skip!();
    let bytes = read(&dir, "go-attestation/ebs_event_missing_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    let mut replay = Replay::new(&[HashAlg::Sha1, HashAlg::Sha256], ALL_PCRS).unwrap();
    replay.feed_all(log.events());
    let want = digest(HashAlg::Sha1, "31245808d6d35849bc394f6343f2b3ff908ed5e3");
    assert_eq!(
        compare_pcr(&replay, 5, &want, Workarounds::default()),
        PcrStatus::Mismatch
    );
    let on = Workarounds {
        ebs_events_missing: true,
    };
    let status = compare_pcr(&replay, 5, &want, on);
    assert_eq!(
        status,
        PcrStatus::MatchWithWorkaround {
            workaround: Workaround::EbsInvocationSuccess
        }
    );
    assert_eq!(
        Workaround::EbsInvocationSuccess.name(),
        "ebs_events_missing: EBS Invocation + Success"
    );
    // The workaround is for PCR 5 only.
    let pcr4 = *replay.pcr(HashAlg::Sha1, 4).unwrap();
    let mut wrong = pcr4;
    wrong.extend(&[0u8; 20]);
    assert_eq!(compare_pcr(&replay, 4, &wrong, on), PcrStatus::Mismatch);
    // A SHA-1-format log has no SHA-256 digests: that bank's value is unknown.
    let want256 = digest(
        HashAlg::Sha256,
        "6caea123fa6111305ee624e452e269ad14ac522ab8bf0c88e11616de4c222f7d",
    );
    assert_eq!(
        compare_pcr(&replay, 5, &want256, on),
        PcrStatus::MissingDigest
    );
    assert_eq!(replay.missing(HashAlg::Sha256) & (1 << 5), 1 << 5);
    assert!(replay.pcr(HashAlg::Sha256, 5).is_none());
}

#[test]
fn startup_locality_logs() {
    let dir = shared_or_skip!();
    let bytes = read(&dir, "keylime/create-mb-policy/binary_bios_measurements");
    let log = EventLog::parse(&bytes).unwrap();
    let ev = log.event(1).unwrap();
    assert_eq!((ev.pcr, ev.event_type), (0, EventType::NO_ACTION));
    assert_eq!(decode(&ev, 8), EventData::StartupLocality(3));
    let replay = Replay::log(&log, ALL_PCRS);
    assert_eq!(replay.startup_locality(), Some(3));
    assert!(!replay.ignored_locality());
    // Values computed independently (Python, PCR 0 starting at 00..03).
    let want1 = digest(HashAlg::Sha1, "78f3e576d5da8873860e557535d181f4a37e2963");
    let want256 = digest(
        HashAlg::Sha256,
        "0ee9a7feba8f4172f1a7451594aa5731665a4d353ac61814042ce107a00742f2",
    );
    assert_eq!(
        compare_pcr(&replay, 0, &want1, Workarounds::default()),
        PcrStatus::Match
    );
    assert_eq!(
        compare_pcr(&replay, 0, &want256, Workarounds::default()),
        PcrStatus::Match
    );
    // Without the locality event PCR 0 would differ.
    let mut no_loc = Replay::for_log(&log, ALL_PCRS);
    no_loc.feed_all(log.events().filter(|e| e.index != 1));
    assert_eq!(
        compare_pcr(&no_loc, 0, &want1, Workarounds::default()),
        PcrStatus::Mismatch
    );
    assert_eq!(
        no_loc.bank(HashAlg::Sha1).unwrap().get(1),
        replay.bank(HashAlg::Sha1).unwrap().get(1)
    );

    // go-attestation's 49-byte log: a SHA-1-format log whose only event is StartupLocality 3.
    let bytes = read(&dir, "go-attestation/short_no_action_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!((log.len(), log.format()), (1, LogFormat::Sha1));
    assert_eq!(
        decode(&log.event(0).unwrap(), 8),
        EventData::StartupLocality(3)
    );
    let replay = Replay::log(&log, ALL_PCRS);
    let mut three = [0u8; 20];
    three[19] = 3;
    assert_eq!(replay.pcr(HashAlg::Sha1, 0).unwrap().as_bytes(), three);
}

#[test]
fn locality_and_hcrtm_rules() {
    let loc = |l: u8| {
        let mut d = STARTUP_LOCALITY_SIGNATURE.to_vec();
        d.push(l);
        d
    };
    let sha = |alg: HashAlg, b: &[u8]| alg.hash(b).unwrap().as_bytes().to_vec();
    let algs = [HashAlg::Sha256];
    // StartupLocality 3 then an extension.
    let log = build_log(
        &algs,
        &[ev(0, 3, loc(3), &algs), ev(0, 8, b"x".to_vec(), &algs)],
    );
    let replay = Replay::log(&EventLog::parse(&log).unwrap(), ALL_PCRS);
    let mut start = [0u8; 32];
    start[31] = 3;
    let mut want = Digest::from_slice(HashAlg::Sha256, &start).unwrap();
    want.extend(&sha(HashAlg::Sha256, b"x"));
    assert_eq!(replay.pcr(HashAlg::Sha256, 0), Some(&want));
    // A StartupLocality event after PCR 0 was extended is ignored (and noted).
    let log = build_log(
        &algs,
        &[ev(0, 8, b"x".to_vec(), &algs), ev(0, 3, loc(3), &algs)],
    );
    let replay = Replay::log(&EventLog::parse(&log).unwrap(), ALL_PCRS);
    assert!(replay.ignored_locality());
    assert_eq!(replay.startup_locality(), None);
    let mut want0 = Digest::zero(HashAlg::Sha256);
    want0.extend(&sha(HashAlg::Sha256, b"x"));
    assert_eq!(replay.pcr(HashAlg::Sha256, 0), Some(&want0));
    // An H-CRTM event as PCR 0's first extension starts from locality 4.
    let log = build_log(&algs, &[ev(0, 0x8000_0010, b"HCRTM".to_vec(), &algs)]);
    let replay = Replay::log(&EventLog::parse(&log).unwrap(), ALL_PCRS);
    start[31] = 4;
    let mut want = Digest::from_slice(HashAlg::Sha256, &start).unwrap();
    want.extend(&sha(HashAlg::Sha256, b"HCRTM"));
    assert_eq!(replay.pcr(HashAlg::Sha256, 0), Some(&want));
    assert_eq!(replay.startup_locality(), Some(4));
    // PCRs 17-22 start at all-ones, 23 at zero.
    assert_eq!(
        replay.pcr(HashAlg::Sha256, 17),
        Some(&Digest::ones(HashAlg::Sha256))
    );
    assert_eq!(
        replay.pcr(HashAlg::Sha256, 23),
        Some(&Digest::zero(HashAlg::Sha256))
    );
    // Events on PCRs 24-31 are parsed but not replayed.
    let log = build_log(&algs, &[ev(30, 8, b"x".to_vec(), &algs)]);
    let replay = Replay::log(&EventLog::parse(&log).unwrap(), ALL_PCRS);
    assert_eq!(replay.ignored_pcrs(), 1 << 30);
}

#[test]
fn replay_setup_errors() {
    assert_eq!(
        Replay::new(&[HashAlg::Sm3_256], ALL_PCRS).unwrap_err(),
        ReplayError::NotReplayable {
            alg: HashAlg::Sm3_256
        }
    );
    assert_eq!(
        Replay::new(&[HashAlg::Sha256, HashAlg::Sha256], ALL_PCRS).unwrap_err(),
        ReplayError::DuplicateBank {
            alg: HashAlg::Sha256
        }
    );
    let five = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sha1,
    ];
    assert!(matches!(
        Replay::new(&five, ALL_PCRS).unwrap_err(),
        ReplayError::DuplicateBank { .. }
    ));
    // A log with an SM3 bank: the bank is parsed (digests skipped by size) and not replayed.
    let algs = [HashAlg::Sm3_256, HashAlg::Sha256];
    let log = build_log(&algs, &[ev(4, 8, b"x".to_vec(), &algs)]);
    let log = EventLog::parse(&log).unwrap();
    assert_eq!(log.algorithms().len(), 2);
    let replay = Replay::log(&log, ALL_PCRS);
    assert_eq!(replay.algorithms().collect::<Vec<_>>(), [HashAlg::Sha256]);
    let sm3 = Digest::zero(HashAlg::Sm3_256);
    assert_eq!(
        compare_pcr(&replay, 4, &sm3, Workarounds::default()),
        PcrStatus::NotReplayed
    );
    // PCRs outside the mask are not replayed.
    let replay = Replay::log(&log, 1 << 5);
    let z = Digest::zero(HashAlg::Sha256);
    assert_eq!(
        compare_pcr(&replay, 4, &z, Workarounds::default()),
        PcrStatus::NotReplayed
    );
    assert_eq!(
        compare_pcr(&replay, 5, &z, Workarounds::default()),
        PcrStatus::Match
    );
}

#[test]
fn replaying_in_pieces_equals_replaying_whole_real_logs() {
    let dir = shared_or_skip!();
    for &(rel, ..) in REAL_LOGS {
        let bytes = read(&dir, rel);
        let log = EventLog::parse(&bytes).unwrap();
        let whole = Replay::log(&log, ALL_PCRS);
        let events: Vec<_> = log.events().collect();
        for cut in [0, 1, 2, events.len() / 2, events.len()] {
            let cut = cut.min(events.len());
            let mut r = Replay::for_log(&log, ALL_PCRS);
            r.feed_all(events[..cut].iter().copied());
            let mid = r.clone();
            r.feed_all(events[cut..].iter().copied());
            assert_eq!(r, whole, "{rel} cut at {cut}");
            assert_eq!(mid.events_fed() as usize, cut);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The repository's synthetic log and its swtpm quote, end to end

fn synthetic_bytes() -> Vec<u8> {
    std::fs::read(format!("{SWTPM}/synthetic.bin")).unwrap()
}

#[test]
fn synthetic_log_quote_end_to_end() {
    let bytes = synthetic_bytes();
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!((log.len(), log.format()), (22, LogFormat::CryptoAgile));

    // Replay equals make_log.py's expected values, all 24 PCRs of both banks.
    let replay = Replay::log(&log, ALL_PCRS);
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{SWTPM}/expected-pcrs.json")).unwrap())
            .unwrap();
    assert_eq!(assert_pcrs("synthetic", &replay, &expected, &[]), 48);

    // The swtpm quote over sha1:0-7 + sha256:0-8 verifies and matches the replay.
    let ak_pub = std::fs::read(format!("{SWTPM}/ak.pub")).unwrap();
    let ak = AttestationKey::from_public(Public::parse_tpm2b(&ak_pub).unwrap()).unwrap();
    let attest = std::fs::read(format!("{SWTPM}/quote.attest")).unwrap();
    let sig = std::fs::read(format!("{SWTPM}/quote.sig")).unwrap();
    let nonce = hex::decode(
        std::fs::read_to_string(format!("{SWTPM}/nonce.hex"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let quote = Quote::verify(&attest, &sig, &ak, &nonce).unwrap();
    let mut quoted = PcrSet::new();
    parse_tpm2_tools_pcrs(
        &std::fs::read(format!("{SWTPM}/quote.pcrs")).unwrap(),
        &mut quoted,
    )
    .unwrap();
    let results: Vec<_> = compare_quote(&replay, &quote, &quoted, Workarounds::default())
        .unwrap()
        .collect();
    assert_eq!(results.len(), 17);
    assert!(
        results.iter().all(|c| c.status == PcrStatus::Match),
        "{results:?}"
    );
    assert_eq!((results[8].alg, results[8].pcr), (0x000b, 0));
    assert!(
        compare_quote(&replay, &quote, &quoted, Workarounds::default())
            .unwrap()
            .all_match()
    );

    // Quoted values that do not match the quote are refused before any comparison.
    let mut forged = quoted.clone();
    forged.set(HashAlg::Sha256, 5, &[0u8; 32]);
    assert_eq!(
        compare_quote(&replay, &quote, &forged, Workarounds::default()).err(),
        Some(QuoteError::PcrDigestMismatch)
    );
    // Without the quote check, the mismatch is reported with the events that fed the PCR.
    let sel = quote.info.pcr_select;
    let bad: Vec<_> = compare_selection(&replay, sel, &forged, Workarounds::default())
        .filter(|c| c.status != PcrStatus::Match)
        .collect();
    assert_eq!(
        bad,
        [PcrComparison {
            alg: 0x000b,
            pcr: 5,
            status: PcrStatus::Mismatch
        }]
    );
    let fed: Vec<u32> = log.events_for_pcr(5).map(|e| e.index).collect();
    assert_eq!(fed, [15, 20, 21]);
    // The EBS workaround does not turn a forged PCR 5 into a match.
    let on = Workarounds {
        ebs_events_missing: true,
    };
    assert!(!compare_selection(&replay, sel, &forged, on).all_match());
    // A PCR the log never extends must hold its reset value.
    let nine = replay.pcr(HashAlg::Sha256, 9).unwrap();
    assert_eq!(nine, &Digest::zero(HashAlg::Sha256));
    let mut not_reset = Digest::zero(HashAlg::Sha256);
    not_reset.extend(&[1u8; 32]);
    assert_eq!(compare_pcr(&replay, 9, &not_reset, on), PcrStatus::Mismatch);
}

#[test]
fn synthetic_log_decodes() {
    let bytes = synthetic_bytes();
    let log = EventLog::parse(&bytes).unwrap();
    let events: Vec<_> = log.events().collect();
    // Every checkable event is consistent; GRUB strings were hashed whole, without the NUL.
    for ev in &events {
        let c = check_event(ev);
        assert_eq!(
            c.is_consistent(),
            is_checkable(ev),
            "event {}: {c:?}",
            ev.index
        );
    }
    assert_eq!(
        check_event(&events[18]),
        DigestCheck::Consistent {
            basis: DigestBasis::EventDataWithoutNul
        }
    );
    assert_eq!(check_event(&events[17]), DigestCheck::NotApplicable);

    // The boot application's device path, as the generator wrote it.
    let EventData::ImageLoad(img) = decode(&events[17], log.uintn_bytes()) else {
        panic!()
    };
    assert_eq!(
        img.device_path.to_string(),
        r"HD(1,GPT,5b2c6c3e-8f0d-4f6a-9a51-1e3d2c4b5a69,0x800,0x100000)/\EFI\BOOT\BOOTX64.EFI"
    );
    assert_eq!(
        (img.image_location, img.image_length, img.link_time_address),
        (0x7E6B4018, 0x155E40, 0)
    );
    assert_eq!(
        img.device_path.file_path().unwrap().to_string(),
        r"\EFI\BOOT\BOOTX64.EFI"
    );

    // db: one SHA-256 entry; dbx: two.
    let sha = |s: &[u8]| HashAlg::Sha256.hash(s).unwrap().as_bytes().to_vec();
    let EventData::Variable(db) = decode(&events[6], 8) else {
        panic!()
    };
    assert!(db.is(&guids::EFI_IMAGE_SECURITY_DATABASE, "db"));
    let lists: Vec<_> = db.signature_lists().map(Result::unwrap).collect();
    assert_eq!(lists.len(), 1);
    assert_eq!(lists[0].kind(), SignatureKind::Sha256);
    let owner = Guid::from_fields(
        0x77fa9abd,
        0x0359,
        0x4d32,
        [0xbd, 0x60, 0x28, 0xf4, 0xe7, 0x8f, 0x78, 0x4b],
    );
    let entries: Vec<_> = lists[0].signatures().collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].owner, entries[0].data.to_vec()),
        (owner, sha(b"trustpool allowed image 1"))
    );
    let EventData::Variable(dbx) = decode(&events[7], 8) else {
        panic!()
    };
    let entries: Vec<Vec<u8>> = dbx
        .signature_lists()
        .flat_map(|l| {
            l.unwrap()
                .signatures()
                .map(|s| s.data.to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        entries,
        [
            sha(b"trustpool revoked image 1"),
            sha(b"trustpool revoked image 2")
        ]
    );

    // The summary.
    let s = BootSummary::from_log(&log);
    assert_eq!(
        s.secure_boot,
        Some(Fact {
            index: 3,
            value: true
        })
    );
    assert_eq!(s.pk.map(|f| f.value.to_vec()), Some(sha(b"")));
    assert_eq!(s.kek.map(|f| f.index), Some(5));
    assert_eq!(s.db.map(|f| f.value.to_vec()), Some(sha(db.data)));
    assert_eq!(s.dbx.map(|f| f.value.to_vec()), Some(sha(dbx.data)));
    assert_eq!(s.separators, 0xff);
    assert_eq!(s.separator_errors, 0);
    assert_eq!(
        s.crtm_version.map(|f| f.value.to_string()),
        Some("1.0".to_string())
    );
    assert_eq!(
        s.kernel_cmdline,
        Some(Fact {
            index: 19,
            value: KernelCmdline::Grub("/vmlinuz root=/dev/sda1 ro quiet")
        })
    );
    assert_eq!(s.boot_applications.len(), 1);
    let app = s.boot_applications[0];
    assert_eq!(app.index, 17);
    assert_eq!(
        app.authenticode_sha256.map(|d| d.to_vec()),
        Some(sha(b"trustpool synthetic BOOTX64.EFI authenticode"))
    );
    assert_eq!(
        app.device_path(&log).unwrap().to_string(),
        r"HD(1,GPT,5b2c6c3e-8f0d-4f6a-9a51-1e3d2c4b5a69,0x800,0x100000)/\EFI\BOOT\BOOTX64.EFI"
    );
    assert_eq!((s.inconsistent_events, s.unverifiable_events), (0, 0));
}

#[test]
fn tampered_data_is_inconsistent_and_yields_no_facts() {
    let mut bytes = synthetic_bytes();
    let log = EventLog::parse(&bytes).unwrap();
    let sb = log.event(3).unwrap();
    let at = sb.data.as_ptr() as usize - bytes.as_ptr() as usize + sb.data.len() - 1;
    bytes[at] = 0; // SecureBoot = 0, digest unchanged
    let log = EventLog::parse(&bytes).unwrap();
    let ev = log.event(3).unwrap();
    assert_eq!(check_event(&ev), DigestCheck::Inconsistent { alg: 0x0004 });
    assert_eq!(
        check_event_bank(&ev, HashAlg::Sha256),
        DigestCheck::Inconsistent { alg: 0x000b }
    );
    let s = BootSummary::from_log(&log);
    assert_eq!(s.secure_boot, None);
    assert_eq!((s.inconsistent_events, s.first_inconsistent), (1, Some(3)));
}

// ---------------------------------------------------------------------------------------------
// Real-log facts

#[test]
fn secure_boot_state_of_real_logs() {
    let dir = shared_or_skip!();
    for (rel, enabled) in [
        (
            "go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
            false,
        ),
        (
            "go-attestation/coreos_36_shielded_vm_no_secure_boot_eventlog",
            false,
        ),
        ("go-attestation/sb_cert_eventlog", true),
        ("go-attestation/option_rom_eventlog", true),
        ("tpm2-tools/event-moklisttrusted.bin", true),
        ("tpm2-tools/event-gce-ubuntu-2104-log.bin", false),
    ] {
        let bytes = read(&dir, rel);
        let s = BootSummary::from_log(&EventLog::parse(&bytes).unwrap());
        assert_eq!(s.secure_boot.map(|f| f.value), Some(enabled), "{rel}");
        assert!(
            s.pk.is_some() && s.kek.is_some() && s.db.is_some() && s.dbx.is_some(),
            "{rel}"
        );
    }
}

#[test]
fn sb_cert_authorities_after_separator() {
    let dir = shared_or_skip!();
    let bytes = read(&dir, "go-attestation/sb_cert_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    let after: Vec<_> = log
        .events()
        .skip_while(|e| !(e.pcr == 7 && e.event_type == EventType::SEPARATOR))
        .filter(|e| e.event_type == EventType::EFI_VARIABLE_AUTHORITY)
        .collect();
    assert_eq!(
        after.iter().map(|e| e.index).collect::<Vec<_>>(),
        [8, 12, 14]
    );
    assert_eq!(
        check_event(&after[0]),
        DigestCheck::Consistent {
            basis: DigestBasis::EventData
        }
    );
    // shim's "Shim" authority with one extra byte (go-attestation issue 157).
    for ev in &after[1..] {
        assert_eq!(
            check_event(ev),
            DigestCheck::Consistent {
                basis: DigestBasis::ShimAuthorityExtraByte
            }
        );
        let EventData::Variable(v) = decode(ev, 8) else {
            panic!()
        };
        assert!(v.is(&guids::SHIM_LOCK, "Shim"));
        assert_eq!((v.data.len(), v.trailing.len()), (1080, 6));
    }
    let EventData::Variable(db) = decode(&after[0], 8) else {
        panic!()
    };
    assert!(db.is(&guids::EFI_IMAGE_SECURITY_DATABASE, "db"));
    let s = BootSummary::from_log(&log);
    assert_eq!(
        (
            s.authorities_before_separator,
            s.authorities_after_separator
        ),
        (0, 3)
    );

    // option_rom_eventlog: 2 post-separator authorities, 1 driver loaded from PCI MMIO.
    let bytes = read(&dir, "go-attestation/option_rom_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!(BootSummary::from_log(&log).authorities_after_separator, 2);
    let pci_mmio = log
        .events()
        .filter(|e| e.pcr == 2 && e.event_type == EventType::EFI_BOOT_SERVICES_DRIVER)
        .filter_map(|e| match decode(&e, 8) {
            EventData::ImageLoad(i) => Some(i.device_path),
            _ => None,
        })
        .filter(|p| {
            let nodes: Vec<_> = p.nodes().map(|n| (n.node_type, n.subtype)).collect();
            let pci = nodes.iter().position(|n| *n == (1, 1));
            pci.is_some_and(|i| nodes[i..].contains(&(4, 8)))
        })
        .count();
    assert_eq!(pci_mmio, 1);
}

#[test]
fn consistency_of_real_logs() {
    let dir = shared_or_skip!();
    for &(rel, ..) in REAL_LOGS {
        let bytes = read(&dir, rel);
        let log = EventLog::parse(&bytes).unwrap();
        let bad: Vec<_> = log
            .events()
            .filter(|e| matches!(check_event(e), DigestCheck::Inconsistent { .. }))
            .map(|e| e.index)
            .collect();
        // tpm2-tools/event-arch-linux.bin.warn: "Event 24's digest does not match its payload"
        // (systemd-boot logged its UTF-16 command line one byte short).
        let want: &[u32] = if rel.ends_with("event-arch-linux.bin") {
            &[24]
        } else {
            &[]
        };
        assert_eq!(bad, want, "{rel}");
        assert!(
            log.events()
                .all(|e| check_event(&e) != DigestCheck::Unverifiable),
            "{rel}"
        );
    }
    // GRUB measures the string after its prefix, without the NUL.
    let bytes = read(&dir, "tpm2-tools/event-gce-ubuntu-2104-log.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let ev = log.event(102).unwrap();
    assert_eq!(
        check_event(&ev),
        DigestCheck::Consistent {
            basis: DigestBasis::GrubString
        }
    );
    // Some firmware hashes only the variable data of EV_EFI_VARIABLE_BOOT; some all of it.
    let boot = |log: &EventLog<'_>| {
        log.events()
            .find(|e| e.event_type == EventType::EFI_VARIABLE_BOOT)
            .map(|e| check_event(&e))
            .unwrap()
    };
    assert_eq!(
        boot(&log),
        DigestCheck::Consistent {
            basis: DigestBasis::VariableData
        }
    );
    let bytes = read(&dir, "tpm2-tools/event-arch-linux.bin");
    assert_eq!(
        boot(&EventLog::parse(&bytes).unwrap()),
        DigestCheck::Consistent {
            basis: DigestBasis::EventData
        }
    );
}

#[test]
fn decodes_real_event_data() {
    let dir = shared_or_skip!();
    let mut malformed = 0;
    for &(rel, ..) in REAL_LOGS {
        let bytes = read(&dir, rel);
        let log = EventLog::parse(&bytes).unwrap();
        for ev in log.events() {
            let d = decode(&ev, log.uintn_bytes());
            let _ = format!("{d:?}");
            if let EventData::Malformed(e) = d {
                malformed += 1;
                eprintln!("{rel} {}: {e}", ev.index);
            }
        }
    }
    assert_eq!(malformed, 0);

    let bytes = read(&dir, "tpm2-tools/event-bootorder.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let var = |i| match decode(&log.event(i).unwrap(), 8) {
        EventData::Variable(v) => v,
        other => panic!("{other:?}"),
    };
    let order = var(12);
    assert!(order.is(&guids::EFI_GLOBAL_VARIABLE, "BootOrder"));
    assert_eq!(order.boot_order().unwrap().collect::<Vec<_>>(), [1, 0, 2]);
    let boot1 = var(13);
    assert_eq!(boot1.boot_option_number(), Some(1));
    let opt = boot1.load_option().unwrap();
    assert_eq!(opt.description.to_string(), "UEFI Misc Device");
    assert!(opt.is_active());
    assert_eq!(opt.file_path.to_string(), "PciRoot(0x0)/Pci(0x6,0x0)");
    let shell = var(15).load_option().unwrap();
    assert_eq!(shell.description.to_string(), "EFI Internal Shell");
    assert_eq!(
        shell.file_path.to_string(),
        "Fv(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/FvFile(7c04a583-9e3e-4f1c-ad65-e05268d0b4d1)"
    );
    let sb = var(4);
    assert_eq!(
        (sb.name.to_string(), sb.as_bool()),
        ("SecureBoot".to_string(), Some(false))
    );

    // Device paths as the UEFI shell prints them.
    let path_of = |rel: &str, i: u32| {
        let bytes = read(&dir, rel);
        let log = EventLog::parse(&bytes).unwrap();
        match decode(&log.event(i).unwrap(), log.uintn_bytes()) {
            EventData::ImageLoad(img) => img.device_path.to_string(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        path_of("tpm2-tools/event-arch-linux.bin", 22),
        r"PciRoot(0x0)/Pci(0x17,0x0)/Sata(0x1,0xFFFF,0x0)/HD(1,GPT,1a504613-19b5-4b44-a83d-d926d40daa1c,0x800,0x80000)/\EFI\SYSTEMD\SYSTEMD-BOOTX64.EFI"
    );
    assert_eq!(
        path_of("tpm2-tools/event-gce-ubuntu-2104-log.bin", 23),
        r"PciRoot(0x0)/Pci(0x3,0x0)/Scsi(0x1,0x0)/HD(15,GPT,6ea6f740-25ef-4269-838d-1a6f21ebf27f,0x2800,0x35000)/\EFI\ubuntu\shimx64.efi"
    );

    // GPT, firmware blobs, S-CRTM strings, GRUB and systemd-boot strings.
    let bytes = read(&dir, "tpm2-tools/event-gce-ubuntu-2104-log.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let gpt = log
        .events()
        .find(|e| e.event_type == EventType::EFI_GPT_EVENT)
        .unwrap();
    let EventData::Gpt(g) = decode(&gpt, 8) else {
        panic!()
    };
    assert_eq!(g.number_of_partitions, 3);
    assert_eq!(g.partitions().count(), 3);
    let crtm = log
        .events()
        .find(|e| e.event_type == EventType::S_CRTM_VERSION)
        .unwrap();
    let EventData::CrtmVersion(v) = decode(&crtm, 8) else {
        panic!()
    };
    assert!(matches!(v, uefi::CrtmVersion::Utf16(_)), "{v:?}");
    assert_eq!(v.to_string(), "GCE Virtual Firmware v1");
    let bytes = read(&dir, "go-attestation/crypto_agile_eventlog");
    let log = EventLog::parse(&bytes).unwrap();
    assert_eq!(
        decode(&log.event(1).unwrap(), 8),
        EventData::Text(uefi::EventText::Ascii("Boot Guard Measured S-CRTM"))
    );
    let bytes = read(&dir, "tpm2-tools/event-sd-boot-fedora37.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let s = BootSummary::from_log(&log);
    let Some(Fact {
        index: 24,
        value: KernelCmdline::Utf16(cmd),
    }) = s.kernel_cmdline
    else {
        panic!("{s:?}")
    };
    assert_eq!(cmd.to_string(), " console=ttyS0 console=tty0 efi=debug ");
    let bytes = read(&dir, "tpm2-tools/event-bootorder.bin");
    let log = EventLog::parse(&bytes).unwrap();
    let grub = log
        .events()
        .find(|e| e.event_type == EventType::IPL)
        .unwrap();
    assert!(matches!(
        decode(&grub, 8),
        EventData::Text(uefi::EventText::Grub {
            kind: uefi::GrubString::Command,
            ..
        })
    ));
}

#[test]
fn event_type_names() {
    let all = [
        (0x0, "EV_PREBOOT_CERT"),
        (0x1, "EV_POST_CODE"),
        (0x2, "EV_UNUSED"),
        (0x3, "EV_NO_ACTION"),
        (0x4, "EV_SEPARATOR"),
        (0x5, "EV_ACTION"),
        (0x6, "EV_EVENT_TAG"),
        (0x7, "EV_S_CRTM_CONTENTS"),
        (0x8, "EV_S_CRTM_VERSION"),
        (0x9, "EV_CPU_MICROCODE"),
        (0xA, "EV_PLATFORM_CONFIG_FLAGS"),
        (0xB, "EV_TABLE_OF_DEVICES"),
        (0xC, "EV_COMPACT_HASH"),
        (0xD, "EV_IPL"),
        (0xE, "EV_IPL_PARTITION_DATA"),
        (0xF, "EV_NONHOST_CODE"),
        (0x10, "EV_NONHOST_CONFIG"),
        (0x11, "EV_NONHOST_INFO"),
        (0x12, "EV_OMIT_BOOT_DEVICE_EVENTS"),
        (0x13, "EV_POST_CODE2"),
        (0x8000_0000, "EV_EFI_EVENT_BASE"),
        (0x8000_0001, "EV_EFI_VARIABLE_DRIVER_CONFIG"),
        (0x8000_0002, "EV_EFI_VARIABLE_BOOT"),
        (0x8000_0003, "EV_EFI_BOOT_SERVICES_APPLICATION"),
        (0x8000_0004, "EV_EFI_BOOT_SERVICES_DRIVER"),
        (0x8000_0005, "EV_EFI_RUNTIME_SERVICES_DRIVER"),
        (0x8000_0006, "EV_EFI_GPT_EVENT"),
        (0x8000_0007, "EV_EFI_ACTION"),
        (0x8000_0008, "EV_EFI_PLATFORM_FIRMWARE_BLOB"),
        (0x8000_0009, "EV_EFI_HANDOFF_TABLES"),
        (0x8000_000A, "EV_EFI_PLATFORM_FIRMWARE_BLOB2"),
        (0x8000_000B, "EV_EFI_HANDOFF_TABLES2"),
        (0x8000_000C, "EV_EFI_VARIABLE_BOOT2"),
        (0x8000_000D, "EV_EFI_GPT_EVENT2"),
        (0x8000_0010, "EV_EFI_HCRTM_EVENT"),
        (0x8000_00E0, "EV_EFI_VARIABLE_AUTHORITY"),
        (0x8000_00E1, "EV_EFI_SPDM_FIRMWARE_BLOB"),
        (0x8000_00E2, "EV_EFI_SPDM_FIRMWARE_CONFIG"),
        (0x8000_00E3, "EV_EFI_SPDM_DEVICE_POLICY"),
        (0x8000_00E4, "EV_EFI_SPDM_DEVICE_AUTHORITY"),
    ];
    for (v, name) in all {
        assert_eq!(EventType(v).name(), Some(name));
        assert_eq!(EventType::from_name(name), Some(EventType(v)));
    }
    assert_eq!(EventType(0x14).name(), None);
    assert_eq!(EventType(0x8000_00E5).to_string(), "0x800000e5");
    assert_eq!(
        EventType::EFI_VARIABLE_AUTHORITY.to_string(),
        "EV_EFI_VARIABLE_AUTHORITY"
    );
}

#[test]
fn device_path_text() {
    fn node(t: u8, s: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![t, s];
        v.extend_from_slice(&((data.len() + 4) as u16).to_le_bytes());
        v.extend_from_slice(data);
        v
    }
    let guid = Guid::from_fields(
        0x5b2c6c3e,
        0x8f0d,
        0x4f6a,
        [0x9a, 0x51, 0x1e, 0x3d, 0x2c, 0x4b, 0x5a, 0x69],
    );
    let mut hd = Vec::new();
    hd.extend_from_slice(&1u32.to_le_bytes());
    hd.extend_from_slice(&0x800u64.to_le_bytes());
    hd.extend_from_slice(&0x100000u64.to_le_bytes());
    hd.extend_from_slice(&guid.0);
    hd.extend_from_slice(&[2, 2]);
    let file: Vec<u8> = r"\EFI\BOOT\BOOTX64.EFI"
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect();
    let mut p = Vec::new();
    p.extend(node(2, 1, &[0xD0, 0x41, 0x03, 0x0A, 0, 0, 0, 0]));
    p.extend(node(1, 1, &[0x2, 0x1F]));
    p.extend(node(3, 0x12, &[0, 0, 0xFF, 0xFF, 0, 0]));
    p.extend(node(4, 1, &hd));
    p.extend(node(4, 4, &file));
    p.extend(node(0x7F, 0xFF, &[]));
    p.extend_from_slice(b"ignored after the end node");
    let dp = DevicePath::parse(&p).unwrap();
    assert_eq!(
        dp.to_string(),
        r"PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/HD(1,GPT,5b2c6c3e-8f0d-4f6a-9a51-1e3d2c4b5a69,0x800,0x100000)/\EFI\BOOT\BOOTX64.EFI"
    );
    assert_eq!(dp.nodes().count(), 6);
    // Unknown nodes, and known nodes of the wrong length, print generically.
    let mut q = node(0x42, 7, &[0xAB, 0xCD]);
    q.extend(node(1, 1, &[1, 2, 3]));
    q.extend(node(0x7F, 0x01, &[]));
    q.extend(node(3, 5, &[3, 0]));
    assert_eq!(
        DevicePath::parse(&q).unwrap().to_string(),
        "Path(66,7,ABCD)/Path(1,1,010203),USB(0x3,0x0)"
    );
    // Malformed: a node length below 4, or past the end; too many nodes.
    let e = DevicePath::parse(&[1, 1, 3, 0]).unwrap_err();
    assert_eq!(
        (e.field, e.kind),
        ("Length", ErrorKind::InvalidValue { value: 3 })
    );
    assert!(DevicePath::parse(&[1, 1, 9, 0, 0]).is_err());
    let many: Vec<u8> = (0..=MAX_DEVICE_PATH_NODES)
        .flat_map(|_| node(1, 5, &[0; 4]))
        .collect();
    assert!(matches!(
        DevicePath::parse(&many).unwrap_err().kind,
        ErrorKind::TooLarge { .. }
    ));
    // Rendering into a bounded no-heap sink fails cleanly when the sink is full.
    let mut small: heapless::String<16> = heapless::String::new();
    assert!(core::fmt::Write::write_fmt(&mut small, format_args!("{dp}")).is_err());
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A test-only crypto-agile log writer.
#[derive(Debug, Clone)]
struct GenEvent {
    pcr: u32,
    event_type: u32,
    digests: Vec<(u16, Vec<u8>)>,
    data: Vec<u8>,
}

fn ev(pcr: u32, event_type: u32, data: Vec<u8>, algs: &[HashAlg]) -> GenEvent {
    let digests = algs
        .iter()
        .map(|a| {
            let d = a
                .hash(&data)
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or(vec![0x5a; a.size()]);
            (a.id(), d)
        })
        .collect();
    GenEvent {
        pcr,
        event_type,
        digests,
        data,
    }
}

fn build_log(algs: &[HashAlg], events: &[GenEvent]) -> Vec<u8> {
    let mut spec = b"Spec ID Event03\0".to_vec();
    spec.extend_from_slice(&0u32.to_le_bytes());
    spec.extend_from_slice(&[0, 2, 0, 2]);
    spec.extend_from_slice(&(algs.len() as u32).to_le_bytes());
    for a in algs {
        spec.extend_from_slice(&a.id().to_le_bytes());
        spec.extend_from_slice(&(a.size() as u16).to_le_bytes());
    }
    spec.push(0);
    let mut out = Vec::new();
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&[0; 20]);
    out.extend_from_slice(&(spec.len() as u32).to_le_bytes());
    out.extend_from_slice(&spec);
    for e in events {
        out.extend_from_slice(&e.pcr.to_le_bytes());
        out.extend_from_slice(&e.event_type.to_le_bytes());
        out.extend_from_slice(&(e.digests.len() as u32).to_le_bytes());
        for (alg, d) in &e.digests {
            out.extend_from_slice(&alg.to_le_bytes());
            out.extend_from_slice(d);
        }
        out.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        out.extend_from_slice(&e.data);
    }
    out
}

fn arb_algs() -> impl Strategy<Value = Vec<HashAlg>> {
    proptest::sample::subsequence(
        vec![
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
            HashAlg::Sm3_256,
        ],
        1..=5,
    )
    .prop_shuffle()
}

fn arb_log() -> impl Strategy<Value = (Vec<HashAlg>, Vec<GenEvent>)> {
    arb_algs().prop_flat_map(|algs| {
        let n = algs.len();
        let sizes: Vec<usize> = algs.iter().map(|a| a.size()).collect();
        let ids: Vec<u16> = algs.iter().map(|a| a.id()).collect();
        let event = (
            prop_oneof![0u32..24, Just(30u32)],
            prop_oneof![
                Just(3u32),
                Just(4),
                Just(0xD),
                Just(0x8000_0007),
                any::<u32>()
            ],
            proptest::collection::vec(any::<u8>(), 0..48),
            proptest::collection::vec(any::<u8>(), 64 * 5),
            proptest::sample::subsequence((0..n).collect::<Vec<_>>(), 1..=n).prop_shuffle(),
            any::<bool>(),
        )
            .prop_map(move |(pcr, t, data, pool, which, locality)| {
                let digests = which
                    .iter()
                    .map(|&i| (ids[i], pool[i * 64..i * 64 + sizes[i]].to_vec()))
                    .collect();
                let data = if locality && t == 3 {
                    let mut d = STARTUP_LOCALITY_SIGNATURE.to_vec();
                    d.push(data.first().copied().unwrap_or(0) % 5);
                    d
                } else {
                    data
                };
                GenEvent {
                    pcr: if t == 3 { 0 } else { pcr },
                    event_type: t,
                    digests,
                    data,
                }
            });
        (Just(algs), proptest::collection::vec(event, 0..12))
    })
}

fn real_log_bytes() -> Vec<Vec<u8>> {
    let mut v = vec![synthetic_bytes()];
    if let Some(dir) = shared() {
        for rel in [
            "keylime/create-mb-policy/binary_bios_measurements",
            "go-attestation/sb_cert_eventlog",
            "tpm2-tools/event-uefi-sha1-log.bin",
        ] {
            v.push(read(&dir, rel));
        }
    }
    v
}

/// Run every consumer over a parsed log (no panics allowed anywhere).
fn exercise(log: &EventLog<'_>) {
    let replay = Replay::log(log, ALL_PCRS);
    let _ = BootSummary::from_log(log);
    for ev in log.events() {
        let _ = check_event(&ev);
        let d = decode(&ev, log.uintn_bytes());
        let _ = format!("{d:?}");
        match d {
            EventData::ImageLoad(i) => {
                let _ = i.device_path.to_string();
            }
            EventData::Variable(v) => {
                let _ = v.name.to_string();
                for l in v.signature_lists().flatten() {
                    let _ = l.signatures().count();
                }
                if let Ok(o) = v.load_option() {
                    let _ = o.file_path.to_string();
                }
            }
            EventData::Gpt(g) => {
                let _ = g.partitions().count();
            }
            _ => {}
        }
    }
    for alg in replay.algorithms() {
        for pcr in 0..32 {
            let _ = compare_pcr(
                &replay,
                pcr,
                &Digest::zero(alg),
                Workarounds {
                    ebs_events_missing: true,
                },
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_logs_round_trip((algs, events) in arb_log()) {
        let bytes = build_log(&algs, &events);
        let log = EventLog::parse(&bytes).unwrap();
        prop_assert_eq!(log.len(), events.len() + 1);
        let ids: Vec<u16> = log.algorithms().iter().map(|a| a.alg).collect();
        prop_assert_eq!(ids, algs.iter().map(|a| a.id()).collect::<Vec<_>>());
        for (got, want) in log.events().skip(1).zip(&events) {
            prop_assert_eq!(got.pcr, want.pcr);
            prop_assert_eq!(got.event_type, EventType(want.event_type));
            prop_assert_eq!(got.data, &want.data[..]);
            let digests: Vec<(u16, Vec<u8>)> = got.digests.iter().map(|d| (d.alg, d.bytes.to_vec())).collect();
            prop_assert_eq!(&digests, &want.digests);
        }
        exercise(&log);
    }

    #[test]
    fn replay_in_two_pieces_equals_whole((algs, events) in arb_log(), cut in any::<prop::sample::Index>()) {
        let bytes = build_log(&algs, &events);
        let log = EventLog::parse(&bytes).unwrap();
        let whole = Replay::log(&log, ALL_PCRS);
        let evs: Vec<_> = log.events().collect();
        let k = cut.index(evs.len() + 1);
        let mut r = Replay::for_log(&log, ALL_PCRS);
        r.feed_all(evs[..k].iter().copied());
        r.feed_all(evs[k..].iter().copied());
        prop_assert_eq!(r, whole);
    }

    #[test]
    fn truncated_real_logs_fail_or_parse_a_prefix(which in any::<prop::sample::Index>(), cut in any::<prop::sample::Index>()) {
        let logs = real_log_bytes();
        let bytes = which.get(&logs);
        let full: Vec<usize> = EventLog::parse(bytes).unwrap().events().map(|e| e.offset).collect();
        let n = cut.index(bytes.len());
        if let Ok(log) = EventLog::parse(&bytes[..n]) {
            let got: Vec<usize> = log.events().map(|e| e.offset).collect();
            prop_assert!(got.len() < full.len());
            prop_assert_eq!(&got[..], &full[..got.len()]);
            exercise(&log);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(log) = EventLog::parse(&bytes) {
            exercise(&log);
        }
        for r in RawEvents::new(&bytes) {
            let _ = r.map(|e| decode(&e, 8));
        }
        let _ = DevicePath::parse(&bytes).map(|p| p.to_string());
        let _ = uefi::UefiVariableData::parse(&bytes).map(|v| v.signature_lists().count());
        let _ = uefi::GptData::parse(&bytes, 8).map(|g| g.partitions().count());
        let _ = uefi::LoadOption::parse(&bytes).map(|o| o.file_path.to_string());
    }

    #[test]
    fn mutated_real_logs_never_panic(which in any::<prop::sample::Index>(), edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let logs = real_log_bytes();
        let mut bytes = which.get(&logs).clone();
        for (at, v) in edits {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        if let Ok(log) = EventLog::parse(&bytes) {
            exercise(&log);
        }
    }
}

#[test]
fn every_truncation_of_a_small_real_log() {
    let bytes = synthetic_bytes();
    let full: Vec<usize> = EventLog::parse(&bytes)
        .unwrap()
        .events()
        .map(|e| e.offset)
        .collect();
    for n in 0..bytes.len() {
        match EventLog::parse(&bytes[..n]) {
            Ok(log) => {
                let got: Vec<usize> = log.events().map(|e| e.offset).collect();
                assert_eq!(&got[..], &full[..got.len()], "cut at {n}");
                // Either a cut at an event boundary, or what follows the last whole event is
                // all zero (the first bytes of a PCR 0 event), which reads as padding.
                let end = n - log.padding();
                assert!(full.contains(&end), "cut at {n}");
                assert!(bytes[end..n].iter().all(|b| *b == 0));
                exercise(&log);
            }
            Err(_) => assert!(!full[1..].contains(&n), "boundary cut at {n} must parse"),
        }
    }
}

/// Replay cost against the bare cost of the same hash computations (run with
/// `cargo test --release -p trustpool-core --test eventlog -- --ignored --nocapture`).
#[test]
#[ignore]
fn replay_cost_vs_bare_hashing() {
    let dir = shared_or_skip!();
    let bytes = read(&dir, "keylime/create-mb-policy/binary_bios_measurements");
    let log = EventLog::parse(&bytes).unwrap();
    // The extend inputs, collected up front for the baseline.
    let mut inputs: Vec<(HashAlg, Vec<u8>)> = Vec::new();
    for ev in log.events().filter(|e| e.extends()) {
        for d in ev.digests.iter() {
            let alg = d.hash().unwrap();
            let mut buf = vec![0u8; alg.size()];
            buf.extend_from_slice(d.bytes);
            inputs.push((alg, buf));
        }
    }
    let rounds = 2000;
    let t = std::time::Instant::now();
    let mut sink = 0u8;
    for _ in 0..rounds {
        for (alg, buf) in &inputs {
            sink ^= alg.hash(std::hint::black_box(buf)).unwrap().as_bytes()[0];
        }
    }
    let bare = t.elapsed();
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        let log = EventLog::parse(std::hint::black_box(&bytes)).unwrap();
        let r = Replay::log(&log, ALL_PCRS);
        sink ^= r.pcr(HashAlg::Sha256, 0).unwrap().as_bytes()[0];
    }
    let replay = t.elapsed();
    println!(
        "{} extends: bare hashing {:?}, parse+replay {:?}, ratio {:.2} ({sink})",
        inputs.len(),
        bare / rounds,
        replay / rounds,
        replay.as_secs_f64() / bare.as_secs_f64()
    );
}
