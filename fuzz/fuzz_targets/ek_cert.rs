//! EK certificates (`trustpool::ekcert`) on arbitrary bytes: parsing, the certified key and
//! the comparison with the TCG default EKs are errors, never panics.
//!
//! The module is compiled here from its source file rather than through the `trustpool`
//! crate, which would bring the whole std adapter (TLS, HTTP, SQLite) into the fuzz build;
//! `ekcert.rs` uses only `trustpool_core`, `x509_cert` and `thiserror` for that reason.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::tpm::EkTemplate;

#[path = "../../std-adapter/src/ekcert.rs"]
#[allow(dead_code)]
mod ekcert;

fn tpm2b(t: &[u8]) -> Vec<u8> {
    let mut v = (t.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(t);
    v
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = ekcert::EkCertificate::parse(data) {
        let _ = cert.key().map(|k| k.bits());
        for t in [EkTemplate::Rsa2048, EkTemplate::EccP256] {
            let _ = cert.check_ek(&tpm2b(t.public()));
        }
    }
});
