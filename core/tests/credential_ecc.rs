//! TPM2_MakeCredential for ECC EKs in software: KDFe (Part 1 §11.4.10.3) and the ECDH seed of
//! Part 1 Annex C.6.1. The expected values were computed independently with Python's hashlib,
//! hmac and `cryptography` (ECDH on SECP256R1, AES-CFB), not with this crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg(feature = "credential")]

use p256::elliptic_curve::point::AffineCoordinates;
use proptest::prelude::*;
use trustpool_core::alg::id;
use trustpool_core::credential::{
    kdfe, make_credential_ecc_p256, open, CredentialBlob, CredentialError, IdObjectRef, SymDef,
    ECC_P256_SECRET_SIZE, IDENTITY_KDF_LABEL, MAX_BLOB_SIZE,
};
use trustpool_core::tpm::EkTemplate;
use trustpool_core::{HashAlg, Public};

#[test]
fn credential_kdfe_vectors() {
    let z: Vec<u8> = (0..32).collect();
    let mut out = [0u8; 48];
    kdfe(
        HashAlg::Sha256,
        &z,
        b"IDENTITY",
        &[0x11; 32],
        &[0x22; 32],
        &mut out,
    )
    .unwrap();
    // Two blocks (counter 1 and 2), the second cut to 16 bytes.
    assert_eq!(
        hex::encode(out),
        "cbce7a80e1b35da754dc24ec97f8c9ef9281bf9944c930765256ae6ea7d59f0e\
         731549d4de391f7a1a87dc9a04c31df1"
    );
    // No output length is hashed (unlike KDFa): a shorter output is a prefix.
    let mut short = [0u8; 32];
    kdfe(
        HashAlg::Sha256,
        &z,
        b"IDENTITY",
        &[0x11; 32],
        &[0x22; 32],
        &mut short,
    )
    .unwrap();
    assert_eq!(short, out[..32]);
    let mut out = [0u8; 20];
    kdfe(
        HashAlg::Sha384,
        &z,
        b"IDENTITY",
        &[0x11; 32],
        &[0x22; 32],
        &mut out,
    )
    .unwrap();
    assert_eq!(hex::encode(out), "4b63dad2bc0817fa248dda3f9b57273ccb43451a");
    assert_eq!(
        kdfe(HashAlg::Sha256, &z, b"IDENTITY", &[], &[], &mut []),
        Err(CredentialError::KdfLength { bytes: 0 })
    );
    assert_eq!(
        kdfe(HashAlg::Sm3_256, &z, b"IDENTITY", &[], &[], &mut [0u8; 32]),
        Err(CredentialError::UnsupportedHash { alg: id::SM3_256 })
    );
}

/// The TCG "Template L-2" EK public area with the point (x, y).
fn ecc_ek(x: &[u8], y: &[u8]) -> Vec<u8> {
    let t = EkTemplate::EccP256.public();
    let head = t.len() - 2 * (2 + 32);
    let mut v = t[..head].to_vec();
    v.extend_from_slice(&(x.len() as u16).to_be_bytes());
    v.extend_from_slice(x);
    v.extend_from_slice(&(y.len() as u16).to_be_bytes());
    v.extend_from_slice(y);
    v
}

fn ak_name() -> Vec<u8> {
    let mut n = vec![0x00, 0x0b];
    n.extend_from_slice(&[0xab; 32]);
    n
}

/// EK private key 0x42…42 and ephemeral key 0x17…17, as in the Python derivation.
const EK_X: &str = "3ad3861a95621392516bb593ef05583ed2e5866f5cb6260a3017237fd89b90af";
const EK_Y: &str = "d0961c7e37075a6791a39c61f56295b02b6d26567b615e60aa41ee1c8e83388d";
const SEED: &str = "599ff7518955dd52f60f9f7b9333ac865dc7b21df55b25da8f14ed44abb3e227";
const BLOB: &str = "badcc0de00000001004400203159f4d666edad347f443de59024351b1493d333\
                    20182088c08b4aaed03f82fa1f2397a48a5fa3274b31034fb8637467bec0d656\
                    8a814de7a8d32f85acd82edc04ab004400209bece2a08e2cd04cbb9ba5102a51\
                    870f54b1e450c2fd417da83efe16707a19060020cda14b5eeddade58cef7527f\
                    f0c9b98e7fe6fddb16496102871cf62cea694ec4";
const SECRET: &[u8] = b"keylime registrar secret 32 byte";

#[test]
fn credential_ecc_p256_exact_blob() {
    let ek = ecc_ek(&hex::decode(EK_X).unwrap(), &hex::decode(EK_Y).unwrap());
    let ek = Public::parse(&ek).unwrap();
    let made = make_credential_ecc_p256(&ek, &ak_name(), SECRET, &[0x17; 32]).unwrap();
    let mut buf = [0u8; MAX_BLOB_SIZE];
    let n = made.write_blob(&mut buf).unwrap();
    assert_eq!(hex::encode(&buf[..n]), BLOB);
    assert_eq!(made.to_blob(), &buf[..n]);
    assert_eq!(made.encrypted_secret().len(), ECC_P256_SECRET_SIZE);
    // The blob opens with the seed Python derived.
    let blob = CredentialBlob::parse(&buf[..n]).unwrap();
    assert_eq!(blob.encrypted_secret, made.encrypted_secret());
    let seed = hex::decode(SEED).unwrap();
    let got = open(
        HashAlg::Sha256,
        SymDef::AES_128_CFB,
        &seed,
        &ak_name(),
        &blob.id_object,
    )
    .unwrap();
    assert_eq!(got.as_bytes(), SECRET);
    assert!(made.write_blob(&mut [0u8; 100]).is_err());
}

