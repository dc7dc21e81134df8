//! Talking to a TPM 2.0, with no heap and no I/O of its own: command encoding ([`command`]) and
//! response decoding ([`response`]) per TPM 2.0 Library Part 3, response codes ([`rc`], Part 2
//! §6.6), attestation-key templates ([`AkTemplate`]), the link to the TPM as a [`Transport`]
//! that firmware implements for SPI/I²C TIS, CRB or a mailbox (the std adapter for Linux
//! character devices and simulator sockets), and a [`Tpm`] driver that runs commands through a
//! caller-supplied buffer, retries warnings a bounded number of times, and reads PCRs in as
//! many TPM2_PCR_Read rounds as the TPM needs.
//!
//! ```no_run
//! # use trustpool_core::tpm::*;
//! # use trustpool_core::{HashAlg, PcrSet};
//! # fn f(link: impl Transport) -> Result<(), Error> {
//! let mut tpm = Tpm::new(link, [0u8; DEFAULT_BUFFER_SIZE]);
//! let ak = tpm.create_primary(Hierarchy::Endorsement, AkTemplate::EccP256.public())?.handle;
//! let mut pcrs = PcrSet::new();
//! tpm.read_pcrs(&[(HashAlg::Sha256, 0xff)], &mut pcrs)?;
//! let q = tpm.quote(ak, b"fresh nonce", &[(HashAlg::Sha256, 0xff)])?;
//! let _ = (q.attest, q.signature);
//! tpm.flush_context(ak)?;
//! # Ok(()) }
//! ```

use core::fmt;

use crate::codec::{self, BufferTooSmall};

pub mod command;
mod driver;
mod properties;
pub mod rc;
pub mod response;

pub use command::{SessionType, StartupType};
pub use driver::{PcrBanks, Tpm, DEFAULT_BUFFER_SIZE, DEFAULT_NV_CHUNK, MAX_RETRIES};
pub use properties::{manufacturer_name, PackedText, TpmProperties};
pub use rc::ResponseCode;

/// `TPM_RS_PW`: the password authorization session handle (Part 2 §7.4).
pub const TPM_RS_PW: u32 = 0x4000_0009;

/// `TPM_ST` command and response tags (Part 2 §6.9).
pub mod st {
    pub const NO_SESSIONS: u16 = 0x8001;
    pub const SESSIONS: u16 = 0x8002;
}

/// `TPM_CC` command codes (Part 2 §6.5.2).
pub mod cc {
    pub const ACTIVATE_CREDENTIAL: u32 = 0x0000_0147;
    pub const CERTIFY: u32 = 0x0000_0148;
    pub const CREATE: u32 = 0x0000_0153;
    pub const LOAD: u32 = 0x0000_0157;
    pub const RSA_DECRYPT: u32 = 0x0000_0159;
    pub const NV_READ: u32 = 0x0000_014E;
    pub const POLICY_SECRET: u32 = 0x0000_0151;
    pub const CREATE_PRIMARY: u32 = 0x0000_0131;
    pub const STARTUP: u32 = 0x0000_0144;
    pub const SHUTDOWN: u32 = 0x0000_0145;
    pub const START_AUTH_SESSION: u32 = 0x0000_0176;
    pub const QUOTE: u32 = 0x0000_0158;
    pub const FLUSH_CONTEXT: u32 = 0x0000_0165;
    pub const NV_READ_PUBLIC: u32 = 0x0000_0169;
    pub const READ_PUBLIC: u32 = 0x0000_0173;
    pub const GET_CAPABILITY: u32 = 0x0000_017A;
    pub const GET_RANDOM: u32 = 0x0000_017B;
    pub const PCR_READ: u32 = 0x0000_017E;
    pub const PCR_EXTEND: u32 = 0x0000_0182;
    pub const PCR_RESET: u32 = 0x0000_013D;
}

