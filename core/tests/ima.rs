#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! IMA logs: the real 3,506-entry log from ima-verify, Keylime's ASCII logs, and synthetic
//! logs of every template, in both forms.

use std::path::PathBuf;

use proptest::prelude::*;
use trustpool_core::alg::{Digest, HashAlg};
use trustpool_core::codec::ErrorKind;
use trustpool_core::ima::replay::BootAggregateError;
use trustpool_core::ima::sig::{self, ImaKey, SigCheck};
use trustpool_core::ima::{
    check_boot_aggregate, AsciiLog, BankMode, BinaryLog, BootAggregate, Endian, Event, KernelHash,
    Replay, ReplayError, Template,
};
use trustpool_core::pcr::PcrBank;
use trustpool_core::public::PublicKey;

fn vector(rel: &str) -> Option<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/test-vectors")
        .join(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("CI").is_some() => panic!("{}: {e}", p.display()),
        Err(_) => {
            eprintln!("skipping: {} not found", p.display());
            None
        }
    }
}

/// tpm2_pcrread-style YAML (`  10: 0x18852F…`) of one bank.
fn pcrs_from_yaml(text: &str, alg: HashAlg) -> PcrBank {
    let mut bank = PcrBank::new(alg);
    for line in text.lines() {
        let Some((i, v)) = line.trim().split_once(':') else {
            continue;
        };
        let (Ok(i), Some(v)) = (i.trim().parse::<u8>(), v.trim().strip_prefix("0x")) else {
            continue;
        };
        assert!(bank.set(i, &hex::decode(v).unwrap()));
    }
    bank
}

// ---------------------------------------------------------------- synthetic log writers

#[derive(Clone, Debug)]
struct Ent {
    template: &'static str,
    pcr: u32,
    algo: &'static str,
    digest: Vec<u8>,
    name: String,
    extra: Vec<u8>,
    violation: bool,
}

fn ng(name: &str, digest: Vec<u8>) -> Ent {
    Ent {
        template: "ima-ng",
        pcr: 10,
        algo: if digest.len() == 20 { "sha1" } else { "sha256" },
        digest,
        name: name.into(),
        extra: vec![],
        violation: false,
    }
}

fn field(out: &mut Vec<u8>, data: &[u8], be: bool) {
    let n = data.len() as u32;
    out.extend(if be { n.to_be_bytes() } else { n.to_le_bytes() });
    out.extend(data);
}

fn dng(e: &Ent) -> Vec<u8> {
    let mut v = format!("{}:", e.algo).into_bytes();
    v.push(0);
    v.extend(&e.digest);
    v
}

/// Template data as the kernel hashes it.
fn hashed_data(e: &Ent, be: bool) -> Vec<u8> {
    let mut d = vec![];
    match e.template {
        "ima" => {
            d.extend(&e.digest);
            let mut n = e.name.clone().into_bytes();
            n.resize(256, 0);
            d.extend(n);
        }
        t => {
            field(&mut d, &dng(e), be);
            let mut n = e.name.clone().into_bytes();
            n.push(0);
            field(&mut d, &n, be);
            if t != "ima-ng" {
                field(&mut d, &e.extra, be);
            }
        }
    }
    d
}

fn template_digest(e: &Ent, alg: HashAlg, be: bool) -> Vec<u8> {
    if e.violation {
        vec![0; alg.size()]
    } else {
        alg.hash(&hashed_data(e, be)).unwrap().as_bytes().to_vec()
    }
}

fn binary(ents: &[Ent], alg: HashAlg, be: bool) -> Vec<u8> {
    let u = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut out = vec![];
    for e in ents {
        out.extend(u(e.pcr));
        out.extend(template_digest(e, alg, be));
        out.extend(u(e.template.len() as u32));
        out.extend(e.template.as_bytes());
        if e.template == "ima" {
            out.extend(&e.digest);
            out.extend(u(e.name.len() as u32));
            out.extend(e.name.as_bytes());
        } else {
            let mut d = vec![];
            field(&mut d, &dng(e), be);
            let mut n = e.name.clone().into_bytes();
            n.push(0);
            field(&mut d, &n, be);
            if e.template != "ima-ng" {
                field(&mut d, &e.extra, be);
            }
            out.extend(u(d.len() as u32));
            out.extend(d);
        }
    }
    out
}

