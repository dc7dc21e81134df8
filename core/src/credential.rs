//! TPM2_MakeCredential done in software (TPM 2.0 Library Part 1 §24 "Credential Protection",
//! Part 1 §11.4.10.2 KDFa, Part 3 §12.6 TPM2_MakeCredential), and the credential blob file
//! that tpm2-tools and Keylime exchange.
//!
//! A verifier wraps a secret for an attestation key (AK) so that only the TPM holding a given
//! endorsement key (EK) *and* the AK with the given Name can recover it with
//! TPM2_ActivateCredential:
//!
//! ```text
//! seed          random, nameAlg-digest-sized, RSA-OAEP(EK, label "IDENTITY\0") → encryptedSecret
//! symKey        = KDFa(nameAlg, seed, "STORAGE", AK Name, "", EK symmetric keyBits)
//! encIdentity   = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential))
//! HMACkey       = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits)
//! outerHMAC     = HMAC(nameAlg, HMACkey, encIdentity ‖ AK Name)
//! credentialBlob = TPM2B_ID_OBJECT(TPM2B_DIGEST(outerHMAC) ‖ encIdentity)
//! ```
//!
//! For an ECC EK the seed is not chosen but agreed (Part 1 §24.4, Annex C.6.1 "ECC Secret
//! Sharing for Credentials"): an ephemeral key pair (d_e, Q_e), `Z = x(d_e · Q_EK)`,
//! `seed = KDFe(nameAlg, Z, "IDENTITY", x(Q_e), x(Q_EK), digest bits)` (§11.4.10.3), and the
//! encrypted secret is the marshaled `TPMS_ECC_POINT` Q_e.
//!
//! The core takes no randomness of its own: the caller supplies the seed and the OAEP
//! randomness (RSA), or the ephemeral private key (ECC). [`kdfa`], [`kdfe`], [`protect`],
//! [`open`] and [`make_credential_ecc_p256`] need no heap; [`make_credential_rsa`] (RSA EKs)
//! needs the `rsa` feature.
#![cfg(feature = "credential")]

use core::fmt;

use hmac::{KeyInit, Mac};

use crate::alg::{id, HashAlg, MAX_DIGEST_SIZE};
use crate::codec::{self, BufferTooSmall, Reader, Writer};
use crate::public::{ObjectAttributes, Public, PublicKey};

/// The OAEP label of the seed, terminating NUL included (Part 1 §24.4).
pub const IDENTITY_LABEL: &[u8] = b"IDENTITY\0";
/// KDFe label (`Use`) of the ECC seed (the terminating NUL is added by [`kdfe`]).
pub const IDENTITY_KDF_LABEL: &[u8] = b"IDENTITY";
/// KDFa label of the symmetric key (the terminating NUL is added by [`kdfa`]).
pub const STORAGE_LABEL: &[u8] = b"STORAGE";
/// KDFa label of the HMAC key.
pub const INTEGRITY_LABEL: &[u8] = b"INTEGRITY";
/// Largest credential: the capacity of a `TPM2B_DIGEST` (`sizeof(TPMU_HA)`). A given
/// protector takes at most the digest size of its nameAlg (32 bytes for SHA-256).
pub const MAX_CREDENTIAL_SIZE: usize = MAX_DIGEST_SIZE;
/// Largest Name of an object: algorithm id then digest.
pub const MAX_NAME_SIZE: usize = 2 + MAX_DIGEST_SIZE;
/// Largest `TPM2B_ID_OBJECT`, size field included: size ‖ TPM2B_DIGEST(HMAC) ‖ encIdentity.
pub const MAX_ID_OBJECT_SIZE: usize = 2 + (2 + MAX_DIGEST_SIZE) + (2 + MAX_CREDENTIAL_SIZE);
/// Largest `TPMU_ENCRYPTED_SECRET` (an RSA-4096 ciphertext).
pub const MAX_ENCRYPTED_SECRET_SIZE: usize = crate::public::MAX_RSA_KEY_BYTES;
/// Magic of the tpm2-tools / Keylime credential blob file.
pub const BLOB_MAGIC: u32 = 0xBADC_C0DE;
/// Version of the tpm2-tools / Keylime credential blob file.
pub const BLOB_VERSION: u32 = 1;
/// Largest credential blob file.
pub const MAX_BLOB_SIZE: usize = 8 + MAX_ID_OBJECT_SIZE + 2 + MAX_ENCRYPTED_SECRET_SIZE;

