//! `eventlog`: parse + replay of real firmware logs (all banks, all PCRs), next to the bare
//! cost of the SHA computations a replay must do (one hash per bank per extended event).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use trustpool_core::eventlog::{EventLog, Replay, ALL_PCRS};
use trustpool_core::HashAlg;

fn bench(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/test-vectors/");
    let logs = [
        (
            "keylime-binary_bios_measurements",
            "keylime/create-mb-policy/binary_bios_measurements",
        ),
        (
            "go-attestation-option_rom",
            "go-attestation/option_rom_eventlog",
        ),
    ];
    let mut g = c.benchmark_group("eventlog");
    for (label, path) in logs {
        let Ok(bytes) = std::fs::read(format!("{dir}{path}")) else {
            eprintln!("skipping {label}: ../shared/test-vectors not present");
            continue;
        };
        let log = EventLog::parse(&bytes).expect("parses");
        let events = log.len() as u64;
        // The extend inputs (old value ‖ digest) a replay hashes, prepared up front.
        let inputs: Vec<(HashAlg, Vec<u8>)> = log
            .events()
            .filter(|e| e.extends())
            .flat_map(|e| {
                e.digests
                    .iter()
                    .filter_map(|d| d.hash())
                    .filter(|a| a.is_supported())
                    .map(|a| (a, vec![0u8; 2 * a.size()]))
                    .collect::<Vec<_>>()
            })
            .collect();
        g.throughput(Throughput::Elements(events));
        g.bench_function(format!("{label}/parse+replay"), |b| {
            b.iter(|| {
                let log = EventLog::parse(std::hint::black_box(&bytes)).expect("parses");
                Replay::log(&log, ALL_PCRS)
            })
        });
        g.bench_function(format!("{label}/bare-hashing"), |b| {
            b.iter(|| {
                let mut x = 0u8;
                for (alg, buf) in &inputs {
                    x ^= alg
                        .hash(std::hint::black_box(buf))
                        .map_or(0, |d| d.as_bytes()[0]);
                }
                x
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
