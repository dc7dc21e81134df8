//! trustpool-capi: the C API of trustpool-core.
//!
//! Conventions, for every function:
//! - Inputs are `(const uint8_t *ptr, size_t len)` pairs owned by the caller and only read
//!   during the call. `ptr` may be NULL only when `len` is 0 (an empty input).
//! - Outputs are caller-owned structs passed by pointer; nothing is allocated (except inside
//!   RSA verification, feature `rsa`) and nothing is kept after a call returns.
//! - Return values are `int`: TP_OK (0) or a negative `TP_ERR_*` code;
//!   tp_strerror() describes a code. Functions that count return the count (>= 0) instead of
//!   `TP_OK`.
//!
//! Build: `#![no_std]`. On hosted targets (Linux, …) std is linked in for its panic handler
//! (panics cannot happen by design: trustpool-core denies panicking code) and its allocator
//! (RSA); link the static library with the system libraries `cargo rustc --print
//! native-static-libs` lists (`-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc` on glibc). On bare
//! metal (`target_os = "none"`) nothing of std is used; enable feature `panic-handler` for a
//! static library.
//!
//! Stack (bare metal): the library keeps its state on the stack. Frame sizes on thumbv7em,
//! release, no LTO (from the disassembly, not measured by painting): `tp_quote_verify` 6.6 KiB
//! (the parsed PCR values) plus the ECDSA check below it (the Cortex-M4 firmware in
//! benches/cortex-m measures 8.5 KiB for a whole P-256 quote check, with LTO and the PCR
//! values in a static); `tp_eventlog_replay` 6.7 KiB plus `Replay::new` 7.9 KiB;
//! `tp_appraise` 11 KiB (PCR values, verdict) plus core's `appraise` 18.7 KiB plus its replay
//! (`Replay::log`, `for_log`, `new`: 22 KiB) and signature check: plan on 64 KiB for
//! appraisal until core builds its replay state in place.
//!
//! Functions: tp_quote_verify() (a quote, its nonce and PCR values), tp_eventlog_foreach()
//! and tp_eventlog_replay() (TCG PC Client event logs), tp_pcrs_compare() (replay against
//! the quote), tp_appraise() (all of it against a compiled whitelist, to a verdict with
//! findings), tp_strerror(), tp_rule_name(), tp_version(), tp_features().
#![no_std]
#![allow(non_camel_case_types)] // C type names: tp_pcrs, tp_event, …

#[cfg(not(target_os = "none"))]
extern crate std;

use core::ffi::{c_char, c_int, c_void, CStr};

use trustpool_core::appraise::{appraise, Detail, Evidence, Finding, Rule, Severity, Verdict};
use trustpool_core::eventlog::{
    EventLog, EventLogError, Replay, Workarounds, ALL_PCRS, MAX_ALGORITHMS,
};
use trustpool_core::pcr::{parse_tpm2_tools_pcrs, PcrValues, MAX_BANKS, NUM_PCRS};
use trustpool_core::whitelist::Whitelist;
use trustpool_core::{alg::MAX_DIGEST_SIZE, HashAlg};
use trustpool_core::{AttestationKey, PcrSet, Public, Quote, QuoteError};
use trustpool_core::{Digest, RustCrypto, Signature};

mod ffi;

// Return codes. Keep them stable: C programs compile them in.

/// Success.
pub const TP_OK: c_int = 0;
/// A pointer is NULL with a non-zero length, a required pointer is NULL or misaligned, or a
/// length is out of range.
pub const TP_ERR_INVALID_ARGUMENT: c_int = -1;
/// The attestation key (TPM2B_PUBLIC) is malformed.
pub const TP_ERR_AK_MALFORMED: c_int = -2;
/// The attestation key is not a restricted signing key (or not an RSA or ECC key).
pub const TP_ERR_AK_NOT_RESTRICTED_SIGNING: c_int = -3;
/// The quote (TPMS_ATTEST) is malformed: truncated, trailing bytes, bad values.
pub const TP_ERR_ATTEST_MALFORMED: c_int = -4;
/// The signature (TPMT_SIGNATURE) is malformed or uses an unsupported scheme.
pub const TP_ERR_SIGNATURE_MALFORMED: c_int = -5;
/// TPMS_ATTEST.magic is not TPM_GENERATED_VALUE: the TPM did not make this structure.
pub const TP_ERR_BAD_MAGIC: c_int = -6;
/// The attestation is not a quote.
pub const TP_ERR_NOT_A_QUOTE: c_int = -7;
/// The signature's scheme or hash does not match the attestation key.
pub const TP_ERR_SCHEME_MISMATCH: c_int = -8;
/// The signature does not verify with the attestation key.
pub const TP_ERR_BAD_SIGNATURE: c_int = -9;
/// This build cannot check the key type, curve or hash (see tp_features()).
pub const TP_ERR_UNSUPPORTED: c_int = -10;
/// The attestation key's public key is invalid.
pub const TP_ERR_BAD_KEY: c_int = -11;
/// The quote's extraData is not the expected nonce.
pub const TP_ERR_NONCE_MISMATCH: c_int = -12;
/// The PCR values file (tpm2_quote -o) is malformed.
pub const TP_ERR_PCR_FILE_MALFORMED: c_int = -13;
/// A PCR the quote selects has no value in the PCR values file.
pub const TP_ERR_PCR_MISSING: c_int = -14;
/// The PCR values do not hash to the quote's pcrDigest.
pub const TP_ERR_PCR_DIGEST_MISMATCH: c_int = -15;
/// The event log is malformed or empty.
pub const TP_ERR_EVENTLOG_MALFORMED: c_int = -16;
/// A replayed PCR value differs from the quoted one.
pub const TP_ERR_PCR_MISMATCH: c_int = -17;
/// A quoted PCR has no replayed value (bank not replayed, or an event lacked its digest).
pub const TP_ERR_PCR_NOT_REPLAYED: c_int = -18;