fn ascii(ents: &[Ent], alg: HashAlg) -> String {
    let mut s = String::new();
    for e in ents {
        s += &format!(
            "{:2} {} {} ",
            e.pcr,
            hex::encode(template_digest(e, alg, false)),
            e.template
        );
        if e.template == "ima" {
            s += &format!("{} {}\n", hex::encode(&e.digest), e.name);
        } else {
            s += &format!("{}:{} {}", e.algo, hex::encode(&e.digest), e.name);
            if e.template != "ima-ng" {
                s += &format!(" {}", hex::encode(&e.extra));
            }
            s += "\n";
        }
    }
    s
}

fn all<'a>(
    it: impl Iterator<Item = Result<Event<'a>, trustpool_core::ima::Error>>,
) -> Vec<Event<'a>> {
    it.collect::<Result<Vec<_>, _>>().unwrap()
}

fn sample(n: usize) -> Vec<Ent> {
    let mut v = vec![ng(
        "boot_aggregate",
        HashAlg::Sha256.hash(b"agg").unwrap().as_bytes().to_vec(),
    )];
    for i in 1..n {
        let mut e = ng(
            &format!("/usr/lib/f{i}.so"),
            HashAlg::Sha256
                .hash(&i.to_le_bytes())
                .unwrap()
                .as_bytes()
                .to_vec(),
        );
        match i % 7 {
            1 => {
                e.template = "ima";
                e.algo = "sha1";
                e.digest = HashAlg::Sha1
                    .hash(&i.to_le_bytes())
                    .unwrap()
                    .as_bytes()
                    .to_vec();
            }
            2 => {
                e.template = "ima-sig";
                e.extra = if i % 2 == 0 {
                    vec![]
                } else {
                    vec![3, 2, 4, 0, 0, 0, 1, 0, 1, 0xaa]
                };
            }
            3 => {
                e.template = "ima-buf";
                e.name = "kexec-cmdline".into();
                e.extra = b"console=ttyS0 ro".to_vec();
            }
            4 if i % 3 == 0 => e.violation = true,
            _ => {}
        }
        v.push(e);
    }
    v
}

/// Reference replay, written independently of the library.
fn reference_pcr(ents: &[Ent], bank: HashAlg, mode: BankMode) -> Vec<u8> {
    let mut pcr = vec![0u8; bank.size()];
    for e in ents.iter().filter(|e| e.pcr == 10) {
        let ext = match (e.violation, mode) {
            (true, BankMode::TemplateHash) => vec![0xff; bank.size()],
            (true, BankMode::PaddedSha1) => {
                let mut v = vec![0xff; 20];
                v.resize(bank.size(), 0);
                v
            }
            (false, BankMode::TemplateHash) => bank
                .hash(&hashed_data(e, false))
                .unwrap()
                .as_bytes()
                .to_vec(),
            (false, BankMode::PaddedSha1) => {
                let mut v = HashAlg::Sha1
                    .hash(&hashed_data(e, false))
                    .unwrap()
                    .as_bytes()
                    .to_vec();
                v.resize(bank.size(), 0);
                v
            }
        };
        let mut h = bank.hasher().unwrap();
        h.update(&pcr);
        h.update(&ext);
        pcr = h.finalize().as_bytes().to_vec();
    }
    pcr
}

// ---------------------------------------------------------------- real vectors

