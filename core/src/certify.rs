//! Key certification (TPM 2.0 Library Part 3 §18.2, TPM2_Certify) for releasing secrets to a
//! TPM: a verifier checks that a key lives in the TPM its attestation key (AK) speaks for, and
//! is a *binding key* (a decryption key that cannot leave that TPM), then wraps a data key to
//! it so that only that TPM can unwrap it (TPM2_RSA_Decrypt, Part 3 §14.2).
//!
//! ```text
//! agent                                   server
//! SRK  = TPM2_CreatePrimary(owner, SRK_RSA2048)
//! key  = TPM2_Create(SRK, BINDING_KEY_RSA2048); TPM2_Load
//! (attest, sig) = TPM2_Certify(key, AK, nonce)  ──►  verify_certification(attest, sig, AK,
//!                                                                       nonce, key public)
//! data key = TPM2_RSA_Decrypt(key, ct)  ◄──  ct = wrap_rsa_oaep(key public, data key, random)
//! ```
//!
//! [`verify_certification`] needs no heap; [`wrap_rsa_oaep`] needs the `rsa` feature.

use core::fmt;

use subtle::ConstantTimeEq;

use crate::attest::{st, Attested};
use crate::codec;
use crate::public::{ObjectAttributes, Public, SigScheme};
use crate::quote::{verify_attest_signature, AttestationKey, QuoteError};
use crate::signature::{Signature, SignatureVerifier};

/// `TPMA_OBJECT` bits a binding key must have:
///
/// - `fixedTPM`: the key cannot be duplicated, nor can any of its ancestors: it exists in this
///   TPM only (a key with it set cannot be imported or loaded with TPM2_LoadExternal either);
/// - `fixedParent`: it cannot be duplicated to another parent either;
/// - `sensitiveDataOrigin`: the TPM generated the private key, so nobody outside ever knew it
///   (with it clear the caller of TPM2_Create supplied the sensitive data);
/// - `decrypt`: it can decrypt (TPM2_RSA_Decrypt).
pub const BINDING_REQUIRED: u32 = ObjectAttributes::FIXED_TPM
    | ObjectAttributes::FIXED_PARENT
    | ObjectAttributes::SENSITIVE_DATA_ORIGIN
    | ObjectAttributes::DECRYPT;

/// `TPMA_OBJECT` bits a binding key must not have:
///
/// - `sign`: a key that both signs and decrypts could be used to sign chosen messages that are
///   wrapped secrets (a textbook-RSA decryption oracle), and is not what was asked for;
/// - `restricted`: a restricted decryption key is a storage parent, which TPM2_RSA_Decrypt
///   refuses (`TPM_RC_ATTRIBUTES`): the wrapped key would be unusable.
///
/// Other bits (`userWithAuth`, `adminWithPolicy`, `noDA`, `stClear`, an auth policy) decide
/// who on the host may use the key, not where it lives; they are not checked.
pub const BINDING_FORBIDDEN: u32 = ObjectAttributes::SIGN_ENCRYPT | ObjectAttributes::RESTRICTED;

/// Why a certification was refused. Each failure has its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "error"))]
pub enum CertifyError {
    /// The `TPMS_ATTEST` bytes are malformed.
    Attest(codec::Error),
    /// The `TPMT_SIGNATURE` bytes are malformed or use an unsupported scheme.
    Signature(codec::Error),
    /// `TPMS_ATTEST.magic` is not `TPM_GENERATED_VALUE`.
    BadMagic { found: u32 },
    /// The attestation key is not a restricted signing key.
    AkNotRestrictedSigning { attributes: u32 },
    /// The signature's scheme or hash does not match the attestation key.
    SchemeMismatch { signature: SigScheme },
    /// The signature does not verify with the attestation key: another key signed it, or the
    /// bytes were changed.
    BadSignature,
    /// This build cannot check the key, curve or hash.
    Unsupported,
    /// The attestation key is malformed.
    BadAk,
    /// The attestation is not a `TPM_ST_ATTEST_CERTIFY`.
    NotACertification { attest_type: u16 },
    /// `extraData` is not the expected nonce.
    NonceMismatch,
    /// The key's nameAlg is not a hash this build computes, so its Name cannot be checked.
    UnsupportedNameAlg { alg: u16 },
    /// The certified Name is not the Name of the key's public area.
    NameMismatch,
    /// The key is not a binding key: `missing` are required bits it lacks
    /// ([`BINDING_REQUIRED`]), `forbidden` bits it has ([`BINDING_FORBIDDEN`]).
    NotABindingKey {
        attributes: u32,
        missing: u32,
        forbidden: u32,
    },
}

