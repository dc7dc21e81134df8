//! Public keys: `TPMT_PUBLIC` / `TPM2B_PUBLIC` (TPM 2.0 Library Part 2 §12.2), the TPM Name of
//! an object (Part 1 §16), and X.509 `SubjectPublicKeyInfo` (RFC 5280 §4.1.2.7) in DER or PEM.

use crate::alg::{id, Digest, EccCurve, HashAlg};
use crate::codec::{Error, ErrorKind, Reader, Result};

/// `MAX_RSA_KEY_BYTES` for the largest modulus trustpool accepts (RSA-4096).
pub const MAX_RSA_KEY_BYTES: usize = 512;
/// `MAX_ECC_KEY_BYTES` (P-521 / BN-638 coordinates).
pub const MAX_ECC_KEY_BYTES: usize = 128;
/// `sizeof(TPMT_PUBLIC)` bound for the largest supported key.
pub const MAX_PUBLIC_SIZE: usize = 1024;

/// `TPMA_OBJECT` bits (Part 2 §8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    pub const FIXED_TPM: u32 = 1 << 1;
    pub const ST_CLEAR: u32 = 1 << 2;
    pub const FIXED_PARENT: u32 = 1 << 4;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    pub const USER_WITH_AUTH: u32 = 1 << 6;
    pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
    pub const NO_DA: u32 = 1 << 10;
    pub const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    pub const RESTRICTED: u32 = 1 << 16;
    pub const DECRYPT: u32 = 1 << 17;
    pub const SIGN_ENCRYPT: u32 = 1 << 18;

    pub const fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    /// A restricted signing key: may only sign digests the TPM itself produced (an AK).
    pub const fn is_restricted_signing(self) -> bool {
        self.has(Self::RESTRICTED) && self.has(Self::SIGN_ENCRYPT) && !self.has(Self::DECRYPT)
    }

    /// A key that never leaves the TPM it was made in.
    pub const fn is_fixed_tpm(self) -> bool {
        self.has(Self::FIXED_TPM)
    }
}

/// A signature scheme with its hash (`TPMT_SIG_SCHEME` as used by keys and signatures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SigScheme {
    RsaSsa(HashAlg),
    RsaPss(HashAlg),
    Ecdsa(HashAlg),
}

impl SigScheme {
    pub const fn hash(self) -> HashAlg {
        match self {
            SigScheme::RsaSsa(h) | SigScheme::RsaPss(h) | SigScheme::Ecdsa(h) => h,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            SigScheme::RsaSsa(_) => "rsassa",
            SigScheme::RsaPss(_) => "rsapss",
            SigScheme::Ecdsa(_) => "ecdsa",
        }
    }

    pub const fn alg_id(self) -> u16 {
        match self {
            SigScheme::RsaSsa(_) => id::RSASSA,
            SigScheme::RsaPss(_) => id::RSAPSS,
            SigScheme::Ecdsa(_) => id::ECDSA,
        }
    }
}

impl core::fmt::Display for SigScheme {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}-{}", self.name(), self.hash())
    }
}

/// The mathematical public key, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKey<'a> {
    /// Modulus big-endian, without leading zero bytes; exponent (65537 when the TPM says 0).
    Rsa { modulus: &'a [u8], exponent: u32 },
    /// Affine coordinates, big-endian, as the TPM or SPKI gave them.
    Ecc {
        curve: EccCurve,
        x: &'a [u8],
        y: &'a [u8],
    },
}

impl PublicKey<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa { .. } => "rsa",
            PublicKey::Ecc { .. } => "ecc",
        }
    }

    /// Key size in bits (modulus bits for RSA, curve size for ECC).
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Rsa { modulus, .. } => {
                let lead = modulus.first().map_or(0, |b| b.leading_zeros() as usize);
                modulus.len().saturating_mul(8).saturating_sub(lead)
            }
            PublicKey::Ecc { curve, .. } => curve.field_size().saturating_mul(8),
        }
    }
}