/// Appraisal: the evidence is not trusted (the verdict says why).
pub const TP_ERR_UNTRUSTED: c_int = -19;
/// The compiled whitelist is malformed (or of an unsupported version).
pub const TP_ERR_WHITELIST_MALFORMED: c_int = -20;

/// PCRs per bank.
pub const TP_NUM_PCRS: usize = 24;
/// Largest digest (SHA-512).
pub const TP_MAX_DIGEST_SIZE: usize = 64;
/// Banks a tp_pcrs holds.
pub const TP_MAX_BANKS: usize = 4;
/// Digests an event can carry.
pub const TP_MAX_EVENT_DIGESTS: usize = 8;

const _: () = assert!(TP_NUM_PCRS == NUM_PCRS);
const _: () = assert!(TP_MAX_DIGEST_SIZE == MAX_DIGEST_SIZE);
const _: () = assert!(TP_MAX_BANKS == MAX_BANKS);
const _: () = assert!(TP_MAX_EVENT_DIGESTS == MAX_ALGORITHMS);

/// tp_features() bit: RSA attestation keys.
pub const TP_FEATURE_RSA: u32 = 1;
/// tp_features() bit: ECDSA P-384 attestation keys.
pub const TP_FEATURE_P384: u32 = 2;
/// tp_features() bit: SHA-1 (quotes and replay of SHA-1 banks).
pub const TP_FEATURE_SHA1: u32 = 4;

/// The PCR values of one bank.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_pcr_bank {
    /// The bank's TPM_ALG_ID (0x0004 SHA-1, 0x000B SHA-256, 0x000C SHA-384, 0x000D SHA-512).
    pub alg: u16,
    /// Digest size of the bank, in bytes.
    pub digest_len: u16,
    /// Bit i set: `values[i]` holds PCR i (its first `digest_len` bytes).
    pub present: u32,
    pub values: [[u8; TP_MAX_DIGEST_SIZE]; TP_NUM_PCRS],
}

/// PCR values of up to TP_MAX_BANKS banks (about 6 KiB).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_pcrs {
    /// Banks used, at the start of `banks`.
    pub bank_count: u32,
    pub banks: [tp_pcr_bank; TP_MAX_BANKS],
}

/// One digest of an event; `bytes` points into the caller's log buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_event_digest {
    /// TPM_ALG_ID.
    pub alg: u16,
    pub len: u16,
    pub bytes: *const u8,
}

/// One event of a TCG PC Client event log. Pointers point into the caller's log buffer and
/// are valid while it is.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_event {
    /// Position in the log; 0 is the first record (the Spec ID event of a crypto-agile log).
    pub index: u32,
    /// pcrIndex (0xFFFFFFFF: none).
    pub pcr: u32,
    /// eventType (PFP Table 9: 0x3 EV_NO_ACTION, 0x80000001 EV_EFI_VARIABLE_DRIVER_CONFIG, …).
    pub event_type: u32,
    /// Digests used, at the start of `digests`.
    pub digest_count: u32,
    /// Byte offset of the record in the log.
    pub offset: usize,
    pub data: *const u8,
    pub data_len: usize,
    pub digests: [tp_event_digest; TP_MAX_EVENT_DIGESTS],
}

/// Called once per event by tp_eventlog_foreach(); return 0 to go on, anything else to stop.
pub type tp_event_callback =
    Option<unsafe extern "C" fn(event: *const tp_event, ctx: *mut c_void) -> c_int>;

fn quote_error_code(e: &QuoteError) -> c_int {
    match e {
        QuoteError::Attest(_) => TP_ERR_ATTEST_MALFORMED,
        QuoteError::Signature(_) => TP_ERR_SIGNATURE_MALFORMED,
        QuoteError::BadMagic { .. } => TP_ERR_BAD_MAGIC,
        QuoteError::NotAQuote { .. } => TP_ERR_NOT_A_QUOTE,
        QuoteError::KeyNotRestrictedSigning { .. } => TP_ERR_AK_NOT_RESTRICTED_SIGNING,
        QuoteError::SchemeMismatch { .. } => TP_ERR_SCHEME_MISMATCH,
        QuoteError::BadSignature => TP_ERR_BAD_SIGNATURE,
        QuoteError::Unsupported => TP_ERR_UNSUPPORTED,
        QuoteError::BadKey => TP_ERR_BAD_KEY,
        QuoteError::NonceMismatch => TP_ERR_NONCE_MISMATCH,
        QuoteError::PcrMissing { .. } => TP_ERR_PCR_MISSING,
        QuoteError::PcrDigestMismatch => TP_ERR_PCR_DIGEST_MISMATCH,
    }
}

fn eventlog_error_code(_: &EventLogError) -> c_int {
    TP_ERR_EVENTLOG_MALFORMED
}