/// Why a credential could not be made or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    /// A hash algorithm this build does not compute (or not a hash at all).
    UnsupportedHash { alg: u16 },
    /// The EK is not an RSA key or an ECC NIST P-256 key, or its key is unusable (an ECC
    /// point not on the curve, say).
    UnsupportedKey,
    /// The caller-supplied ephemeral ECC private key is zero or not below the curve order.
    BadEphemeralKey,
    /// The EK is not a storage key (restricted and decrypt), as TPM2_MakeCredential requires.
    NotStorageKey,
    /// The EK's symmetric algorithm is not AES-128/192/256.
    UnsupportedSymmetric { alg: u16, key_bits: u16 },
    /// The AK Name is not an algorithm id followed by a digest of that algorithm.
    BadName,
    /// The credential is longer than the digest of the protector's nameAlg (`TPM_RC_SIZE`
    /// of TPM2_MakeCredential).
    CredentialTooLarge { size: usize, max: usize },
    /// Caller-supplied randomness (`what`) has the wrong length.
    RandomnessSize {
        what: &'static str,
        size: usize,
        expected: usize,
    },
    /// The KDF output asked for is empty or too long.
    KdfLength { bytes: usize },
    /// RSA-OAEP encryption failed.
    Encryption,
    /// The `TPM2B_ID_OBJECT` failed its integrity check (wrong seed, Name or corruption).
    Integrity,
    /// A structure could not be parsed.
    Parse(codec::Error),
    /// The output buffer is too small.
    BufferTooSmall(BufferTooSmall),
}

impl From<codec::Error> for CredentialError {
    fn from(e: codec::Error) -> Self {
        CredentialError::Parse(e)
    }
}

impl From<BufferTooSmall> for CredentialError {
    fn from(e: BufferTooSmall) -> Self {
        CredentialError::BufferTooSmall(e)
    }
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialError::UnsupportedHash { alg } => {
                write!(f, "hash algorithm {alg:#06x} is not supported")
            }
            CredentialError::UnsupportedKey => {
                f.write_str("the EK is not a usable RSA key or ECC NIST P-256 point")
            }
            CredentialError::BadEphemeralKey => f.write_str(
                "the ephemeral ECC private key is not a scalar in [1, n-1] of the EK's curve",
            ),
            CredentialError::NotStorageKey => {
                f.write_str("the EK is not a restricted decryption (storage) key")
            }
            CredentialError::UnsupportedSymmetric { alg, key_bits } => write!(
                f,
                "symmetric algorithm {alg:#06x} with {key_bits} key bits is not supported"
            ),
            CredentialError::BadName => f.write_str("the AK Name is not alg id ‖ digest"),
            CredentialError::CredentialTooLarge { size, max } => {
                write!(f, "credential of {size} bytes exceeds {max} bytes")
            }
            CredentialError::RandomnessSize {
                what,
                size,
                expected,
            } => write!(f, "{what} is {size} bytes, {expected} expected"),
            CredentialError::KdfLength { bytes } => {
                write!(f, "KDF output of {bytes} bytes is not supported")
            }
            CredentialError::Encryption => f.write_str("RSA-OAEP encryption of the seed failed"),
            CredentialError::Integrity => f.write_str("credential integrity check failed"),
            CredentialError::Parse(e) => write!(f, "{e}"),
            CredentialError::BufferTooSmall(e) => write!(f, "{e}"),
        }
    }
}

type Result<T> = core::result::Result<T, CredentialError>;

/// HMAC over the concatenation of `parts`, written into `out`; returns the tag length.
fn hmac_parts(alg: HashAlg, key: &[u8], parts: &[&[u8]], out: &mut [u8]) -> Result<usize> {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
        let mut m = <M as KeyInit>::new_from_slice(key).ok()?;
        for p in parts {
            m.update(p);
        }
        let tag = m.finalize().into_bytes();
        let dst = out.get_mut(..tag.len())?;
        dst.copy_from_slice(&tag);
        Some(tag.len())
    }
    let n = match alg {
        #[cfg(feature = "sha1")]
        HashAlg::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, parts, out),
        HashAlg::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, parts, out),
        HashAlg::Sha384 => run::<hmac::Hmac<sha2::Sha384>>(key, parts, out),
        HashAlg::Sha512 => run::<hmac::Hmac<sha2::Sha512>>(key, parts, out),
        _ => None,
    };
    n.ok_or(CredentialError::UnsupportedHash { alg: alg.id() })
}

/// KDFa (Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with HMAC-`alg`, filling `out`.
///
/// For i = 1, 2, …: `HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ context_u ‖ context_v ‖ [bits]₃₂)`, with
/// `bits = 8 · out.len()`, concatenated and cut to `out.len()` bytes. `label` is given without
/// its terminating NUL (`b"STORAGE"`); the NUL is always added. Output lengths are whole bytes
/// (every TPM key and HMAC size is).
pub fn kdfa(
    alg: HashAlg,
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    out: &mut [u8],
) -> Result<()> {
    if !alg.is_supported() {
        return Err(CredentialError::UnsupportedHash { alg: alg.id() });
    }
    let bytes = out.len();
    let bits = bytes
        .checked_mul(8)
        .and_then(|b| u32::try_from(b).ok())
        .filter(|_| bytes > 0)
        .ok_or(CredentialError::KdfLength { bytes })?;
    let bits = bits.to_be_bytes();
    let mut block = [0u8; MAX_DIGEST_SIZE];
    let mut counter: u32 = 0;
    for chunk in out.chunks_mut(alg.size()) {
        counter = counter
            .checked_add(1)
            .ok_or(CredentialError::KdfLength { bytes })?;
        let n = hmac_parts(
            alg,
            key,
            &[
                &counter.to_be_bytes(),
                label,
                &[0],
                context_u,
                context_v,
                &bits,
            ],
            &mut block,
        )?;
        let src = block
            .get(..chunk.len().min(n))
            .ok_or(CredentialError::KdfLength { bytes })?;
        chunk.iter_mut().zip(src).for_each(|(o, i)| *o = *i);
    }
    block.iter_mut().for_each(|b| *b = 0);
    Ok(())
}