#[test]
fn ima_verify_log_replays_to_quoted_pcr10() {
    let (Some(log), Some(pcrs)) = (
        vector("ima-verify/binary_runtime_measurements_sha1"),
        vector("ima-verify/pcrs_sha1"),
    ) else {
        return;
    };
    let bank = pcrs_from_yaml(std::str::from_utf8(&pcrs).unwrap(), HashAlg::Sha1);
    let events = all(BinaryLog::new(&log, HashAlg::Sha1));
    assert_eq!(events.len(), 3506);
    assert!(events
        .iter()
        .all(|e| e.template == Template::ImaNg && e.pcr == 10));
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    for e in &events {
        let step = r.feed(e).unwrap();
        assert!(
            step.violation || step.template_hash_ok == Some(true),
            "entry {}",
            e.index
        );
    }
    assert_eq!(r.template_mismatches(), 0);
    assert_eq!(r.offset(), log.len());
    assert_eq!(
        hex::encode(r.value(HashAlg::Sha1).unwrap().as_bytes()),
        "18852fd355074758c0391b4389c17efb08d7bbd3"
    );
    assert_eq!(r.matches(&bank), Some(true));
    // boot_aggregate = SHA-1 over PCRs 0-7 of the same machine.
    assert_eq!(
        check_boot_aggregate(&events[0], &bank),
        Ok(BootAggregate::Pcrs0To7)
    );
    assert_eq!(events[1].name_str(), Some("/usr/bin/kmod"));
    assert_eq!(
        events[0].file_digest.unwrap().to_string(),
        "sha1:970e3771003fdebc12616b07bfb9958190b2012e"
    );
    // A changed PCR 0 breaks the aggregate.
    let mut other = bank.clone();
    other.set(0, &[1; 20]);
    assert_eq!(
        check_boot_aggregate(&events[0], &other),
        Err(BootAggregateError::Mismatch)
    );
    assert_eq!(
        check_boot_aggregate(&events[1], &bank),
        Err(BootAggregateError::NotBootAggregate)
    );
}

#[test]
fn ima_verify_log_quote_prefix_and_resume() {
    let (Some(log), Some(pcrs)) = (
        vector("ima-verify/binary_runtime_measurements_sha1"),
        vector("ima-verify/pcrs_sha1"),
    ) else {
        return;
    };
    let bank = pcrs_from_yaml(std::str::from_utf8(&pcrs).unwrap(), HashAlg::Sha1);
    // Quote taken at entry 1000: find that prefix, then resume and reach the final value.
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    for e in BinaryLog::new(&log, HashAlg::Sha1).take(1000) {
        r.feed(&e.unwrap()).unwrap();
    }
    let mut at_1000 = PcrBank::new(HashAlg::Sha1);
    at_1000.set(10, r.value(HashAlg::Sha1).unwrap().as_bytes());
    let mut fresh = Replay::new(HashAlg::Sha1).unwrap();
    let mut seen = 0;
    let n = fresh
        .until_match(BinaryLog::new(&log, HashAlg::Sha1), &at_1000, |_, _| {
            seen += 1
        })
        .unwrap();
    assert_eq!((n, seen), (Some(1000), 1000));
    let resumed = BinaryLog::new(&log, HashAlg::Sha1).resume(fresh.offset(), fresh.entries());
    assert_eq!(
        fresh.until_match(resumed, &bank, |_, _| {}).unwrap(),
        Some(3506)
    );
    // A quote no prefix reaches.
    let mut none = PcrBank::new(HashAlg::Sha1);
    none.set(10, &[7; 20]);
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    assert_eq!(
        r.until_match(BinaryLog::new(&log, HashAlg::Sha1), &none, |_, _| {})
            .unwrap(),
        None
    );
    assert_eq!(r.entries(), 3506);
}

