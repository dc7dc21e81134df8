//! Certification checks and data-key wrapping on arbitrary bytes: errors, never panics.
//!
//! The input is split into length-prefixed (u16 big-endian) parts: `TPMS_ATTEST`,
//! `TPMT_SIGNATURE`, the AK's `TPMT_PUBLIC`, the nonce, then the certified key's
//! `TPMT_PUBLIC` (the rest). Verification runs with the RustCrypto backend and with a
//! backend that accepts every signature, so the checks after the signature (type, nonce,
//! Name, attributes) see arbitrary input too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::certify::{verify_certification, wrap_rsa_oaep};
use trustpool_core::{
    AttestationKey, EccCurve, Public, PublicKey, RustCrypto, Signature, SignatureError,
    SignatureVerifier,
};

struct AcceptAll;

impl SignatureVerifier for AcceptAll {
    fn verify(
        &self,
        _key: &PublicKey<'_>,
        _sig: &Signature<'_>,
        _message: &[u8],
    ) -> Result<(), SignatureError> {
        Ok(())
    }
}

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let len = match data {
        [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
        _ => 0,
    };
    let rest = data.get(2..).unwrap_or(&[]);
    let (part, rest) = rest.split_at(len.min(rest.len()));
    *data = rest;
    part
}

fuzz_target!(|data: &[u8]| {
    let mut d = data;
    let attest = take(&mut d);
    let sig = take(&mut d);
    let ak_bytes = take(&mut d);
    let nonce = take(&mut d);
    let key = match Public::parse(d) {
        Ok(k) => k,
        Err(_) => return,
    };
    let fixed = AttestationKey::from_key(PublicKey::Ecc {
        curve: EccCurve::NistP256,
        x: &[1; 32],
        y: &[2; 32],
    });
    let ak = Public::parse(ak_bytes)
        .ok()
        .and_then(|p| AttestationKey::from_public(p).ok())
        .unwrap_or(fixed);
    let _ = verify_certification(&RustCrypto, attest, sig, &ak, nonce, &key);
    if let Err(e) = verify_certification(&AcceptAll, attest, sig, &ak, nonce, &key) {
        let _ = (e.code(), e.to_string());
    }
    let _ = wrap_rsa_oaep(&key, nonce, &[7; 32]);
});