/// KDFe (Part 1 §11.4.10.3): the SP 800-56A concatenation KDF with hash `alg`, filling `out`.
///
/// For i = 1, 2, …: `H([i]₃₂ ‖ z ‖ label ‖ 0x00 ‖ party_u ‖ party_v)`, concatenated and cut
/// to `out.len()` bytes. `z` is the shared secret (the x-coordinate of the ECDH point, at the
/// curve's size); `label` is given without its terminating NUL (`b"IDENTITY"`), the NUL is
/// always added; unlike KDFa, no output length is hashed. Output lengths are whole bytes.
pub fn kdfe(
    alg: HashAlg,
    z: &[u8],
    label: &[u8],
    party_u: &[u8],
    party_v: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let bytes = out.len();
    if bytes == 0
        || bytes
            .checked_mul(8)
            .and_then(|b| u32::try_from(b).ok())
            .is_none()
    {
        return Err(CredentialError::KdfLength { bytes });
    }
    let mut counter: u32 = 0;
    for chunk in out.chunks_mut(alg.size()) {
        counter = counter
            .checked_add(1)
            .ok_or(CredentialError::KdfLength { bytes })?;
        let mut h = alg
            .hasher()
            .ok_or(CredentialError::UnsupportedHash { alg: alg.id() })?;
        for part in [&counter.to_be_bytes()[..], z, label, &[0], party_u, party_v] {
            h.update(part);
        }
        let block = h.finalize();
        chunk
            .iter_mut()
            .zip(block.as_bytes())
            .for_each(|(o, i)| *o = *i);
    }
    Ok(())
}

/// `TPMT_SYM_DEF_OBJECT` of a key: algorithm, key bits and mode (`TPM_ALG_NULL`, 0, 0 when the
/// key has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymDef {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

impl SymDef {
    /// AES-128-CFB, as in the TCG default EK templates (EK Credential Profile 2.5 B.3).
    pub const AES_128_CFB: SymDef = SymDef {
        algorithm: id::AES,
        key_bits: 128,
        mode: id::CFB,
    };

    /// The symmetric definition of an RSA or ECC key's parameters (Part 2 §12.2.3.5).
    pub fn of(public: &Public<'_>) -> Result<SymDef> {
        let mut r = Reader::new(public.bytes, "TPMT_PUBLIC");
        let type_alg = r.u16_be("type")?;
        if type_alg != id::RSA && type_alg != id::ECC {
            return Err(CredentialError::UnsupportedKey);
        }
        r.u16_be("nameAlg")?;
        r.u32_be("objectAttributes")?;
        r.tpm2b(MAX_DIGEST_SIZE, "authPolicy")?;
        let algorithm = r.u16_be("symmetric.algorithm")?;
        if algorithm == id::NULL {
            return Ok(SymDef {
                algorithm,
                key_bits: 0,
                mode: 0,
            });
        }
        let key_bits = r.u16_be("symmetric.keyBits")?;
        let mode = r.u16_be("symmetric.mode")?;
        Ok(SymDef {
            algorithm,
            key_bits,
            mode,
        })
    }

    /// Key size in bytes, for the AES sizes this module encrypts with.
    fn aes_key_bytes(self) -> Result<usize> {
        match (self.algorithm, self.key_bits) {
            (id::AES, 128) => Ok(16),
            (id::AES, 192) => Ok(24),
            (id::AES, 256) => Ok(32),
            (alg, key_bits) => Err(CredentialError::UnsupportedSymmetric { alg, key_bits }),
        }
    }
}

