//! `TPM_RC` response codes (TPM 2.0 Library Part 2 §6.6), decoded into names, the handle,
//! parameter or session they concern, and whether the command is worth sending again.
//!
//! Layout (Part 2 §6.6.2, Figures 26 and 27): bit 7 (`RC_FMT1`) selects the format. Format
//! zero: bits 0–6 the error number, bit 8 set for TPM 2.0 codes (`RC_VER1`), bit 10 a vendor
//! code, bit 11 a warning (`RC_WARN`). Format one: bits 0–5 the error number, bit 6 (`P`) set
//! when a parameter is at fault, bits 8–11 (`N`) the parameter number, or else a handle number
//! (1–7) or, with bit 11 set, a session number (`N` − 8). Bits 16 and up are not the TPM's: a
//! TSS layer (resource manager, TCTI) put them there.

use core::fmt;

/// `RC_VER1`: TPM 2.0 format-zero error codes start here.
pub const RC_VER1: u32 = 0x100;
/// `RC_FMT1`: format-one error codes start here.
pub const RC_FMT1: u32 = 0x080;
/// `RC_WARN`: format-zero warnings start here.
pub const RC_WARN: u32 = 0x900;

/// Named codes (the base code: for format one, without `N` and `P`).
pub mod code {
    pub const SUCCESS: u32 = 0x000;
    /// TPM 1.2 `TPM_BADTAG`, which a TPM 2.0 returns for a command with a TPM 1.2 tag.
    pub const BAD_TAG: u32 = 0x01E;
    pub const INITIALIZE: u32 = 0x100;
    pub const FAILURE: u32 = 0x101;
    pub const SEQUENCE: u32 = 0x103;
    pub const PRIVATE: u32 = 0x10B;
    pub const HMAC: u32 = 0x119;
    pub const DISABLED: u32 = 0x120;
    pub const EXCLUSIVE: u32 = 0x121;
    pub const AUTH_TYPE: u32 = 0x124;
    pub const AUTH_MISSING: u32 = 0x125;
    pub const POLICY: u32 = 0x126;
    pub const PCR: u32 = 0x127;
    pub const PCR_CHANGED: u32 = 0x128;
    pub const UPGRADE: u32 = 0x12D;
    pub const TOO_MANY_CONTEXTS: u32 = 0x12E;
    pub const AUTH_UNAVAILABLE: u32 = 0x12F;
    pub const REBOOT: u32 = 0x130;
    pub const UNBALANCED: u32 = 0x131;
    pub const COMMAND_SIZE: u32 = 0x142;
    pub const COMMAND_CODE: u32 = 0x143;
    pub const AUTHSIZE: u32 = 0x144;
    pub const AUTH_CONTEXT: u32 = 0x145;
    pub const NV_RANGE: u32 = 0x146;
    pub const NV_SIZE: u32 = 0x147;
    pub const NV_LOCKED: u32 = 0x148;
    pub const NV_AUTHORIZATION: u32 = 0x149;
    pub const NV_UNINITIALIZED: u32 = 0x14A;
    pub const NV_SPACE: u32 = 0x14B;
    pub const NV_DEFINED: u32 = 0x14C;
    pub const BAD_CONTEXT: u32 = 0x150;
    pub const CPHASH: u32 = 0x151;
    pub const PARENT: u32 = 0x152;
    pub const NEEDS_TEST: u32 = 0x153;
    pub const NO_RESULT: u32 = 0x154;
    pub const SENSITIVE: u32 = 0x155;
    pub const ASYMMETRIC: u32 = 0x081;
    pub const ATTRIBUTES: u32 = 0x082;
    pub const HASH: u32 = 0x083;
    pub const VALUE: u32 = 0x084;
    pub const HIERARCHY: u32 = 0x085;
    pub const KEY_SIZE: u32 = 0x087;
    pub const MGF: u32 = 0x088;
    pub const MODE: u32 = 0x089;
    pub const TYPE: u32 = 0x08A;
    pub const HANDLE: u32 = 0x08B;
    pub const KDF: u32 = 0x08C;
    pub const RANGE: u32 = 0x08D;
    pub const AUTH_FAIL: u32 = 0x08E;
    pub const NONCE: u32 = 0x08F;
    pub const PP: u32 = 0x090;
    pub const SCHEME: u32 = 0x092;
    pub const SIZE: u32 = 0x095;
    pub const SYMMETRIC: u32 = 0x096;
    pub const TAG: u32 = 0x097;
    pub const SELECTOR: u32 = 0x098;
    pub const INSUFFICIENT: u32 = 0x09A;
    pub const SIGNATURE: u32 = 0x09B;
    pub const KEY: u32 = 0x09C;
    pub const POLICY_FAIL: u32 = 0x09D;
    pub const INTEGRITY: u32 = 0x09F;
    pub const TICKET: u32 = 0x0A0;
    pub const RESERVED_BITS: u32 = 0x0A1;
    pub const BAD_AUTH: u32 = 0x0A2;
    pub const EXPIRED: u32 = 0x0A3;
    pub const POLICY_CC: u32 = 0x0A4;
    pub const BINDING: u32 = 0x0A5;
    pub const CURVE: u32 = 0x0A6;
    pub const ECC_POINT: u32 = 0x0A7;
    pub const CONTEXT_GAP: u32 = 0x901;
    pub const OBJECT_MEMORY: u32 = 0x902;
    pub const SESSION_MEMORY: u32 = 0x903;
    pub const MEMORY: u32 = 0x904;
    pub const SESSION_HANDLES: u32 = 0x905;
    pub const OBJECT_HANDLES: u32 = 0x906;
    pub const LOCALITY: u32 = 0x907;
    pub const YIELDED: u32 = 0x908;
    pub const CANCELED: u32 = 0x909;
    pub const TESTING: u32 = 0x90A;
    pub const NV_RATE: u32 = 0x920;
    pub const LOCKOUT: u32 = 0x921;
    pub const RETRY: u32 = 0x922;
    pub const NV_UNAVAILABLE: u32 = 0x923;
}