/// `TPM_RH` permanent handles (Part 2 §7.4).
pub mod rh {
    pub const OWNER: u32 = 0x4000_0001;
    pub const NULL: u32 = 0x4000_0007;
    pub const ENDORSEMENT: u32 = 0x4000_000B;
    pub const PLATFORM: u32 = 0x4000_000C;
}

/// `TPM_CAP` capability selectors (Part 2 §6.12).
pub mod cap {
    pub const ALGS: u32 = 0;
    pub const HANDLES: u32 = 1;
    pub const COMMANDS: u32 = 2;
    pub const PCRS: u32 = 5;
    pub const TPM_PROPERTIES: u32 = 6;
}

/// `TPM_PT` fixed properties (Part 2 §6.13).
pub mod pt {
    pub const FIXED: u32 = 0x100;
    pub const FAMILY_INDICATOR: u32 = FIXED;
    pub const LEVEL: u32 = FIXED + 1;
    pub const REVISION: u32 = FIXED + 2;
    pub const DAY_OF_YEAR: u32 = FIXED + 3;
    pub const YEAR: u32 = FIXED + 4;
    pub const MANUFACTURER: u32 = FIXED + 5;
    pub const VENDOR_STRING_1: u32 = FIXED + 6;
    pub const VENDOR_STRING_2: u32 = FIXED + 7;
    pub const VENDOR_STRING_3: u32 = FIXED + 8;
    pub const VENDOR_STRING_4: u32 = FIXED + 9;
    pub const VENDOR_TPM_TYPE: u32 = FIXED + 10;
    pub const FIRMWARE_VERSION_1: u32 = FIXED + 11;
    pub const FIRMWARE_VERSION_2: u32 = FIXED + 12;
    pub const INPUT_BUFFER: u32 = FIXED + 13;
    pub const PCR_COUNT: u32 = FIXED + 18;
    pub const PCR_SELECT_MIN: u32 = FIXED + 19;
    pub const MAX_COMMAND_SIZE: u32 = FIXED + 30;
    pub const MAX_RESPONSE_SIZE: u32 = FIXED + 31;
    pub const MAX_DIGEST: u32 = FIXED + 32;
    pub const NV_BUFFER_MAX: u32 = FIXED + 44;
    pub const MAX_CAP_BUFFER: u32 = FIXED + 46;
}

/// NV indices of EK certificates (TCG EK Credential Profile 2.5 §2.2.1.4, Table 2).
pub mod nv {
    /// RSA 2048 EK certificate (low range).
    pub const EK_CERT_RSA_2048: u32 = 0x01c0_0002;
    /// ECC NIST P-256 EK certificate (low range).
    pub const EK_CERT_ECC_P256: u32 = 0x01c0_000a;
    /// High range: H-1 RSA 2048, H-2 ECC NIST P-256, H-3 ECC NIST P-384, H-4 ECC NIST P-521,
    /// H-5 ECC SM2 P-256, H-6 RSA 3072, H-7 RSA 4096.
    pub const EK_CERT_RSA_2048_H1: u32 = 0x01c0_0012;
    pub const EK_CERT_ECC_P256_H2: u32 = 0x01c0_0014;
    pub const EK_CERT_ECC_P384_H3: u32 = 0x01c0_0016;
    pub const EK_CERT_ECC_P521_H4: u32 = 0x01c0_0018;
    pub const EK_CERT_ECC_SM2_H5: u32 = 0x01c0_001a;
    pub const EK_CERT_RSA_3072_H6: u32 = 0x01c0_001c;
    pub const EK_CERT_RSA_4096_H7: u32 = 0x01c0_001e;

