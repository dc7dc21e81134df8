//! `TPMT_SIGNATURE` (TPM 2.0 Library Part 2 §11.3.4) and the signature check behind a quote.
//!
//! The check is pluggable ([`SignatureVerifier`]): the core ships RustCrypto ([`RustCrypto`]),
//! pure Rust for microcontrollers; the std adapter adds a faster backend.

use crate::alg::{id, EccCurve, HashAlg};
use crate::codec::{ErrorKind, Reader, Result};
use crate::public::{strip_zeros, PublicKey, SigScheme, MAX_ECC_KEY_BYTES, MAX_RSA_KEY_BYTES};

/// A parsed `TPMT_SIGNATURE`, borrowing from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature<'a> {
    /// `TPMS_SIGNATURE_RSASSA` / `TPMS_SIGNATURE_RSAPSS`: the signature, modulus-sized.
    Rsa { scheme: SigScheme, sig: &'a [u8] },
    /// `TPMS_SIGNATURE_ECDSA`: r and s, big-endian.
    Ecdsa {
        hash: HashAlg,
        r: &'a [u8],
        s: &'a [u8],
    },
}

const S: &str = "TPMT_SIGNATURE";

impl<'a> Signature<'a> {
    /// Parse a whole `TPMT_SIGNATURE`; trailing bytes are an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Signature<'a>> {
        let mut r = Reader::new(bytes, S);
        let s = Self::read(&mut r)?;
        r.finish()?;
        Ok(s)
    }

    /// Read a `TPMT_SIGNATURE`. Schemes other than RSASSA, RSAPSS and ECDSA are an
    /// `Unsupported` error naming the scheme.
    pub fn read(r: &mut Reader<'a>) -> Result<Signature<'a>> {
        let at = r.offset();
        let sig_alg = r.u16_be("sigAlg")?;
        let hash_at = r.offset();
        let read_hash = |r: &mut Reader<'a>| -> Result<HashAlg> {
            let alg = r.u16_be("signature.hash")?;
            HashAlg::from_id(alg).ok_or(r.error_at(
                ErrorKind::UnknownAlgorithm { alg },
                "signature.hash",
                hash_at,
            ))
        };
        match sig_alg {
            id::RSASSA | id::RSAPSS => {
                let hash = read_hash(r)?;
                let sig = r.tpm2b(MAX_RSA_KEY_BYTES, "signature.sig")?;
                let scheme = if sig_alg == id::RSASSA {
                    SigScheme::RsaSsa(hash)
                } else {
                    SigScheme::RsaPss(hash)
                };
                Ok(Signature::Rsa { scheme, sig })
            }
            id::ECDSA => {
                let hash = read_hash(r)?;
                let sr = r.tpm2b(MAX_ECC_KEY_BYTES, "signature.signatureR")?;
                let ss = r.tpm2b(MAX_ECC_KEY_BYTES, "signature.signatureS")?;
                Ok(Signature::Ecdsa { hash, r: sr, s: ss })
            }
            id::ECDAA | id::SM2 | id::ECSCHNORR | id::HMAC | id::NULL => Err(r.error_at(
                ErrorKind::Unsupported {
                    value: u32::from(sig_alg),
                },
                "sigAlg",
                at,
            )),
            alg => Err(r.error_at(ErrorKind::UnknownAlgorithm { alg }, "sigAlg", at)),
        }
    }

    /// A bare signature as `tpm2_quote -f plain` writes it: the RSA signature bytes, or for
    /// ECDSA a DER `Ecdsa-Sig-Value` (RFC 5480 §2.2.3). The scheme comes from the caller.
    pub fn from_plain(scheme: SigScheme, bytes: &'a [u8]) -> Result<Signature<'a>> {
        match scheme {
            SigScheme::RsaSsa(_) | SigScheme::RsaPss(_) => {
                if bytes.len() > MAX_RSA_KEY_BYTES {
                    return Err(crate::codec::Error::new(
                        ErrorKind::TooLarge {
                            size: bytes.len(),
                            max: MAX_RSA_KEY_BYTES,
                        },
                        "plain signature",
                        "(whole)",
                        0,
                    ));
                }
                Ok(Signature::Rsa { scheme, sig: bytes })
            }
            SigScheme::Ecdsa(hash) => {
                let bad = |field| {
                    crate::codec::Error::new(
                        ErrorKind::InvalidValue { value: 0 },
                        "Ecdsa-Sig-Value",
                        field,
                        0,
                    )
                };
                let mut reader = der::SliceReader::new(bytes).map_err(|_| bad("(DER)"))?;
                let (r, s) = der::Reader::sequence(&mut reader, |rd| {
                    use der::Decode;
                    let r = der::asn1::UintRef::decode(rd)?;
                    let s = der::asn1::UintRef::decode(rd)?;
                    Ok::<_, der::Error>((r, s))
                })
                .map_err(|_| bad("SEQUENCE"))?;
                der::Reader::finish(reader).map_err(|_| bad("(trailing)"))?;
                Ok(Signature::Ecdsa {
                    hash,
                    r: r.as_bytes(),
                    s: s.as_bytes(),
                })
            }
        }
    }

    /// The scheme and hash the signature claims.
    pub fn scheme(&self) -> SigScheme {
        match *self {
            Signature::Rsa { scheme, .. } => scheme,
            Signature::Ecdsa { hash, .. } => SigScheme::Ecdsa(hash),
        }
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SignatureError {
    /// The signature is not valid for this key and message.
    BadSignature,
    /// The signature's scheme cannot be made by this kind of key.
    SchemeMismatch,
    /// This build cannot check this key, curve or hash (the feature is off).
    Unsupported,
    /// The key itself is malformed (e.g. an RSA modulus of a wrong size, a point off the curve).
    BadKey,
}

impl core::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SignatureError::BadSignature => "signature does not verify",
            SignatureError::SchemeMismatch => "signature scheme does not match the key type",
            SignatureError::Unsupported => "key type, curve or hash not supported by this build",
            SignatureError::BadKey => "malformed public key",
        })
    }
}

