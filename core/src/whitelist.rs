//! The compact whitelist: a versioned binary form the core reads in place (from flash, with no
//! heap), made by `trustpool policy compile` from the human TOML form.
//!
//! Layout (all integers big-endian, so byte order is numeric order):
//!
//! ```text
//! header   48 bytes  magic "TPWL", version u16, header_len u16, total_len u32,
//!                    section_count u16, reserved u16, digest [32]
//! table    12 bytes per section: id u16, record_width u16, count u32, offset u32
//! sections fixed-width records, strictly ascending (memcmp order), found by binary search
//! ```
//!
//! `digest` is SHA-256 over the whole file with the digest field taken out (bytes 0..16 then
//! 48..total_len): a verdict names the exact whitelist it used by it.
//!
//! Sections (`id`: record):
//! - `0x0001` settings, one record (see [`Settings`]).
//! - `0x1000 + alg` golden PCR values of bank `alg`: `pcr u8, digest`.
//! - `0x2000 + alg` event reference digests of bank `alg`: `pcr u8, event_type u32, digest`
//!   (`event_type` [`ANY_EVENT_TYPE`] matches any type).
//! - `0x3000 + alg` accepted attestation keys by TPM Name digest (`nameAlg` = `alg`): `digest`.
//! - `0x3100` accepted attestation keys by public key digest (SHA-256 of the RSA modulus, or of
//!   the uncompressed ECC point `04 ‖ x ‖ y`): `digest[32]`.
//! - `0x4000` dbx must contain these SHA-256 revocations: `digest[32]`.
//! - `0x4100` authorities allowed to authorize boot applications (SHA-256 of the
//!   `EV_EFI_VARIABLE_AUTHORITY` event data): `digest[32]`.
//! - `0x4200` Secure Boot variable contents (SHA-256 of the variable data): `var u8, digest[32]`
//!   with var 0 PK, 1 KEK, 2 db, 3 dbx.
//! - `0x5000` kernel command line rules: `kind u8` (1 require, 2 forbid), token (63 bytes,
//!   zero-padded).
//! - `0x6000 + alg` IMA runtime allowlist of bank `alg`: `path_hash[8], digest`
//!   (`path_hash`: first 8 bytes of SHA-256 of the path).
//! - `0x6100` IMA excluded path prefixes: prefix (127 bytes, zero-padded) then len u8.

use crate::alg::{Digest, HashAlg};
use crate::codec::{ErrorKind, Reader};

pub const MAGIC: [u8; 4] = *b"TPWL";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 48;
pub const SECTION_ENTRY_LEN: usize = 12;
/// Largest number of sections in one whitelist.
pub const MAX_SECTIONS: usize = 64;
/// `event_type` value that matches any event type.
pub const ANY_EVENT_TYPE: u32 = 0xffff_ffff;
/// Width of a kernel command line token record.
pub const TOKEN_RECORD: usize = 64;
/// Width of an IMA excluded-prefix record.
pub const PREFIX_RECORD: usize = 128;

pub mod section {
    pub const SETTINGS: u16 = 0x0001;
    pub const PCR_GOLDEN: u16 = 0x1000;
    pub const EVENT_DIGEST: u16 = 0x2000;
    pub const AK_NAME: u16 = 0x3000;
    pub const AK_KEY_DIGEST: u16 = 0x3100;
    pub const DBX_REQUIRED: u16 = 0x4000;
    pub const AUTHORITY: u16 = 0x4100;
    pub const SB_VAR: u16 = 0x4200;
    pub const CMDLINE: u16 = 0x5000;
    pub const IMA_DIGEST: u16 = 0x6000;
    pub const IMA_EXCLUDE: u16 = 0x6100;
}

/// Settings record width.
pub const SETTINGS_LEN: usize = 4 + 8 + 4 * 6 + 4 + 4 + 32;