    /// Every EK certificate index with the key it certifies.
    pub const EK_CERTIFICATES: [(u32, &str); 9] = [
        (EK_CERT_RSA_2048, "rsa2048"),
        (EK_CERT_ECC_P256, "ecc-p256"),
        (EK_CERT_RSA_2048_H1, "rsa2048"),
        (EK_CERT_ECC_P256_H2, "ecc-p256"),
        (EK_CERT_ECC_P384_H3, "ecc-p384"),
        (EK_CERT_ECC_P521_H4, "ecc-p521"),
        (EK_CERT_ECC_SM2_H5, "ecc-sm2-p256"),
        (EK_CERT_RSA_3072_H6, "rsa3072"),
        (EK_CERT_RSA_4096_H7, "rsa4096"),
    ];
}

/// A hierarchy to create primary objects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Hierarchy {
    /// `TPM_RH_OWNER` (storage): its seed changes on TPM2_Clear.
    Owner,
    /// `TPM_RH_ENDORSEMENT`: its seed lives as long as the TPM, so a primary key made from the
    /// same template is the same key after every reboot.
    Endorsement,
    /// `TPM_RH_PLATFORM`: firmware's.
    Platform,
    /// `TPM_RH_NULL`: a new seed at every TPM Reset.
    Null,
}

impl Hierarchy {
    pub const fn handle(self) -> u32 {
        match self {
            Hierarchy::Owner => rh::OWNER,
            Hierarchy::Endorsement => rh::ENDORSEMENT,
            Hierarchy::Platform => rh::PLATFORM,
            Hierarchy::Null => rh::NULL,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Hierarchy::Owner => "owner",
            Hierarchy::Endorsement => "endorsement",
            Hierarchy::Platform => "platform",
            Hierarchy::Null => "null",
        }
    }

    pub fn from_name(s: &str) -> Option<Hierarchy> {
        [
            Hierarchy::Owner,
            Hierarchy::Endorsement,
            Hierarchy::Platform,
            Hierarchy::Null,
        ]
        .into_iter()
        .find(|h| h.name().eq_ignore_ascii_case(s) || h.name().get(..1) == Some(s))
    }
}

/// `TPMA_OBJECT` of the attestation-key templates: fixedTPM | fixedParent |
/// sensitiveDataOrigin | userWithAuth | restricted | sign.
pub const AK_ATTRIBUTES: u32 = 0x0005_0072;

/// RSA-2048 restricted signing key, RSASSA-SHA256, nameAlg SHA-256, empty `unique`.
const RSA2048_AK: [u8; 24] = [
    0x00, 0x01, // type: TPM_ALG_RSA
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x05, 0x00, 0x72, // objectAttributes
    0x00, 0x00, // authPolicy: empty
    0x00, 0x10, // symmetric: TPM_ALG_NULL
    0x00, 0x14, 0x00, 0x0b, // scheme: TPM_ALG_RSASSA, SHA-256
    0x08, 0x00, // keyBits: 2048
    0x00, 0x00, 0x00, 0x00, // exponent: default (65537)
    0x00, 0x00, // unique.rsa: empty
];

/// ECC NIST P-256 restricted signing key, ECDSA-SHA256, nameAlg SHA-256, empty `unique`.
const ECC_P256_AK: [u8; 24] = [
    0x00, 0x23, // type: TPM_ALG_ECC
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x05, 0x00, 0x72, // objectAttributes
    0x00, 0x00, // authPolicy: empty
    0x00, 0x10, // symmetric: TPM_ALG_NULL
    0x00, 0x18, 0x00, 0x0b, // scheme: TPM_ALG_ECDSA, SHA-256
    0x00, 0x03, // curveID: TPM_ECC_NIST_P256
    0x00, 0x10, // kdf: TPM_ALG_NULL
    0x00, 0x00, // unique.x: empty
    0x00, 0x00, // unique.y: empty
];

/// Attestation-key templates: restricted signing keys whose quotes [`crate::Quote::verify`]
/// accepts (Part 2 §12.2.4 `TPMT_PUBLIC`; attributes [`AK_ATTRIBUTES`], no auth policy, empty
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum AkTemplate {
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256.
    Rsa2048,
    /// ECC NIST P-256, ECDSA with SHA-256.
    EccP256,
}

