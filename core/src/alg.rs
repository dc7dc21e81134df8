//! Algorithm identifiers (`TPM_ALG_ID`, TPM 2.0 Library Part 2 §6.3, and the TCG Algorithm
//! Registry), elliptic curves (`TPM_ECC_CURVE`, Part 2 §6.4), and hashing into fixed-size
//! digests.

use core::fmt;

use sha2::Digest as _;

/// `TPM_ALG_ID` values.
pub mod id {
    pub const ERROR: u16 = 0x0000;
    pub const RSA: u16 = 0x0001;
    pub const TDES: u16 = 0x0003;
    pub const SHA1: u16 = 0x0004;
    pub const HMAC: u16 = 0x0005;
    pub const AES: u16 = 0x0006;
    pub const MGF1: u16 = 0x0007;
    pub const KEYEDHASH: u16 = 0x0008;
    pub const XOR: u16 = 0x000A;
    pub const SHA256: u16 = 0x000B;
    pub const SHA384: u16 = 0x000C;
    pub const SHA512: u16 = 0x000D;
    pub const NULL: u16 = 0x0010;
    pub const SM3_256: u16 = 0x0012;
    pub const SM4: u16 = 0x0013;
    pub const RSASSA: u16 = 0x0014;
    pub const RSAES: u16 = 0x0015;
    pub const RSAPSS: u16 = 0x0016;
    pub const OAEP: u16 = 0x0017;
    pub const ECDSA: u16 = 0x0018;
    pub const ECDH: u16 = 0x0019;
    pub const ECDAA: u16 = 0x001A;
    pub const SM2: u16 = 0x001B;
    pub const ECSCHNORR: u16 = 0x001C;
    pub const ECMQV: u16 = 0x001D;
    pub const KDF1_SP800_56A: u16 = 0x0020;
    pub const KDF2: u16 = 0x0021;
    pub const KDF1_SP800_108: u16 = 0x0022;
    pub const ECC: u16 = 0x0023;
    pub const SYMCIPHER: u16 = 0x0025;
    pub const CAMELLIA: u16 = 0x0026;
    pub const SHA3_256: u16 = 0x0027;
    pub const SHA3_384: u16 = 0x0028;
    pub const SHA3_512: u16 = 0x0029;
    pub const CTR: u16 = 0x0040;
    pub const OFB: u16 = 0x0041;
    pub const CBC: u16 = 0x0042;
    pub const CFB: u16 = 0x0043;
    pub const ECB: u16 = 0x0044;
}

/// The name of a `TPM_ALG_ID`, or `None` when it is not in the registry.
pub fn alg_name(alg: u16) -> Option<&'static str> {
    Some(match alg {
        id::ERROR => "error",
        id::RSA => "rsa",
        id::TDES => "tdes",
        id::SHA1 => "sha1",
        id::HMAC => "hmac",
        id::AES => "aes",
        id::MGF1 => "mgf1",
        id::KEYEDHASH => "keyedhash",
        id::XOR => "xor",
        id::SHA256 => "sha256",
        id::SHA384 => "sha384",
        id::SHA512 => "sha512",
        id::NULL => "null",
        id::SM3_256 => "sm3_256",
        id::SM4 => "sm4",
        id::RSASSA => "rsassa",
        id::RSAES => "rsaes",
        id::RSAPSS => "rsapss",
        id::OAEP => "oaep",
        id::ECDSA => "ecdsa",
        id::ECDH => "ecdh",
        id::ECDAA => "ecdaa",
        id::SM2 => "sm2",
        id::ECSCHNORR => "ecschnorr",
        id::ECMQV => "ecmqv",
        id::KDF1_SP800_56A => "kdf1_sp800_56a",
        id::KDF2 => "kdf2",
        id::KDF1_SP800_108 => "kdf1_sp800_108",
        id::ECC => "ecc",
        id::SYMCIPHER => "symcipher",
        id::CAMELLIA => "camellia",
        id::SHA3_256 => "sha3_256",
        id::SHA3_384 => "sha3_384",
        id::SHA3_512 => "sha3_512",
        id::CTR => "ctr",
        id::OFB => "ofb",
        id::CBC => "cbc",
        id::CFB => "cfb",
        id::ECB => "ecb",
        _ => return None,
    })
}

/// Largest digest any supported or registered hash produces (SHA-512).
pub const MAX_DIGEST_SIZE: usize = 64;