#[test]
fn ima_verify_log_truncated_anywhere_is_an_error_not_a_panic() {
    let Some(log) = vector("ima-verify/binary_runtime_measurements_sha1") else {
        return;
    };
    let head = &log[..2000];
    for cut in 0..head.len() {
        let mut count = 0;
        let mut last_end = 0;
        for e in BinaryLog::new(&head[..cut], HashAlg::Sha1) {
            match e {
                Ok(e) => {
                    count += 1;
                    last_end = e.end;
                }
                Err(err) => {
                    assert!(
                        matches!(err.kind, ErrorKind::Truncated { .. }),
                        "cut {cut}: {err}"
                    );
                    assert!(
                        err.offset >= last_end && err.offset <= cut,
                        "cut {cut}: {err}"
                    );
                }
            }
        }
        assert!(count <= 20);
    }
}

#[test]
fn keylime_ascii_logs() {
    // Template hashes in Keylime's create-runtime-policy logs: the boot_aggregate lines are
    // made up (zeros, except sha256), and the sm3/unknown logs carry 32-byte template hashes.
    for (alg, expect_ok) in [
        ("sha1", [false, true]),
        ("sha256", [true, true]),
        ("sha384", [false, true]),
        ("sha512", [false, true]),
    ] {
        let Some(text) = vector(&format!("keylime/create-runtime-policy/ima-log-{alg}")) else {
            return;
        };
        let events = all(AsciiLog::new(&text).with_template_alg(HashAlg::Sha1));
        assert_eq!(events.len(), 2, "{alg}");
        assert_eq!(events[1].name_str(), Some("/data"));
        assert_eq!(events[1].file_digest.unwrap().algo, alg);
        let ok: Vec<bool> = events
            .iter()
            .map(|e| e.template_hash(HashAlg::Sha1).unwrap().as_bytes() == e.template_digest())
            .collect();
        // A zero template digest is a violation, not a mismatch.
        for (i, e) in events.iter().enumerate() {
            assert!(ok[i] == expect_ok[i] || e.is_violation(), "{alg} entry {i}");
        }
    }
    let Some(text) = vector("keylime/create-runtime-policy/ima-log-unknown") else {
        return;
    };
    let events = all(AsciiLog::new(&text));
    assert_eq!(events[1].file_digest.unwrap().algo, "unknown");
    assert!(events[1].file_digest.unwrap().hash_alg().is_none());
}

// ---------------------------------------------------------------- synthetic logs

#[test]
fn binary_and_ascii_agree_for_every_template() {
    let ents = sample(60);
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        let bin = binary(&ents, alg, false);
        let txt = ascii(&ents, alg);
        let b = all(BinaryLog::new(&bin, alg));
        let a = all(AsciiLog::new(txt.as_bytes()).with_template_alg(alg));
        assert_eq!(a.len(), ents.len());
        for ((x, y), e) in b.iter().zip(&a).zip(&ents) {
            assert_eq!(x.template_name, e.template);
            assert_eq!(x.template, y.template);
            assert_eq!(x.template_digest(), y.template_digest());
            assert_eq!(x.file_digest, y.file_digest);
            assert_eq!(x.name, y.name, "{}", e.name);
            assert_eq!(
                x.sig.map(|s| s.bytes().collect::<Vec<_>>()),
                y.sig.map(|s| s.bytes().collect::<Vec<_>>())
            );
            assert_eq!(
                x.buf.map(|s| s.bytes().collect::<Vec<_>>()),
                y.buf.map(|s| s.bytes().collect::<Vec<_>>())
            );
            for h in [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384] {
                let want = h.hash(&hashed_data(e, false)).unwrap();
                assert_eq!(x.template_hash(h).unwrap(), want, "binary {}", e.template);
                assert_eq!(y.template_hash(h).unwrap(), want, "ascii {}", e.template);
            }
        }
        for banks in [
            vec![(alg, BankMode::TemplateHash)],
            vec![
                (HashAlg::Sha1, BankMode::TemplateHash),
                (HashAlg::Sha256, BankMode::TemplateHash),
                (HashAlg::Sha384, BankMode::PaddedSha1),
            ],
        ] {
            let mut rb = Replay::with_banks(alg, 10, &banks).unwrap();
            let mut ra = rb.clone();
            b.iter()
                .for_each(|e| assert!(rb.feed(e).unwrap().template_hash_ok != Some(false)));
            a.iter()
                .for_each(|e| assert!(ra.feed(e).unwrap().template_hash_ok != Some(false)));
            for (bank, mode) in banks {
                let want = reference_pcr(&ents, bank, mode);
                assert_eq!(rb.value(bank).unwrap().as_bytes(), &want[..]);
                assert_eq!(ra.value(bank).unwrap().as_bytes(), &want[..]);
            }
            assert_eq!(
                rb.violations(),
                ents.iter().filter(|e| e.violation).count() as u64
            );
        }
    }
}