impl AkTemplate {
    /// The marshaled `TPMT_PUBLIC` template.
    pub const fn public(self) -> &'static [u8] {
        match self {
            AkTemplate::Rsa2048 => &RSA2048_AK,
            AkTemplate::EccP256 => &ECC_P256_AK,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            AkTemplate::Rsa2048 => "rsa",
            AkTemplate::EccP256 => "ecc",
        }
    }

    /// `rsa`/`rsa2048` or `ecc`/`ecc256`/`p256`.
    pub fn from_name(s: &str) -> Option<AkTemplate> {
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(s));
        if is(&["rsa", "rsa2048", "rsa-2048"]) {
            Some(AkTemplate::Rsa2048)
        } else if is(&["ecc", "ecc256", "ecc-p256", "p256", "ecdsa"]) {
            Some(AkTemplate::EccP256)
        } else {
            None
        }
    }
}

/// `TPMA_OBJECT` of the TCG default EK templates: fixedTPM | fixedParent |
/// sensitiveDataOrigin | adminWithPolicy | restricted | decrypt.
pub const EK_ATTRIBUTES: u32 = 0x0003_00b2;

/// `authPolicy` of the TCG default EK templates: TPM2_PolicySecret(`TPM_RH_ENDORSEMENT`) with
/// SHA-256 (TCG EK Credential Profile 2.x §B.3.2, "PolicyA").
pub const EK_POLICY_SECRET_ENDORSEMENT: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// TCG EK Credential Profile "Template L-1": RSA 2048, AES-128-CFB, scheme NULL, exponent 0
/// (65537), `unique.rsa` 256 zero bytes.
const RSA2048_EK: [u8; 314] = [
    0x00, 0x01, // type: TPM_ALG_RSA
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x03, 0x00, 0xb2, // objectAttributes: EK_ATTRIBUTES
    0x00, 0x20, // authPolicy: 32 bytes, EK_POLICY_SECRET_ENDORSEMENT
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
    0x00, 0x06, 0x00, 0x80, 0x00, 0x43, // symmetric: TPM_ALG_AES, 128 bits, TPM_ALG_CFB
    0x00, 0x10, // scheme: TPM_ALG_NULL
    0x08, 0x00, // keyBits: 2048
    0x00, 0x00, 0x00, 0x00, // exponent: default (65537)
    0x01, 0x00, // unique.rsa: 256 zero bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// TCG EK Credential Profile "Template L-2": ECC NIST P-256, AES-128-CFB, scheme NULL, kdf
/// NULL, `unique.x` and `unique.y` 32 zero bytes each.
const ECC_P256_EK: [u8; 122] = [
    0x00, 0x23, // type: TPM_ALG_ECC
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x03, 0x00, 0xb2, // objectAttributes: EK_ATTRIBUTES
    0x00, 0x20, // authPolicy: 32 bytes, EK_POLICY_SECRET_ENDORSEMENT
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
    0x00, 0x06, 0x00, 0x80, 0x00, 0x43, // symmetric: TPM_ALG_AES, 128 bits, TPM_ALG_CFB
    0x00, 0x10, // scheme: TPM_ALG_NULL
    0x00, 0x03, // curveID: TPM_ECC_NIST_P256
    0x00, 0x10, // kdf: TPM_ALG_NULL
    0x00, 0x20, // unique.x: 32 zero bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x20, // unique.y: 32 zero bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// Endorsement-key templates: the TCG default EKs of the EK Credential Profile 2.x (low
/// range), as `tpm2_createek` and `swtpm_setup` make them. A restricted decryption key with
/// the PolicySecret(`TPM_RH_ENDORSEMENT`) policy; create it in [`Hierarchy::Endorsement`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum EkTemplate {
    /// "Template L-1": RSA 2048, AES-128-CFB.
    Rsa2048,
    /// "Template L-2": ECC NIST P-256, AES-128-CFB.
    EccP256,
}

impl EkTemplate {
    /// The marshaled `TPMT_PUBLIC` template.
    pub const fn public(self) -> &'static [u8] {
        match self {
            EkTemplate::Rsa2048 => &RSA2048_EK,
            EkTemplate::EccP256 => &ECC_P256_EK,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            EkTemplate::Rsa2048 => "rsa",
            EkTemplate::EccP256 => "ecc",
        }
    }

    /// The NV index of this EK's certificate (low range).
    pub const fn certificate_index(self) -> u32 {
        match self {
            EkTemplate::Rsa2048 => nv::EK_CERT_RSA_2048,
            EkTemplate::EccP256 => nv::EK_CERT_ECC_P256,
        }
    }
}