/// Parameters of a parsed `TPMT_PUBLIC` other than the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicParams<'a> {
    /// `TPM_ALG_RSA` / `TPM_ALG_ECC` with the key's scheme (`None` for `TPM_ALG_NULL`, or an
    /// encryption/key-exchange scheme) and the symmetric algorithm (`TPM_ALG_NULL` for
    /// signing keys).
    Asymmetric {
        key: PublicKey<'a>,
        scheme: Option<SigScheme>,
        /// The raw scheme id, as the key states it.
        scheme_id: u16,
        symmetric: u16,
    },
    /// `TPM_ALG_KEYEDHASH`: scheme id and the `unique` digest.
    KeyedHash { scheme: u16, unique: &'a [u8] },
    /// `TPM_ALG_SYMCIPHER`: algorithm id and the `unique` digest.
    SymCipher { algorithm: u16, unique: &'a [u8] },
}

/// A parsed `TPMT_PUBLIC`, borrowing from its bytes (Part 2 §12.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Public<'a> {
    /// The exact `TPMT_PUBLIC` bytes the Name is computed over.
    pub bytes: &'a [u8],
    pub type_alg: u16,
    pub name_alg: u16,
    pub attributes: ObjectAttributes,
    pub auth_policy: &'a [u8],
    pub params: PublicParams<'a>,
}

const S: &str = "TPMT_PUBLIC";

fn read_hash_alg(r: &mut Reader<'_>, field: &'static str) -> Result<HashAlg> {
    let at = r.offset();
    let alg = r.u16_be(field)?;
    HashAlg::from_id(alg).ok_or(r.error_at(ErrorKind::UnknownAlgorithm { alg }, field, at))
}

/// `TPMT_SYM_DEF_OBJECT`: algorithm, and keyBits and mode unless NULL.
fn read_sym_def_object(r: &mut Reader<'_>) -> Result<u16> {
    let alg = r.u16_be("symmetric.algorithm")?;
    if alg != id::NULL {
        r.u16_be("symmetric.keyBits")?;
        r.u16_be("symmetric.mode")?;
    }
    Ok(alg)
}

/// `TPMT_RSA_SCHEME` / `TPMT_ECC_SCHEME` (Part 2 §11.2.4, §11.2.5): the scheme id, the scheme
/// as a signing scheme where it is one, and the details consumed.
fn read_asym_scheme(r: &mut Reader<'_>) -> Result<(u16, Option<SigScheme>)> {
    let at = r.offset();
    let scheme = r.u16_be("scheme.scheme")?;
    let sig = match scheme {
        id::NULL | id::RSAES => None,
        id::RSASSA => Some(SigScheme::RsaSsa(read_hash_alg(
            r,
            "scheme.details.hashAlg",
        )?)),
        id::RSAPSS => Some(SigScheme::RsaPss(read_hash_alg(
            r,
            "scheme.details.hashAlg",
        )?)),
        id::ECDSA => Some(SigScheme::Ecdsa(read_hash_alg(
            r,
            "scheme.details.hashAlg",
        )?)),
        id::OAEP | id::SM2 | id::ECSCHNORR | id::ECDH | id::ECMQV => {
            read_hash_alg(r, "scheme.details.hashAlg")?;
            None
        }
        id::ECDAA => {
            read_hash_alg(r, "scheme.details.hashAlg")?;
            r.u16_be("scheme.details.count")?;
            None
        }
        alg => return Err(r.error_at(ErrorKind::UnknownAlgorithm { alg }, "scheme.scheme", at)),
    };
    Ok((scheme, sig))
}

