//! TPMT_PUBLIC / TPM2B_PUBLIC, DER SPKI and PEM parsing: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::public::{key_from_spki_der, pem_to_der, Public};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Public::parse(data) {
        let _ = p.name();
        let _ = p.key().map(|k| k.bits());
    }
    let _ = Public::parse_tpm2b(data);
    let _ = key_from_spki_der(data);
    let mut buf = [0u8; 4096];
    if let Ok(der) = pem_to_der(data, &mut buf) {
        let _ = key_from_spki_der(der);
    }
});
