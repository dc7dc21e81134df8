//! Binding-key rules and data-key wrapping in the core (certifications from a real TPM are
//! checked in the std adapter's `tpm_keys` test against swtpm).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use trustpool_core::certify::{
    check_binding_attributes, verify_certification, wrap_rsa_oaep, CertifyError, WrapError,
    BINDING_FORBIDDEN, BINDING_REQUIRED, OAEP_SEED_SIZE,
};
use trustpool_core::public::{ObjectAttributes as A, Public};
use trustpool_core::tpm::{AkTemplate, BINDING_KEY_ATTRIBUTES, BINDING_KEY_RSA2048};
use trustpool_core::{AttestationKey, RustCrypto};

/// The binding key template with a modulus, and `attributes`.
fn binding_public(attributes: u32) -> Vec<u8> {
    let mut b = BINDING_KEY_RSA2048.to_vec();
    b[4..8].copy_from_slice(&attributes.to_be_bytes());
    b.truncate(b.len() - 2);
    b.extend_from_slice(&256u16.to_be_bytes());
    b.extend_from_slice(&[0xc5; 256]);
    b
}

#[test]
fn binding_attributes() {
    assert_eq!(check_binding_attributes(A(BINDING_KEY_ATTRIBUTES)), Ok(()));
    // noDA, stClear, adminWithPolicy do not matter.
    assert_eq!(
        check_binding_attributes(A(BINDING_KEY_ATTRIBUTES | A::NO_DA | A::ST_CLEAR)),
        Ok(())
    );
    for (attrs, missing, forbidden) in [
        (BINDING_KEY_ATTRIBUTES | A::SIGN_ENCRYPT, 0, A::SIGN_ENCRYPT),
        (BINDING_KEY_ATTRIBUTES | A::RESTRICTED, 0, A::RESTRICTED),
        (BINDING_KEY_ATTRIBUTES & !A::FIXED_TPM, A::FIXED_TPM, 0),
        (
            BINDING_KEY_ATTRIBUTES & !(A::FIXED_TPM | A::FIXED_PARENT),
            A::FIXED_TPM | A::FIXED_PARENT,
            0,
        ),
        (
            BINDING_KEY_ATTRIBUTES & !A::SENSITIVE_DATA_ORIGIN,
            A::SENSITIVE_DATA_ORIGIN,
            0,
        ),
        (
            (BINDING_KEY_ATTRIBUTES & !A::DECRYPT) | A::SIGN_ENCRYPT,
            A::DECRYPT,
            A::SIGN_ENCRYPT,
        ),
    ] {
        assert_eq!(
            check_binding_attributes(A(attrs)),
            Err(CertifyError::NotABindingKey {
                attributes: attrs,
                missing,
                forbidden
            }),
            "{attrs:#x}"
        );
    }
    assert_eq!(BINDING_REQUIRED & BINDING_FORBIDDEN, 0);
    assert!(CertifyError::NameMismatch.to_string().contains("Name"));
}

#[test]
fn wrap_checks_its_inputs() {
    let b = binding_public(BINDING_KEY_ATTRIBUTES);
    let key = Public::parse(&b).unwrap();
    let ct = wrap_rsa_oaep(&key, &[7; 32], &[1; OAEP_SEED_SIZE]).unwrap();
    assert_eq!(ct.len(), 256);
    // Deterministic given the seed; another seed, another ciphertext.
    assert_eq!(ct, wrap_rsa_oaep(&key, &[7; 32], &[1; 32]).unwrap());
    assert_ne!(ct, wrap_rsa_oaep(&key, &[7; 32], &[2; 32]).unwrap());
    assert_eq!(
        wrap_rsa_oaep(&key, &[7; 32], &[1; 31]),
        Err(WrapError::RandomnessSize {
            size: 31,
            expected: 32
        })
    );
    assert_eq!(
        wrap_rsa_oaep(&key, &[7; 191], &[1; 32]),
        Err(WrapError::TooLong {
            size: 191,
            max: 190
        })
    );
    assert!(wrap_rsa_oaep(&key, &[7; 190], &[1; 32]).is_ok());
    // An RSASSA key (the RSA AK template) cannot decrypt OAEP.
    let mut ak = AkTemplate::Rsa2048.public().to_vec();
    ak.truncate(ak.len() - 2);
    ak.extend_from_slice(&256u16.to_be_bytes());
    ak.extend_from_slice(&[0xc5; 256]);
    let ak = Public::parse(&ak).unwrap();
    assert_eq!(
        wrap_rsa_oaep(&ak, &[7; 32], &[1; 32]),
        Err(WrapError::Scheme {
            scheme: 0x0014,
            hash: 0x000b
        })
    );
}

#[test]
fn verify_refuses_garbage_in_order() {
    let b = binding_public(BINDING_KEY_ATTRIBUTES);
    let key = Public::parse(&b).unwrap();
    let ak = AttestationKey::from_public(key).unwrap();
    // A malformed signature comes first, then the attest structure.
    assert!(matches!(
        verify_certification(&RustCrypto, &[], &[], &ak, &[], &key),
        Err(CertifyError::Signature(_))
    ));
    let sig = [0x00, 0x14, 0x00, 0x0b, 0x00, 0x01, 0x00];
    assert!(matches!(
        verify_certification(&RustCrypto, &[0xff; 8], &sig, &ak, &[], &key),
        Err(CertifyError::BadMagic { found: 0xffff_ffff })
    ));
    let mut attest = 0xff54_4347u32.to_be_bytes().to_vec();
    attest.extend_from_slice(&[0x80, 0x17, 0, 0, 0, 0]);
    attest.extend_from_slice(&[0; 17 + 8]);
    attest.extend_from_slice(&[0, 0, 0, 0]);
    // A binding key is no AK: not a restricted signing key.
    assert_eq!(
        verify_certification(&RustCrypto, &attest, &sig, &ak, &[], &key),
        Err(CertifyError::AkNotRestrictedSigning {
            attributes: BINDING_KEY_ATTRIBUTES
        })
    );
}
