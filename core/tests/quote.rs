//! Quote verification in the core: real swtpm quotes (from the repo's test vectors), every
//! rejection with its own error, and properties over truncated and mutated input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use p256::ecdsa::signature::hazmat::PrehashSigner;
use proptest::prelude::*;
use trustpool_core::attest::{Attested, TPM_GENERATED_VALUE};
use trustpool_core::codec::ErrorKind;
use trustpool_core::public::Public;
use trustpool_core::{Attest, AttestationKey, HashAlg, Quote, QuoteError, Signature};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../test-vectors/swtpm/").to_string() + name)
        .unwrap()
}

const P256_NONCE: &str = "07addd49399f1a88dbeaa90e735b35a86a268e59";

#[test]
fn real_p256_quote_fields() {
    let attest = vector("ecc-p256.sha256.attest");
    let a = Attest::parse(&attest).unwrap();
    assert_eq!(a.attest_type, 0x8018);
    assert_eq!(hex::encode(a.extra_data), P256_NONCE);
    assert!(a.clock_info.safe);
    let q = a.quote().unwrap();
    let sel: Vec<(u16, u8)> = q.pcr_select.iter().collect();
    assert_eq!(sel, (0..8).map(|i| (0x000b, i)).collect::<Vec<_>>());
    assert_eq!(q.pcr_digest.len(), 32);
    // The qualified signer is a SHA-256 Name.
    assert_eq!(&a.qualified_signer[..2], &[0x00, 0x0b]);
    assert_eq!(a.qualified_signer.len(), 34);
}

#[test]
fn real_quote_verifies_in_core_and_errors_are_exact() {
    let attest = vector("ecc-p256.sha256.attest");
    let sig = vector("ecc-p256.sha256.sig");
    let pubb = vector("ecc-p256.pub");
    let public = Public::parse_tpm2b(&pubb).unwrap();
    let ak = AttestationKey::from_public(public).unwrap();
    let nonce = hex::decode(P256_NONCE).unwrap();
    let v = Quote::verify(&attest, &sig, &ak, &nonce).unwrap();
    assert_eq!(v.hash, HashAlg::Sha256);

    // Nonce mismatch, including a prefix of the right nonce.
    assert_eq!(
        Quote::verify(&attest, &sig, &ak, &nonce[..19]),
        Err(QuoteError::NonceMismatch)
    );
    // Trailing bytes after TPMS_ATTEST.
    let mut long = attest.clone();
    long.push(0);
    match Quote::verify(&long, &sig, &ak, &nonce) {
        Err(QuoteError::Attest(e)) => {
            assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 1 });
            assert_eq!(e.offset, attest.len());
        }
        other => panic!("{other:?}"),
    }
    // Wrong magic.
    let mut bad = attest.clone();
    bad[0] = 0xfe;
    assert_eq!(
        Quote::verify(&bad, &sig, &ak, &nonce),
        Err(QuoteError::BadMagic { found: 0xfe54_4347 })
    );
    // Flipped signature byte.
    let mut s2 = sig.clone();
    let last = s2.len() - 1;
    s2[last] ^= 1;
    assert_eq!(
        Quote::verify(&attest, &s2, &ak, &nonce),
        Err(QuoteError::BadSignature)
    );
    // Signature claims SHA-384 while the key's scheme is ECDSA-SHA256.
    let mut s3 = sig.clone();
    s3[3] = 0x0c;
    assert!(matches!(
        Quote::verify(&attest, &s3, &ak, &nonce),
        Err(QuoteError::SchemeMismatch { .. })
    ));
    // An unsupported signature scheme is a clear error naming it.
    let mut s4 = sig.clone();
    s4[1] = 0x1a; // ECDAA
    match Quote::verify(&attest, &s4, &ak, &nonce) {
        Err(QuoteError::Signature(e)) => {
            assert_eq!(e.kind, ErrorKind::Unsupported { value: 0x1a });
            assert_eq!(
                (e.structure, e.field, e.offset),
                ("TPMT_SIGNATURE", "sigAlg", 0)
            );
        }
        other => panic!("{other:?}"),
    }
    // A non-restricted key given as TPMT_PUBLIC.
    let mut p2 = pubb.clone();
    p2[2 + 5] &= !0x01; // clear `restricted` (bit 16) in objectAttributes
    let public2 = Public::parse_tpm2b(&p2).unwrap();
    let ak2 = AttestationKey::from_public(public2).unwrap();
    assert_eq!(
        Quote::verify(&attest, &sig, &ak2, &nonce),
        Err(QuoteError::KeyNotRestrictedSigning {
            attributes: 0x0004_0072
        })
    );
    // The same key given bare (no attributes known) still verifies.
    let bare = AttestationKey::from_key(public.key().unwrap());
    Quote::verify(&attest, &sig, &bare, &nonce).unwrap();
}