#[test]
fn credential_ecc_p256_checks_its_inputs() {
    let (x, y) = (hex::decode(EK_X).unwrap(), hex::decode(EK_Y).unwrap());
    let good = ecc_ek(&x, &y);
    let ek = Public::parse(&good).unwrap();
    let name = ak_name();
    // The ephemeral key: 32 bytes, in [1, n-1].
    assert_eq!(
        make_credential_ecc_p256(&ek, &name, b"c", &[1; 31]),
        Err(CredentialError::RandomnessSize {
            what: "ephemeral ECC private key",
            size: 31,
            expected: 32
        })
    );
    assert_eq!(
        make_credential_ecc_p256(&ek, &name, b"c", &[0; 32]),
        Err(CredentialError::BadEphemeralKey)
    );
    assert_eq!(
        make_credential_ecc_p256(&ek, &name, b"c", &[0xff; 32]),
        Err(CredentialError::BadEphemeralKey)
    );
    // A point off the curve, and the template's all-zero point.
    let mut y_bad = y.clone();
    y_bad[31] ^= 1;
    let off = ecc_ek(&x, &y_bad);
    assert_eq!(
        make_credential_ecc_p256(&Public::parse(&off).unwrap(), &name, b"c", &[0x17; 32]),
        Err(CredentialError::UnsupportedKey)
    );
    let zero = Public::parse(EkTemplate::EccP256.public()).unwrap();
    assert_eq!(
        make_credential_ecc_p256(&zero, &name, b"c", &[0x17; 32]),
        Err(CredentialError::UnsupportedKey)
    );
    // An RSA EK is not an ECC one.
    let rsa = Public::parse(EkTemplate::Rsa2048.public()).unwrap();
    assert_eq!(
        make_credential_ecc_p256(&rsa, &name, b"c", &[0x17; 32]),
        Err(CredentialError::UnsupportedKey)
    );
    // A signing key is not a storage key.
    let mut signing = good.clone();
    signing[4..8].copy_from_slice(&0x0005_0072u32.to_be_bytes());
    assert_eq!(
        make_credential_ecc_p256(&Public::parse(&signing).unwrap(), &name, b"c", &[0x17; 32]),
        Err(CredentialError::NotStorageKey)
    );
    assert_eq!(
        make_credential_ecc_p256(&ek, &name, &[0; 33], &[0x17; 32]),
        Err(CredentialError::CredentialTooLarge { size: 33, max: 32 })
    );
    assert_eq!(
        make_credential_ecc_p256(&ek, &name[..10], b"c", &[0x17; 32]),
        Err(CredentialError::BadName)
    );
}

/// What TPM2_ActivateCredential does with the EK's private key: Z = x(d_EK · Q_e).
fn tpm_side_seed(d_ek: &p256::SecretKey, ek_x: &[u8], secret: &[u8]) -> [u8; 32] {
    assert_eq!(secret.len(), ECC_P256_SECRET_SIZE);
    assert_eq!(&secret[..2], &[0, 32]);
    assert_eq!(&secret[34..36], &[0, 32]);
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(&secret[2..34]);
    sec1.extend_from_slice(&secret[36..68]);
    let q_e = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    let z = (q_e.to_projective() * *d_ek.to_nonzero_scalar())
        .to_affine()
        .x();
    let mut seed = [0u8; 32];
    kdfe(
        HashAlg::Sha256,
        &z,
        IDENTITY_KDF_LABEL,
        &secret[2..34],
        ek_x,
        &mut seed,
    )
    .unwrap();
    seed
}

proptest! {
    #[test]
    fn credential_ecc_p256_make_then_open(
        d_ek in proptest::array::uniform32(any::<u8>()),
        d_e in proptest::array::uniform32(any::<u8>()),
        cred in proptest::collection::vec(any::<u8>(), 0..=32),
        name_fill in any::<u8>(),
    ) {
        let (Ok(ek_key), Ok(_)) = (p256::SecretKey::from_slice(&d_ek), p256::SecretKey::from_slice(&d_e)) else {
            return Ok(()); // not a scalar in [1, n-1]: astronomically rare
        };
        let q = ek_key.public_key();
        let (x, y) = (q.as_affine().x(), q.as_affine().y());
        let ek = ecc_ek(&x, &y);
        let ek = Public::parse(&ek).unwrap();
        let mut name = vec![0x00, 0x0b];
        name.extend_from_slice(&[name_fill; 32]);
        let made = make_credential_ecc_p256(&ek, &name, &cred, &d_e).unwrap();
        let seed = tpm_side_seed(&ek_key, &x, made.encrypted_secret());
        let id = IdObjectRef::parse(made.id_object.as_bytes()).unwrap();
        let got = open(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &name, &id).unwrap();
        prop_assert_eq!(got.as_bytes(), &cred[..]);
        // Another Name does not open it.
        let mut other = name.clone();
        other[2] ^= 1;
        prop_assert_eq!(
            open(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &other, &id),
            Err(CredentialError::Integrity)
        );
    }
}