#[test]
fn legacy_ima_template_hash_pads_the_name_to_256() {
    let mut e = ng("/bin/sh", vec![0x11; 20]);
    e.template = "ima";
    e.algo = "sha1";
    let bin = binary(std::slice::from_ref(&e), HashAlg::Sha1, false);
    let ev = all(BinaryLog::new(&bin, HashAlg::Sha1)).remove(0);
    let mut data = vec![0x11; 20];
    data.extend(b"/bin/sh");
    data.resize(20 + 256, 0);
    assert_eq!(
        ev.template_hash(HashAlg::Sha1).unwrap(),
        HashAlg::Sha1.hash(&data).unwrap()
    );
    assert_eq!(
        ev.template_digest(),
        HashAlg::Sha1.hash(&data).unwrap().as_bytes()
    );
    // Names longer than 255 bytes cannot be in an `ima` entry.
    e.name = "x".repeat(256);
    let bin = binary(std::slice::from_ref(&e), HashAlg::Sha1, false);
    let err = BinaryLog::new(&bin, HashAlg::Sha1)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (err.field, err.kind),
        (
            "n.len",
            ErrorKind::TooLarge {
                size: 256,
                max: 255
            }
        )
    );
}

#[test]
fn big_endian_logs_are_detected() {
    let ents = sample(20);
    let be = binary(&ents, HashAlg::Sha1, true);
    assert_eq!(Endian::detect(&be), Endian::Big);
    let log = BinaryLog::new(&be, HashAlg::Sha1);
    assert_eq!(log.endian(), Endian::Big);
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    for e in log {
        let e = e.unwrap();
        assert!(r.feed(&e).unwrap().template_hash_ok != Some(false));
    }
    // The template hash covers big-endian field lengths there; the PCR differs from the LE log.
    let le = binary(&ents, HashAlg::Sha1, false);
    let mut r2 = Replay::new(HashAlg::Sha1).unwrap();
    BinaryLog::new(&le, HashAlg::Sha1).for_each(|e| {
        r2.feed(&e.unwrap()).unwrap();
    });
    assert_ne!(r.value(HashAlg::Sha1), r2.value(HashAlg::Sha1));
    // Reading a BE log as LE fails cleanly.
    assert!(BinaryLog::with_endian(&be, HashAlg::Sha1, Endian::Little).any(|e| e.is_err()));
}

#[test]
fn tampering_is_detected() {
    let ents = sample(10);
    let mut bin = binary(&ents, HashAlg::Sha1, false);
    // Flip a byte of entry 1's file digest (inside its template data).
    let ev = all(BinaryLog::new(&bin, HashAlg::Sha1))[1];
    let at = ev.end - 10;
    bin[at] ^= 1;
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    let steps: Vec<_> = BinaryLog::new(&bin, HashAlg::Sha1)
        .map(|e| r.feed(&e.unwrap()).unwrap())
        .collect();
    assert_eq!(steps[1].template_hash_ok, Some(false));
    assert_eq!(r.template_mismatches(), 1);
    // ASCII: change a digest hex digit.
    let txt = ascii(&ents, HashAlg::Sha1);
    let mut lines: Vec<String> = txt.lines().map(String::from).collect();
    let l = &mut lines[2];
    let pos = l.find("sha256:").unwrap() + 7;
    let c = if &l[pos..pos + 1] == "0" { "1" } else { "0" };
    l.replace_range(pos..pos + 1, c);
    let joined = lines.join("\n");
    let events = all(AsciiLog::new(joined.as_bytes()));
    assert_ne!(
        events[2].template_hash(HashAlg::Sha1).unwrap().as_bytes(),
        events[2].template_digest()
    );
}

