//! `quote_verify`: full quote verification (parse, signature, nonce, PCR digest) per key type,
//! with the core's RustCrypto backend and the std adapter's ring backend.

use criterion::{criterion_group, criterion_main, Criterion};
use trustpool::files::{self, AkFile};
use trustpool_core::{Quote, RustCrypto, SignatureVerifier};

fn vectors(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../test-vectors/swtpm/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("test vector")
}

fn bench(c: &mut Criterion) {
    let cases = [
        (
            "rsa2048-rsassa-sha256",
            "rsa-rsassa",
            "rsa-rsassa.sha256",
            "26c554c2f0deca4a3f53693e5e5dda39b80d8656",
        ),
        (
            "rsa2048-rsapss-sha256",
            "rsa-rsapss",
            "rsa-rsapss.sha256",
            "49323480b40cceffcc58d13ecd36709776d59446",
        ),
        (
            "p256-ecdsa-sha256",
            "ecc-p256",
            "ecc-p256.sha256",
            "07addd49399f1a88dbeaa90e735b35a86a268e59",
        ),
        (
            "p384-ecdsa-sha384",
            "ecc-p384",
            "ecc-p384.sha256",
            "daa37859bb74fde51cf7f545d90fb669c50c51df",
        ),
    ];
    let mut g = c.benchmark_group("quote_verify");
    for (label, ak, case, nonce) in cases {
        let ak_file = AkFile::from_bytes(vectors(&format!("{ak}.pub")), ak).expect("ak");
        let ak = ak_file.ak().expect("ak view");
        let attest = vectors(&format!("{case}.attest"));
        let sig_bytes = vectors(&format!("{case}.sig"));
        let pcrs = files::parse_pcrs(&vectors(&format!("{case}.pcrs")), "pcrs").expect("pcrs");
        let nonce = hex::decode(nonce).expect("hex");
        for (backend_name, backend) in [
            ("ring", &trustpool::Ring as &dyn SignatureVerifier),
            ("rustcrypto", &RustCrypto),
        ] {
            g.bench_function(format!("{label}/{backend_name}"), |b| {
                b.iter(|| {
                    let sig = trustpool_core::Signature::parse(&sig_bytes).expect("sig");
                    let q =
                        Quote::verify_with(backend, &attest, &sig, &ak, &nonce).expect("verifies");
                    q.check_pcrs(&pcrs).expect("pcrs match");
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