/// AES-CFB with a zero IV over `buf`, in place (Part 1 §24.4; the mode is always CFB).
fn aes_cfb(key: &[u8], buf: &mut [u8], encrypt: bool) -> Result<()> {
    use cfb_mode::cipher::KeyIvInit;
    const IV: [u8; 16] = [0; 16];
    fn run<C>(key: &[u8], buf: &mut [u8], encrypt: bool) -> Option<()>
    where
        C: cfb_mode::cipher::BlockCipherEncrypt + cfb_mode::cipher::KeyInit,
    {
        if encrypt {
            cfb_mode::Encryptor::<C>::new_from_slices(key, &IV)
                .ok()?
                .encrypt(buf);
        } else {
            cfb_mode::Decryptor::<C>::new_from_slices(key, &IV)
                .ok()?
                .decrypt(buf);
        }
        Some(())
    }
    let done = match key.len() {
        16 => run::<aes::Aes128>(key, buf, encrypt),
        24 => run::<aes::Aes192>(key, buf, encrypt),
        32 => run::<aes::Aes256>(key, buf, encrypt),
        _ => None,
    };
    done.ok_or(CredentialError::UnsupportedSymmetric {
        alg: id::AES,
        key_bits: u16::try_from(key.len().saturating_mul(8)).unwrap_or(u16::MAX),
    })
}

/// The EK's nameAlg, if this build computes it.
fn hash_alg(alg: u16) -> Result<HashAlg> {
    HashAlg::from_id(alg)
        .filter(|h| h.is_supported())
        .ok_or(CredentialError::UnsupportedHash { alg })
}

/// TPM2_MakeCredential's protector must be a storage key: restricted and decrypt.
fn check_storage_key(ek: &Public<'_>) -> Result<()> {
    if ek.attributes.has(ObjectAttributes::RESTRICTED)
        && ek.attributes.has(ObjectAttributes::DECRYPT)
    {
        Ok(())
    } else {
        Err(CredentialError::NotStorageKey)
    }
}

/// Check that `name` is a hash algorithm id followed by a digest of that algorithm.
fn check_name(name: &[u8]) -> Result<()> {
    match name {
        [hi, lo, digest @ ..] => {
            let alg =
                HashAlg::from_id(u16::from_be_bytes([*hi, *lo])).ok_or(CredentialError::BadName)?;
            if digest.len() == alg.size() {
                Ok(())
            } else {
                Err(CredentialError::BadName)
            }
        }
        _ => Err(CredentialError::BadName),
    }
}

/// A `TPM2B_ID_OBJECT` (Part 2 §12.4.3), size field included, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdObject {
    buf: [u8; MAX_ID_OBJECT_SIZE],
    len: usize,
}

impl IdObject {
    /// The `TPM2B_ID_OBJECT` bytes: u16 size ‖ TPM2B_DIGEST(integrityHMAC) ‖ encIdentity.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl fmt::Debug for IdObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdObject(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// A parsed `TPM2B_ID_OBJECT`, borrowing from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdObjectRef<'a> {
    /// `integrityHMAC` (the outer HMAC).
    pub integrity_hmac: &'a [u8],
    /// `encIdentity`: the encrypted `TPM2B_DIGEST` of the credential, size field included.
    pub enc_identity: &'a [u8],
}