/// `Settings.flags` bits.
pub mod flag {
    /// Secure Boot must be enabled.
    pub const SECURE_BOOT_REQUIRED: u32 = 1 << 0;
    /// Attestation keys are restricted to the AK sections.
    pub const AK_RESTRICTED: u32 = 1 << 1;
    /// Boot applications must have been authorized by an allowed authority.
    pub const AUTHORITY_RESTRICTED: u32 = 1 << 2;
    /// The firmware event log must be present.
    pub const EVENTLOG_REQUIRED: u32 = 1 << 3;
    /// IMA entries must be in the allowlist (unless excluded).
    pub const IMA_ENFORCED: u32 = 1 << 4;
    /// SELinux must be enforcing per IMA's critical-data record.
    pub const SELINUX_ENFORCING_REQUIRED: u32 = 1 << 5;
}

/// The fixed rules of a whitelist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub flags: u32,
    pub min_firmware_version: u64,
    /// PCRs that must be quoted: up to 4 banks, `(alg, mask)`, alg 0 for unused.
    pub required_pcrs: [(u16, u32); 4],
    /// PCRs whose events are checked against the event reference digests.
    pub event_pcrs: u32,
    /// PCRs (of `event_pcrs`) on which events of types without a rule are allowed.
    pub unknown_events_allowed: u32,
    /// The whitelist's name, UTF-8, zero-padded.
    pub name: [u8; 32],
}

impl Settings {
    pub fn has(&self, bit: u32) -> bool {
        self.flags & bit == bit
    }

    /// The name as text (up to the first zero byte; invalid UTF-8 shows as empty).
    pub fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.name.len());
        self.name
            .get(..end)
            .and_then(|s| core::str::from_utf8(s).ok())
            .unwrap_or("")
    }

    fn read(rec: &[u8]) -> Option<Settings> {
        let mut r = Reader::new(rec, "settings");
        let flags = r.u32_be("flags").ok()?;
        let min_firmware_version = r.u64_be("min_firmware_version").ok()?;
        let mut required_pcrs = [(0u16, 0u32); 4];
        for slot in required_pcrs.iter_mut() {
            let alg = r.u16_be("alg").ok()?;
            let mask = r.u32_be("mask").ok()?;
            *slot = (alg, mask);
        }
        let event_pcrs = r.u32_be("event_pcrs").ok()?;
        let unknown_events_allowed = r.u32_be("unknown_events_allowed").ok()?;
        let name = r.array::<32>("name").ok()?;
        Some(Settings {
            flags,
            min_firmware_version,
            required_pcrs,
            event_pcrs,
            unknown_events_allowed,
            name,
        })
    }

    /// Serialize into the fixed record.
    pub fn write(&self, out: &mut [u8; SETTINGS_LEN]) {
        let mut w = crate::codec::Writer::new(out);
        // The record is exactly SETTINGS_LEN bytes, so none of these writes can fail.
        let _ = w.u32_be(self.flags);
        let _ = w.u64_be(self.min_firmware_version);
        for (alg, mask) in self.required_pcrs {
            let _ = w.u16_be(alg);
            let _ = w.u32_be(mask);
        }
        let _ = w.u32_be(self.event_pcrs);
        let _ = w.u32_be(self.unknown_events_allowed);
        let _ = w.bytes(&self.name);
    }
}

/// A section of sorted fixed-width records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    pub id: u16,
    pub width: usize,
    data: &'a [u8],
}

impl<'a> Section<'a> {
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn record(&self, i: usize) -> Option<&'a [u8]> {
        let start = i.checked_mul(self.width)?;
        self.data.get(start..start.checked_add(self.width)?)
    }

    pub fn records(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let w = self.width.max(1);
        self.data.chunks_exact(w)
    }

    /// Index of the first record `>= key` (compared on `key.len()` leading bytes).
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
            let rec = self.record(mid).unwrap_or(&[]);
            let prefix = rec.get(..key.len().min(rec.len())).unwrap_or(&[]);
            if prefix < key {
                lo = mid.saturating_add(1);
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether some record starts with `prefix`.
    pub fn contains_prefix(&self, prefix: &[u8]) -> bool {
        self.record(self.lower_bound(prefix))
            .is_some_and(|r| r.starts_with(prefix))
    }

    /// Whether `record` is present (exact match).
    pub fn contains(&self, record: &[u8]) -> bool {
        record.len() == self.width && self.contains_prefix(record)
    }

    /// Records starting with `prefix`, in order.
    pub fn with_prefix<'p>(&self, prefix: &'p [u8]) -> impl Iterator<Item = &'a [u8]> + 'p
    where
        'a: 'p,
    {
        let start = self.lower_bound(prefix);
        let s = *self;
        (start..s.len())
            .map_while(move |i| s.record(i))
            .take_while(move |r| r.starts_with(prefix))
    }
}