/// What a format-one code points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The n-th parameter (1–15).
    Parameter(u8),
    /// The n-th handle (1–7).
    Handle(u8),
    /// The n-th authorization session (1–7).
    Session(u8),
}

/// A `TPM_RC` as the TPM (or a layer below it) returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub u32);

impl ResponseCode {
    pub const SUCCESS: ResponseCode = ResponseCode(code::SUCCESS);

    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// The TSS layer that produced the code (bits 16–23); 0 for the TPM itself.
    pub const fn layer(self) -> u8 {
        ((self.0 >> 16) & 0xff) as u8
    }

    /// The code without the layer bits.
    pub const fn tpm_code(self) -> u32 {
        self.0 & 0xffff
    }

    /// Format one (`RC_FMT1` set): the code names a handle, parameter or session.
    pub const fn is_format_one(self) -> bool {
        self.tpm_code() & RC_FMT1 != 0
    }

    /// A TPM 1.2 style code (format zero without `RC_VER1`), e.g. `TPM_BADTAG`.
    pub const fn is_tpm12(self) -> bool {
        let c = self.tpm_code();
        c != 0 && c & (RC_FMT1 | RC_VER1) == 0
    }

    /// A format-zero warning (`RC_WARN`): the command did not run, but may later.
    pub const fn is_warning(self) -> bool {
        let c = self.tpm_code();
        c & RC_FMT1 == 0 && c & RC_VER1 != 0 && c & 0x800 != 0
    }

    /// A vendor-defined code (format zero, bit 10).
    pub const fn is_vendor(self) -> bool {
        let c = self.tpm_code();
        c & RC_FMT1 == 0 && c & RC_VER1 != 0 && c & 0x400 != 0
    }

    /// The code with the handle/parameter/session number removed (format one), or as is.
    pub const fn base(self) -> u32 {
        let c = self.tpm_code();
        if c & RC_FMT1 != 0 {
            RC_FMT1 | (c & 0x3f)
        } else {
            c & 0xfff
        }
    }