impl<'a> Public<'a> {
    /// Parse a whole `TPMT_PUBLIC`; trailing bytes are an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Public<'a>> {
        let mut r = Reader::new(bytes, S);
        let p = Self::read(&mut r)?;
        r.finish()?;
        Ok(p)
    }

    /// Parse a `TPM2B_PUBLIC` (u16 size then `TPMT_PUBLIC`), as `tpm2_readpublic -o` writes it.
    pub fn parse_tpm2b(bytes: &'a [u8]) -> Result<Public<'a>> {
        let mut r = Reader::new(bytes, "TPM2B_PUBLIC");
        let size = usize::from(r.u16_be("size")?);
        let mut inner = r.sub(size, "publicArea", S)?;
        r.finish()?;
        let p = Self::read(&mut inner)?;
        inner.finish()?;
        Ok(p)
    }

    /// Read a `TPMT_PUBLIC` from a reader.
    pub fn read(r: &mut Reader<'a>) -> Result<Public<'a>> {
        let outer = r.structure();
        r.set_structure(S);
        let start_rest = r.rest();
        let start = r.position();
        let type_at = r.offset();
        let type_alg = r.u16_be("type")?;
        let name_alg = r.u16_be("nameAlg")?;
        let attributes = ObjectAttributes(r.u32_be("objectAttributes")?);
        let auth_policy = r.tpm2b(crate::alg::MAX_DIGEST_SIZE, "authPolicy")?;
        let params = match type_alg {
            id::RSA => {
                let symmetric = read_sym_def_object(r)?;
                let (scheme_id, scheme) = read_asym_scheme(r)?;
                let key_bits = r.u16_be("parameters.rsaDetail.keyBits")?;
                let exponent = match r.u32_be("parameters.rsaDetail.exponent")? {
                    0 => 65537,
                    e => e,
                };
                let at = r.offset();
                let modulus = r.tpm2b(MAX_RSA_KEY_BYTES, "unique.rsa")?;
                if modulus.len().saturating_mul(8) != usize::from(key_bits) {
                    return Err(r.error_at(
                        ErrorKind::InvalidValue {
                            value: modulus.len() as u64,
                        },
                        "unique.rsa",
                        at,
                    ));
                }
                PublicParams::Asymmetric {
                    key: PublicKey::Rsa { modulus, exponent },
                    scheme,
                    scheme_id,
                    symmetric,
                }
            }
            id::ECC => {
                let symmetric = read_sym_def_object(r)?;
                let (scheme_id, scheme) = read_asym_scheme(r)?;
                let at = r.offset();
                let curve_id = r.u16_be("parameters.eccDetail.curveID")?;
                let curve = EccCurve::from_id(curve_id).ok_or(r.error_at(
                    ErrorKind::Unsupported {
                        value: u32::from(curve_id),
                    },
                    "parameters.eccDetail.curveID",
                    at,
                ))?;
                let kdf = r.u16_be("parameters.eccDetail.kdf.scheme")?;
                if kdf != id::NULL {
                    read_hash_alg(r, "parameters.eccDetail.kdf.details.hashAlg")?;
                }
                let x = r.tpm2b(MAX_ECC_KEY_BYTES, "unique.ecc.x")?;
                let y = r.tpm2b(MAX_ECC_KEY_BYTES, "unique.ecc.y")?;
                PublicParams::Asymmetric {
                    key: PublicKey::Ecc { curve, x, y },
                    scheme,
                    scheme_id,
                    symmetric,
                }
            }
            id::KEYEDHASH => {
                let scheme = r.u16_be("parameters.keyedHashDetail.scheme")?;
                match scheme {
                    id::NULL => {}
                    id::HMAC => {
                        read_hash_alg(r, "parameters.keyedHashDetail.details.hashAlg")?;
                    }
                    id::XOR => {
                        read_hash_alg(r, "parameters.keyedHashDetail.details.hashAlg")?;
                        r.u16_be("parameters.keyedHashDetail.details.kdf")?;
                    }
                    alg => {
                        return Err(r.error(
                            ErrorKind::UnknownAlgorithm { alg },
                            "parameters.keyedHashDetail.scheme",
                        ))
                    }
                }
                let unique = r.tpm2b(crate::alg::MAX_DIGEST_SIZE, "unique.keyedHash")?;
                PublicParams::KeyedHash { scheme, unique }
            }
            id::SYMCIPHER => {
                let algorithm = read_sym_def_object(r)?;
                let unique = r.tpm2b(crate::alg::MAX_DIGEST_SIZE, "unique.sym")?;
                PublicParams::SymCipher { algorithm, unique }
            }
            alg => return Err(r.error_at(ErrorKind::UnknownAlgorithm { alg }, "type", type_at)),
        };
        let len = r.position().saturating_sub(start);
        let bytes = start_rest.get(..len).unwrap_or(&[]);
        r.set_structure(outer);
        Ok(Public {
            bytes,
            type_alg,
            name_alg,
            attributes,
            auth_policy,
            params,
        })
    }

    /// The key, for RSA and ECC objects.
    pub fn key(&self) -> Option<PublicKey<'a>> {
        match self.params {
            PublicParams::Asymmetric { key, .. } => Some(key),
            _ => None,
        }
    }

    /// The signing scheme the key is restricted to, if any.
    pub fn scheme(&self) -> Option<SigScheme> {
        match self.params {
            PublicParams::Asymmetric { scheme, .. } => scheme,
            _ => None,
        }
    }

    /// The object's TPM Name: nameAlg (big-endian) ‖ H_nameAlg(TPMT_PUBLIC) (Part 1 §16).
    /// `None` when nameAlg is not a hash this build computes.
    pub fn name(&self) -> Option<Name> {
        let alg = HashAlg::from_id(self.name_alg)?;
        let digest = alg.hash(self.bytes)?;
        Some(Name { digest })
    }
}