#[test]
fn malformed_inputs_are_rejected_with_offsets() {
    // Template name too long.
    let mut b = vec![10, 0, 0, 0];
    b.extend([0u8; 20]);
    b.extend(1000u32.to_le_bytes());
    let e = BinaryLog::new(&b, HashAlg::Sha1)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!((e.field, e.offset), ("template_name_len", 24));
    // Data length past the end.
    let mut b = vec![10, 0, 0, 0];
    b.extend([1u8; 20]);
    b.extend(6u32.to_le_bytes());
    b.extend(b"ima-ng");
    b.extend(0xffff_fff0u32.to_le_bytes());
    let e = BinaryLog::new(&b, HashAlg::Sha1)
        .next()
        .unwrap()
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::TooLarge { .. }), "{e}");
    // Field length past the template data.
    let mut b = vec![10, 0, 0, 0];
    b.extend([1u8; 20]);
    b.extend(6u32.to_le_bytes());
    b.extend(b"ima-ng");
    b.extend(8u32.to_le_bytes());
    b.extend(100u32.to_le_bytes());
    b.extend([0u8; 4]);
    let e = BinaryLog::new(&b, HashAlg::Sha1)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        (e.structure, e.field, e.offset),
        ("ima_template_data", "field.len", 38)
    );
    // Unknown templates are carried (replayable), not interpreted.
    let mut b = vec![10, 0, 0, 0];
    let data = [1u8, 2, 3];
    b.extend(HashAlg::Sha1.hash(&data).unwrap().as_bytes());
    b.extend(7u32.to_le_bytes());
    b.extend(b"ima-new");
    b.extend(3u32.to_le_bytes());
    b.extend(data);
    let ev = BinaryLog::new(&b, HashAlg::Sha1).next().unwrap().unwrap();
    assert_eq!(
        (ev.template, ev.template_name),
        (Template::Unknown, "ima-new")
    );
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    assert_eq!(r.feed(&ev).unwrap().template_hash_ok, Some(true));
    // Custom template formats are named by their format string.
    assert_eq!(Template::from_name("d-ng|n-ng|buf"), Template::Custom);
    // ASCII: bad hex, wrong template hash length, unknown template.
    for (line, field) in [
        ("10 zz", "template_hash (40 hex digits for sha1)"),
        (
            "10 zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz ima-ng sha1:00 /x",
            "template_hash",
        ),
        (
            "10 0011 ima-ng sha1:00 /x",
            "template_hash (40 hex digits for sha1)",
        ),
        (
            "10 0000000000000000000000000000000000000000 foo a b",
            "template_name",
        ),
        (
            "10 0000000000000000000000000000000000000000 ima-ng sha1:0g /x",
            "digest (hex)",
        ),
        (
            "x10 0000000000000000000000000000000000000000 ima-ng sha1:00 /x",
            "pcr",
        ),
    ] {
        let e = AsciiLog::new(line.as_bytes())
            .with_template_alg(HashAlg::Sha1)
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(e.field, field, "{line}");
    }
    // Digest size mismatch between log and replay.
    let txt = ascii(&sample(2), HashAlg::Sha256);
    let ev = all(AsciiLog::new(txt.as_bytes()))[0];
    assert!(matches!(
        Replay::new(HashAlg::Sha1).unwrap().feed(&ev),
        Err(ReplayError::DigestSize {
            expected: 20,
            found: 32,
            ..
        })
    ));
}