impl<'a> IdObjectRef<'a> {
    /// Parse a whole `TPM2B_ID_OBJECT`; trailing bytes are an error.
    pub fn parse(bytes: &'a [u8]) -> codec::Result<IdObjectRef<'a>> {
        let mut r = Reader::new(bytes, "TPM2B_ID_OBJECT");
        let id = Self::read(&mut r)?;
        r.finish()?;
        Ok(id)
    }

    /// Read a `TPM2B_ID_OBJECT` from a reader.
    pub fn read(r: &mut Reader<'a>) -> codec::Result<IdObjectRef<'a>> {
        let outer = r.structure();
        r.set_structure("TPM2B_ID_OBJECT");
        let size = r.u16_be("size")?;
        let mut inner = r.sub(usize::from(size), "credential", "TPMS_ID_OBJECT")?;
        let integrity_hmac = inner.tpm2b(MAX_DIGEST_SIZE, "integrityHMAC")?;
        let enc_identity = inner.rest();
        let at = inner.offset();
        inner.take(enc_identity.len(), "encIdentity")?;
        // encIdentity hides a TPM2B_DIGEST: its u16 size and at most sizeof(TPMU_HA) bytes.
        if enc_identity.len() < 2 || enc_identity.len() > 2 + MAX_CREDENTIAL_SIZE {
            return Err(inner.error_at(
                codec::ErrorKind::InvalidValue {
                    value: enc_identity.len() as u64,
                },
                "encIdentity",
                at,
            ));
        }
        r.set_structure(outer);
        Ok(IdObjectRef {
            integrity_hmac,
            enc_identity,
        })
    }
}

/// Wrap `credential` for the object named `ak_name` under a protector with `name_alg` and
/// symmetric definition `sym`, given the seed: the symmetric half of TPM2_MakeCredential
/// (Part 1 §24.4, §24.5). Returns the `TPM2B_ID_OBJECT`. The credential may be at most the
/// size of a `name_alg` digest, as TPM2_MakeCredential requires. `seed` is used as given;
/// [`make_credential_rsa`] checks its size.
pub fn protect(
    name_alg: HashAlg,
    sym: SymDef,
    seed: &[u8],
    ak_name: &[u8],
    credential: &[u8],
) -> Result<IdObject> {
    if !name_alg.is_supported() {
        return Err(CredentialError::UnsupportedHash { alg: name_alg.id() });
    }
    check_name(ak_name)?;
    if credential.len() > name_alg.size() {
        return Err(CredentialError::CredentialTooLarge {
            size: credential.len(),
            max: name_alg.size(),
        });
    }
    let key_len = sym.aes_key_bytes()?;

    // encIdentity = CFB(symKey, 0, TPM2B_DIGEST(credential))
    let mut sym_key = [0u8; 32];
    let sym_key = sym_key
        .get_mut(..key_len)
        .ok_or(CredentialError::KdfLength { bytes: key_len })?;
    kdfa(name_alg, seed, STORAGE_LABEL, ak_name, &[], sym_key)?;
    let mut enc = [0u8; 2 + MAX_CREDENTIAL_SIZE];
    let enc_len = {
        let mut w = Writer::new(&mut enc);
        w.tpm2b(credential)?;
        w.len()
    };
    let enc_identity = enc.get_mut(..enc_len).ok_or(BufferTooSmall {
        needed: enc_len,
        capacity: MAX_CREDENTIAL_SIZE,
    })?;
    let cfb = aes_cfb(sym_key, enc_identity, true);
    sym_key.iter_mut().for_each(|b| *b = 0);
    cfb?;

    // outerHMAC = HMAC(KDFa(seed, "INTEGRITY"), encIdentity ‖ Name)
    let mut hmac = [0u8; MAX_DIGEST_SIZE];
    let hmac_len = outer_hmac(name_alg, seed, enc_identity, ak_name, &mut hmac)?;
    let hmac = hmac.get(..hmac_len).unwrap_or(&[]);

    let mut out = IdObject {
        buf: [0; MAX_ID_OBJECT_SIZE],
        len: 0,
    };
    let inner_len = 2usize
        .saturating_add(hmac.len())
        .saturating_add(enc_identity.len());
    let inner_len = u16::try_from(inner_len).map_err(|_| BufferTooSmall {
        needed: inner_len,
        capacity: MAX_ID_OBJECT_SIZE,
    })?;
    let mut w = Writer::new(&mut out.buf);
    w.u16_be(inner_len)?;
    w.tpm2b(hmac)?;
    w.bytes(enc_identity)?;
    out.len = w.len();
    Ok(out)
}

fn outer_hmac(
    name_alg: HashAlg,
    seed: &[u8],
    enc_identity: &[u8],
    ak_name: &[u8],
    out: &mut [u8; MAX_DIGEST_SIZE],
) -> Result<usize> {
    let mut hmac_key = [0u8; MAX_DIGEST_SIZE];
    let hmac_key_part = hmac_key.get_mut(..name_alg.size()).unwrap_or(&mut []);
    kdfa(name_alg, seed, INTEGRITY_LABEL, &[], &[], hmac_key_part)?;
    let n = hmac_parts(name_alg, hmac_key_part, &[enc_identity, ak_name], out);
    hmac_key.iter_mut().for_each(|b| *b = 0);
    n
}

/// The credential inside an opened `TPM2B_ID_OBJECT`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    buf: [u8; MAX_CREDENTIAL_SIZE],
    len: usize,
}

impl Credential {
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({} bytes)", self.len)
    }
}

/// The inverse of [`protect`], as TPM2_ActivateCredential does it once it has recovered the
/// seed: check the outer HMAC (in constant time) and decrypt the credential.
pub fn open(
    name_alg: HashAlg,
    sym: SymDef,
    seed: &[u8],
    ak_name: &[u8],
    id_object: &IdObjectRef<'_>,
) -> Result<Credential> {
    use subtle::ConstantTimeEq;
    check_name(ak_name)?;
    let key_len = sym.aes_key_bytes()?;
    let mut hmac = [0u8; MAX_DIGEST_SIZE];
    let n = outer_hmac(name_alg, seed, id_object.enc_identity, ak_name, &mut hmac)?;
    let expected = hmac.get(..n).unwrap_or(&[]);
    if !bool::from(expected.ct_eq(id_object.integrity_hmac)) {
        return Err(CredentialError::Integrity);
    }
    let mut sym_key = [0u8; 32];
    let sym_key = sym_key
        .get_mut(..key_len)
        .ok_or(CredentialError::KdfLength { bytes: key_len })?;
    kdfa(name_alg, seed, STORAGE_LABEL, ak_name, &[], sym_key)?;
    let mut plain = [0u8; 2 + MAX_CREDENTIAL_SIZE];
    let plain = plain
        .get_mut(..id_object.enc_identity.len())
        .ok_or(CredentialError::Integrity)?;
    plain.copy_from_slice(id_object.enc_identity);
    let cfb = aes_cfb(sym_key, plain, false);
    sym_key.iter_mut().for_each(|b| *b = 0);
    cfb?;
    let mut r = Reader::new(plain, "TPM2B_DIGEST");
    let cred = r.tpm2b(MAX_CREDENTIAL_SIZE, "credential")?;
    r.finish()?;
    let mut out = Credential {
        buf: [0; MAX_CREDENTIAL_SIZE],
        len: cred.len(),
    };
    out.buf.iter_mut().zip(cred).for_each(|(o, i)| *o = *i);
    plain.iter_mut().for_each(|b| *b = 0);
    Ok(out)
}

