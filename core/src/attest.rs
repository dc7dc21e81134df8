//! `TPMS_ATTEST` (TPM 2.0 Library Part 2 §10.12.12) and the `TPMU_ATTEST` bodies it carries.

use crate::alg::MAX_DIGEST_SIZE;
use crate::codec::{ErrorKind, Reader, Result};
use crate::pcr::PcrSelection;

/// `TPM_GENERATED_VALUE`: the TPM puts this at the start of everything it signs itself.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;

/// `TPMI_ST_ATTEST` values (Part 2 §6.9).
pub mod st {
    pub const ATTEST_NV: u16 = 0x8014;
    pub const ATTEST_COMMAND_AUDIT: u16 = 0x8015;
    pub const ATTEST_SESSION_AUDIT: u16 = 0x8016;
    pub const ATTEST_CERTIFY: u16 = 0x8017;
    pub const ATTEST_QUOTE: u16 = 0x8018;
    pub const ATTEST_TIME: u16 = 0x8019;
    pub const ATTEST_CREATION: u16 = 0x801A;
    pub const ATTEST_NV_DIGEST: u16 = 0x801C;
}

/// `sizeof(TPMU_NAME)`: a digest Name (alg + digest) or a handle.
pub const MAX_NAME_SIZE: usize = 2 + MAX_DIGEST_SIZE;
/// `sizeof(TPMT_HA)` as bound for `TPM2B_DATA` (extraData).
pub const MAX_DATA_SIZE: usize = 2 + MAX_DIGEST_SIZE;
/// `MAX_NV_BUFFER_SIZE` as commonly implemented.
pub const MAX_NV_BUFFER_SIZE: usize = 2048;
/// Bound on a whole `TPMS_ATTEST` (`TPM2B_ATTEST` is sized by `sizeof(TPMS_ATTEST)`).
pub const MAX_ATTEST_SIZE: usize = 4096;

/// `TPMS_CLOCK_INFO` (Part 2 §10.11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since it was last cleared.
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    /// Whether `clock` could not have been rolled back.
    pub safe: bool,
}

/// `TPMS_QUOTE_INFO` (Part 2 §10.12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteInfo<'a> {
    pub pcr_select: PcrSelection<'a>,
    pub pcr_digest: &'a [u8],
}

/// `TPMS_CERTIFY_INFO` (Part 2 §10.12.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertifyInfo<'a> {
    pub name: &'a [u8],
    pub qualified_name: &'a [u8],
}

/// The `TPMU_ATTEST` body for each `TPMI_ST_ATTEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attested<'a> {
    Quote(QuoteInfo<'a>),
    Certify(CertifyInfo<'a>),
    /// `TPMS_CREATION_INFO`
    Creation {
        object_name: &'a [u8],
        creation_hash: &'a [u8],
    },
    /// `TPMS_COMMAND_AUDIT_INFO`
    CommandAudit {
        audit_counter: u64,
        digest_alg: u16,
        audit_digest: &'a [u8],
        command_digest: &'a [u8],
    },
    /// `TPMS_SESSION_AUDIT_INFO`
    SessionAudit {
        exclusive_session: bool,
        session_digest: &'a [u8],
    },
    /// `TPMS_TIME_ATTEST_INFO`
    Time {
        time: u64,
        clock_info: ClockInfo,
        firmware_version: u64,
    },
    /// `TPMS_NV_CERTIFY_INFO`
    Nv {
        index_name: &'a [u8],
        offset: u16,
        nv_contents: &'a [u8],
    },
    /// `TPMS_NV_DIGEST_CERTIFY_INFO`
    NvDigest {
        index_name: &'a [u8],
        nv_digest: &'a [u8],
    },
}

impl Attested<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Attested::Quote(_) => "TPM_ST_ATTEST_QUOTE",
            Attested::Certify(_) => "TPM_ST_ATTEST_CERTIFY",
            Attested::Creation { .. } => "TPM_ST_ATTEST_CREATION",
            Attested::CommandAudit { .. } => "TPM_ST_ATTEST_COMMAND_AUDIT",
            Attested::SessionAudit { .. } => "TPM_ST_ATTEST_SESSION_AUDIT",
            Attested::Time { .. } => "TPM_ST_ATTEST_TIME",
            Attested::Nv { .. } => "TPM_ST_ATTEST_NV",
            Attested::NvDigest { .. } => "TPM_ST_ATTEST_NV_DIGEST",
        }
    }
}

/// A parsed `TPMS_ATTEST`, borrowing from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attest<'a> {
    /// `TPMI_ST_ATTEST`
    pub attest_type: u16,
    /// Name of the signing key, qualified by its hierarchy.
    pub qualified_signer: &'a [u8],
    /// The caller's nonce.
    pub extra_data: &'a [u8],
    pub clock_info: ClockInfo,
    /// TPM vendor-specific firmware version.
    pub firmware_version: u64,
    pub attested: Attested<'a>,
}

const S: &str = "TPMS_ATTEST";