/// Verifies a signature over a message (the message, not its digest: backends hash it with the
/// signature's hash).
pub trait SignatureVerifier {
    fn verify(
        &self,
        key: &PublicKey<'_>,
        sig: &Signature<'_>,
        message: &[u8],
    ) -> core::result::Result<(), SignatureError>;
}

/// The pure-Rust backend: RustCrypto `p256`, `p384` (feature `p384`) and `rsa` (feature `rsa`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

/// Left-pad a big-endian scalar to `n` bytes.
fn pad_scalar<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    let v = strip_zeros(v);
    let mut out = [0u8; N];
    let start = N.checked_sub(v.len())?;
    out.get_mut(start..)?.copy_from_slice(v);
    Some(out)
}

fn sec1_point<'b>(
    x: &[u8],
    y: &[u8],
    n: usize,
    buf: &'b mut [u8; 1 + 2 * MAX_ECC_KEY_BYTES],
) -> Option<&'b [u8]> {
    let x = strip_zeros(x);
    let y = strip_zeros(y);
    if x.len() > n || y.len() > n {
        return None;
    }
    buf.fill(0);
    *buf.get_mut(0)? = 4;
    let xs = 1usize.checked_add(n)?.checked_sub(x.len())?;
    buf.get_mut(xs..xs.checked_add(x.len())?)?
        .copy_from_slice(x);
    let ye = 1usize.checked_add(n.checked_mul(2)?)?;
    buf.get_mut(ye.checked_sub(y.len())?..ye)?
        .copy_from_slice(y);
    buf.get(..ye)
}

