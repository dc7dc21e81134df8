//! IMA file signatures: `struct signature_v2_hdr` (`security/integrity/integrity.h`) as the
//! `sig` template field carries it (the `security.ima` xattr), and their verification as
//! `asymmetric_verify()` (`security/integrity/digsig_asymmetric.c`) does it.
//!
//! ```text
//! u8 type (3 = EVM_IMA_XATTR_DIGSIG, 5 = EVM_XATTR_PORTABLE_DIGSIG, 6 = IMA_VERITY_DIGSIG)
//! u8 version (2; 3 = sigv3, signs the hash of `struct ima_file_id`)
//! u8 hash_algo (kernel HASH_ALGO_*, see KernelHash)
//! be32 keyid   be16 sig_size   u8 sig[sig_size]
//! ```
//!
//! A version 2 signature signs the file digest itself (the digest of the `d-ng` field):
//! RSA PKCS#1 v1.5 over a `DigestInfo` of `hash_algo`, or ECDSA over the digest (a DER
//! `Ecdsa-Sig-Value`). The key id is the last 4 bytes of the key's X.509 subject key
//! identifier — for keys without a certificate, as `evmctl` (`calc_keyid_v2()`) and Keylime
//! (`ImaKeyring._get_keyidv2`) compute it: the last 4 bytes of SHA-1 over the
//! `subjectPublicKey` bits (the `RSAPublicKey` DER, or the uncompressed EC point) — not over
//! the whole `SubjectPublicKeyInfo`. See [`key_id_v2`].

use crate::alg::HashAlg;
use crate::codec::{ErrorKind, Reader};
use crate::public::{strip_zeros, PublicKey, SigScheme};
use crate::signature::{Signature, SignatureError};

use super::event::{Blob, KernelHash};
use super::Error;

/// `EVM_IMA_XATTR_DIGSIG`.
pub const TYPE_DIGSIG: u8 = 3;
/// `EVM_XATTR_PORTABLE_DIGSIG`.
pub const TYPE_PORTABLE_DIGSIG: u8 = 5;
/// `IMA_VERITY_DIGSIG`.
pub const TYPE_VERITY_DIGSIG: u8 = 6;
/// Header size: type, version, hash_algo, keyid, sig_size.
pub const HEADER_LEN: usize = 9;
/// Largest signature handled (RSA-4096 is 512 bytes; DER ECDSA P-521 about 140).
pub const MAX_SIG: usize = 1024;

/// A parsed signature header with its payload, copied inline (the ASCII log holds it as
/// hex).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigV2 {
    pub kind: u8,
    pub version: u8,
    /// `HASH_ALGO_*` as given.
    pub hash_algo: u8,
    pub key_id: u32,
    len: u16,
    sig: [u8; MAX_SIG],
}

impl core::fmt::Debug for SigV2 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SigV2 {{ type: {}, version: {}, hash_algo: {}, key_id: {:08x}, {} bytes }}",
            self.kind, self.version, self.hash_algo, self.key_id, self.len
        )
    }
}

impl SigV2 {
    /// Parse a `sig` field. `sig_size` must account for every remaining byte, as the kernel
    /// requires.
    pub fn parse(field: &Blob<'_>) -> Result<SigV2, Error> {
        let mut hdr = [0u8; HEADER_LEN];
        if field.len() < HEADER_LEN {
            return Err(Error::new(
                ErrorKind::Truncated {
                    needed: HEADER_LEN,
                    available: field.len(),
                },
                "signature_v2_hdr",
                "(header)",
                0,
            ));
        }
        hdr.iter_mut().zip(field.bytes()).for_each(|(d, s)| *d = s);
        let mut r = Reader::new(&hdr, "signature_v2_hdr");
        let kind = r.u8("type")?;
        let version = r.u8("version")?;
        let hash_algo = r.u8("hash_algo")?;
        let key_id = r.u32_be("keyid")?;
        let size = r.u16_be("sig_size")?;
        let payload = field.len().saturating_sub(HEADER_LEN);
        if usize::from(size) != payload {
            return Err(Error::new(
                ErrorKind::InvalidValue {
                    value: u64::from(size),
                },
                "signature_v2_hdr",
                "sig_size",
                7,
            ));
        }
        if payload > MAX_SIG {
            return Err(Error::new(
                ErrorKind::TooLarge {
                    size: payload,
                    max: MAX_SIG,
                },
                "signature_v2_hdr",
                "sig",
                HEADER_LEN,
            ));
        }
        let mut s = SigV2 {
            kind,
            version,
            hash_algo,
            key_id,
            len: size,
            sig: [0; MAX_SIG],
        };
        s.sig
            .iter_mut()
            .zip(field.bytes().skip(HEADER_LEN))
            .for_each(|(d, b)| *d = b);
        Ok(s)
    }

    pub fn signature(&self) -> &[u8] {
        self.sig.get(..usize::from(self.len)).unwrap_or(&[])
    }

    pub fn kernel_hash(&self) -> Option<KernelHash> {
        KernelHash::from_id(self.hash_algo)
    }
}

/// A verification key with its IMA key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImaKey<'k> {
    pub key_id: u32,
    pub key: PublicKey<'k>,
}