fn read_clock_info(r: &mut Reader<'_>) -> Result<ClockInfo> {
    let clock = r.u64_be("clockInfo.clock")?;
    let reset_count = r.u32_be("clockInfo.resetCount")?;
    let restart_count = r.u32_be("clockInfo.restartCount")?;
    let at = r.offset();
    let safe = match r.u8("clockInfo.safe")? {
        0 => false,
        1 => true,
        v => {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: u64::from(v),
                },
                "clockInfo.safe",
                at,
            ))
        }
    };
    Ok(ClockInfo {
        clock,
        reset_count,
        restart_count,
        safe,
    })
}

impl<'a> Attest<'a> {
    /// Parse a whole `TPMS_ATTEST` (as `tpm2_quote -m` writes it: no `TPM2B` size prefix).
    /// The magic must be `TPM_GENERATED_VALUE`; trailing bytes are an error.
    pub fn parse(bytes: &'a [u8]) -> Result<Attest<'a>> {
        let mut r = Reader::new(bytes, S);
        if bytes.len() > MAX_ATTEST_SIZE {
            return Err(r.error(
                ErrorKind::TooLarge {
                    size: bytes.len(),
                    max: MAX_ATTEST_SIZE,
                },
                "(whole)",
            ));
        }
        let a = Self::read(&mut r)?;
        r.finish()?;
        Ok(a)
    }

    /// Read a `TPMS_ATTEST` from a reader.
    pub fn read(r: &mut Reader<'a>) -> Result<Attest<'a>> {
        let at = r.offset();
        let magic = r.u32_be("magic")?;
        if magic != TPM_GENERATED_VALUE {
            return Err(r.error_at(ErrorKind::BadMagic { found: magic }, "magic", at));
        }
        let type_at = r.offset();
        let attest_type = r.u16_be("type")?;
        let qualified_signer = r.tpm2b(MAX_NAME_SIZE, "qualifiedSigner")?;
        let extra_data = r.tpm2b(MAX_DATA_SIZE, "extraData")?;
        let clock_info = read_clock_info(r)?;
        let firmware_version = r.u64_be("firmwareVersion")?;
        let attested = match attest_type {
            st::ATTEST_QUOTE => {
                let pcr_select = PcrSelection::read(r)?;
                let pcr_digest = r.tpm2b(MAX_DIGEST_SIZE, "attested.quote.pcrDigest")?;
                Attested::Quote(QuoteInfo {
                    pcr_select,
                    pcr_digest,
                })
            }
            st::ATTEST_CERTIFY => Attested::Certify(CertifyInfo {
                name: r.tpm2b(MAX_NAME_SIZE, "attested.certify.name")?,
                qualified_name: r.tpm2b(MAX_NAME_SIZE, "attested.certify.qualifiedName")?,
            }),
            st::ATTEST_CREATION => Attested::Creation {
                object_name: r.tpm2b(MAX_NAME_SIZE, "attested.creation.objectName")?,
                creation_hash: r.tpm2b(MAX_DIGEST_SIZE, "attested.creation.creationHash")?,
            },
            st::ATTEST_COMMAND_AUDIT => Attested::CommandAudit {
                audit_counter: r.u64_be("attested.commandAudit.auditCounter")?,
                digest_alg: r.u16_be("attested.commandAudit.digestAlg")?,
                audit_digest: r.tpm2b(MAX_DIGEST_SIZE, "attested.commandAudit.auditDigest")?,
                command_digest: r.tpm2b(MAX_DIGEST_SIZE, "attested.commandAudit.commandDigest")?,
            },
            st::ATTEST_SESSION_AUDIT => {
                let at = r.offset();
                let exclusive_session = match r.u8("attested.sessionAudit.exclusiveSession")? {
                    0 => false,
                    1 => true,
                    v => {
                        return Err(r.error_at(
                            ErrorKind::InvalidValue {
                                value: u64::from(v),
                            },
                            "attested.sessionAudit.exclusiveSession",
                            at,
                        ))
                    }
                };
                Attested::SessionAudit {
                    exclusive_session,
                    session_digest: r
                        .tpm2b(MAX_DIGEST_SIZE, "attested.sessionAudit.sessionDigest")?,
                }
            }
            st::ATTEST_TIME => Attested::Time {
                time: r.u64_be("attested.time.time.time")?,
                clock_info: read_clock_info(r)?,
                firmware_version: r.u64_be("attested.time.firmwareVersion")?,
            },
            st::ATTEST_NV => Attested::Nv {
                index_name: r.tpm2b(MAX_NAME_SIZE, "attested.nv.indexName")?,
                offset: r.u16_be("attested.nv.offset")?,
                nv_contents: r.tpm2b(MAX_NV_BUFFER_SIZE, "attested.nv.nvContents")?,
            },
            st::ATTEST_NV_DIGEST => Attested::NvDigest {
                index_name: r.tpm2b(MAX_NAME_SIZE, "attested.nvDigest.indexName")?,
                nv_digest: r.tpm2b(MAX_DIGEST_SIZE, "attested.nvDigest.nvDigest")?,
            },
            other => {
                return Err(r.error_at(
                    ErrorKind::Unsupported {
                        value: u32::from(other),
                    },
                    "type",
                    type_at,
                ))
            }
        };
        Ok(Attest {
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            attested,
        })
    }

    /// The quote body, when this is a `TPM_ST_ATTEST_QUOTE`.
    pub fn quote(&self) -> Option<&QuoteInfo<'a>> {
        match &self.attested {
            Attested::Quote(q) => Some(q),
            _ => None,
        }
    }
}