impl RustCrypto {
    fn verify_ecdsa(
        curve: EccCurve,
        x: &[u8],
        y: &[u8],
        r: &[u8],
        s: &[u8],
        digest: &[u8],
    ) -> core::result::Result<(), SignatureError> {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let mut buf = [0u8; 1 + 2 * MAX_ECC_KEY_BYTES];
        match curve {
            EccCurve::NistP256 => {
                let point = sec1_point(x, y, 32, &mut buf).ok_or(SignatureError::BadKey)?;
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| SignatureError::BadKey)?;
                let r = pad_scalar::<32>(r).ok_or(SignatureError::BadSignature)?;
                let s = pad_scalar::<32>(s).ok_or(SignatureError::BadSignature)?;
                let sig = p256::ecdsa::Signature::from_scalars(r, s)
                    .map_err(|_| SignatureError::BadSignature)?;
                key.verify_prehash(digest, &sig)
                    .map_err(|_| SignatureError::BadSignature)
            }
            #[cfg(feature = "p384")]
            EccCurve::NistP384 => {
                let point = sec1_point(x, y, 48, &mut buf).ok_or(SignatureError::BadKey)?;
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point)
                    .map_err(|_| SignatureError::BadKey)?;
                let r = pad_scalar::<48>(r).ok_or(SignatureError::BadSignature)?;
                let s = pad_scalar::<48>(s).ok_or(SignatureError::BadSignature)?;
                let sig = p384::ecdsa::Signature::from_scalars(r, s)
                    .map_err(|_| SignatureError::BadSignature)?;
                key.verify_prehash(digest, &sig)
                    .map_err(|_| SignatureError::BadSignature)
            }
            _ => Err(SignatureError::Unsupported),
        }
    }

    #[cfg(feature = "rsa")]
    fn verify_rsa(
        modulus: &[u8],
        exponent: u32,
        scheme: SigScheme,
        sig: &[u8],
        d: &[u8],
    ) -> core::result::Result<(), SignatureError> {
        use rsa::BoxedUint;
        let modulus = strip_zeros(modulus);
        let bits =
            u32::try_from(modulus.len().saturating_mul(8)).map_err(|_| SignatureError::BadKey)?;
        let n = BoxedUint::from_be_slice(modulus, bits).map_err(|_| SignatureError::BadKey)?;
        let e = BoxedUint::from_be_slice(&exponent.to_be_bytes(), 32)
            .map_err(|_| SignatureError::BadKey)?;
        let key = rsa::PublicKey::new_with_size_limits(n, e, 1024..=4096)
            .map_err(|_| SignatureError::BadKey)?;
        let res = match scheme {
            SigScheme::RsaSsa(h) => {
                let padding = match h {
                    #[cfg(feature = "sha1")]
                    HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                    HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                    _ => return Err(SignatureError::Unsupported),
                };
                key.verify(padding, d, sig)
            }
            SigScheme::RsaPss(h) => {
                // Salt length: auto-detected, so both the digest-length salt of current TPMs
                // and the maximum salt of older ones verify.
                fn pss<D: sha2::Digest>() -> rsa::pss::Pss<D> {
                    let mut p = rsa::pss::Pss::<D>::new();
                    p.salt_len = None;
                    p
                }
                match h {
                    #[cfg(feature = "sha1")]
                    HashAlg::Sha1 => key.verify(pss::<sha1::Sha1>(), d, sig),
                    HashAlg::Sha256 => key.verify(pss::<sha2::Sha256>(), d, sig),
                    HashAlg::Sha384 => key.verify(pss::<sha2::Sha384>(), d, sig),
                    HashAlg::Sha512 => key.verify(pss::<sha2::Sha512>(), d, sig),
                    _ => return Err(SignatureError::Unsupported),
                }
            }
            SigScheme::Ecdsa(_) => return Err(SignatureError::SchemeMismatch),
        };
        res.map_err(|_| SignatureError::BadSignature)
    }
}

impl RustCrypto {
    /// Verify `sig` over a digest the caller computed with the signature's hash (IMA file
    /// signatures sign the file digest; quotes go through [`SignatureVerifier::verify`]).
    pub fn verify_prehashed(
        key: &PublicKey<'_>,
        sig: &Signature<'_>,
        digest: &[u8],
    ) -> core::result::Result<(), SignatureError> {
        if digest.len() != sig.scheme().hash().size() {
            return Err(SignatureError::BadSignature);
        }
        match (*key, *sig) {
            (PublicKey::Ecc { curve, x, y }, Signature::Ecdsa { r, s, .. }) => {
                Self::verify_ecdsa(curve, x, y, r, s, digest)
            }
            #[cfg(feature = "rsa")]
            (PublicKey::Rsa { modulus, exponent }, Signature::Rsa { scheme, sig }) => {
                Self::verify_rsa(modulus, exponent, scheme, sig, digest)
            }
            #[cfg(not(feature = "rsa"))]
            (PublicKey::Rsa { .. }, Signature::Rsa { .. }) => Err(SignatureError::Unsupported),
            _ => Err(SignatureError::SchemeMismatch),
        }
    }
}

impl SignatureVerifier for RustCrypto {
    fn verify(
        &self,
        key: &PublicKey<'_>,
        sig: &Signature<'_>,
        message: &[u8],
    ) -> core::result::Result<(), SignatureError> {
        let digest = sig
            .scheme()
            .hash()
            .hash(message)
            .ok_or(SignatureError::Unsupported)?;
        Self::verify_prehashed(key, sig, digest.as_bytes())
    }
}