/// Why an IMA signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SigCheck {
    /// Not a `signature_v2_hdr`, or `sig_size` does not match.
    Malformed,
    /// A type other than `EVM_IMA_XATTR_DIGSIG` / portable, or a version other than 2.
    UnsupportedFormat { kind: u8, version: u8 },
    /// The header's hash algorithm is not the file digest's.
    HashMismatch { hash_algo: u8 },
    /// No key with this id.
    UnknownKey { key_id: u32 },
    /// The check failed (or this build cannot do it).
    Bad(SignatureError),
}

/// Verify a `sig` field over `file_digest` (of algorithm `algo`) with the key whose id the
/// header names.
pub fn verify(
    field: &Blob<'_>,
    algo: KernelHash,
    file_digest: &[u8],
    keys: &[ImaKey<'_>],
) -> Result<u32, SigCheck> {
    let s = SigV2::parse(field).map_err(|_| SigCheck::Malformed)?;
    if !matches!(s.kind, TYPE_DIGSIG | TYPE_PORTABLE_DIGSIG) || s.version != 2 {
        return Err(SigCheck::UnsupportedFormat {
            kind: s.kind,
            version: s.version,
        });
    }
    if s.kernel_hash() != Some(algo) {
        return Err(SigCheck::HashMismatch {
            hash_algo: s.hash_algo,
        });
    }
    let key = keys
        .iter()
        .find(|k| k.key_id == s.key_id)
        .ok_or(SigCheck::UnknownKey { key_id: s.key_id })?;
    verify_prehashed(&key.key, algo, file_digest, s.signature()).map_err(SigCheck::Bad)?;
    Ok(s.key_id)
}

/// Verify `sig` over an already computed digest of algorithm `algo` (RSA PKCS#1 v1.5, or a DER
/// ECDSA signature), with the core's RustCrypto backend.
pub fn verify_prehashed(
    key: &PublicKey<'_>,
    algo: KernelHash,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), SignatureError> {
    let hash = algo.hash_alg().ok_or(SignatureError::Unsupported)?;
    let sig = match key {
        PublicKey::Ecc { .. } => Signature::from_plain(SigScheme::Ecdsa(hash), sig)
            .map_err(|_| SignatureError::BadSignature)?,
        PublicKey::Rsa { .. } => Signature::Rsa {
            scheme: SigScheme::RsaSsa(hash),
            sig,
        },
    };
    crate::signature::RustCrypto::verify_prehashed(key, &sig, digest)
}

/// The IMA v2 key id of a key given as DER `SubjectPublicKeyInfo`: the last 4 bytes (big-
/// endian) of SHA-1 over the `subjectPublicKey` bits. `None` when the DER does not parse or
/// SHA-1 is not in this build.
pub fn key_id_v2(spki_der: &[u8]) -> Option<u32> {
    use der::Decode;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).ok()?;
    let bits = spki.subject_public_key.as_bytes()?;
    key_id_of_bits(bits)
}

/// The IMA v2 key id of a key: for RSA, SHA-1 over the `RSAPublicKey` DER (re-encoded
/// here); for EC, over the uncompressed point `04 ‖ x ‖ y`.
pub fn key_id_of(key: &PublicKey<'_>) -> Option<u32> {
    let mut h = HashAlg::Sha1.hasher()?;
    match *key {
        PublicKey::Ecc { curve, x, y } => {
            let n = curve.field_size();
            h.update(&[4]);
            for v in [x, y] {
                let v = strip_zeros(v);
                let zeros = [0u8; 80];
                h.update(zeros.get(..n.checked_sub(v.len())?)?);
                h.update(v);
            }
        }
        PublicKey::Rsa { modulus, exponent } => {
            // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
            let m = strip_zeros(modulus);
            let e_bytes = exponent.to_be_bytes();
            let e = strip_zeros(&e_bytes);
            let int_len = |v: &[u8]| {
                v.len()
                    .saturating_add(usize::from(v.first().is_some_and(|b| b & 0x80 != 0)))
            };
            let (ml, el) = (int_len(m), int_len(e));
            let body = der_len(ml)?
                .1
                .saturating_add(1)
                .saturating_add(ml)
                .saturating_add(der_len(el)?.1)
                .saturating_add(1)
                .saturating_add(el);
            let put = |h: &mut crate::alg::Hasher, tag: u8, len: usize| -> Option<()> {
                let (enc, n) = der_len(len)?;
                h.update(&[tag]);
                h.update(enc.get(..n)?);
                Some(())
            };
            put(&mut h, 0x30, body)?;
            put(&mut h, 0x02, ml)?;
            if ml > m.len() {
                h.update(&[0]);
            }
            h.update(m);
            put(&mut h, 0x02, el)?;
            if el > e.len() {
                h.update(&[0]);
            }
            h.update(e);
        }
    }
    let d = h.finalize();
    let b = d.as_bytes().get(16..20)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// DER length octets: (bytes, count).
fn der_len(len: usize) -> Option<([u8; 5], usize)> {
    let mut out = [0u8; 5];
    if len < 0x80 {
        out[0] = u8::try_from(len).ok()?;
        return Some((out, 1));
    }
    let be = u32::try_from(len).ok()?.to_be_bytes();
    let v = strip_zeros(&be);
    out[0] = 0x80 | u8::try_from(v.len()).ok()?;
    out.get_mut(1..v.len().checked_add(1)?)?.copy_from_slice(v);
    Some((out, v.len().checked_add(1)?))
}

fn key_id_of_bits(bits: &[u8]) -> Option<u32> {
    let d = HashAlg::Sha1.hash(bits)?;
    let b = d.as_bytes().get(16..20)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}