#[test]
fn kernel_hash_numbering_and_names() {
    assert_eq!(KernelHash::from_id(4), Some(KernelHash::Sha256));
    assert_eq!(KernelHash::from_id(17), Some(KernelHash::Sm3_256));
    assert_eq!(KernelHash::from_id(22), Some(KernelHash::Sha3_512));
    assert_eq!(KernelHash::from_id(23), None);
    assert_eq!(KernelHash::Sha1.id(), 2);
    assert_eq!(
        KernelHash::from_name("sha3-256").unwrap().hash_alg(),
        Some(HashAlg::Sha3_256)
    );
    assert_eq!(KernelHash::from_name("sm3").unwrap().size(), 32);
    for k in KernelHash::ALL {
        assert_eq!(KernelHash::from_id(k.id()), Some(k));
        assert_eq!(KernelHash::from_name(k.name()), Some(k));
    }
}

#[test]
fn ecdsa_signature_v2_verifies() {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let vk = sk.verifying_key();
    let point = vk.to_sec1_point(false);
    let (x, y) = (point.x().unwrap().to_vec(), point.y().unwrap().to_vec());
    let key = PublicKey::Ecc {
        curve: trustpool_core::EccCurve::NistP256,
        x: &x,
        y: &y,
    };
    let key_id = sig::key_id_of(&key).unwrap();
    // Key id = last 4 bytes of SHA-1 over the uncompressed point.
    let d = HashAlg::Sha1.hash(point.as_bytes()).unwrap();
    assert_eq!(key_id.to_be_bytes(), d.as_bytes()[16..20]);
    let file_digest = HashAlg::Sha256.hash(b"file contents").unwrap();
    let s: p256::ecdsa::Signature = sk.sign_prehash(file_digest.as_bytes()).unwrap();
    let der = s.to_der();
    let mut field = vec![3, 2, 4];
    field.extend(key_id.to_be_bytes());
    field.extend((der.as_bytes().len() as u16).to_be_bytes());
    field.extend(der.as_bytes());
    let keys = [ImaKey { key_id, key }];
    let blob = trustpool_core::ima::Blob::Raw(&field);
    assert_eq!(
        sig::verify(&blob, KernelHash::Sha256, file_digest.as_bytes(), &keys),
        Ok(key_id)
    );
    let other = HashAlg::Sha256.hash(b"other").unwrap();
    assert!(matches!(
        sig::verify(&blob, KernelHash::Sha256, other.as_bytes(), &keys),
        Err(SigCheck::Bad(_))
    ));
    assert_eq!(
        sig::verify(&blob, KernelHash::Sha256, file_digest.as_bytes(), &[]),
        Err(SigCheck::UnknownKey { key_id })
    );
    // Hash algorithm in the header must be the file digest's (HASH_ALGO_SHA1 = 2 here).
    let mut f2 = field.clone();
    f2[2] = 2;
    assert!(matches!(
        sig::verify(
            &trustpool_core::ima::Blob::Raw(&f2),
            KernelHash::Sha256,
            file_digest.as_bytes(),
            &keys
        ),
        Err(SigCheck::HashMismatch { hash_algo: 2 })
    ));
    // sig_size must cover the rest exactly.
    let mut f3 = field.clone();
    f3.push(0);
    assert_eq!(
        sig::verify(
            &trustpool_core::ima::Blob::Raw(&f3),
            KernelHash::Sha256,
            file_digest.as_bytes(),
            &keys
        ),
        Err(SigCheck::Malformed)
    );
}

#[test]
fn rsa_key_id_matches_spki_subject_public_key_hash() {
    let Some(pem) = vector("keylime/ima_keys/rsa2048pub.pem") else {
        return;
    };
    let mut buf = [0u8; 1024];
    let der = trustpool_core::public::pem_to_der(&pem, &mut buf).unwrap();
    let key = trustpool_core::public::key_from_spki_der(der).unwrap();
    let from_spki = sig::key_id_v2(der).unwrap();
    assert_eq!(sig::key_id_of(&key), Some(from_spki));
}