    /// Which handle, parameter or session a format-one code concerns (`None` when `N` is 0).
    pub const fn subject(self) -> Option<Subject> {
        let c = self.tpm_code();
        if c & RC_FMT1 == 0 {
            return None;
        }
        let n = ((c >> 8) & 0xf) as u8;
        if c & 0x40 != 0 {
            return if n == 0 {
                None
            } else {
                Some(Subject::Parameter(n))
            };
        }
        match n {
            0 => None,
            1..=7 => Some(Subject::Handle(n)),
            _ => Some(Subject::Session(n & 0x7)),
        }
    }

    /// `TPM_RC_RETRY`, `TPM_RC_TESTING` and `TPM_RC_YIELDED`: send the same command again.
    pub const fn is_retryable(self) -> bool {
        self.layer() == 0 && matches!(self.base(), code::RETRY | code::TESTING | code::YIELDED)
    }

    /// The specification's name, e.g. `TPM_RC_VALUE`, for the base code.
    pub const fn name(self) -> Option<&'static str> {
        if self.layer() != 0 {
            return None;
        }
        Some(match self.base() {
            code::SUCCESS => "TPM_RC_SUCCESS",
            code::BAD_TAG => "TPM_RC_BAD_TAG",
            code::INITIALIZE => "TPM_RC_INITIALIZE",
            code::FAILURE => "TPM_RC_FAILURE",
            code::SEQUENCE => "TPM_RC_SEQUENCE",
            code::PRIVATE => "TPM_RC_PRIVATE",
            code::HMAC => "TPM_RC_HMAC",
            code::DISABLED => "TPM_RC_DISABLED",
            code::EXCLUSIVE => "TPM_RC_EXCLUSIVE",
            code::AUTH_TYPE => "TPM_RC_AUTH_TYPE",
            code::AUTH_MISSING => "TPM_RC_AUTH_MISSING",
            code::POLICY => "TPM_RC_POLICY",
            code::PCR => "TPM_RC_PCR",
            code::PCR_CHANGED => "TPM_RC_PCR_CHANGED",
            code::UPGRADE => "TPM_RC_UPGRADE",
            code::TOO_MANY_CONTEXTS => "TPM_RC_TOO_MANY_CONTEXTS",
            code::AUTH_UNAVAILABLE => "TPM_RC_AUTH_UNAVAILABLE",
            code::REBOOT => "TPM_RC_REBOOT",
            code::UNBALANCED => "TPM_RC_UNBALANCED",
            code::COMMAND_SIZE => "TPM_RC_COMMAND_SIZE",
            code::COMMAND_CODE => "TPM_RC_COMMAND_CODE",
            code::AUTHSIZE => "TPM_RC_AUTHSIZE",
            code::AUTH_CONTEXT => "TPM_RC_AUTH_CONTEXT",
            code::NV_RANGE => "TPM_RC_NV_RANGE",
            code::NV_SIZE => "TPM_RC_NV_SIZE",
            code::NV_LOCKED => "TPM_RC_NV_LOCKED",
            code::NV_AUTHORIZATION => "TPM_RC_NV_AUTHORIZATION",
            code::NV_UNINITIALIZED => "TPM_RC_NV_UNINITIALIZED",
            code::NV_SPACE => "TPM_RC_NV_SPACE",
            code::NV_DEFINED => "TPM_RC_NV_DEFINED",
            code::BAD_CONTEXT => "TPM_RC_BAD_CONTEXT",
            code::CPHASH => "TPM_RC_CPHASH",
            code::PARENT => "TPM_RC_PARENT",
            code::NEEDS_TEST => "TPM_RC_NEEDS_TEST",
            code::NO_RESULT => "TPM_RC_NO_RESULT",
            code::SENSITIVE => "TPM_RC_SENSITIVE",
            code::ASYMMETRIC => "TPM_RC_ASYMMETRIC",
            code::ATTRIBUTES => "TPM_RC_ATTRIBUTES",
            code::HASH => "TPM_RC_HASH",
            code::VALUE => "TPM_RC_VALUE",
            code::HIERARCHY => "TPM_RC_HIERARCHY",
            code::KEY_SIZE => "TPM_RC_KEY_SIZE",
            code::MGF => "TPM_RC_MGF",
            code::MODE => "TPM_RC_MODE",
            code::TYPE => "TPM_RC_TYPE",
            code::HANDLE => "TPM_RC_HANDLE",
            code::KDF => "TPM_RC_KDF",
            code::RANGE => "TPM_RC_RANGE",
            code::AUTH_FAIL => "TPM_RC_AUTH_FAIL",
            code::NONCE => "TPM_RC_NONCE",
            code::PP => "TPM_RC_PP",
            code::SCHEME => "TPM_RC_SCHEME",
            code::SIZE => "TPM_RC_SIZE",
            code::SYMMETRIC => "TPM_RC_SYMMETRIC",
            code::TAG => "TPM_RC_TAG",
            code::SELECTOR => "TPM_RC_SELECTOR",
            code::INSUFFICIENT => "TPM_RC_INSUFFICIENT",
            code::SIGNATURE => "TPM_RC_SIGNATURE",
            code::KEY => "TPM_RC_KEY",
            code::POLICY_FAIL => "TPM_RC_POLICY_FAIL",
            code::INTEGRITY => "TPM_RC_INTEGRITY",
            code::TICKET => "TPM_RC_TICKET",
            code::RESERVED_BITS => "TPM_RC_RESERVED_BITS",
            code::BAD_AUTH => "TPM_RC_BAD_AUTH",
            code::EXPIRED => "TPM_RC_EXPIRED",
            code::POLICY_CC => "TPM_RC_POLICY_CC",
            code::BINDING => "TPM_RC_BINDING",
            code::CURVE => "TPM_RC_CURVE",
            code::ECC_POINT => "TPM_RC_ECC_POINT",
            code::CONTEXT_GAP => "TPM_RC_CONTEXT_GAP",
            code::OBJECT_MEMORY => "TPM_RC_OBJECT_MEMORY",
            code::SESSION_MEMORY => "TPM_RC_SESSION_MEMORY",
            code::MEMORY => "TPM_RC_MEMORY",
            code::SESSION_HANDLES => "TPM_RC_SESSION_HANDLES",
            code::OBJECT_HANDLES => "TPM_RC_OBJECT_HANDLES",
            code::LOCALITY => "TPM_RC_LOCALITY",
            code::YIELDED => "TPM_RC_YIELDED",
            code::CANCELED => "TPM_RC_CANCELED",
            code::TESTING => "TPM_RC_TESTING",
            code::NV_RATE => "TPM_RC_NV_RATE",
            code::LOCKOUT => "TPM_RC_LOCKOUT",
            code::RETRY => "TPM_RC_RETRY",
            code::NV_UNAVAILABLE => "TPM_RC_NV_UNAVAILABLE",
            _ => return None,
        })
    }

    /// What the code means, in a few words, for the common ones.
    pub const fn description(self) -> Option<&'static str> {
        if self.layer() != 0 {
            return None;
        }
        Some(match self.base() {
            code::SUCCESS => "success",
            code::BAD_TAG => "the command's tag is not a TPM 2.0 tag",
            code::INITIALIZE => "TPM not initialized by TPM2_Startup or already initialized",
            code::FAILURE => "the TPM is in failure mode",
            code::SEQUENCE => "improper use of a sequence handle",
            code::DISABLED => "the command is disabled",
            code::AUTH_TYPE => "the authorization session type is not allowed",
            code::AUTH_MISSING => "the command needs an authorization session",
            code::POLICY => "policy failure",
            code::PCR => "PCR check failed",
            code::PCR_CHANGED => "PCRs changed during the policy session",
            code::UPGRADE => "the TPM is in field upgrade mode",
            code::REBOOT => "the TPM needs a reset (TPM2_Shutdown/TPM2_Startup)",
            code::COMMAND_SIZE => "the command size does not match the bytes sent",
            code::COMMAND_CODE => "command code not supported",
            code::AUTHSIZE => "the authorization area size is wrong",
            code::NV_RANGE => "NV offset plus size is out of range",
            code::NV_SIZE => "requested NV size is larger than the TPM allows",
            code::NV_LOCKED => "NV access locked",
            code::NV_AUTHORIZATION => "NV access authorization fails in command actions",
            code::NV_UNINITIALIZED => "NV index not written yet",
            code::NV_SPACE => "insufficient NV space",
            code::NV_DEFINED => "NV index already defined",
            code::NEEDS_TEST => "the TPM needs TPM2_SelfTest before this command",
            code::ASYMMETRIC => "asymmetric algorithm not supported or not correct",
            code::ATTRIBUTES => "inconsistent attributes",
            code::HASH => "hash algorithm not supported or not appropriate",
            code::VALUE => "value is out of range or not correct for the context",
            code::HIERARCHY => "hierarchy is not enabled or not correct for the use",
            code::KEY_SIZE => "key size is not supported",
            code::SCHEME => "unsupported or incompatible scheme",
            code::TYPE => "the type of the value is not appropriate for the use",
            code::HANDLE => "the handle is not correct for the use (or no such object or index)",
            code::RANGE => "value was out of allowed range",
            code::AUTH_FAIL => {
                "the authorization HMAC check failed and the DA counter was incremented"
            }
            code::SIZE => "structure is the wrong size",
            code::SYMMETRIC => "unsupported symmetric algorithm or key size",
            code::TAG => "incorrect structure tag",
            code::SELECTOR => "union selector is incorrect",
            code::INSUFFICIENT => "the TPM was unable to unmarshal a value: too few bytes",
            code::SIGNATURE => "the signature is not valid",
            code::KEY => "key fields are not compatible with the selected use",
            code::POLICY_FAIL => "a policy check failed",
            code::BAD_AUTH => "authorization failure without DA implications",
            code::CURVE => "curve not supported",
            code::ECC_POINT => "point is not on the required curve",
            code::CONTEXT_GAP => "gap for context ID is too large",
            code::OBJECT_MEMORY => "out of memory for object contexts",
            code::SESSION_MEMORY => "out of memory for session contexts",
            code::MEMORY => "out of shared object/session memory or a key generation needs it",
            code::SESSION_HANDLES => "out of session handles",
            code::OBJECT_HANDLES => "out of object handles",
            code::LOCALITY => "bad locality",
            code::YIELDED => "the TPM suspended the operation; send the command again",
            code::CANCELED => "the command was canceled",
            code::TESTING => "the TPM is performing self-tests",
            code::NV_RATE => "the TPM is rate-limiting NV writes",
            code::LOCKOUT => "authorizations for objects subject to DA protection are locked out",
            code::RETRY => "the TPM was not able to start the command; send it again",
            code::NV_UNAVAILABLE => "the command may require writing NV and NV is not accessible",
            _ => return None,
        })
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({:#x})", self.0)?,
            None if self.layer() != 0 => {
                let layer = match self.layer() {
                    1 => "TPM 2.0 feature API",
                    6 => "enhanced system API",
                    7 => "system API",
                    8 => "marshaling",
                    10 => "TCTI",
                    11 => "resource manager",
                    12 => "resource manager (TPM)",
                    _ => "TSS",
                };
                return write!(
                    f,
                    "{layer} error {:#x} (layer {}, code {:#06x})",
                    self.0,
                    self.layer(),
                    self.tpm_code()
                );
            }
            None if self.is_tpm12() => write!(f, "TPM 1.2 error {:#x}", self.0)?,
            None if self.is_vendor() => write!(f, "vendor error {:#x}", self.0)?,
            None if self.is_warning() => write!(f, "warning {:#x}", self.0)?,
            None => write!(f, "error {:#x}", self.0)?,
        }
        match self.subject() {
            Some(Subject::Parameter(n)) => write!(f, " in parameter {n}")?,
            Some(Subject::Handle(n)) => write!(f, " in handle {n}")?,
            Some(Subject::Session(n)) => write!(f, " in session {n}")?,
            None => {}
        }
        if let Some(d) = self.description() {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}
