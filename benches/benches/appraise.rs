//! `appraise`: a typical real log (Keylime's test machine, crypto-agile, SHA-1 + SHA-256)
//! appraised against a whitelist of 10,000 reference digests: its own events plus 10,000 others.

use criterion::{criterion_group, criterion_main, Criterion};
use trustpool::files::AkFile;
use trustpool::policy::{EventRule, Policy};
use trustpool::verify_cmd::learn;
use trustpool_core::appraise::{appraise, Evidence, Verdict};
use trustpool_core::eventlog::{EventLog, Replay, Workarounds, ALL_PCRS};
use trustpool_core::whitelist::Whitelist;
use trustpool_core::{HashAlg, Signature};

fn bench(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/test-vectors/");
    let Ok(log_bytes) = std::fs::read(format!(
        "{dir}keylime/create-mb-policy/binary_bios_measurements"
    )) else {
        eprintln!("skipping appraise: ../shared/test-vectors not present");
        return;
    };
    let log = EventLog::parse(&log_bytes).expect("parses");
    let replay = Replay::log(&log, ALL_PCRS);
    // A quote over the replayed PCRs 0-7 by the project's swtpm-made P-256 AK is not possible
    // (we do not hold its key), so sign with a fixed software key.
    let (ak_bytes, attest, sig_bytes) =
        trustpool::testing::software_quote(HashAlg::Sha256, 0xff, &replay, b"nonce");
    let mut policy = Policy::from_toml(
        &learn(&log_bytes, "keylime", None, None, "bench").expect("learn"),
        "learned",
    )
    .expect("toml");
    let own = policy
        .events
        .rules
        .iter()
        .map(|r| r.digests.len())
        .sum::<usize>();
    let extra = 10_000 - own;
    policy.events.rules.push(EventRule {
        pcr: 4,
        event_type: "EV_EFI_BOOT_SERVICES_APPLICATION".into(),
        digests: (0..extra as u32)
            .map(|i| {
                format!(
                    "sha256:{}",
                    hex::encode(
                        HashAlg::Sha256
                            .hash(&i.to_le_bytes())
                            .expect("sha256")
                            .as_bytes()
                    )
                )
            })
            .collect(),
    });
    let wl_bytes = policy.compile(None).expect("compiles");
    let ak_file = AkFile::from_bytes(ak_bytes, "ak").expect("ak");
    let ak = ak_file.ak().expect("ak");
    let wl = Whitelist::parse(&wl_bytes).expect("whitelist");
    let ev = Evidence {
        attest: &attest,
        signature: Signature::parse(&sig_bytes).expect("sig"),
        ak,
        nonce: b"nonce",
        pcrs: None,
        event_log: Some(&log_bytes),
        workarounds: Workarounds::default(),
        runtime_pcrs: 0,
    };
    let v: Verdict<'_, 64> = appraise(&trustpool::Ring, &ev, &wl);
    assert!(v.trusted, "{:?}", v.findings);
    eprintln!(
        "appraise: whitelist of {} reference digests is {} bytes ({:.1} bytes per sha256 digest)",
        own + extra,
        wl_bytes.len(),
        wl_bytes.len() as f64 / (own + extra) as f64
    );
    c.bench_function("appraise/keylime-log-vs-10000-digests", |b| {
        b.iter(|| {
            let v: Verdict<'_, 64> = appraise(&trustpool::Ring, std::hint::black_box(&ev), &wl);
            v.trusted
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
