//! `ima`: replay + appraisal of a 100,000-entry IMA log against a 100,000-entry allowlist
//! (synthetic, `trustpool::ima_policy::synthetic_log`), in both log forms; throughput in
//! entries per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trustpool::ima_policy::{compile_ima_whitelist, synthetic_log};
use trustpool_core::alg::HashAlg;
use trustpool_core::ima::{Appraiser, AsciiLog, BinaryLog, Event, Replay};
use trustpool_core::whitelist::Whitelist;

const N: usize = 100_000;

fn run<'a>(
    events: impl Iterator<Item = Result<Event<'a>, trustpool_core::ima::Error>>,
    wl: &Whitelist<'_>,
) -> u64 {
    let mut replay = Replay::new(HashAlg::Sha1).expect("sha1");
    let mut appraiser = Appraiser::new(wl);
    let mut findings = 0u64;
    for e in events {
        let e = e.expect("entry");
        replay.feed(&e).expect("replay");
        appraiser.appraise(&e, &mut |_| findings += 1);
    }
    assert_eq!(findings, 0);
    replay.entries()
}

fn bench(c: &mut Criterion) {
    let s = synthetic_log(N, 1);
    let wl_bytes = compile_ima_whitelist(&s.rules, "bench").expect("whitelist");
    let wl = Whitelist::parse(&wl_bytes).expect("whitelist");
    let mut g = c.benchmark_group("ima");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("binary_replay_appraise_100k", |b| {
        b.iter(|| run(BinaryLog::new(&s.binary, HashAlg::Sha1), &wl))
    });
    g.bench_function("ascii_replay_appraise_100k", |b| {
        b.iter(|| run(AsciiLog::new(s.ascii.as_bytes()), &wl))
    });
    g.bench_function("binary_parse_only_100k", |b| {
        b.iter(|| {
            BinaryLog::new(&s.binary, HashAlg::Sha1)
                .filter(|e| e.is_ok())
                .count()
        })
    });
    g.bench_function("binary_replay_only_100k", |b| {
        b.iter(|| {
            let mut r = Replay::new(HashAlg::Sha1).expect("sha1");
            BinaryLog::new(&s.binary, HashAlg::Sha1).for_each(|e| {
                r.feed(&e.expect("entry")).expect("replay");
            });
            r.entries()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