/// A TPM object Name with a digest (not a handle Name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Name {
    pub digest: Digest,
}

impl Name {
    /// The Name as bytes: algorithm id then digest, written into `out` (at most 66 bytes).
    pub fn to_bytes(&self, out: &mut [u8; 2 + crate::alg::MAX_DIGEST_SIZE]) -> usize {
        let [hi, lo] = self.digest.alg().id().to_be_bytes();
        out[0] = hi;
        out[1] = lo;
        let d = self.digest.as_bytes();
        out.iter_mut().skip(2).zip(d).for_each(|(o, i)| *o = *i);
        d.len().saturating_add(2)
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04x}", self.digest.alg().id())?;
        for b in self.digest.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Strip leading zero bytes of a big-endian integer.
pub(crate) fn strip_zeros(mut s: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = s {
        s = rest;
    }
    s
}

const OID_RSA: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.132.0.35");

const SPKI: &str = "SubjectPublicKeyInfo";

fn der_error(field: &'static str, e: der::Error) -> Error {
    let offset = e
        .position()
        .map_or(0, |p| usize::try_from(u32::from(p)).unwrap_or(0));
    Error::new(ErrorKind::InvalidValue { value: 0 }, SPKI, field, offset)
}

/// Parse a DER `SubjectPublicKeyInfo` (RSA or EC on P-256/P-384/P-521).
pub fn key_from_spki_der(der_bytes: &[u8]) -> Result<PublicKey<'_>> {
    use der::Decode;
    let spki =
        spki::SubjectPublicKeyInfoRef::from_der(der_bytes).map_err(|e| der_error("(DER)", e))?;
    let key_bytes = spki.subject_public_key.as_bytes().ok_or(Error::new(
        ErrorKind::InvalidValue { value: 0 },
        SPKI,
        "subjectPublicKey",
        0,
    ))?;
    if spki.algorithm.oid == OID_RSA {
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
        let mut reader =
            der::SliceReader::new(key_bytes).map_err(|e| der_error("subjectPublicKey", e))?;
        let (n, e) = der::Reader::sequence(&mut reader, |r| {
            let n = der::asn1::UintRef::decode(r)?;
            let e = der::asn1::UintRef::decode(r)?;
            Ok::<_, der::Error>((n, e))
        })
        .map_err(|e| der_error("RSAPublicKey", e))?;
        let e_bytes = strip_zeros(e.as_bytes());
        if e_bytes.len() > 4 {
            return Err(Error::new(
                ErrorKind::TooLarge {
                    size: e_bytes.len(),
                    max: 4,
                },
                SPKI,
                "RSAPublicKey.publicExponent",
                0,
            ));
        }
        let exponent = e_bytes
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        let modulus = strip_zeros(n.as_bytes());
        if modulus.len() > MAX_RSA_KEY_BYTES {
            return Err(Error::new(
                ErrorKind::TooLarge {
                    size: modulus.len(),
                    max: MAX_RSA_KEY_BYTES,
                },
                SPKI,
                "RSAPublicKey.modulus",
                0,
            ));
        }
        Ok(PublicKey::Rsa { modulus, exponent })
    } else if spki.algorithm.oid == OID_EC {
        let curve_oid: der::asn1::ObjectIdentifier =
            spki.algorithm.parameters_oid().map_err(|_| {
                Error::new(
                    ErrorKind::InvalidValue { value: 0 },
                    SPKI,
                    "algorithm.parameters",
                    0,
                )
            })?;
        let curve = if curve_oid == OID_P256 {
            EccCurve::NistP256
        } else if curve_oid == OID_P384 {
            EccCurve::NistP384
        } else if curve_oid == OID_P521 {
            EccCurve::NistP521
        } else {
            return Err(Error::new(
                ErrorKind::Unsupported { value: 0 },
                SPKI,
                "algorithm.parameters",
                0,
            ));
        };
        let n = curve.field_size();
        match key_bytes.split_first() {
            Some((4, xy)) if xy.len() == n.saturating_mul(2) => {
                let (x, y) = xy.split_at(n);
                Ok(PublicKey::Ecc { curve, x, y })
            }
            _ => Err(Error::new(
                ErrorKind::InvalidValue {
                    value: key_bytes.len() as u64,
                },
                SPKI,
                "subjectPublicKey (uncompressed point)",
                0,
            )),
        }
    } else {
        Err(Error::new(
            ErrorKind::Unsupported { value: 0 },
            SPKI,
            "algorithm.algorithm",
            0,
        ))
    }
}