#[test]
fn every_truncation_is_an_error() {
    for name in [
        "ecc-p256.sha256.attest",
        "rsa-rsassa.sha1.attest",
        "ecc-p256.sha1+sha256.attest",
    ] {
        let attest = vector(name);
        for n in 0..attest.len() {
            let e = Attest::parse(&attest[..n]).unwrap_err();
            assert!(
                matches!(e.kind, ErrorKind::Truncated { .. }),
                "{name}[..{n}]: {e}"
            );
            assert!(
                e.offset <= n,
                "{name}[..{n}]: offset {} beyond input",
                e.offset
            );
        }
    }
    for name in [
        "ecc-p256.sha256.sig",
        "rsa-rsapss.sha256.sig",
        "ecc-p384.sha256.sig",
    ] {
        let sig = vector(name);
        for n in 0..sig.len() {
            assert!(Signature::parse(&sig[..n]).is_err());
        }
    }
    for name in ["ecc-p256.pub", "rsa-rsassa.pub", "ecc-p384.pub"] {
        let p = vector(name);
        for n in 0..p.len() {
            assert!(Public::parse_tpm2b(&p[..n]).is_err());
        }
    }
}

/// A key of our own, to sign structures a TPM would not (a certify attest).
fn test_key() -> (p256::ecdsa::SigningKey, Vec<u8>) {
    let sk = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let point = sk.verifying_key().to_sec1_point(false);
    let xy = &point.as_bytes()[1..];
    let mut public = vec![
        0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x00, 0x72, 0x00, 0x00, 0x00, 0x10, 0x00, 0x18, 0x00,
        0x0b, 0x00, 0x03, 0x00, 0x10, 0x00, 0x20,
    ];
    public.extend_from_slice(&xy[..32]);
    public.extend_from_slice(&[0x00, 0x20]);
    public.extend_from_slice(&xy[32..]);
    (sk, public)
}

fn sign(sk: &p256::ecdsa::SigningKey, msg: &[u8]) -> Vec<u8> {
    let d = HashAlg::Sha256.hash(msg).unwrap();
    let s: p256::ecdsa::Signature = sk.sign_prehash(d.as_bytes()).unwrap();
    let b = s.to_bytes();
    let mut out = vec![0x00, 0x18, 0x00, 0x0b, 0x00, 0x20];
    out.extend_from_slice(&b[..32]);
    out.extend_from_slice(&[0x00, 0x20]);
    out.extend_from_slice(&b[32..]);
    out
}

fn attest_header(kind: u16, nonce: &[u8]) -> Vec<u8> {
    let mut a = TPM_GENERATED_VALUE.to_be_bytes().to_vec();
    a.extend_from_slice(&kind.to_be_bytes());
    a.extend_from_slice(&[0x00, 0x02, 0x40, 0x00]); // qualifiedSigner: a handle-sized name
    a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    a.extend_from_slice(nonce);
    a.extend_from_slice(&[0; 8]); // clock
    a.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 1]); // resetCount, restartCount, safe
    a.extend_from_slice(&0x2020_0101_0000_0000u64.to_be_bytes());
    a
}