impl CertifyError {
    /// A stable short name for the error, for JSON and logs.
    pub const fn code(&self) -> &'static str {
        match self {
            CertifyError::Attest(_) => "malformed-attest",
            CertifyError::Signature(_) => "malformed-signature",
            CertifyError::BadMagic { .. } => "bad-magic",
            CertifyError::AkNotRestrictedSigning { .. } => "key-not-restricted-signing",
            CertifyError::SchemeMismatch { .. } => "scheme-mismatch",
            CertifyError::BadSignature => "bad-signature",
            CertifyError::Unsupported => "unsupported",
            CertifyError::BadAk => "bad-key",
            CertifyError::NotACertification { .. } => "not-a-certification",
            CertifyError::NonceMismatch => "nonce-mismatch",
            CertifyError::UnsupportedNameAlg { .. } => "unsupported-name-alg",
            CertifyError::NameMismatch => "name-mismatch",
            CertifyError::NotABindingKey { .. } => "not-a-binding-key",
        }
    }
}

impl From<QuoteError> for CertifyError {
    fn from(e: QuoteError) -> Self {
        match e {
            QuoteError::Attest(e) => CertifyError::Attest(e),
            QuoteError::Signature(e) => CertifyError::Signature(e),
            QuoteError::BadMagic { found } => CertifyError::BadMagic { found },
            QuoteError::KeyNotRestrictedSigning { attributes } => {
                CertifyError::AkNotRestrictedSigning { attributes }
            }
            QuoteError::SchemeMismatch { signature } => CertifyError::SchemeMismatch { signature },
            QuoteError::BadSignature => CertifyError::BadSignature,
            QuoteError::Unsupported => CertifyError::Unsupported,
            QuoteError::BadKey => CertifyError::BadAk,
            QuoteError::NotAQuote { attest_type } => {
                CertifyError::NotACertification { attest_type }
            }
            QuoteError::NonceMismatch => CertifyError::NonceMismatch,
            // Quote-only failures; verify_attest_signature does not return them.
            QuoteError::PcrMissing { .. } | QuoteError::PcrDigestMismatch => {
                CertifyError::Unsupported
            }
        }
    }
}

impl fmt::Display for CertifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertifyError::Attest(e) => write!(f, "malformed certification: {e}"),
            CertifyError::Signature(e) => write!(f, "malformed signature: {e}"),
            CertifyError::BadMagic { found } => write!(
                f,
                "certification magic is {found:#010x}, not TPM_GENERATED_VALUE: not generated by a TPM"
            ),
            CertifyError::AkNotRestrictedSigning { attributes } => write!(
                f,
                "attestation key is not a restricted signing key (objectAttributes {attributes:#010x})"
            ),
            CertifyError::SchemeMismatch { signature } => {
                write!(f, "signature scheme {signature} does not match the attestation key")
            }
            CertifyError::BadSignature => {
                f.write_str("certification signature does not verify with the attestation key")
            }
            CertifyError::Unsupported => {
                f.write_str("key type, curve or hash not supported by this build")
            }
            CertifyError::BadAk => f.write_str("malformed attestation key"),
            CertifyError::NotACertification { attest_type } => write!(
                f,
                "attestation type {attest_type:#06x} is not TPM_ST_ATTEST_CERTIFY"
            ),
            CertifyError::NonceMismatch => {
                f.write_str("certification nonce (extraData) does not match the expected nonce")
            }
            CertifyError::UnsupportedNameAlg { alg } => {
                write!(f, "the key's nameAlg {alg:#06x} is not supported")
            }
            CertifyError::NameMismatch => {
                f.write_str("the certified Name is not the Name of the key's public area")
            }
            CertifyError::NotABindingKey {
                attributes,
                missing,
                forbidden,
            } => write!(
                f,
                "not a binding key (objectAttributes {attributes:#010x}: lacks {missing:#010x}, \
                 has forbidden {forbidden:#010x}); one needs fixedTPM, fixedParent, \
                 sensitiveDataOrigin and decrypt, and neither sign nor restricted"
            ),
        }
    }
}