/// A parsed tpm2-tools / Keylime credential blob file: `0xBADCC0DE` ‖ u32 version 1 ‖
/// `TPM2B_ID_OBJECT` ‖ `TPM2B_ENCRYPTED_SECRET` (all big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialBlob<'a> {
    pub id_object: IdObjectRef<'a>,
    /// The `TPM2B_ID_OBJECT` as it appears in the file, size field included.
    pub id_object_bytes: &'a [u8],
    /// The `secret` of the `TPM2B_ENCRYPTED_SECRET`, without its size field.
    pub encrypted_secret: &'a [u8],
}

impl<'a> CredentialBlob<'a> {
    /// Parse a whole credential blob file; trailing bytes are an error.
    pub fn parse(bytes: &'a [u8]) -> codec::Result<CredentialBlob<'a>> {
        let mut r = Reader::new(bytes, "credential blob");
        let at = r.offset();
        let magic = r.u32_be("magic")?;
        if magic != BLOB_MAGIC {
            return Err(r.error_at(codec::ErrorKind::BadMagic { found: magic }, "magic", at));
        }
        let at = r.offset();
        let version = r.u32_be("version")?;
        if version != BLOB_VERSION {
            return Err(r.error_at(
                codec::ErrorKind::Unsupported { value: version },
                "version",
                at,
            ));
        }
        let start = r.rest();
        let id_object = IdObjectRef::read(&mut r)?;
        let id_len = start.len().saturating_sub(r.remaining());
        let id_object_bytes = start.get(..id_len).unwrap_or(&[]);
        r.set_structure("TPM2B_ENCRYPTED_SECRET");
        let encrypted_secret = r.tpm2b(MAX_ENCRYPTED_SECRET_SIZE, "secret")?;
        r.finish()?;
        Ok(CredentialBlob {
            id_object,
            id_object_bytes,
            encrypted_secret,
        })
    }
}

/// Write a credential blob file into `out`; returns its length.
pub fn write_blob(
    id_object: &[u8],
    encrypted_secret: &[u8],
    out: &mut [u8],
) -> core::result::Result<usize, BufferTooSmall> {
    let mut w = Writer::new(out);
    w.u32_be(BLOB_MAGIC)?;
    w.u32_be(BLOB_VERSION)?;
    w.bytes(id_object)?;
    w.tpm2b(encrypted_secret)?;
    Ok(w.len())
}

#[cfg(feature = "rsa")]
pub use self::rsa_ek::*;

#[cfg(feature = "rsa")]
mod rsa_ek {
    use alloc::vec::Vec;

    use super::*;
    use crate::public::strip_zeros;
    use crate::rng::FixedRandom;

    /// The output of [`make_credential_rsa`]: what TPM2_MakeCredential returns.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MadeCredential {
        /// `credentialBlob`: the `TPM2B_ID_OBJECT`, size field included.
        pub id_object: IdObject,
        /// `secret`: the OAEP-encrypted seed, without the `TPM2B_ENCRYPTED_SECRET` size field.
        pub encrypted_secret: Vec<u8>,
    }

    impl MadeCredential {
        /// The `TPM2B_ENCRYPTED_SECRET` bytes (u16 size ‖ secret).
        pub fn encrypted_secret_tpm2b(&self) -> Vec<u8> {
            let len = u16::try_from(self.encrypted_secret.len()).unwrap_or(u16::MAX);
            let mut v = Vec::with_capacity(self.encrypted_secret.len().saturating_add(2));
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&self.encrypted_secret);
            v
        }