/// A description of a return code (a static string; never NULL).
#[no_mangle]
pub extern "C" fn tp_strerror(code: c_int) -> *const c_char {
    let s: &CStr = match code {
        TP_OK => c"success",
        TP_ERR_INVALID_ARGUMENT => c"invalid argument (NULL pointer with a non-zero length, NULL or misaligned struct pointer, or length out of range)",
        TP_ERR_AK_MALFORMED => c"malformed attestation key (TPM2B_PUBLIC)",
        TP_ERR_AK_NOT_RESTRICTED_SIGNING => c"attestation key is not a restricted signing key",
        TP_ERR_ATTEST_MALFORMED => c"malformed quote (TPMS_ATTEST)",
        TP_ERR_SIGNATURE_MALFORMED => c"malformed or unsupported signature (TPMT_SIGNATURE)",
        TP_ERR_BAD_MAGIC => c"quote magic is not TPM_GENERATED_VALUE: not generated by a TPM",
        TP_ERR_NOT_A_QUOTE => c"attestation is not a quote (TPM_ST_ATTEST_QUOTE)",
        TP_ERR_SCHEME_MISMATCH => c"signature scheme does not match the attestation key",
        TP_ERR_BAD_SIGNATURE => c"quote signature does not verify with the attestation key",
        TP_ERR_UNSUPPORTED => c"key type, curve or hash not supported by this build",
        TP_ERR_BAD_KEY => c"invalid attestation public key",
        TP_ERR_NONCE_MISMATCH => c"quote nonce (extraData) does not match the expected nonce",
        TP_ERR_PCR_FILE_MALFORMED => c"malformed PCR values file",
        TP_ERR_PCR_MISSING => c"a quoted PCR has no value in the PCR values file",
        TP_ERR_PCR_DIGEST_MISMATCH => c"PCR values do not match the quote's PCR digest",
        TP_ERR_EVENTLOG_MALFORMED => c"malformed or empty event log",
        TP_ERR_PCR_MISMATCH => c"a replayed PCR value differs from the quoted value",
        TP_ERR_PCR_NOT_REPLAYED => c"a quoted PCR has no replayed value",
        TP_ERR_UNTRUSTED => c"not trusted: the evidence fails the whitelist (see the verdict's findings)",
        TP_ERR_WHITELIST_MALFORMED => c"malformed or unsupported compiled whitelist",
        _ => c"unknown trustpool error code",
    };
    s.as_ptr()
}

/// The library version, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn tp_version() -> *const c_char {
    const VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"?",
        };
    VERSION.as_ptr()
}

/// What this build supports: TP_FEATURE_* bits.
#[no_mangle]
pub extern "C" fn tp_features() -> u32 {
    let mut f = 0;
    if cfg!(feature = "rsa") {
        f |= TP_FEATURE_RSA;
    }
    if cfg!(feature = "p384") {
        f |= TP_FEATURE_P384;
    }
    if cfg!(feature = "sha1") {
        f |= TP_FEATURE_SHA1;
    }
    f
}

/// Copy the PCR values of `alg` out of `values` into `slot`.
fn fill_bank(slot: &mut tp_pcr_bank, alg: HashAlg, values: &impl PcrValues) {
    slot.alg = alg.id();
    slot.digest_len = alg.size() as u16;
    slot.present = 0;
    for (i, value) in (0u8..).zip(slot.values.iter_mut()) {
        if let Some(d) = values.pcr(alg, i) {
            value
                .iter_mut()
                .zip(d.as_bytes())
                .for_each(|(o, b)| *o = *b);
            slot.present |= 1 << i;
        }
    }
}

/// Verify a TPM 2.0 quote completely: parse the attestation key, check it is a restricted
/// signing key whose scheme matches the signature, verify the signature over `attest`, check
/// that `attest` is a quote whose extraData equals `nonce`, parse the PCR values file and
/// check that the values hash to the quote's pcrDigest.
///
/// - `ak_tpm2b`: the attestation key as TPM2B_PUBLIC (`tpm2_readpublic -f tss`).
/// - `attest`, `sig`: TPMS_ATTEST and TPMT_SIGNATURE (`tpm2_quote -m`, `-s`).
/// - `nonce`: the expected extraData (`tpm2_quote -q`), raw bytes.
/// - `pcrs_file`: the PCR values file (`tpm2_quote -o`).
/// - `quoted`: NULL, or where to store the verified PCR values (for tp_pcrs_compare());
///   written only on success.
///
/// Returns TP_OK or the first failure's TP_ERR_* code.
///
/// # Safety
///
/// Each (pointer, length) pair must be NULL with length 0, or point to that many readable
/// bytes; `quoted` must be NULL or point to writable memory for a `tp_pcrs`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: (pointer, length) per input
pub unsafe extern "C" fn tp_quote_verify(
    ak_tpm2b: *const u8,
    ak_len: usize,
    attest: *const u8,
    attest_len: usize,
    sig: *const u8,
    sig_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    pcrs_file: *const u8,
    pcrs_len: usize,
    quoted: *mut tp_pcrs,
) -> c_int {
    // SAFETY: the caller's contract above, per pair.
    let inputs = unsafe {
        (
            ffi::bytes(ak_tpm2b, ak_len),
            ffi::bytes(attest, attest_len),
            ffi::bytes(sig, sig_len),
            ffi::bytes(nonce, nonce_len),
            ffi::bytes(pcrs_file, pcrs_len),
        )
    };
    let (Some(ak), Some(attest), Some(sig), Some(nonce), Some(pcrs_file)) = inputs else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    if !ffi::is_null_or_aligned(quoted) {
        return TP_ERR_INVALID_ARGUMENT;
    }
    let Ok(public) = Public::parse_tpm2b(ak) else {
        return TP_ERR_AK_MALFORMED;
    };
    let ak = match AttestationKey::from_public(public) {
        Ok(ak) => ak,
        Err(e) => return quote_error_code(&e),
    };
    let quote = match Quote::verify(attest, sig, &ak, nonce) {
        Ok(q) => q,
        Err(e) => return quote_error_code(&e),
    };
    let mut values = PcrSet::new();
    if parse_tpm2_tools_pcrs(pcrs_file, &mut values).is_err() {
        return TP_ERR_PCR_FILE_MALFORMED;
    }
    if let Err(e) = quote.check_pcrs(&values) {
        return quote_error_code(&e);
    }
    // SAFETY: `quoted` is NULL or, per the contract, writable memory for a tp_pcrs (aligned:
    // checked above).
    if let Some(out) = unsafe { ffi::out_zeroed(quoted) } {
        let mut count = 0u32;
        for (slot, bank) in out.banks.iter_mut().zip(values.banks()) {
            fill_bank(slot, bank.alg(), &values);
            count += 1;
        }
        out.bank_count = count;
    }
    TP_OK
}