/// Check that `attributes` are those of a binding key ([`BINDING_REQUIRED`] all set,
/// [`BINDING_FORBIDDEN`] all clear).
pub fn check_binding_attributes(attributes: ObjectAttributes) -> Result<(), CertifyError> {
    let missing = BINDING_REQUIRED & !attributes.0;
    let forbidden = BINDING_FORBIDDEN & attributes.0;
    if missing == 0 && forbidden == 0 {
        Ok(())
    } else {
        Err(CertifyError::NotABindingKey {
            attributes: attributes.0,
            missing,
            forbidden,
        })
    }
}

/// Verify a TPM2_Certify of a binding key: `attest` the `TPMS_ATTEST` (the contents of
/// `certifyInfo`), `signature` its `TPMT_SIGNATURE`, `ak` the enrolled attestation key (as a
/// `TPMT_PUBLIC`, so its attributes are enforced), `nonce` the `qualifyingData` the server
/// chose, `key_public` the certified key's `TPMT_PUBLIC` as the agent sent it.
///
/// Checks, in order: the structure, the AK (restricted signing, scheme) and the signature
/// ([`verify_attest_signature`], as for a quote); the type is `TPM_ST_ATTEST_CERTIFY`;
/// `extraData` equals `nonce` (in constant time); the certified `name` equals the Name of
/// `key_public` (nameAlg ‖ H_nameAlg(`TPMT_PUBLIC`)), which binds every byte of the public
/// area, attributes included, to the TPM's statement; and the attributes are those of a
/// binding key ([`check_binding_attributes`]).
///
/// The TPM only certifies objects loaded in it, so on success the key with this public area
/// is loaded in the TPM that holds the AK, and cannot leave it.
pub fn verify_certification<V: SignatureVerifier + ?Sized>(
    backend: &V,
    attest: &[u8],
    signature: &[u8],
    ak: &AttestationKey<'_>,
    nonce: &[u8],
    key_public: &Public<'_>,
) -> Result<(), CertifyError> {
    let sig = Signature::parse(signature).map_err(CertifyError::Signature)?;
    let parsed = verify_attest_signature(backend, attest, &sig, ak)?;
    let info = match parsed.attested {
        Attested::Certify(c) if parsed.attest_type == st::ATTEST_CERTIFY => c,
        _ => {
            return Err(CertifyError::NotACertification {
                attest_type: parsed.attest_type,
            })
        }
    };
    let nonce_ok: bool = parsed.extra_data.ct_eq(nonce).into();
    if !nonce_ok {
        return Err(CertifyError::NonceMismatch);
    }
    let name = key_public.name().ok_or(CertifyError::UnsupportedNameAlg {
        alg: key_public.name_alg,
    })?;
    let mut buf = [0u8; 2 + crate::alg::MAX_DIGEST_SIZE];
    let n = name.to_bytes(&mut buf);
    if buf.get(..n) != Some(info.name) {
        return Err(CertifyError::NameMismatch);
    }
    check_binding_attributes(key_public.attributes)
}

#[cfg(feature = "rsa")]
pub use self::wrap::*;

#[cfg(feature = "rsa")]
mod wrap {
    use alloc::vec::Vec;

    use super::*;
    use crate::alg::{id, HashAlg};
    use crate::codec::Reader;
    use crate::public::{strip_zeros, PublicKey};
    use crate::rng::FixedRandom;

    /// Bytes of caller randomness [`wrap_rsa_oaep`] takes: the OAEP seed, one SHA-256 digest.
    pub const OAEP_SEED_SIZE: usize = 32;

    /// Why a data key could not be wrapped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    #[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "error"))]
    pub enum WrapError {
        /// The key is not an RSA key of 2048 to 4096 bits.
        NotRsa,
        /// The key's scheme is neither `TPM_ALG_NULL` nor OAEP with SHA-256, so
        /// TPM2_RSA_Decrypt with OAEP-SHA-256 would be refused (`TPM_RC_SCHEME`).
        Scheme { scheme: u16, hash: u16 },
        /// The randomness is not [`OAEP_SEED_SIZE`] bytes.
        RandomnessSize { size: usize, expected: usize },
        /// The data key is longer than OAEP-SHA-256 can carry in this modulus
        /// (k - 2·32 - 2 bytes: 190 for RSA 2048).
        TooLong { size: usize, max: usize },
        /// The RSA operation failed (a malformed modulus, say).
        Encryption,
    }