/// Why a compact whitelist was rejected.
pub type Error = crate::codec::Error;

/// A validated compact whitelist, read in place.
#[derive(Debug, Clone, Copy)]
pub struct Whitelist<'a> {
    bytes: &'a [u8],
    sections: &'a [u8],
    count: usize,
    settings: Settings,
    digest: [u8; 32],
}

const S: &str = "whitelist";

fn expected_width(id: u16) -> Option<usize> {
    let hash_width = |alg: u16| HashAlg::from_id(alg).map(HashAlg::size);
    match id {
        section::SETTINGS => Some(SETTINGS_LEN),
        section::AK_KEY_DIGEST | section::DBX_REQUIRED | section::AUTHORITY => Some(32),
        section::SB_VAR => Some(33),
        section::CMDLINE => Some(TOKEN_RECORD),
        section::IMA_EXCLUDE => Some(PREFIX_RECORD),
        _ => match id & 0xff00 {
            0x1000 => hash_width(id & 0x00ff).map(|n| n.saturating_add(1)),
            0x2000 => hash_width(id & 0x00ff).map(|n| n.saturating_add(5)),
            0x3000 => hash_width(id & 0x00ff),
            0x6000 => hash_width(id & 0x00ff).map(|n| n.saturating_add(8)),
            _ => None,
        },
    }
}

/// SHA-256 over the file without its digest field.
pub fn compute_digest(bytes: &[u8]) -> Option<Digest> {
    let mut h = HashAlg::Sha256.hasher()?;
    h.update(bytes.get(..16)?);
    h.update(bytes.get(HEADER_LEN..)?);
    Some(h.finalize())
}