/// Parse a TCG PC Client event log (crypto-agile or SHA-1 format) and call `callback` for each
/// event in log order, with `ctx`. The whole log is checked first: a malformed log makes no
/// call. `callback` may be NULL (then the log is only checked and counted).
///
/// Returns the number of events visited (the callback's stopping event included), or
/// TP_ERR_EVENTLOG_MALFORMED / TP_ERR_INVALID_ARGUMENT.
///
/// # Safety
///
/// `log` must be NULL with `log_len` 0, or point to `log_len` readable bytes that stay valid
/// during the call; `callback`, if not NULL, must be safe to call with a pointer to a
/// `tp_event` (valid only during that call) and `ctx`.
#[no_mangle]
pub unsafe extern "C" fn tp_eventlog_foreach(
    log: *const u8,
    log_len: usize,
    callback: tp_event_callback,
    ctx: *mut c_void,
) -> c_int {
    // SAFETY: the caller's contract above.
    let Some(bytes) = (unsafe { ffi::bytes(log, log_len) }) else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    let log = match EventLog::parse(bytes) {
        Ok(log) => log,
        Err(e) => return eventlog_error_code(&e),
    };
    let mut visited: c_int = 0;
    for ev in log.events() {
        visited = visited.saturating_add(1);
        let Some(cb) = callback else { continue };
        let mut digests = [tp_event_digest {
            alg: 0,
            len: 0,
            bytes: core::ptr::null(),
        }; TP_MAX_EVENT_DIGESTS];
        let mut count = 0u32;
        for (slot, d) in digests.iter_mut().zip(ev.digests.iter()) {
            *slot = tp_event_digest {
                alg: d.alg,
                len: d.bytes.len() as u16, // at most 64: the Spec ID event's sizes are checked
                bytes: d.bytes.as_ptr(),
            };
            count += 1;
        }
        let event = tp_event {
            index: ev.index,
            pcr: ev.pcr,
            event_type: ev.event_type.0,
            digest_count: count,
            offset: ev.offset,
            data: ev.data.as_ptr(),
            data_len: ev.data.len(),
            digests,
        };
        // SAFETY: the caller's contract: `cb` may be called with a pointer to a tp_event valid
        // for the call, and `ctx`.
        if unsafe { cb(&event, ctx) } != 0 {
            break;
        }
    }
    visited
}

/// Replay a TCG PC Client event log: starting from the PCRs' reset values, extend every event's
/// digests into PCRs 0–23 of each bank the log carries that this build can hash (SHA-1 needs
/// feature `sha1`), as the TPM did. `out` gets one bank per replayed bank; a PCR fed an event
/// that lacks the bank's digest is left out of `present`.
///
/// Returns TP_OK, TP_ERR_EVENTLOG_MALFORMED or TP_ERR_INVALID_ARGUMENT.
///
/// # Safety
///
/// `log` must be NULL with `log_len` 0, or point to `log_len` readable bytes; `out` must point
/// to writable memory for a `tp_pcrs`.
#[no_mangle]
pub unsafe extern "C" fn tp_eventlog_replay(
    log: *const u8,
    log_len: usize,
    out: *mut tp_pcrs,
) -> c_int {
    // SAFETY: the caller's contract above.
    let Some(bytes) = (unsafe { ffi::bytes(log, log_len) }) else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    if out.is_null() || !ffi::is_null_or_aligned(out) {
        return TP_ERR_INVALID_ARGUMENT;
    }
    let log = match EventLog::parse(bytes) {
        Ok(log) => log,
        Err(e) => return eventlog_error_code(&e),
    };
    // SAFETY: `out` is non-NULL, aligned, and per the contract writable memory for a tp_pcrs.
    let Some(out) = (unsafe { ffi::out_zeroed(out) }) else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    // One bank at a time: a one-bank `Replay` needs much less stack than `Replay::log` (which
    // builds and moves the 6 KiB four-bank state several times: about 29 KiB of stack on a
    // Cortex-M4), at the cost of one pass over the log per bank.
    let mut count = 0usize;
    for alg in log.algorithms().iter().filter_map(|a| a.hash()) {
        let done = out.banks.get(..count).unwrap_or(&[]);
        if !alg.is_supported() || done.iter().any(|b| b.alg == alg.id()) {
            continue;
        }
        // Used in place (`as_mut`): moving the 6 KiB `Replay` out would double the frame.
        let mut replay = Replay::new(&[alg], ALL_PCRS);
        let (Some(slot), Ok(replay)) = (out.banks.get_mut(count), replay.as_mut()) else {
            break;
        };
        replay.feed_all(log.events());
        fill_bank(slot, alg, replay);
        count += 1;
    }
    out.bank_count = count as u32;
    TP_OK
}

