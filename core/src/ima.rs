//! Linux IMA runtime measurement logs: parsing, template-hash checks, PCR replay, appraisal
//! against the compact whitelist, and IMA signature (v2) verification — with no heap.
//!
//! What the kernel writes, and where it is implemented:
//!
//! - `binary_runtime_measurements` (and, since Linux 6.10, commit 9fa8e7625008 "ima: add crypto
//!   agility support for template-hash algorithm", one `binary_runtime_measurements_<alg>` per
//!   PCR bank, whose template digests are of that bank's algorithm): `ima_measurements_show()`
//!   in `security/integrity/ima/ima_fs.c`. Per entry: u32 PCR, template digest, u32 name
//!   length, template name, then (for every template but `ima`) u32 template data length and
//!   the template data. Integers are in host order unless the kernel was booted with
//!   `ima_canonical_fmt`, which makes them little-endian: so the log is little-endian except
//!   on a big-endian host without that option ([`binary::Endian`]).
//! - `ascii_runtime_measurements`: `ima_ascii_measurements_show()` in the same file:
//!   `"%2d "` PCR, hex template digest, template name, then each field preceded by one space
//!   (an empty field prints nothing after its space).
//! - Template fields and their binary/ASCII forms: `security/integrity/ima/ima_template_lib.c`
//!   and `Documentation/security/IMA-templates.rst` ([`event::Template`], [`event::FieldId`]).
//! - Template hash: `ima_calc_field_array_hash_tfm()` in `ima_crypto.c` — the hash of the
//!   concatenated `u32 length ‖ data` of every field, except for the legacy `ima` template,
//!   hashed as `d` (20 bytes) ‖ `n` zero-padded to 256 bytes (`IMA_EVENT_NAME_LEN_MAX + 1`).
//! - PCR extension per bank ([`replay`]): since Linux 5.8 (commit 1ea973df6e21 "ima: Calculate
//!   and extend PCR with digests in ima_template_entry") each bank is extended with its own
//!   hash of the template data, and banks whose algorithm the kernel has no crypto for with
//!   the SHA-1 template digest zero-padded; before 5.8 every non-SHA-1 bank got the padded
//!   SHA-1 digest. A violation (all-zero template digest in the log) extends all-0xFF.
//! - `boot_aggregate` ([`replay::check_boot_aggregate`]): `ima_calc_boot_aggregate()` in
//!   `ima_crypto.c`.
//! - Signatures ([`sig`]): `struct signature_v2_hdr` in `security/integrity/integrity.h`,
//!   verified as `asymmetric_verify()` in `security/integrity/digsig_asymmetric.c` does.

pub mod appraise;
pub mod ascii;
pub mod binary;
pub mod event;
pub mod replay;
pub mod sig;

pub use appraise::{Appraiser, Facts, Finding, FindingKind, Stats};
pub use ascii::AsciiLog;
pub use binary::{BinaryLog, Endian};
pub use event::{Blob, Event, FieldId, FileDigest, KernelHash, Template};
pub use replay::{
    check_boot_aggregate, BankMode, BankState, BootAggregate, Replay, ReplayError, Step,
};

/// Parse errors: what, in which structure and field, at which byte offset of the log.
pub type Error = crate::codec::Error;

/// The PCR IMA extends by default (`CONFIG_IMA_MEASURE_PCR_IDX`).
pub const IMA_PCR: u32 = 10;

/// Name of the first measurement (`boot_aggregate_name` in `ima_init.c`).
pub const BOOT_AGGREGATE: &[u8] = b"boot_aggregate";

/// Longest template name accepted. The kernel's longest built-in format string is
/// `d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode` (70 bytes);
/// custom `ima_template_fmt=` names are bounded by the same `MAX_TEMPLATE_NAME_LEN`.
pub const TEMPLATE_NAME_MAX: usize = 255;

/// Largest number of fields in a template (`IMA_TEMPLATE_NUM_FIELDS_MAX` is 15).
pub const MAX_FIELDS: usize = 15;

/// Largest template data accepted for one entry (the kernel bounds an entry by what it can
/// allocate; measured buffers such as keys and device-mapper tables are a few KiB).
pub const TEMPLATE_DATA_MAX: usize = 1 << 24;

/// Largest `n` (legacy `ima` template) name: `IMA_EVENT_NAME_LEN_MAX`.
pub const EVENT_NAME_LEN_MAX: usize = 255;