impl<'a> Whitelist<'a> {
    /// Validate every field, offset, count and the digest before use.
    pub fn parse(bytes: &'a [u8]) -> Result<Whitelist<'a>, Error> {
        let mut r = Reader::new(bytes, S);
        let magic = r.array::<4>("magic")?;
        if magic != MAGIC {
            return Err(r.error_at(
                ErrorKind::BadMagic {
                    found: u32::from_be_bytes(magic),
                },
                "magic",
                0,
            ));
        }
        let at = r.offset();
        let version = r.u16_be("version")?;
        if version != VERSION {
            return Err(r.error_at(
                ErrorKind::Unsupported {
                    value: u32::from(version),
                },
                "version",
                at,
            ));
        }
        let at = r.offset();
        let header_len = usize::from(r.u16_be("header_len")?);
        if header_len != HEADER_LEN {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: header_len as u64,
                },
                "header_len",
                at,
            ));
        }
        let at = r.offset();
        let total = usize::try_from(r.u32_be("total_len")?).unwrap_or(usize::MAX);
        if total != bytes.len() {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: total as u64,
                },
                "total_len",
                at,
            ));
        }
        let at = r.offset();
        let count = usize::from(r.u16_be("section_count")?);
        if count > MAX_SECTIONS {
            return Err(r.error_at(
                ErrorKind::TooLarge {
                    size: count,
                    max: MAX_SECTIONS,
                },
                "section_count",
                at,
            ));
        }
        r.u16_be("reserved")?;
        let digest = r.array::<32>("digest")?;
        let computed = compute_digest(bytes).ok_or(r.error_at(
            ErrorKind::Unsupported { value: 0 },
            "digest",
            16,
        ))?;
        if computed.as_bytes() != digest {
            return Err(r.error_at(ErrorKind::InvalidValue { value: 0 }, "digest", 16));
        }
        let table_len = count.saturating_mul(SECTION_ENTRY_LEN);
        let table_at = r.offset();
        let sections = r.take(table_len, "section table")?;
        let data_start = table_at.saturating_add(table_len);
        let mut wl = Whitelist {
            bytes,
            sections,
            count,
            settings: Settings {
                flags: 0,
                min_firmware_version: 0,
                required_pcrs: [(0, 0); 4],
                event_pcrs: 0,
                unknown_events_allowed: 0,
                name: [0; 32],
            },
            digest,
        };
        let mut prev_id: Option<u16> = None;
        for i in 0..count {
            let at = table_at.saturating_add(i.saturating_mul(SECTION_ENTRY_LEN));
            let mut e = Reader::with_base(
                sections
                    .get(i.saturating_mul(SECTION_ENTRY_LEN)..)
                    .unwrap_or(&[]),
                at,
                "whitelist section",
            );
            let id = e.u16_be("id")?;
            let width = usize::from(e.u16_be("record_width")?);
            let n = usize::try_from(e.u32_be("count")?).unwrap_or(usize::MAX);
            let offset = usize::try_from(e.u32_be("offset")?).unwrap_or(usize::MAX);
            if prev_id.is_some_and(|p| p >= id) {
                return Err(e.error_at(
                    ErrorKind::InvalidValue {
                        value: u64::from(id),
                    },
                    "id (not ascending)",
                    at,
                ));
            }
            prev_id = Some(id);
            if expected_width(id) != Some(width) {
                return Err(e.error_at(
                    ErrorKind::InvalidValue {
                        value: width as u64,
                    },
                    "record_width",
                    at,
                ));
            }
            let len = n.checked_mul(width).ok_or(e.error_at(
                ErrorKind::TooLarge {
                    size: n,
                    max: total,
                },
                "count",
                at,
            ))?;
            let end = offset.saturating_add(len);
            if offset < data_start || end > total {
                return Err(e.error_at(
                    ErrorKind::InvalidValue {
                        value: offset as u64,
                    },
                    "offset",
                    at,
                ));
            }
            let data = bytes.get(offset..end).unwrap_or(&[]);
            let sec = Section { id, width, data };
            // Records strictly ascending: binary search is sound and there are no duplicates.
            let mut prev: Option<&[u8]> = None;
            for (k, rec) in sec.records().enumerate() {
                if prev.is_some_and(|p| p >= rec) {
                    return Err(Error::new(
                        ErrorKind::InvalidValue { value: k as u64 },
                        S,
                        "records (not strictly ascending)",
                        offset.saturating_add(k.saturating_mul(width)),
                    ));
                }
                prev = Some(rec);
            }
            if id == section::SETTINGS {
                wl.settings = match (n, sec.record(0).and_then(Settings::read)) {
                    (1, Some(s)) => s,
                    _ => {
                        return Err(e.error_at(
                            ErrorKind::InvalidValue { value: n as u64 },
                            "settings count",
                            at,
                        ))
                    }
                };
            }
        }
        Ok(wl)
    }

    /// SHA-256 of the whitelist (without its digest field): its identity in verdicts.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// All sections, in id order.
    pub fn sections(&self) -> impl Iterator<Item = Section<'a>> + 'a {
        let bytes = self.bytes;
        self.sections
            .chunks_exact(SECTION_ENTRY_LEN)
            .filter_map(move |e| {
                let id = u16::from_be_bytes([*e.first()?, *e.get(1)?]);
                let width = usize::from(u16::from_be_bytes([*e.get(2)?, *e.get(3)?]));
                let n = usize::try_from(u32::from_be_bytes([
                    *e.get(4)?,
                    *e.get(5)?,
                    *e.get(6)?,
                    *e.get(7)?,
                ]))
                .ok()?;
                let off = usize::try_from(u32::from_be_bytes([
                    *e.get(8)?,
                    *e.get(9)?,
                    *e.get(10)?,
                    *e.get(11)?,
                ]))
                .ok()?;
                let data = bytes.get(off..off.checked_add(n.checked_mul(width)?)?)?;
                Some(Section { id, width, data })
            })
    }

    /// The section with `id`, if present.
    pub fn section(&self, id: u16) -> Option<Section<'a>> {
        self.sections().find(|s| s.id == id)
    }

    pub fn section_count(&self) -> usize {
        self.count
    }

    /// Golden values for `(bank, pcr)`: `None` when the whitelist has none for that PCR.
    pub fn golden_pcr(
        &self,
        bank: HashAlg,
        pcr: u8,
    ) -> Option<impl Iterator<Item = &'a [u8]> + 'a> {
        let sec = self.section(section::PCR_GOLDEN | bank.id())?;
        let start = sec.lower_bound(&[pcr]);
        if sec.record(start).is_none_or(|r| r.first() != Some(&pcr)) {
            return None;
        }
        Some(
            (start..sec.len())
                .map_while(move |i| sec.record(i))
                .take_while(move |r| r.first() == Some(&pcr))
                .filter_map(|r| r.get(1..)),
        )
    }

    /// Whether `value` is a golden value of `(bank, pcr)`; `None` when the PCR has no golden
    /// values.
    pub fn pcr_value_allowed(&self, bank: HashAlg, pcr: u8, value: &[u8]) -> Option<bool> {
        let sec = self.section(section::PCR_GOLDEN | bank.id())?;
        if !sec.contains_prefix(&[pcr]) {
            return None;
        }
        let mut key = [0u8; 1 + crate::alg::MAX_DIGEST_SIZE];
        key[0] = pcr;
        let n = value.len().min(crate::alg::MAX_DIGEST_SIZE);
        key.get_mut(1..n.saturating_add(1))?
            .copy_from_slice(value.get(..n)?);
        Some(sec.contains(key.get(..n.saturating_add(1))?))
    }

    /// Event rule lookup: `None` when no rule covers `(pcr, event_type)` (nor `(pcr, any)`),
    /// else whether `digest` is one of the reference digests.
    pub fn event_digest_allowed(
        &self,
        bank: HashAlg,
        pcr: u8,
        event_type: u32,
        digest: &[u8],
    ) -> Option<bool> {
        let sec = self.section(section::EVENT_DIGEST | bank.id())?;
        let mut covered = false;
        for t in [event_type, ANY_EVENT_TYPE] {
            let mut key = [0u8; 5 + crate::alg::MAX_DIGEST_SIZE];
            key[0] = pcr;
            key.get_mut(1..5)?.copy_from_slice(&t.to_be_bytes());
            if !sec.contains_prefix(key.get(..5)?) {
                continue;
            }
            covered = true;
            let n = digest.len().min(crate::alg::MAX_DIGEST_SIZE);
            key.get_mut(5..n.saturating_add(5))?
                .copy_from_slice(digest.get(..n)?);
            if sec.contains(key.get(..n.saturating_add(5))?) {
                return Some(true);
            }
        }
        covered.then_some(false)
    }

    /// Whether a 32-byte digest is in a 32-byte-record section; `None` when the section is
    /// absent.
    pub fn contains32(&self, id: u16, digest: &[u8]) -> Option<bool> {
        self.section(id).map(|s| s.contains(digest))
    }

    /// Kernel command line rules: `(kind, token)` with kind 1 require, 2 forbid.
    pub fn cmdline_rules(&self) -> impl Iterator<Item = (u8, &'a str)> + 'a {
        self.section(section::CMDLINE).into_iter().flat_map(|s| {
            s.records().filter_map(|r| {
                let (kind, tok) = r.split_first()?;
                let end = tok.iter().position(|b| *b == 0).unwrap_or(tok.len());
                Some((*kind, core::str::from_utf8(tok.get(..end)?).ok()?))
            })
        })
    }
}