    impl fmt::Display for WrapError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                WrapError::NotRsa => f.write_str("the key is not an RSA key of 2048-4096 bits"),
                WrapError::Scheme { scheme, hash } => write!(
                    f,
                    "the key's scheme {scheme:#06x} (hash {hash:#06x}) does not allow OAEP with SHA-256"
                ),
                WrapError::RandomnessSize { size, expected } => {
                    write!(f, "{size} bytes of randomness, {expected} needed")
                }
                WrapError::TooLong { size, max } => {
                    write!(f, "a {size}-byte data key does not fit (at most {max} bytes)")
                }
                WrapError::Encryption => f.write_str("RSA-OAEP encryption failed"),
            }
        }
    }

    /// The scheme of an RSA `TPMT_PUBLIC` and its hash (`TPM_ALG_NULL` when none).
    fn rsa_scheme(public: &Public<'_>) -> Option<(u16, u16)> {
        let mut r = Reader::new(public.bytes, "TPMT_PUBLIC");
        r.take(8, "type, nameAlg, objectAttributes").ok()?;
        r.tpm2b(crate::alg::MAX_DIGEST_SIZE, "authPolicy").ok()?;
        if r.u16_be("symmetric.algorithm").ok()? != id::NULL {
            r.take(4, "symmetric.keyBits, mode").ok()?;
        }
        let scheme = r.u16_be("scheme.scheme").ok()?;
        let hash = if scheme == id::NULL {
            id::NULL
        } else {
            r.u16_be("scheme.details.hashAlg").ok()?
        };
        Some((scheme, hash))
    }

    /// Wrap `data_key` to a binding key: RSAES-OAEP (RFC 8017 §7.1) with SHA-256 for the
    /// digest and MGF1, and an empty label — what TPM2_RSA_Decrypt(key, ct, OAEP-SHA-256,
    /// label empty) undoes (Part 1 Annex B.4: a non-empty label would have to end in a zero
    /// byte, which the encryptor includes; none is used here). `random` is the OAEP seed,
    /// [`OAEP_SEED_SIZE`] fresh random bytes from the caller (the core has no RNG). Returns
    /// the ciphertext, as long as the modulus.
    ///
    /// Call [`verify_certification`] on `key_public` first: this function only checks that
    /// the key can decrypt OAEP-SHA-256 (an RSA key, scheme NULL or OAEP-SHA-256).
    pub fn wrap_rsa_oaep(
        key_public: &Public<'_>,
        data_key: &[u8],
        random: &[u8],
    ) -> Result<Vec<u8>, WrapError> {
        use rsa::BoxedUint;
        let Some(PublicKey::Rsa { modulus, exponent }) = key_public.key() else {
            return Err(WrapError::NotRsa);
        };
        match rsa_scheme(key_public) {
            Some((id::NULL, _)) => {}
            Some((id::OAEP, h)) if h == HashAlg::Sha256.id() => {}
            Some((scheme, hash)) => return Err(WrapError::Scheme { scheme, hash }),
            None => return Err(WrapError::NotRsa),
        }
        if random.len() != OAEP_SEED_SIZE {
            return Err(WrapError::RandomnessSize {
                size: random.len(),
                expected: OAEP_SEED_SIZE,
            });
        }
        let modulus = strip_zeros(modulus);
        let max = modulus
            .len()
            .saturating_sub(2usize.saturating_mul(OAEP_SEED_SIZE))
            .saturating_sub(2);
        if data_key.len() > max {
            return Err(WrapError::TooLong {
                size: data_key.len(),
                max,
            });
        }
        let bits = u32::try_from(modulus.len().saturating_mul(8)).map_err(|_| WrapError::NotRsa)?;
        let n = BoxedUint::from_be_slice(modulus, bits).map_err(|_| WrapError::NotRsa)?;
        let e =
            BoxedUint::from_be_slice(&exponent.to_be_bytes(), 32).map_err(|_| WrapError::NotRsa)?;
        let key = rsa::PublicKey::new_with_size_limits(n, e, 2048..=4096)
            .map_err(|_| WrapError::NotRsa)?;
        let mut rng = FixedRandom::new(random);
        let ct = key
            .encrypt(&mut rng, rsa::Oaep::<sha2::Sha256>::new(), data_key)
            .map_err(|_| WrapError::Encryption)?;
        if !rng.is_exhausted() {
            return Err(WrapError::Encryption);
        }
        Ok(ct)
    }
}