        /// The tpm2-tools / Keylime credential blob file (`tpm2_activatecredential -i`).
        pub fn to_blob(&self) -> Vec<u8> {
            let mut v = Vec::with_capacity(MAX_BLOB_SIZE);
            v.extend_from_slice(&BLOB_MAGIC.to_be_bytes());
            v.extend_from_slice(&BLOB_VERSION.to_be_bytes());
            v.extend_from_slice(self.id_object.as_bytes());
            v.extend_from_slice(&self.encrypted_secret_tpm2b());
            v
        }
    }

    /// RSA-OAEP with the key's nameAlg for both OAEP hash and MGF1, label "IDENTITY\0"
    /// (Part 1 Annex B.10.3).
    fn oaep_encrypt(
        name_alg: HashAlg,
        modulus: &[u8],
        exponent: u32,
        msg: &[u8],
        random: &[u8],
    ) -> Result<Vec<u8>> {
        use rsa::BoxedUint;
        let modulus = strip_zeros(modulus);
        let bits = u32::try_from(modulus.len().saturating_mul(8))
            .map_err(|_| CredentialError::UnsupportedKey)?;
        let n =
            BoxedUint::from_be_slice(modulus, bits).map_err(|_| CredentialError::UnsupportedKey)?;
        let e = BoxedUint::from_be_slice(&exponent.to_be_bytes(), 32)
            .map_err(|_| CredentialError::UnsupportedKey)?;
        let key = rsa::PublicKey::new_with_size_limits(n, e, 1024..=4096)
            .map_err(|_| CredentialError::UnsupportedKey)?;
        let mut rng = FixedRandom::new(random);
        let res = match name_alg {
            #[cfg(feature = "sha1")]
            HashAlg::Sha1 => key.encrypt(
                &mut rng,
                rsa::Oaep::<sha1::Sha1>::new_with_label(IDENTITY_LABEL),
                msg,
            ),
            HashAlg::Sha256 => key.encrypt(
                &mut rng,
                rsa::Oaep::<sha2::Sha256>::new_with_label(IDENTITY_LABEL),
                msg,
            ),
            HashAlg::Sha384 => key.encrypt(
                &mut rng,
                rsa::Oaep::<sha2::Sha384>::new_with_label(IDENTITY_LABEL),
                msg,
            ),
            HashAlg::Sha512 => key.encrypt(
                &mut rng,
                rsa::Oaep::<sha2::Sha512>::new_with_label(IDENTITY_LABEL),
                msg,
            ),
            other => {
                return Err(CredentialError::UnsupportedHash { alg: other.id() });
            }
        };
        let ct = res.map_err(|_| CredentialError::Encryption)?;
        if !rng.is_exhausted() {
            return Err(CredentialError::Encryption);
        }
        Ok(ct)
    }

    /// TPM2_MakeCredential (Part 3 §12.6) for an RSA EK, in software.
    ///
    /// `ek` is the EK's public area (restricted decryption RSA key with an AES symmetric
    /// definition, e.g. the TCG default template: RSA-2048, SHA-256, AES-128-CFB); `ak_name`
    /// the AK's Name (alg id ‖ digest); `credential` at most a nameAlg digest long (32 bytes
    /// for SHA-256).
    /// The caller supplies fresh randomness: `seed` and `oaep_random`, each exactly the size
    /// of the EK's nameAlg digest (32 bytes for SHA-256).
    pub fn make_credential_rsa(
        ek: &Public<'_>,
        ak_name: &[u8],
        credential: &[u8],
        seed: &[u8],
        oaep_random: &[u8],
    ) -> Result<MadeCredential> {
        let name_alg = hash_alg(ek.name_alg)?;
        let (modulus, exponent) = match ek.key() {
            Some(PublicKey::Rsa { modulus, exponent }) => (modulus, exponent),
            _ => return Err(CredentialError::UnsupportedKey),
        };
        check_storage_key(ek)?;
        let sym = SymDef::of(ek)?;
        for (what, bytes) in [("seed", seed), ("OAEP randomness", oaep_random)] {
            if bytes.len() != name_alg.size() {
                return Err(CredentialError::RandomnessSize {
                    what,
                    size: bytes.len(),
                    expected: name_alg.size(),
                });
            }
        }
        let id_object = protect(name_alg, sym, seed, ak_name, credential)?;
        let encrypted_secret = oaep_encrypt(name_alg, modulus, exponent, seed, oaep_random)?;
        Ok(MadeCredential {
            id_object,
            encrypted_secret,
        })
    }
}

/// Size of the ECC P-256 encrypted secret: the marshaled `TPMS_ECC_POINT` (two `TPM2B`s of
/// 32 bytes).
pub const ECC_P256_SECRET_SIZE: usize = 2 + 32 + 2 + 32;

/// The output of [`make_credential_ecc_p256`]: what TPM2_MakeCredential returns, inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MadeCredentialEcc {
    /// `credentialBlob`: the `TPM2B_ID_OBJECT`, size field included.
    pub id_object: IdObject,
    secret: [u8; ECC_P256_SECRET_SIZE],
}

impl MadeCredentialEcc {
    /// `secret`: the ephemeral public point Q_e as a marshaled `TPMS_ECC_POINT` (u16 32 ‖ x ‖
    /// u16 32 ‖ y), without the `TPM2B_ENCRYPTED_SECRET` size field.
    pub fn encrypted_secret(&self) -> &[u8] {
        &self.secret
    }

    /// Write the tpm2-tools / Keylime credential blob file (`tpm2_activatecredential -i`)
    /// into `out`; returns its length.
    pub fn write_blob(&self, out: &mut [u8]) -> core::result::Result<usize, BufferTooSmall> {
        write_blob(self.id_object.as_bytes(), &self.secret, out)
    }