/// Compare PCR values: every PCR present in `quoted` must be present, with the same value, in
/// the same bank of `replayed`. Typically `quoted` from tp_quote_verify() and `replayed` from
/// tp_eventlog_replay().
///
/// Returns TP_OK, TP_ERR_PCR_MISMATCH (a value differs), TP_ERR_PCR_NOT_REPLAYED (a quoted
/// PCR or bank has no replayed value) or TP_ERR_INVALID_ARGUMENT (NULL, or a struct with a
/// bank count or digest length out of range). A mismatch takes precedence.
///
/// # Safety
///
/// Both pointers must point to initialized `tp_pcrs`.
#[no_mangle]
pub unsafe extern "C" fn tp_pcrs_compare(
    replayed: *const tp_pcrs,
    quoted: *const tp_pcrs,
) -> c_int {
    // SAFETY: the caller's contract above (NULL and alignment are checked).
    let (Some(replayed), Some(quoted)) = (unsafe { ffi::in_ref(replayed) }, unsafe {
        ffi::in_ref(quoted)
    }) else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    let (Some(r_banks), Some(q_banks)) = (ffi::used_banks(replayed), ffi::used_banks(quoted))
    else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    let mut result = TP_OK;
    for q in q_banks {
        let len = usize::from(q.digest_len);
        let r = r_banks
            .iter()
            .find(|r| r.alg == q.alg && r.digest_len == q.digest_len);
        for (i, value) in q.values.iter().enumerate() {
            if q.present & (1 << i) == 0 {
                continue;
            }
            match r {
                Some(r) if r.present & (1 << i) != 0 => {
                    if r.values[i][..len] != value[..len] {
                        return TP_ERR_PCR_MISMATCH;
                    }
                }
                _ => result = TP_ERR_PCR_NOT_REPLAYED,
            }
        }
    }
    result
}

/// Findings a tp_verdict holds; when there are more, failures displace remarks first.
pub const TP_MAX_FINDINGS: usize = 16;
/// Size of tp_finding.message, NUL included.
pub const TP_FINDING_MESSAGE_SIZE: usize = 256;
/// tp_appraise() flag: when PCR 5 does not match, also try it with the ExitBootServices
/// EV_EFI_ACTION events that some firmware (GCE) extends but does not log.
pub const TP_APPRAISE_EBS_WORKAROUND: u32 = 1;

// tp_finding.rule values; tp_rule_name() names them.

/// The quote did not verify (signature, nonce, structure); `error` says how.
pub const TP_RULE_QUOTE: u32 = 0;
/// The attestation key is not one the whitelist accepts.
pub const TP_RULE_ATTESTATION_KEY: u32 = 1;
/// The TPM firmware is older than the whitelist's minimum.
pub const TP_RULE_FIRMWARE_VERSION: u32 = 2;
/// A PCR the whitelist requires is not in the quote.
pub const TP_RULE_PCR_NOT_QUOTED: u32 = 3;
/// The PCR values do not match the quote's digest.
pub const TP_RULE_PCR_DIGEST: u32 = 4;
/// The whitelist requires an event log and none was given.
pub const TP_RULE_EVENTLOG_MISSING: u32 = 5;
/// The event log cannot be parsed.
pub const TP_RULE_EVENTLOG_INVALID: u32 = 6;
/// The log's replay does not give the quoted PCR value.
pub const TP_RULE_LOG_REPLAY: u32 = 7;
/// A known firmware defect was worked around (opt-in) to match a PCR.
pub const TP_RULE_WORKAROUND_APPLIED: u32 = 8;
/// A PCR value is not one of the golden values.
pub const TP_RULE_GOLDEN_PCR: u32 = 9;
/// No PCR values bound to the quote are available to check golden values against.
pub const TP_RULE_PCR_VALUES_UNAVAILABLE: u32 = 10;
/// An event's digest is not among the reference digests for its PCR and type.
pub const TP_RULE_EVENT_DIGEST: u32 = 11;
/// An event of a type no rule covers, on a PCR where that is not allowed.
pub const TP_RULE_UNKNOWN_EVENT: u32 = 12;
/// An event's digest does not match its data (facts from it are ignored).
pub const TP_RULE_DIGEST_INCONSISTENT: u32 = 13;
/// Secure Boot is off, or its state is not in the log.
pub const TP_RULE_SECURE_BOOT: u32 = 14;
/// PK, KEK, db or dbx differ from the whitelist.
pub const TP_RULE_SECURE_BOOT_VARIABLE: u32 = 15;
/// dbx lacks a required revocation.
pub const TP_RULE_DBX_REVOCATION: u32 = 16;
/// A boot application was authorized by an authority not in the whitelist.
pub const TP_RULE_AUTHORITY: u32 = 17;
/// The kernel command line has a forbidden token.
pub const TP_RULE_KERNEL_CMDLINE_FORBIDDEN: u32 = 18;
/// The kernel command line lacks a required token (or is not in the log).
pub const TP_RULE_KERNEL_CMDLINE_REQUIRED: u32 = 19;
/// The whitelist has kernel command line rules and the log's command line cannot be
/// established (an event that would carry it does not match its digest).
pub const TP_RULE_KERNEL_CMDLINE_UNKNOWN: u32 = 20;

