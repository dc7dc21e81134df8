//! The file formats other tools write, read into owned buffers that the core's borrowed views
//! parse: tpm2-tools' quote, signature, PCR and public-key files, PEM/DER keys, and the
//! Keylime agent's quote string.

use std::path::Path;

use base64::Engine as _;
use trustpool_core::pcr::{parse_tpm2_tools_pcrs, PcrSet};
use trustpool_core::public::{key_from_spki_der, pem_to_der, Public};
use trustpool_core::{AttestationKey, QuoteError, SigScheme, Signature};

/// Errors reading or recognising input files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// (The I/O error is part of the message, not a `source`, so `{:#}` chains do not
    /// repeat it.)
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{what}: {error}")]
    Parse {
        what: String,
        error: trustpool_core::Error,
    },
    #[error("{what}: {msg}")]
    Format { what: String, msg: String },
}

pub type Result<T> = std::result::Result<T, FileError>;

/// Largest input file trustpool reads whole (event logs of big servers are a few MiB).
pub const MAX_FILE_SIZE: u64 = 256 * 1024 * 1024;

/// Read a whole file, bounded by [`MAX_FILE_SIZE`].
pub fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    let io = |error| FileError::Io {
        path: path.display().to_string(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_file() && meta.len() > MAX_FILE_SIZE {
        return Err(FileError::Format {
            what: path.display().to_string(),
            msg: format!(
                "{} bytes is more than the {} allowed",
                meta.len(),
                MAX_FILE_SIZE
            ),
        });
    }
    std::fs::read(path).map_err(io)
}

/// How an attestation key was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AkFormat {
    /// `TPM2B_PUBLIC` (`tpm2_readpublic -f tss -o`).
    Tpm2bPublic,
    /// A bare `TPMT_PUBLIC` (go-attestation, Keylime).
    TpmtPublic,
    /// DER `SubjectPublicKeyInfo`.
    SpkiDer,
    /// PEM `PUBLIC KEY` (`tpm2_readpublic -f pem`).
    SpkiPem,
}

/// An attestation key file held in memory.
#[derive(Debug, Clone)]
pub struct AkFile {
    /// The key bytes: the TPM structure, or DER for SPKI input.
    bytes: Vec<u8>,
    pub format: AkFormat,
}

impl AkFile {
    /// Recognise the format: PEM by its armour, a `TPM2B_PUBLIC` when its size prefix equals
    /// the rest, a `TPMT_PUBLIC` when it parses as one, DER SPKI otherwise.
    pub fn from_bytes(bytes: Vec<u8>, what: &str) -> Result<AkFile> {
        let err = |error| FileError::Parse {
            what: what.to_string(),
            error,
        };
        let trimmed = bytes.trim_ascii_start();
        if trimmed.starts_with(b"-----BEGIN") {
            let mut buf = vec![0u8; bytes.len()];
            let der = pem_to_der(&bytes, &mut buf).map_err(err)?.to_vec();
            key_from_spki_der(&der).map_err(err)?;
            return Ok(AkFile {
                bytes: der,
                format: AkFormat::SpkiPem,
            });
        }
        if let [hi, lo, rest @ ..] = bytes.as_slice() {
            if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len()
                && Public::parse(rest).is_ok()
            {
                return Ok(AkFile {
                    bytes,
                    format: AkFormat::Tpm2bPublic,
                });
            }
        }
        if bytes.first() == Some(&0x30) {
            key_from_spki_der(&bytes).map_err(err)?;
            return Ok(AkFile {
                bytes,
                format: AkFormat::SpkiDer,
            });
        }
        Public::parse(&bytes).map_err(err)?;
        Ok(AkFile {
            bytes,
            format: AkFormat::TpmtPublic,
        })
    }

    pub fn load(path: impl AsRef<Path>) -> Result<AkFile> {
        let p = path.as_ref();
        Self::from_bytes(read(p)?, &p.display().to_string())
    }

    /// The parsed `TPMT_PUBLIC`, for keys given as TPM structures.
    pub fn public(&self) -> Option<Public<'_>> {
        match self.format {
            AkFormat::Tpm2bPublic => Public::parse_tpm2b(&self.bytes).ok(),
            AkFormat::TpmtPublic => Public::parse(&self.bytes).ok(),
            AkFormat::SpkiDer | AkFormat::SpkiPem => None,
        }
    }

    /// The attestation key view the core verifies with.
    pub fn ak(&self) -> std::result::Result<AttestationKey<'_>, QuoteError> {
        match self.public() {
            Some(p) => AttestationKey::from_public(p),
            None => key_from_spki_der(&self.bytes)
                .map(AttestationKey::from_key)
                .map_err(|_| QuoteError::BadKey),
        }
    }
}

/// Parse a signature file: a `TPMT_SIGNATURE`, or when that fails and a scheme is known, the
/// `plain` format of `tpm2_quote -f plain`.
pub fn parse_signature<'a>(
    bytes: &'a [u8],
    plain_scheme: Option<SigScheme>,
    what: &str,
) -> Result<Signature<'a>> {
    match (Signature::parse(bytes), plain_scheme) {
        (Ok(s), _) => Ok(s),
        (Err(_), Some(scheme)) => {
            Signature::from_plain(scheme, bytes).map_err(|error| FileError::Parse {
                what: format!("{what} (plain {scheme})"),
                error,
            })
        }
        (Err(error), None) => Err(FileError::Parse {
            what: what.to_string(),
            error,
        }),
    }
}

/// Parse a PCR values file as tpm2-tools writes it (`tpm2_quote -o`, `tpm2_pcrread -o`).
pub fn parse_pcrs(bytes: &[u8], what: &str) -> Result<PcrSet> {
    let mut set = PcrSet::new();
    parse_tpm2_tools_pcrs(bytes, &mut set).map_err(|error| FileError::Parse {
        what: what.to_string(),
        error,
    })?;
    Ok(set)
}

/// The three parts of a Keylime agent quote string `r<attest>:<signature>:<pcrs>` (each
/// base64; the PCR part is tpm2-tools' serialized PCR file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeylimeQuote {
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
    pub pcrs: Vec<u8>,
}

impl KeylimeQuote {
    pub fn parse(s: &str) -> Result<KeylimeQuote> {
        let fmt_err = |msg: &str| FileError::Format {
            what: "Keylime quote".into(),
            msg: msg.into(),
        };
        let s = s.trim();
        let body = s
            .strip_prefix('r')
            .ok_or_else(|| fmt_err("does not start with 'r' (TPM 2.0 quote)"))?;
        let mut parts = body.split(':');
        let mut next = |name: &str| -> Result<Vec<u8>> {
            let p = parts
                .next()
                .ok_or_else(|| fmt_err(&format!("missing {name} part")))?;
            base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| fmt_err(&format!("{name} part: {e}")))
        };
        let attest = next("attest")?;
        let signature = next("signature")?;
        let pcrs = next("pcrs")?;
        if parts.next().is_some() {
            return Err(fmt_err("more than three ':'-separated parts"));
        }
        Ok(KeylimeQuote {
            attest,
            signature,
            pcrs,
        })
    }
}

impl std::fmt::Display for KeylimeQuote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = base64::engine::general_purpose::STANDARD;
        write!(
            f,
            "r{}:{}:{}",
            b.encode(&self.attest),
            b.encode(&self.signature),
            b.encode(&self.pcrs)
        )
    }
}

/// Parse a nonce given in hex (empty allowed).
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    hex::decode(s.trim()).map_err(|e| FileError::Format {
        what: what.to_string(),
        msg: format!("not hex: {e}"),
    })
}