/// A hash algorithm that may name a PCR bank or a signing hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
    Sm3_256,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    /// All hash algorithms, in `TPM_ALG_ID` order.
    pub const ALL: [HashAlg; 8] = [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
        HashAlg::Sm3_256,
        HashAlg::Sha3_256,
        HashAlg::Sha3_384,
        HashAlg::Sha3_512,
    ];

    pub const fn from_id(alg: u16) -> Option<HashAlg> {
        Some(match alg {
            id::SHA1 => HashAlg::Sha1,
            id::SHA256 => HashAlg::Sha256,
            id::SHA384 => HashAlg::Sha384,
            id::SHA512 => HashAlg::Sha512,
            id::SM3_256 => HashAlg::Sm3_256,
            id::SHA3_256 => HashAlg::Sha3_256,
            id::SHA3_384 => HashAlg::Sha3_384,
            id::SHA3_512 => HashAlg::Sha3_512,
            _ => return None,
        })
    }

    pub const fn id(self) -> u16 {
        match self {
            HashAlg::Sha1 => id::SHA1,
            HashAlg::Sha256 => id::SHA256,
            HashAlg::Sha384 => id::SHA384,
            HashAlg::Sha512 => id::SHA512,
            HashAlg::Sm3_256 => id::SM3_256,
            HashAlg::Sha3_256 => id::SHA3_256,
            HashAlg::Sha3_384 => id::SHA3_384,
            HashAlg::Sha3_512 => id::SHA3_512,
        }
    }

    /// Digest size in bytes.
    pub const fn size(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 | HashAlg::Sm3_256 | HashAlg::Sha3_256 => 32,
            HashAlg::Sha384 | HashAlg::Sha3_384 => 48,
            HashAlg::Sha512 | HashAlg::Sha3_512 => 64,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sm3_256 => "sm3_256",
            HashAlg::Sha3_256 => "sha3_256",
            HashAlg::Sha3_384 => "sha3_384",
            HashAlg::Sha3_512 => "sha3_512",
        }
    }

    /// Parse a name as written on command lines and in policies (`sha256`, `SHA-256`, …).
    pub fn from_name(name: &str) -> Option<HashAlg> {
        let mut buf = [0u8; 16];
        let mut n = 0usize;
        for b in name.bytes() {
            if b == b'-' {
                continue;
            }
            let slot = buf.get_mut(n)?;
            *slot = b.to_ascii_lowercase();
            n = n.checked_add(1)?;
        }
        let norm = buf.get(..n)?;
        HashAlg::ALL
            .into_iter()
            .find(|h| h.name().as_bytes() == norm || (norm == b"sm3256" && *h == HashAlg::Sm3_256))
    }

    /// Whether this build can compute the hash.
    pub const fn is_supported(self) -> bool {
        match self {
            HashAlg::Sha1 => cfg!(feature = "sha1"),
            _ => matches!(self, HashAlg::Sha256 | HashAlg::Sha384 | HashAlg::Sha512),
        }
    }

    /// A streaming hasher, or `None` when this build cannot compute the hash.
    pub fn hasher(self) -> Option<Hasher> {
        Some(match self {
            #[cfg(feature = "sha1")]
            HashAlg::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlg::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlg::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            HashAlg::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            _ => return None,
        })
    }

    /// Hash `data` in one go.
    pub fn hash(self, data: &[u8]) -> Option<Digest> {
        let mut h = self.hasher()?;
        h.update(data);
        Some(h.finalize())
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A streaming hash over one of the supported algorithms.
#[derive(Clone)]
pub enum Hasher {
    #[cfg(feature = "sha1")]
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn alg(&self) -> HashAlg {
        match self {
            #[cfg(feature = "sha1")]
            Hasher::Sha1(_) => HashAlg::Sha1,
            Hasher::Sha256(_) => HashAlg::Sha256,
            Hasher::Sha384(_) => HashAlg::Sha384,
            Hasher::Sha512(_) => HashAlg::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            #[cfg(feature = "sha1")]
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finalize(self) -> Digest {
        let alg = self.alg();
        let mut d = Digest::zero(alg);
        // Each output is exactly `alg.size()` bytes, so the slices always match.
        let out = d.bytes.get_mut(..alg.size()).unwrap_or(&mut []);
        let copy = |out: &mut [u8], src: &[u8]| {
            if out.len() == src.len() {
                out.copy_from_slice(src);
            }
        };
        match self {
            #[cfg(feature = "sha1")]
            Hasher::Sha1(h) => copy(out, &h.finalize()),
            Hasher::Sha256(h) => copy(out, &h.finalize()),
            Hasher::Sha384(h) => copy(out, &h.finalize()),
            Hasher::Sha512(h) => copy(out, &h.finalize()),
        }
        d
    }
}

/// A digest of a known algorithm, stored inline (no heap).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    alg: HashAlg,
    bytes: [u8; MAX_DIGEST_SIZE],
}

impl Digest {
    /// The all-zero digest of `alg`.
    pub const fn zero(alg: HashAlg) -> Self {
        Digest {
            alg,
            bytes: [0; MAX_DIGEST_SIZE],
        }
    }

    /// The all-0xFF digest of `alg` (initial value of PCRs 17–22, and IMA's violation value).
    pub fn ones(alg: HashAlg) -> Self {
        let mut d = Digest::zero(alg);
        d.bytes.iter_mut().take(alg.size()).for_each(|b| *b = 0xff);
        d
    }

    /// A digest from bytes; `None` unless `bytes.len()` is the size of `alg`.
    pub fn from_slice(alg: HashAlg, bytes: &[u8]) -> Option<Self> {
        if bytes.len() != alg.size() {
            return None;
        }
        let mut d = Digest::zero(alg);
        d.bytes.iter_mut().zip(bytes).for_each(|(o, i)| *o = *i);
        Some(d)
    }

    pub const fn alg(&self) -> HashAlg {
        self.alg
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.alg.size()).unwrap_or(&[])
    }

    /// Extend: `self = H(self || data)` (TPM 2.0 Part 1 §17.2, PCR extend).
    pub fn extend(&mut self, data: &[u8]) -> bool {
        match self.alg.hasher() {
            Some(mut h) => {
                h.update(self.as_bytes());
                h.update(data);
                *self = h.finalize();
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.alg)?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `TPM_ECC_CURVE` (Part 2 §6.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum EccCurve {
    NistP192,
    NistP224,
    NistP256,
    NistP384,
    NistP521,
    BnP256,
    BnP638,
    Sm2P256,
}

impl EccCurve {
    pub const fn from_id(curve: u16) -> Option<EccCurve> {
        Some(match curve {
            0x0001 => EccCurve::NistP192,
            0x0002 => EccCurve::NistP224,
            0x0003 => EccCurve::NistP256,
            0x0004 => EccCurve::NistP384,
            0x0005 => EccCurve::NistP521,
            0x0010 => EccCurve::BnP256,
            0x0011 => EccCurve::BnP638,
            0x0020 => EccCurve::Sm2P256,
            _ => return None,
        })
    }

    pub const fn id(self) -> u16 {
        match self {
            EccCurve::NistP192 => 0x0001,
            EccCurve::NistP224 => 0x0002,
            EccCurve::NistP256 => 0x0003,
            EccCurve::NistP384 => 0x0004,
            EccCurve::NistP521 => 0x0005,
            EccCurve::BnP256 => 0x0010,
            EccCurve::BnP638 => 0x0011,
            EccCurve::Sm2P256 => 0x0020,
        }
    }

    /// Size in bytes of a coordinate or scalar.
    pub const fn field_size(self) -> usize {
        match self {
            EccCurve::NistP192 => 24,
            EccCurve::NistP224 => 28,
            EccCurve::NistP256 | EccCurve::BnP256 | EccCurve::Sm2P256 => 32,
            EccCurve::NistP384 => 48,
            EccCurve::NistP521 => 66,
            EccCurve::BnP638 => 80,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            EccCurve::NistP192 => "nist_p192",
            EccCurve::NistP224 => "nist_p224",
            EccCurve::NistP256 => "nist_p256",
            EccCurve::NistP384 => "nist_p384",
            EccCurve::NistP521 => "nist_p521",
            EccCurve::BnP256 => "bn_p256",
            EccCurve::BnP638 => "bn_p638",
            EccCurve::Sm2P256 => "sm2_p256",
        }
    }
}

impl fmt::Display for EccCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let d = HashAlg::Sha256.hash(b"abc").unwrap();
        assert_eq!(
            hex::encode(d.as_bytes()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut pcr = Digest::zero(HashAlg::Sha256);
        pcr.extend(&[0u8; 32]);
        assert_eq!(
            hex::encode(pcr.as_bytes()),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
        assert_eq!(HashAlg::from_name("SHA-384"), Some(HashAlg::Sha384));
        assert_eq!(HashAlg::from_name("sha3_256"), Some(HashAlg::Sha3_256));
        assert_eq!(HashAlg::from_name("md5"), None);
    }
}