/// `TPMA_OBJECT` of [`SRK_RSA2048`]: fixedTPM | fixedParent | sensitiveDataOrigin |
/// userWithAuth | noDA | restricted | decrypt.
pub const SRK_ATTRIBUTES: u32 = 0x0003_0472;

/// A storage primary key (SRK) of the owner hierarchy, the template of the TCG TPM v2.0
/// Provisioning Guidance §7.5.1 ("RSA 2048 SRK"): RSA 2048, nameAlg SHA-256, AES-128-CFB,
/// scheme NULL, exponent 0 (65537), `unique.rsa` 256 zero bytes, no auth policy, empty
/// password. A restricted decryption key, so it can be the parent of TPM2_Create and
/// TPM2_Load. Made with TPM2_CreatePrimary in [`Hierarchy::Owner`] it is the same key every
/// time until TPM2_Clear changes the owner seed, so children saved as (`TPM2B_PUBLIC`,
/// `TPM2B_PRIVATE`) load again after a reboot.
pub const SRK_RSA2048: [u8; 282] = [
    0x00, 0x01, // type: TPM_ALG_RSA
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x03, 0x04, 0x72, // objectAttributes: SRK_ATTRIBUTES
    0x00, 0x00, // authPolicy: empty
    0x00, 0x06, 0x00, 0x80, 0x00, 0x43, // symmetric: TPM_ALG_AES, 128 bits, TPM_ALG_CFB
    0x00, 0x10, // scheme: TPM_ALG_NULL
    0x08, 0x00, // keyBits: 2048
    0x00, 0x00, 0x00, 0x00, // exponent: default (65537)
    0x01, 0x00, // unique.rsa: 256 zero bytes
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// `TPMA_OBJECT` of [`BINDING_KEY_RSA2048`]: fixedTPM | fixedParent | sensitiveDataOrigin |
/// userWithAuth | decrypt (not restricted, not sign).
pub const BINDING_KEY_ATTRIBUTES: u32 = 0x0002_0072;

/// A binding key: a non-exportable RSA 2048 decryption key made with TPM2_Create under a
/// storage parent (e.g. [`SRK_RSA2048`]), nameAlg SHA-256, scheme NULL (so TPM2_RSA_Decrypt
/// names the scheme: OAEP with SHA-256), symmetric NULL, exponent 0 (65537), no auth policy,
/// empty password. [`crate::certify::verify_certification`] accepts its certification and
/// [`crate::certify::wrap_rsa_oaep`] wraps data keys to it.
pub const BINDING_KEY_RSA2048: [u8; 22] = [
    0x00, 0x01, // type: TPM_ALG_RSA
    0x00, 0x0b, // nameAlg: TPM_ALG_SHA256
    0x00, 0x02, 0x00, 0x72, // objectAttributes: BINDING_KEY_ATTRIBUTES
    0x00, 0x00, // authPolicy: empty
    0x00, 0x10, // symmetric: TPM_ALG_NULL
    0x00, 0x10, // scheme: TPM_ALG_NULL
    0x08, 0x00, // keyBits: 2048
    0x00, 0x00, 0x00, 0x00, // exponent: default (65537)
    0x00, 0x00, // unique.rsa: empty
];

/// Why the link to the TPM failed. Transports map their own failures onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// Sending or receiving failed; `os_error` is an errno where the platform has one.
    Io {
        what: &'static str,
        os_error: Option<i32>,
    },
    /// No answer in time.
    Timeout { what: &'static str },
    /// The other end closed the link.
    Closed,
    /// The response does not fit the buffer.
    ResponseTooLarge { size: usize, capacity: usize },
    /// The link's own framing was violated (a simulator's acknowledgement, a TIS status, a
    /// size the link reported that the bytes contradict).
    Protocol { what: &'static str, value: u32 },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Io {
                what,
                os_error: Some(e),
            } => write!(f, "{what}: OS error {e}"),
            TransportError::Io {
                what,
                os_error: None,
            } => write!(f, "{what}: I/O error"),
            TransportError::Timeout { what } => write!(f, "{what}: timed out"),
            TransportError::Closed => f.write_str("the TPM link was closed"),
            TransportError::ResponseTooLarge { size, capacity } => write!(
                f,
                "response of {size} bytes does not fit the {capacity}-byte buffer"
            ),
            TransportError::Protocol { what, value } => {
                write!(f, "link protocol error: {what} ({value:#x})")
            }
        }
    }
}

