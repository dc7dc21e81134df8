//! Software-made evidence for tests, benches and demos: a quote over given PCR values, signed
//! by a fixed P-256 key that is NOT a TPM's. Never use it to attest anything.

use p256::ecdsa::signature::hazmat::PrehashSigner;
use trustpool_core::{HashAlg, PcrValues};

/// A quote of the PCRs of `bank` in `mask` (values from `values`), with `nonce`, signed by a
/// fixed P-256 ECDSA-SHA256 key: returns (TPM2B_PUBLIC of the key, TPMS_ATTEST, TPMT_SIGNATURE).
/// Panics if a selected PCR has no value (test use only).
pub fn software_quote(
    bank: HashAlg,
    mask: u32,
    values: &(impl PcrValues + ?Sized),
    nonce: &[u8],
) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).expect("fixed test key");
    let point = sk.verifying_key().to_sec1_point(false);
    let xy = &point.as_bytes()[1..];
    // TPMT_PUBLIC: ECC, nameAlg SHA-256, restricted signing key, ECDSA-SHA256, NIST P-256.
    let mut public = vec![
        0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x00, 0x72, 0x00, 0x00, 0x00, 0x10, 0x00, 0x18, 0x00,
        0x0b, 0x00, 0x03, 0x00, 0x10, 0x00, 0x20,
    ];
    public.extend_from_slice(&xy[..32]);
    public.extend_from_slice(&[0x00, 0x20]);
    public.extend_from_slice(&xy[32..]);
    let mut tpm2b = (public.len() as u16).to_be_bytes().to_vec();
    tpm2b.extend(public);
    // TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE.
    let mut a = trustpool_core::attest::TPM_GENERATED_VALUE
        .to_be_bytes()
        .to_vec();
    a.extend_from_slice(&trustpool_core::attest::st::ATTEST_QUOTE.to_be_bytes());
    a.extend_from_slice(&[0x00, 0x00]);
    a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    a.extend_from_slice(nonce);
    a.extend_from_slice(&[0; 16]);
    a.push(1); // clockInfo.safe
    a.extend_from_slice(&[0; 8]);
    a.extend_from_slice(&[0, 0, 0, 1]);
    a.extend_from_slice(&bank.id().to_be_bytes());
    a.push(3);
    a.extend_from_slice(&mask.to_le_bytes()[..3]);
    let mut h = HashAlg::Sha256.hasher().expect("sha256");
    for i in 0..24u8 {
        if mask & (1 << i) != 0 {
            h.update(
                values
                    .pcr(bank, i)
                    .expect("a value for every selected PCR")
                    .as_bytes(),
            );
        }
    }
    a.extend_from_slice(&[0x00, 0x20]);
    a.extend_from_slice(h.finalize().as_bytes());
    let digest = HashAlg::Sha256.hash(&a).expect("sha256");
    let sig: p256::ecdsa::Signature = sk.sign_prehash(digest.as_bytes()).expect("sign");
    let b = sig.to_bytes();
    let mut s = vec![0x00, 0x18, 0x00, 0x0b, 0x00, 0x20];
    s.extend_from_slice(&b[..32]);
    s.extend_from_slice(&[0x00, 0x20]);
    s.extend_from_slice(&b[32..]);
    (tpm2b, a, s)
}
