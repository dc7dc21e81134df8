//! TPMT_SIGNATURE and plain-signature parsing: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::{HashAlg, SigScheme, Signature};

fuzz_target!(|data: &[u8]| {
    let _ = Signature::parse(data);
    let _ = Signature::from_plain(SigScheme::Ecdsa(HashAlg::Sha256), data);
    let _ = Signature::from_plain(SigScheme::RsaSsa(HashAlg::Sha256), data);
});
