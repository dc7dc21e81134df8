//! Endorsement-key certificates (TCG EK Credential Profile 2.x): parse the DER X.509
//! certificate a TPM keeps in NV (RFC 5280), show who issued it for what, and check that it
//! certifies *this* EK, by comparing its `SubjectPublicKeyInfo` with the EK's `TPMT_PUBLIC`
//! (RSA modulus and exponent, or ECC curve and point).
//!
//! No chain or signature verification here: which manufacturer CAs to trust is the server's
//! business. Parsing is lenient where TPM vendors are known to deviate from RFC 5280 (serial
//! numbers longer than 20 octets or negative, time encodings): the certificate is parsed with
//! `x509-cert`'s raw profile.
//!
//! This file uses only `trustpool_core`, `x509_cert` and `thiserror` (no `crate::` paths), so
//! that the fuzz target can build it on its own.

use std::fmt::Write as _;

use trustpool_core::public::{key_from_spki_der, PublicKey};
use trustpool_core::Public;
use x509_cert::der::Encode;

/// X.509 certificate parsed without RFC 5280's serial-number and time-encoding checks.
type RawCertificate = x509_cert::certificate::CertificateInner<x509_cert::certificate::Raw>;

/// Why an EK certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EkCertError {
    #[error("EK certificate is not a DER X.509 certificate: {0}")]
    Der(String),
    #[error("EK certificate key is not supported: {0}")]
    UnsupportedKey(String),
    #[error("EK public area: {0}")]
    EkPublic(String),
    #[error("EK certificate key does not match the EK: {0}")]
    KeyMismatch(String),
}

/// A parsed EK certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkCertificate {
    /// Subject as an RFC 4514 string; often empty in EK certificates, which name the TPM in
    /// a subjectAltName instead (EK Credential Profile §3.2.9).
    pub subject: String,
    /// Issuer as an RFC 4514 string.
    pub issuer: String,
    /// Serial number: the DER INTEGER's content octets in lower-case hex.
    pub serial: String,
    /// notBefore, RFC 3339 (UTC).
    pub not_before: String,
    /// notAfter, RFC 3339 (UTC); `9999-12-31T23:59:59Z` for "no well-defined expiration".
    pub not_after: String,
    /// notBefore in seconds since the Unix epoch.
    pub not_before_unix: u64,
    /// notAfter in seconds since the Unix epoch.
    pub not_after_unix: u64,
    /// The certified key: DER `SubjectPublicKeyInfo`.
    pub spki: Vec<u8>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn strip_zeros(mut s: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = s {
        s = rest;
    }
    s
}

fn unix(t: &x509_cert::time::Time) -> u64 {
    t.to_unix_duration().as_secs()
}

impl EkCertificate {
    /// Parse a DER certificate, as read from the EK certificate NV index. Trailing bytes
    /// after the certificate (some TPMs pad the NV index) are ignored.
    pub fn parse(der: &[u8]) -> Result<EkCertificate, EkCertError> {
        let cert = {
            let mut reader = x509_cert::der::SliceReader::new(der)
                .map_err(|e| EkCertError::Der(e.to_string()))?;
            <RawCertificate as x509_cert::der::Decode>::decode(&mut reader)
                .map_err(|e| EkCertError::Der(e.to_string()))?
        };
        let tbs = cert.tbs_certificate();
        let spki = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| EkCertError::Der(format!("subjectPublicKeyInfo: {e}")))?;
        // The key must be one trustpool can compare (RSA, or ECC on a NIST curve).
        key_from_spki_der(&spki).map_err(|e| EkCertError::UnsupportedKey(e.to_string()))?;
        let validity = tbs.validity();
        Ok(EkCertificate {
            subject: tbs.subject().to_string(),
            issuer: tbs.issuer().to_string(),
            serial: hex(tbs.serial_number().as_bytes()),
            not_before: validity.not_before.to_string(),
            not_after: validity.not_after.to_string(),
            not_before_unix: unix(&validity.not_before),
            not_after_unix: unix(&validity.not_after),
            spki,
        })
    }

    /// The certified key.
    pub fn key(&self) -> Result<PublicKey<'_>, EkCertError> {
        key_from_spki_der(&self.spki).map_err(|e| EkCertError::UnsupportedKey(e.to_string()))
    }

    /// Check that the certificate certifies the EK whose `TPM2B_PUBLIC` is `ek_public` (as
    /// TPM2_CreatePrimary / TPM2_ReadPublic return it, and `tpm2_createek -u` writes it).
    pub fn check_ek(&self, ek_public: &[u8]) -> Result<(), EkCertError> {
        let public =
            Public::parse_tpm2b(ek_public).map_err(|e| EkCertError::EkPublic(e.to_string()))?;
        self.check_public(&public)
    }

    /// [`EkCertificate::check_ek`] for a parsed `TPMT_PUBLIC`.
    pub fn check_public(&self, ek: &Public<'_>) -> Result<(), EkCertError> {
        let ek_key = ek
            .key()
            .ok_or_else(|| EkCertError::EkPublic("not an RSA or ECC key".into()))?;
        let cert_key = self.key()?;
        match (cert_key, ek_key) {
            (
                PublicKey::Rsa {
                    modulus: cm,
                    exponent: ce,
                },
                PublicKey::Rsa {
                    modulus: em,
                    exponent: ee,
                },
            ) => {
                let (cm, em) = (strip_zeros(cm), strip_zeros(em));
                if cm != em {
                    return Err(EkCertError::KeyMismatch(format!(
                        "RSA modulus differs ({} bits in the certificate, {} in the EK)",
                        cert_key.bits(),
                        ek_key.bits()
                    )));
                }
                if ce != ee {
                    return Err(EkCertError::KeyMismatch(format!(
                        "RSA exponent differs ({ce} in the certificate, {ee} in the EK)"
                    )));
                }
                Ok(())
            }
            (
                PublicKey::Ecc {
                    curve: cc,
                    x: cx,
                    y: cy,
                },
                PublicKey::Ecc {
                    curve: ec,
                    x: ex,
                    y: ey,
                },
            ) => {
                if cc != ec {
                    return Err(EkCertError::KeyMismatch(format!(
                        "ECC curve differs ({} in the certificate, {} in the EK)",
                        cc.name(),
                        ec.name()
                    )));
                }
                if strip_zeros(cx) != strip_zeros(ex) || strip_zeros(cy) != strip_zeros(ey) {
                    return Err(EkCertError::KeyMismatch("ECC point differs".into()));
                }
                Ok(())
            }
            (c, e) => Err(EkCertError::KeyMismatch(format!(
                "the certificate has an {} key, the EK is {}",
                c.kind().to_uppercase(),
                e.kind().to_uppercase()
            ))),
        }
    }
}