#[test]
fn signed_certify_is_not_a_quote() {
    let (sk, public) = test_key();
    let p = Public::parse(&public).unwrap();
    let ak = AttestationKey::from_public(p).unwrap();
    let mut a = attest_header(0x8017, b"n");
    a.extend_from_slice(&[0x00, 0x02, 0xaa, 0xbb, 0x00, 0x01, 0xcc]);
    let parsed = Attest::parse(&a).unwrap();
    assert_eq!(parsed.firmware_version, 0x2020_0101_0000_0000);
    match parsed.attested {
        Attested::Certify(c) => {
            assert_eq!(c.name, &[0xaa, 0xbb]);
            assert_eq!(c.qualified_name, &[0xcc]);
        }
        other => panic!("{other:?}"),
    }
    let sig = sign(&sk, &a);
    assert_eq!(
        Quote::verify(&a, &sig, &ak, b"n"),
        Err(QuoteError::NotAQuote {
            attest_type: 0x8017
        })
    );

    // A quote made with the same key verifies, and its PCR check needs every selected value.
    let mut q = attest_header(0x8018, b"n");
    q.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0b, 3, 0b0000_0101, 0, 0]); // sha256 {0, 2}
    let mut set = trustpool_core::PcrSet::new();
    set.set(HashAlg::Sha256, 0, &[1; 32]);
    set.set(HashAlg::Sha256, 2, &[2; 32]);
    let mut cat = vec![1u8; 32];
    cat.extend_from_slice(&[2; 32]);
    let digest = HashAlg::Sha256.hash(&cat).unwrap();
    q.extend_from_slice(&[0x00, 0x20]);
    q.extend_from_slice(digest.as_bytes());
    let sig = sign(&sk, &q);
    let v = Quote::verify(&q, &sig, &ak, b"n").unwrap();
    v.check_pcrs(&set).unwrap();
    let mut partial = trustpool_core::PcrSet::new();
    partial.set(HashAlg::Sha256, 0, &[1; 32]);
    assert_eq!(
        v.check_pcrs(&partial),
        Err(QuoteError::PcrMissing {
            bank: 0x000b,
            pcr: 2
        })
    );
}

#[test]
fn other_attest_kinds_parse() {
    // TPM_ST_ATTEST_TIME: time, clock info, firmware version.
    let mut t = attest_header(0x8019, b"");
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
    t.extend_from_slice(&[0; 17]);
    t.extend_from_slice(&[0; 8]);
    assert!(matches!(
        Attest::parse(&t).unwrap().attested,
        Attested::Time { time: 9, .. }
    ));
    // Unknown attest type: named at its offset.
    let u = attest_header(0x8099, b"");
    let e = Attest::parse(&u).unwrap_err();
    assert_eq!(
        (e.field, e.offset, e.kind),
        ("type", 4, ErrorKind::Unsupported { value: 0x8099 })
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_quotes_never_panic_and_never_verify(pos in 0usize..200, xor in 1u8..=255) {
        let attest = vector("ecc-p256.sha256.attest");
        let sig = vector("ecc-p256.sha256.sig");
        let pubb = vector("ecc-p256.pub");
        let ak = AttestationKey::from_public(Public::parse_tpm2b(&pubb).unwrap()).unwrap();
        let nonce = hex::decode(P256_NONCE).unwrap();
        let mut a = attest.clone();
        let i = pos % a.len();
        a[i] ^= xor;
        prop_assert!(Quote::verify(&a, &sig, &ak, &nonce).is_err());
        let mut s = sig.clone();
        let j = pos % s.len();
        s[j] ^= xor;
        prop_assert!(Quote::verify(&attest, &s, &ak, &nonce).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Attest::parse(&bytes);
        let _ = Signature::parse(&bytes);
        let _ = Public::parse(&bytes);
        let _ = Public::parse_tpm2b(&bytes);
        let mut set = trustpool_core::PcrSet::new();
        let _ = trustpool_core::pcr::parse_tpm2_tools_pcrs(&bytes, &mut set);
    }

    #[test]
    fn pcr_file_roundtrip(values in proptest::collection::vec(any::<[u8; 32]>(), 1..24), sha1_mask in 0u32..(1 << 24)) {
        let mut set = trustpool_core::PcrSet::new();
        let mut mask = 0u32;
        for (i, v) in values.iter().enumerate() {
            set.set(HashAlg::Sha256, i as u8, v);
            mask |= 1 << i;
        }
        for i in 0..24u8 {
            set.set(HashAlg::Sha1, i, &[i; 20]);
        }
        let mut buf = vec![0u8; 8192];
        let n = trustpool_core::pcr::write_tpm2_tools_pcrs(&[(HashAlg::Sha256, mask), (HashAlg::Sha1, sha1_mask)], &set, &mut buf).unwrap();
        let mut back = trustpool_core::PcrSet::new();
        trustpool_core::pcr::parse_tpm2_tools_pcrs(&buf[..n], &mut back).unwrap();
        prop_assert_eq!(back.bank(HashAlg::Sha256).unwrap(), set.bank(HashAlg::Sha256).unwrap());
        let b1 = back.bank(HashAlg::Sha1).map_or(0, |b| b.present());
        prop_assert_eq!(b1, sha1_mask);
    }
}