/// Each rule's code and name (the names trustpool-core and the CLI use).
const RULES: [(Rule, u32, &CStr); 21] = [
    (Rule::Quote, TP_RULE_QUOTE, c"quote"),
    (
        Rule::AttestationKey,
        TP_RULE_ATTESTATION_KEY,
        c"attestation-key",
    ),
    (
        Rule::FirmwareVersion,
        TP_RULE_FIRMWARE_VERSION,
        c"firmware-version",
    ),
    (
        Rule::PcrNotQuoted,
        TP_RULE_PCR_NOT_QUOTED,
        c"pcr-not-quoted",
    ),
    (Rule::PcrDigest, TP_RULE_PCR_DIGEST, c"pcr-digest"),
    (
        Rule::EventLogMissing,
        TP_RULE_EVENTLOG_MISSING,
        c"eventlog-missing",
    ),
    (
        Rule::EventLogInvalid,
        TP_RULE_EVENTLOG_INVALID,
        c"eventlog-invalid",
    ),
    (Rule::LogReplay, TP_RULE_LOG_REPLAY, c"log-replay"),
    (
        Rule::WorkaroundApplied,
        TP_RULE_WORKAROUND_APPLIED,
        c"workaround-applied",
    ),
    (Rule::GoldenPcr, TP_RULE_GOLDEN_PCR, c"golden-pcr"),
    (
        Rule::PcrValuesUnavailable,
        TP_RULE_PCR_VALUES_UNAVAILABLE,
        c"pcr-values-unavailable",
    ),
    (Rule::EventDigest, TP_RULE_EVENT_DIGEST, c"event-digest"),
    (Rule::UnknownEvent, TP_RULE_UNKNOWN_EVENT, c"unknown-event"),
    (
        Rule::DigestInconsistent,
        TP_RULE_DIGEST_INCONSISTENT,
        c"digest-inconsistent",
    ),
    (Rule::SecureBoot, TP_RULE_SECURE_BOOT, c"secure-boot"),
    (
        Rule::SecureBootVariable,
        TP_RULE_SECURE_BOOT_VARIABLE,
        c"secure-boot-variable",
    ),
    (
        Rule::DbxRevocation,
        TP_RULE_DBX_REVOCATION,
        c"dbx-revocation",
    ),
    (Rule::Authority, TP_RULE_AUTHORITY, c"authority"),
    (
        Rule::KernelCmdlineForbidden,
        TP_RULE_KERNEL_CMDLINE_FORBIDDEN,
        c"kernel-cmdline-forbidden",
    ),
    (
        Rule::KernelCmdlineRequired,
        TP_RULE_KERNEL_CMDLINE_REQUIRED,
        c"kernel-cmdline-required",
    ),
    (
        Rule::KernelCmdlineUnknown,
        TP_RULE_KERNEL_CMDLINE_UNKNOWN,
        c"kernel-cmdline-unknown",
    ),
];

fn rule_code(rule: Rule) -> u32 {
    // Exhaustive, so a new rule in core fails to compile here until it gets a code.
    match rule {
        Rule::Quote
        | Rule::AttestationKey
        | Rule::FirmwareVersion
        | Rule::PcrNotQuoted
        | Rule::PcrDigest
        | Rule::EventLogMissing
        | Rule::EventLogInvalid
        | Rule::LogReplay
        | Rule::WorkaroundApplied
        | Rule::GoldenPcr
        | Rule::PcrValuesUnavailable
        | Rule::EventDigest
        | Rule::UnknownEvent
        | Rule::DigestInconsistent
        | Rule::SecureBoot
        | Rule::SecureBootVariable
        | Rule::DbxRevocation
        | Rule::Authority
        | Rule::KernelCmdlineForbidden
        | Rule::KernelCmdlineRequired
        | Rule::KernelCmdlineUnknown => RULES
            .iter()
            .find(|(r, _, _)| *r == rule)
            .map_or(u32::MAX, |(_, code, _)| *code),
    }
}

/// A digest (PCR value or event digest), inline.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_digest {
    /// TPM_ALG_ID; 0 when absent.
    pub alg: u16,
    /// Bytes used in `bytes`; 0 when absent.
    pub len: u16,
    pub bytes: [u8; TP_MAX_DIGEST_SIZE],
}

/// One reason for (or remark on) a verdict.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_finding {
    /// TP_RULE_*.
    pub rule: u32,
    /// 1: a failure (the host is not trusted); 0: a remark.
    pub fail: u32,
    /// The PCR concerned, or -1.
    pub pcr: i32,
    /// The event's eventType, when `event_index` >= 0.
    pub event_type: u32,
    /// The event's index in the log, or -1.
    pub event_index: i64,
    /// TP_RULE_QUOTE: the TP_ERR_* code of the quote failure; TP_RULE_EVENTLOG_INVALID:
    /// TP_ERR_EVENTLOG_MALFORMED; otherwise TP_OK.
    pub error: c_int,
    /// The digest or PCR value seen.
    pub seen: tp_digest,
    /// The value expected, where there is a single one.
    pub expected: tp_digest,
    /// The finding as one line of text (as `trustpool verify` prints it), NUL-terminated,
    /// truncated to fit.
    pub message: [c_char; TP_FINDING_MESSAGE_SIZE],
}