/// Decode a PEM `PUBLIC KEY` into `buf`, returning the DER bytes (no allocation).
pub fn pem_to_der<'b>(pem: &[u8], buf: &'b mut [u8]) -> Result<&'b [u8]> {
    let (label, der_bytes) = pem_rfc7468::decode(pem, buf)
        .map_err(|_| Error::new(ErrorKind::InvalidValue { value: 0 }, "PEM", "(encoding)", 0))?;
    if label != "PUBLIC KEY" {
        return Err(Error::new(
            ErrorKind::Unsupported { value: 0 },
            "PEM",
            "label",
            0,
        ));
    }
    Ok(der_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TPMT_PUBLIC for an ECC P-256 ECDSA-SHA256 restricted signing key.
    pub(crate) fn ecc_public() -> [u8; 88] {
        let mut v = [0u8; 88];
        let head: [u8; 22] = [
            0x00, 0x23, 0x00, 0x0b, 0x00, 0x05, 0x00, 0x72, 0x00,
            0x00, // type, nameAlg, attrs, authPolicy
            0x00, 0x10, // symmetric NULL
            0x00, 0x18, 0x00, 0x0b, // ECDSA SHA256
            0x00, 0x03, // NIST P-256
            0x00, 0x10, // kdf NULL
            0x00, 0x20, // x size
        ];
        v[..22].copy_from_slice(&head);
        v[22..54].fill(0x11);
        v[54] = 0x00;
        v[55] = 0x20;
        v[56..88].fill(0x22);
        v
    }

    #[test]
    fn parses_ecc_public() {
        let b = ecc_public();
        let p = Public::parse(&b).unwrap();
        assert!(p.attributes.is_restricted_signing());
        assert_eq!(p.scheme(), Some(SigScheme::Ecdsa(HashAlg::Sha256)));
        assert_eq!(p.bytes.len(), 88);
        match p.key().unwrap() {
            PublicKey::Ecc { curve, x, y } => {
                assert_eq!(curve, EccCurve::NistP256);
                assert_eq!(x, &[0x11; 32]);
                assert_eq!(y, &[0x22; 32]);
            }
            _ => panic!("not ecc"),
        }
        let name = p.name().unwrap();
        assert_eq!(name.digest.alg(), HashAlg::Sha256);
        assert_eq!(name.digest, HashAlg::Sha256.hash(&b).unwrap());
        let e = Public::parse(&b[..50]).unwrap_err();
        assert_eq!(
            (e.structure, e.field, e.offset),
            ("TPMT_PUBLIC", "unique.ecc.x", 22)
        );
    }
}