/// The link to a TPM: send one command, receive its whole response.
///
/// An implementation writes `cmd` as is, waits for the TPM, and copies the complete response
/// into `rsp`, returning its length. Framing of the link (TIS FIFO bursts, CRB buffers,
/// simulator headers) is the transport's business; TPM response codes are not.
pub trait Transport {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError>;

    /// Called before a command is sent again after `TPM_RC_RETRY`, `TPM_RC_TESTING` or
    /// `TPM_RC_YIELDED`; `attempt` counts from 1. Wait here if the platform can (the TPM is
    /// busy); the default returns at once.
    fn retry_delay(&mut self, attempt: u32) {
        let _ = attempt;
    }
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        (**self).transact(cmd, rsp)
    }

    fn retry_delay(&mut self, attempt: u32) {
        (**self).retry_delay(attempt);
    }
}

/// Why a TPM command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The link failed.
    Transport(TransportError),
    /// The caller's buffer cannot hold the command (or an output the caller sized).
    BufferTooSmall(BufferTooSmall),
    /// The TPM answered with an error or warning (after the driver's retries, for warnings).
    Tpm(ResponseCode),
    /// The response is malformed: wrong size or tag, truncated, trailing bytes, bad values.
    Response(codec::Error),
    /// TPM2_PCR_Read returned none of these PCRs: the bank is not allocated, or the PCRs do
    /// not exist.
    PcrNotRead { bank: u16, mask: u32 },
    /// The TPM did not deliver what was asked although every response was well formed.
    Incomplete(&'static str),
}

impl Error {
    /// The TPM's response code, when the TPM returned one.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            Error::Tpm(rc) => Some(*rc),
            _ => None,
        }
    }
}

impl From<BufferTooSmall> for Error {
    fn from(e: BufferTooSmall) -> Self {
        Error::BufferTooSmall(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Error::Transport(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transport(e) => write!(f, "transport: {e}"),
            Error::BufferTooSmall(e) => write!(f, "command buffer: {e}"),
            Error::Tpm(rc) => write!(f, "TPM returned {rc}"),
            Error::Response(e) => write!(f, "malformed response: {e}"),
            Error::PcrNotRead { bank, mask } => {
                let name = crate::alg::alg_name(*bank).unwrap_or("unknown");
                write!(
                    f,
                    "the TPM returned no value for {name} PCRs {mask:#010x}: bank not allocated or PCRs not implemented"
                )
            }
            Error::Incomplete(what) => write!(f, "incomplete answer: {what}"),
        }
    }
}