#[test]
fn ascii_pcr_below_ten_and_crlf() {
    let mut e = ng("/x", vec![1; 32]);
    e.pcr = 9;
    let txt = ascii(std::slice::from_ref(&e), HashAlg::Sha1).replace('\n', "\r\n");
    assert!(txt.starts_with(" 9 "));
    let ev = all(AsciiLog::new(txt.as_bytes()));
    assert_eq!((ev.len(), ev[0].pcr), (1, 9));
    assert_eq!(
        ev[0].template_hash(HashAlg::Sha1).unwrap().as_bytes(),
        ev[0].template_digest()
    );
    // An entry for another PCR is checked but not extended into PCR 10.
    let mut r = Replay::new(HashAlg::Sha1).unwrap();
    let s = r.feed(&ev[0]).unwrap();
    assert!(!s.extended && s.template_hash_ok == Some(true));
    assert_eq!(
        (r.other_pcr_entries(), r.value(HashAlg::Sha1).copied()),
        (1, Some(Digest::zero(HashAlg::Sha1)))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Stopping after any entry and resuming from the saved state and offset gives the
    /// same values as one full run, for both log forms.
    #[test]
    fn resumed_replay_equals_full_replay(n in 1usize..40, split in 0usize..40, sha256_log in any::<bool>()) {
        let alg = if sha256_log { HashAlg::Sha256 } else { HashAlg::Sha1 };
        let ents = sample(n);
        let split = split.min(n);
        let banks = [(HashAlg::Sha1, BankMode::TemplateHash), (HashAlg::Sha256, BankMode::TemplateHash)];
        let bin = binary(&ents, alg, false);
        let txt = ascii(&ents, alg);
        let mut full = Replay::with_banks(alg, 10, &banks).unwrap();
        BinaryLog::new(&bin, alg).for_each(|e| { full.feed(&e.unwrap()).unwrap(); });

        let mut first = Replay::with_banks(alg, 10, &banks).unwrap();
        BinaryLog::new(&bin, alg).take(split).for_each(|e| { first.feed(&e.unwrap()).unwrap(); });
        // Persist only plain values, then rebuild.
        let saved: Vec<_> = first.banks().to_vec();
        let mut second = Replay::resume(alg, 10, &saved, first.entries(), first.offset()).unwrap();
        for e in BinaryLog::new(&bin, alg).resume(first.offset(), first.entries()) {
            let e = e.unwrap();
            prop_assert!(e.index >= split as u64);
            second.feed(&e).unwrap();
        }
        prop_assert_eq!(second.banks(), full.banks());
        prop_assert_eq!(second.entries(), n as u64);

        let mut a1 = Replay::with_banks(alg, 10, &banks).unwrap();
        AsciiLog::new(txt.as_bytes()).take(split).for_each(|e| { a1.feed(&e.unwrap()).unwrap(); });
        let mut a2 = a1.clone();
        AsciiLog::new(txt.as_bytes()).resume(a1.offset(), a1.entries()).for_each(|e| { a2.feed(&e.unwrap()).unwrap(); });
        prop_assert_eq!(a2.banks(), full.banks());
    }

    /// Arbitrary bytes never panic either parser, and every yielded entry's offsets are in
    /// bounds and increasing.
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut last = 0;
        for e in BinaryLog::new(&bytes, HashAlg::Sha1).flatten() {
            prop_assert!(e.offset >= last && e.end <= bytes.len() && e.end > e.offset);
            last = e.end;
            let _ = e.template_hash(HashAlg::Sha256);
        }
        for e in AsciiLog::new(&bytes).flatten() {
            let _ = e.template_hash(HashAlg::Sha1);
        }
    }
}