    /// The tpm2-tools / Keylime credential blob file.
    #[cfg(feature = "alloc")]
    pub fn to_blob(&self) -> alloc::vec::Vec<u8> {
        let mut buf = [0u8; MAX_BLOB_SIZE];
        let n = self.write_blob(&mut buf).unwrap_or(0);
        buf.get(..n).unwrap_or(&[]).to_vec()
    }
}

/// Left-pad a big-endian coordinate of at most 32 bytes to 32 bytes.
fn p256_coordinate(c: &[u8]) -> Result<[u8; 32]> {
    let c = c.get(c.len().saturating_sub(32)..).unwrap_or(c);
    let pad = 32usize
        .checked_sub(c.len())
        .ok_or(CredentialError::UnsupportedKey)?;
    let mut out = [0u8; 32];
    out.get_mut(pad..)
        .ok_or(CredentialError::UnsupportedKey)?
        .copy_from_slice(c);
    Ok(out)
}

/// TPM2_MakeCredential (Part 3 §12.6) for an ECC NIST P-256 EK, in software, with the ECC
/// secret sharing of Part 1 Annex C.6.1 (the one-pass Diffie-Hellman `C(1, 1, ECC CDH)` of
/// SP 800-56A):
///
/// ```text
/// Q_e  = d_e · G
/// Z    = x(d_e · Q_EK)                       (32 bytes)
/// seed = KDFe(nameAlg, Z, "IDENTITY", x(Q_e), x(Q_EK), 8 · digest size)
/// encryptedSecret = TPMS_ECC_POINT(Q_e)
/// ```
///
/// then the credential is protected with the seed as for any EK ([`protect`], Part 1 §24.4,
/// §24.5). `ek` is the EK's public area (restricted decryption ECC P-256 key with an AES
/// symmetric definition, e.g. the TCG default "Template L-2": SHA-256, AES-128-CFB); `ak_name`
/// the AK's Name; `credential` at most a nameAlg digest long. The caller supplies fresh
/// randomness: `ephemeral_key`, the 32-byte big-endian private scalar d_e, in [1, n-1]
/// (use it once, and forget it). x(Q_EK) is the EK's `unique.ecc.x` as the TPM stores it.
pub fn make_credential_ecc_p256(
    ek: &Public<'_>,
    ak_name: &[u8],
    credential: &[u8],
    ephemeral_key: &[u8],
) -> Result<MadeCredentialEcc> {
    use p256::elliptic_curve::point::AffineCoordinates;

    let name_alg = hash_alg(ek.name_alg)?;
    let (ek_x, ek_y) = match ek.key() {
        Some(PublicKey::Ecc {
            curve: crate::alg::EccCurve::NistP256,
            x,
            y,
        }) => (x, y),
        _ => return Err(CredentialError::UnsupportedKey),
    };
    check_storage_key(ek)?;
    let sym = SymDef::of(ek)?;
    if ephemeral_key.len() != 32 {
        return Err(CredentialError::RandomnessSize {
            what: "ephemeral ECC private key",
            size: ephemeral_key.len(),
            expected: 32,
        });
    }
    // Q_EK, checked to be a point on the curve (and not the identity).
    let mut sec1 = [0u8; 65];
    {
        let mut w = Writer::new(&mut sec1);
        w.bytes(&[4])?;
        w.bytes(&p256_coordinate(ek_x)?)?;
        w.bytes(&p256_coordinate(ek_y)?)?;
    }
    let q_ek =
        p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| CredentialError::UnsupportedKey)?;
    let d_e =
        p256::SecretKey::from_slice(ephemeral_key).map_err(|_| CredentialError::BadEphemeralKey)?;
    let q_e = d_e.public_key();
    // Scalar multiplication on the curve group: no integer arithmetic that could overflow.
    #[allow(clippy::arithmetic_side_effects)]
    let shared = (q_ek.to_projective() * *d_e.to_nonzero_scalar()).to_affine();
    let mut z: [u8; 32] = shared.x().into();
    let q_e_x = q_e.as_affine().x();
    let q_e_y = q_e.as_affine().y();

    let mut seed = [0u8; MAX_DIGEST_SIZE];
    let seed_part = seed
        .get_mut(..name_alg.size())
        .ok_or(CredentialError::UnsupportedHash { alg: name_alg.id() })?;
    let derived = kdfe(name_alg, &z, IDENTITY_KDF_LABEL, &q_e_x, ek_x, seed_part);
    z.iter_mut().for_each(|b| *b = 0);
    let id_object = derived.and_then(|()| protect(name_alg, sym, seed_part, ak_name, credential));
    seed.iter_mut().for_each(|b| *b = 0);
    let id_object = id_object?;

    let mut secret = [0u8; ECC_P256_SECRET_SIZE];
    let mut w = Writer::new(&mut secret);
    w.tpm2b(&q_e_x)?;
    w.tpm2b(&q_e_y)?;
    Ok(MadeCredentialEcc { id_object, secret })
}