/// The outcome of tp_appraise().
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tp_verdict {
    /// 1: trusted; 0: not (a finding with `fail` says why).
    pub trusted: u32,
    /// Findings used, at the start of `findings`.
    pub finding_count: u32,
    /// Findings that did not fit.
    pub dropped: u32,
    /// Events checked against the whitelist's event rules.
    pub events_checked: u32,
    /// 1 when `firmware_version` is set (the quote verified).
    pub has_firmware_version: u32,
    /// The TPM's firmware version from the quote.
    pub firmware_version: u64,
    /// SHA-256 of the whitelist used (the name a verdict should be logged with).
    pub whitelist_sha256: [u8; 32],
    pub findings: [tp_finding; TP_MAX_FINDINGS],
}

/// The name of a TP_RULE_* code (e.g. "log-replay"), or "unknown".
#[no_mangle]
pub extern "C" fn tp_rule_name(rule: u32) -> *const c_char {
    RULES
        .iter()
        .find(|(_, code, _)| *code == rule)
        .map_or(c"unknown", |(_, _, name)| name)
        .as_ptr()
}

fn digest_out(d: Option<&Digest>) -> tp_digest {
    let mut out = tp_digest {
        alg: 0,
        len: 0,
        bytes: [0; TP_MAX_DIGEST_SIZE],
    };
    if let Some(d) = d {
        let b = d.as_bytes();
        out.alg = d.alg().id();
        out.len = b.len() as u16;
        out.bytes.iter_mut().zip(b).for_each(|(o, i)| *o = *i);
    }
    out
}

/// Writes into a fixed C string buffer, truncating at a character boundary; keeps a NUL.
struct CText<'b> {
    buf: &'b mut [c_char],
    len: usize,
}

impl core::fmt::Write for CText<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.len);
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        let src = s.as_bytes().get(..take).unwrap_or(&[]);
        let dst = self
            .buf
            .get_mut(self.len..self.len + take)
            .unwrap_or(&mut []);
        dst.iter_mut().zip(src).for_each(|(o, i)| *o = *i as c_char);
        self.len += take;
        if let Some(nul) = self.buf.get_mut(self.len) {
            *nul = 0;
        }
        Ok(())
    }
}

fn finding_out(f: &Finding<'_>) -> tp_finding {
    let mut out = tp_finding {
        rule: rule_code(f.rule),
        fail: u32::from(f.severity == Severity::Fail),
        pcr: f.pcr.map_or(-1, i32::from),
        event_type: f.event_type.map_or(0, |t| t.0),
        event_index: f.event_index.map_or(-1, i64::from),
        error: match &f.detail {
            Detail::Quote(e) => quote_error_code(e),
            Detail::EventLog(e) => eventlog_error_code(e),
            _ => TP_OK,
        },
        seen: digest_out(f.seen.as_ref()),
        expected: digest_out(f.expected.as_ref()),
        message: [0; TP_FINDING_MESSAGE_SIZE],
    };
    let mut text = CText {
        buf: &mut out.message,
        len: 0,
    };
    let _ = core::fmt::write(&mut text, format_args!("{f}"));
    out
}

