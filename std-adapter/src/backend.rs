//! The std adapter's signature backend: ring (BoringSSL's assembly) for the schemes it covers,
//! RustCrypto (the core's backend) for the rest.
//!
//! ring verifies RSA-PSS only with salt length = digest length (what current TPMs and swtpm
//! use); a PSS signature ring rejects is checked again by RustCrypto with automatic salt
//! detection, so older TPMs' maximum-salt quotes still verify.

use ring::signature as rs;
use trustpool_core::alg::HashAlg;
use trustpool_core::{
    EccCurve, PublicKey, RustCrypto, SigScheme, Signature, SignatureError, SignatureVerifier,
};

/// ring first, RustCrypto where ring has no algorithm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ring;

fn strip(mut s: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = s {
        s = rest;
    }
    s
}

fn pad_into(v: &[u8], n: usize, out: &mut Vec<u8>) -> bool {
    let v = strip(v);
    if v.len() > n {
        return false;
    }
    out.extend(std::iter::repeat_n(0u8, n - v.len()));
    out.extend_from_slice(v);
    true
}

impl SignatureVerifier for Ring {
    fn verify(
        &self,
        key: &PublicKey<'_>,
        sig: &Signature<'_>,
        message: &[u8],
    ) -> Result<(), SignatureError> {
        match (*key, *sig) {
            (PublicKey::Rsa { modulus, exponent }, Signature::Rsa { scheme, sig: s }) => {
                let params: &'static rs::RsaParameters = match scheme {
                    SigScheme::RsaSsa(HashAlg::Sha1) => {
                        &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
                    }
                    SigScheme::RsaSsa(HashAlg::Sha256) => &rs::RSA_PKCS1_2048_8192_SHA256,
                    SigScheme::RsaSsa(HashAlg::Sha384) => &rs::RSA_PKCS1_2048_8192_SHA384,
                    SigScheme::RsaSsa(HashAlg::Sha512) => &rs::RSA_PKCS1_2048_8192_SHA512,
                    SigScheme::RsaPss(HashAlg::Sha256) => &rs::RSA_PSS_2048_8192_SHA256,
                    SigScheme::RsaPss(HashAlg::Sha384) => &rs::RSA_PSS_2048_8192_SHA384,
                    SigScheme::RsaPss(HashAlg::Sha512) => &rs::RSA_PSS_2048_8192_SHA512,
                    _ => return RustCrypto.verify(key, sig, message),
                };
                let modulus = strip(modulus);
                if modulus.len() < 256 {
                    // ring's minimum is 2048 bits.
                    return RustCrypto.verify(key, sig, message);
                }
                let e = exponent.to_be_bytes();
                let comps = rs::RsaPublicKeyComponents {
                    n: modulus,
                    e: strip(&e),
                };
                match comps.verify(params, message, s) {
                    Ok(()) => Ok(()),
                    Err(_) if matches!(scheme, SigScheme::RsaPss(_)) => {
                        RustCrypto.verify(key, sig, message)
                    }
                    Err(_) => Err(SignatureError::BadSignature),
                }
            }
            (PublicKey::Ecc { curve, x, y }, Signature::Ecdsa { hash, r, s }) => {
                let alg: &rs::EcdsaVerificationAlgorithm = match (curve, hash) {
                    (EccCurve::NistP256, HashAlg::Sha256) => &rs::ECDSA_P256_SHA256_FIXED,
                    (EccCurve::NistP384, HashAlg::Sha384) => &rs::ECDSA_P384_SHA384_FIXED,
                    _ => return RustCrypto.verify(key, sig, message),
                };
                let n = match curve {
                    EccCurve::NistP256 => 32,
                    _ => 48,
                };
                let mut point = Vec::with_capacity(1 + 2 * n);
                point.push(4);
                let mut fixed = Vec::with_capacity(2 * n);
                if !(pad_into(x, n, &mut point) && pad_into(y, n, &mut point)) {
                    return Err(SignatureError::BadKey);
                }
                if !(pad_into(r, n, &mut fixed) && pad_into(s, n, &mut fixed)) {
                    return Err(SignatureError::BadSignature);
                }
                rs::UnparsedPublicKey::new(alg, &point)
                    .verify(message, &fixed)
                    .map_err(|_| SignatureError::BadSignature)
            }
            _ => RustCrypto.verify(key, sig, message),
        }
    }
}