/// Appraise evidence against a compiled whitelist (`trustpool policy compile`): the quote
/// (signature, nonce, structure), what the whitelist requires of the attestation key, TPM
/// firmware and quoted PCRs, the PCR values against the quote's digest, the event log's
/// replay against the quoted PCRs, then the whitelist's rules (golden PCR values, event
/// reference digests, Secure Boot, kernel command line).
///
/// - `whitelist`: the compiled whitelist (.tpw), read in place.
/// - `ak_tpm2b`, `attest`, `sig`, `nonce`: as for tp_quote_verify().
/// - `pcrs_file`: the PCR values file (`tpm2_quote -o`); length 0 for none.
/// - `eventlog`: the firmware event log; length 0 for none.
/// - `flags`: 0, or TP_APPRAISE_EBS_WORKAROUND.
/// - `verdict`: filled whenever the appraisal ran (TP_OK or TP_ERR_UNTRUSTED).
///
/// Returns TP_OK (trusted), TP_ERR_UNTRUSTED (the verdict's failures say why), or, when the
/// inputs cannot be appraised, TP_ERR_INVALID_ARGUMENT, TP_ERR_WHITELIST_MALFORMED,
/// TP_ERR_AK_MALFORMED, TP_ERR_AK_NOT_RESTRICTED_SIGNING, TP_ERR_SIGNATURE_MALFORMED or
/// TP_ERR_PCR_FILE_MALFORMED (the verdict is then zeroed: not trusted, no findings). A quote
/// that does not verify, or a malformed event log, is a finding, not an error code.
///
/// # Safety
///
/// Each (pointer, length) pair must be NULL with length 0, or point to that many readable
/// bytes; `verdict` must point to writable memory for a `tp_verdict`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // the C signature: (pointer, length) per input
pub unsafe extern "C" fn tp_appraise(
    whitelist: *const u8,
    whitelist_len: usize,
    ak_tpm2b: *const u8,
    ak_len: usize,
    attest: *const u8,
    attest_len: usize,
    sig: *const u8,
    sig_len: usize,
    nonce: *const u8,
    nonce_len: usize,
    pcrs_file: *const u8,
    pcrs_len: usize,
    eventlog: *const u8,
    eventlog_len: usize,
    flags: u32,
    verdict: *mut tp_verdict,
) -> c_int {
    // SAFETY: the caller's contract above, per pair.
    let inputs = unsafe {
        (
            ffi::bytes(whitelist, whitelist_len),
            ffi::bytes(ak_tpm2b, ak_len),
            ffi::bytes(attest, attest_len),
            ffi::bytes(sig, sig_len),
            ffi::bytes(nonce, nonce_len),
            ffi::bytes(pcrs_file, pcrs_len),
            ffi::bytes(eventlog, eventlog_len),
        )
    };
    let (Some(wl), Some(ak), Some(attest), Some(sig), Some(nonce), Some(pcrs_file), Some(log)) =
        inputs
    else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    // SAFETY: `verdict` is NULL (refused by out_zeroed) or, per the contract, writable memory
    // for a tp_verdict.
    let Some(out) = (unsafe { ffi::out_zeroed(verdict) }) else {
        return TP_ERR_INVALID_ARGUMENT;
    };
    if flags & !TP_APPRAISE_EBS_WORKAROUND != 0 {
        return TP_ERR_INVALID_ARGUMENT;
    }
    let Ok(wl) = Whitelist::parse(wl) else {
        return TP_ERR_WHITELIST_MALFORMED;
    };
    let Ok(public) = Public::parse_tpm2b(ak) else {
        return TP_ERR_AK_MALFORMED;
    };
    let ak = match AttestationKey::from_public(public) {
        Ok(ak) => ak,
        Err(e) => return quote_error_code(&e),
    };
    let Ok(signature) = Signature::parse(sig) else {
        return TP_ERR_SIGNATURE_MALFORMED;
    };
    let mut values = PcrSet::new();
    if !pcrs_file.is_empty() && parse_tpm2_tools_pcrs(pcrs_file, &mut values).is_err() {
        return TP_ERR_PCR_FILE_MALFORMED;
    }
    let evidence = Evidence {
        attest,
        signature,
        ak,
        nonce,
        pcrs: (!pcrs_file.is_empty()).then_some(&values),
        event_log: (!log.is_empty()).then_some(log),
        workarounds: Workarounds {
            ebs_events_missing: flags & TP_APPRAISE_EBS_WORKAROUND != 0,
        },
        runtime_pcrs: 0,
    };
    let v: Verdict<'_, TP_MAX_FINDINGS> = appraise(&RustCrypto, &evidence, &wl);
    out.trusted = u32::from(v.trusted);
    out.dropped = v.dropped;
    out.events_checked = v.events_checked;
    out.has_firmware_version = u32::from(v.firmware_version.is_some());
    out.firmware_version = v.firmware_version.unwrap_or(0);
    out.whitelist_sha256 = v.whitelist;
    let mut count = 0u32;
    for (slot, f) in out.findings.iter_mut().zip(v.findings.iter()) {
        *slot = finding_out(f);
        count += 1;
    }
    out.finding_count = count;
    if v.trusted {
        TP_OK
    } else {
        TP_ERR_UNTRUSTED
    }
}

#[cfg(all(target_os = "none", feature = "panic-handler"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[cfg(test)]
#[allow(clippy::undocumented_unsafe_blocks)] // tests: NULL or valid pointers only
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_message() {
        let unknown = unsafe { CStr::from_ptr(tp_strerror(1)) };
        let mut seen = std::vec::Vec::new();
        for code in TP_ERR_WHITELIST_MALFORMED..=TP_OK {
            let s = unsafe { CStr::from_ptr(tp_strerror(code)) };
            assert_ne!(s, unknown, "code {code}");
            assert!(!seen.contains(&s), "code {code}");
            seen.push(s);
        }
    }

    #[test]
    fn rule_names_match_core() {
        for (rule, code, name) in RULES {
            assert_eq!(rule_code(rule), code);
            assert_eq!(name.to_str().ok(), Some(rule.name()));
            assert_eq!(unsafe { CStr::from_ptr(tp_rule_name(code)) }, name);
        }
    }

    #[test]
    fn null_with_length_is_invalid() {
        let r = unsafe {
            tp_quote_verify(
                core::ptr::null(),
                1,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null_mut(),
            )
        };
        assert_eq!(r, TP_ERR_INVALID_ARGUMENT);
        let r = unsafe { tp_eventlog_replay(core::ptr::null(), 0, core::ptr::null_mut()) };
        assert_eq!(r, TP_ERR_INVALID_ARGUMENT);
    }

    #[test]
    fn empty_inputs_are_content_errors() {
        let r = unsafe {
            tp_quote_verify(
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null(),
                0,
                core::ptr::null_mut(),
            )
        };
        assert_eq!(r, TP_ERR_AK_MALFORMED);
        let r = unsafe { tp_eventlog_foreach(core::ptr::null(), 0, None, core::ptr::null_mut()) };
        assert_eq!(r, TP_ERR_EVENTLOG_MALFORMED);
    }
}
