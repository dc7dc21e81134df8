//! Runtime policy: appraise IMA entries against the compact whitelist, and collect the
//! host facts some entries carry.
//!
//! Lookups (see [`crate::whitelist`]):
//!
//! - files: section `0x6000 + alg` of the file digest's algorithm, record
//!   `path_hash[8] ‖ digest` with `path_hash` the first 8 bytes of SHA-256 of the path as
//!   the log writes it (spaces already replaced by `_` by the kernel);
//! - keys measured into keyrings (`ima-buf` entries named after a keyring, `.ima`, `_ima`,
//!   `.builtin_trusted_keys`…, whose buffer is a DER certificate): the same, with the path
//!   `%keyring:<name>` and the entry's digest (the hash of the certificate), as Keylime's
//!   `keyrings` rules and its legacy allowlist's `%keyring:` lines;
//! - other `ima-buf` entries (critical data, `kexec-cmdline`): the path `%ima-buf:<name>`,
//!   as Keylime's `ima-buf` rules;
//! - excluded paths: section `0x6100`, by prefix (also applied to the `%keyring:` and
//!   `%ima-buf:` paths, so `%keyring:.builtin` ignores that keyring).
//!
//! Following Keylime (`keylime/ima/ima.py`): a file whose `ima-sig` signature verifies with
//! a given key is accepted unless its path is in the allowlist with other digests; an
//! invalid signature is a finding; violations (ToMToU / open-writers) are reported but not
//! fatal; `boot_aggregate` is not looked up (see [`super::check_boot_aggregate`]).

use crate::alg::HashAlg;
use crate::whitelist::{flag, section, Section, Whitelist, PREFIX_RECORD};

use super::event::{Blob, Event, FileDigest, Template};
use super::sig::{self, ImaKey, SigCheck};

/// What is wrong with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FindingKind {
    /// The path is not in the allowlist.
    NotInAllowlist,
    /// The path is in the allowlist, with other digests.
    DigestNotAllowed,
    /// The digest's algorithm is unknown, or has no allowlist section.
    UnknownDigestAlgorithm,
    /// The digest's size does not match its algorithm.
    MalformedDigest,
    /// The entry has no file digest or no name.
    MissingField,
    /// A template this build does not know.
    UnknownTemplate,
    /// The entry is for another PCR than the one IMA is expected to use.
    WrongPcr { pcr: u32 },
    /// A measurement violation (ToMToU or open-writers): the PCR was extended with 0xFF…
    /// and the file's content is not known. Not fatal (as Keylime's default).
    Violation,
    /// An `ima-sig` signature that does not verify.
    Signature(SigCheck),
    /// A key measured into a keyring that is not accepted.
    KeyringNotAllowed,
    /// An `ima-buf` measurement whose name and digest are not accepted.
    BufNotAllowed,
    /// The whitelist requires SELinux enforcing and the log's last `selinux-state` says
    /// otherwise, or there is none.
    SelinuxNotEnforcing,
}

impl FindingKind {
    /// Whether the finding fails attestation (violations do not).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, FindingKind::Violation)
    }
}

/// A finding about entry `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding<'a> {
    /// Entry number (`u64::MAX` for findings about the whole log).
    pub index: u64,
    pub kind: FindingKind,
    /// The path or buffer name (may not be UTF-8).
    #[cfg_attr(feature = "serde", serde(serialize_with = "ser_lossy"))]
    pub name: &'a [u8],
    pub digest: Option<FileDigest<'a>>,
}

#[cfg(feature = "serde")]
fn ser_lossy<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    struct Lossy<'b>(&'b [u8]);
    impl core::fmt::Display for Lossy<'_> {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            for chunk in self.0.utf8_chunks() {
                f.write_str(chunk.valid())?;
                for b in chunk.invalid() {
                    write!(f, "\\x{b:02x}")?;
                }
            }
            Ok(())
        }
    }
    s.collect_str(&Lossy(b))
}

/// Counts over the entries appraised.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Stats {
    pub entries: u64,
    pub boot_aggregate: u64,
    pub violations: u64,
    pub excluded: u64,
    /// Found in the allowlist (or, for `ima-buf`, in the keyring / buffer rules).
    pub allowed: u64,
    /// Accepted on a valid signature.
    pub signed: u64,
    /// Not looked up: the whitelist does not enforce the allowlist.
    pub unchecked: u64,
    /// Fatal findings reported.
    pub findings: u64,
}

/// Appraises entries one at a time against a whitelist (and, for `ima-sig` entries, a set
/// of verification keys). Holds no log data: feed it entries of any lifetime.
#[derive(Debug, Clone)]
pub struct Appraiser<'w, 'k> {
    allow: [Option<Section<'w>>; 8],
    exclude: Option<Section<'w>>,
    flags: u32,
    pcr: u32,
    keys: &'k [ImaKey<'k>],
    stats: Stats,
}

fn alg_slot(alg: HashAlg) -> usize {
    match alg {
        HashAlg::Sha1 => 0,
        HashAlg::Sha256 => 1,
        HashAlg::Sha384 => 2,
        HashAlg::Sha512 => 3,
        HashAlg::Sm3_256 => 4,
        HashAlg::Sha3_256 => 5,
        HashAlg::Sha3_384 => 6,
        HashAlg::Sha3_512 => 7,
    }
}

/// First 8 bytes of SHA-256 over `tag ‖ name`.
pub fn path_hash(tag: &[u8], name: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Some(mut h) = HashAlg::Sha256.hasher() {
        h.update(tag);
        h.update(name);
        let d = h.finalize();
        out.iter_mut().zip(d.as_bytes()).for_each(|(o, i)| *o = *i);
    }
    out
}

fn prefix_u64(rec: &[u8]) -> u64 {
    rec.get(..8)
        .and_then(|p| <[u8; 8]>::try_from(p).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Look up `path_hash ‖ digest` in a section of such records: `(record present, path hash
/// present)`. Path hashes are uniformly distributed (SHA-256), so interpolation search on
/// them finds the run of a path's records in a few probes where binary search would take
/// log2(n) cache misses.
pub fn find_record(sec: &Section<'_>, key: &[u8]) -> (bool, bool) {
    let rec = |i: usize| sec.record(i).unwrap_or(&[]);
    let k = prefix_u64(key);
    let (mut lo, mut hi) = (0usize, sec.len()); // candidates in [lo, hi)
    let mut hit = None;
    for _ in 0..64 {
        let Some(last) = hi.checked_sub(1).filter(|l| *l >= lo) else {
            break;
        };
        let (vlo, vhi) = (prefix_u64(rec(lo)), prefix_u64(rec(last)));
        if k < vlo || k > vhi {
            break;
        }
        let pos = if vhi == vlo {
            lo
        } else {
            let span = u128::from(vhi.saturating_sub(vlo));
            let off = u128::from(k.saturating_sub(vlo))
                .saturating_mul(last.saturating_sub(lo) as u128)
                .checked_div(span)
                .unwrap_or(0);
            lo.saturating_add(usize::try_from(off).unwrap_or(0))
                .min(last)
        };
        let v = prefix_u64(rec(pos));
        match v.cmp(&k) {
            core::cmp::Ordering::Less => lo = pos.saturating_add(1),
            core::cmp::Ordering::Greater => hi = pos,
            core::cmp::Ordering::Equal => {
                hit = Some(pos);
                break;
            }
        }
    }
    let Some(pos) = hit else {
        return (false, false);
    };
    // The records of one path are adjacent: scan the run around `pos`.
    let mut start = pos;
    while let Some(prev) = start.checked_sub(1).filter(|p| prefix_u64(rec(*p)) == k) {
        start = prev;
    }
    let found = (start..sec.len())
        .map(rec)
        .take_while(|r| prefix_u64(r) == k)
        .any(|r| r == key);
    (found, true)
}

const KEYRING_TAG: &[u8] = b"%keyring:";
const BUF_TAG: &[u8] = b"%ima-buf:";

impl<'w, 'k> Appraiser<'w, 'k> {
    pub fn new(wl: &Whitelist<'w>) -> Self {
        let mut allow = [None; 8];
        for (slot, alg) in allow.iter_mut().zip(HashAlg::ALL) {
            *slot = wl.section(section::IMA_DIGEST | alg.id());
        }
        Appraiser {
            allow,
            exclude: wl.section(section::IMA_EXCLUDE),
            flags: wl.settings().flags,
            pcr: super::IMA_PCR,
            keys: &[],
            stats: Stats::default(),
        }
    }

    /// Keys to verify `ima-sig` signatures with.
    pub fn with_keys(mut self, keys: &'k [ImaKey<'k>]) -> Self {
        self.keys = keys;
        self
    }

    /// The PCR entries must be for (10 unless IMA's policy says otherwise).
    pub fn with_pcr(mut self, pcr: u32) -> Self {
        self.pcr = pcr;
        self
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether the whitelist enforces the allowlist (`IMA_ENFORCED`).
    pub fn enforced(&self) -> bool {
        self.flags & flag::IMA_ENFORCED != 0
    }

    /// Whether `tag ‖ name` starts with an excluded prefix.
    pub fn is_excluded(&self, tag: &[u8], name: &[u8]) -> bool {
        let Some(sec) = self.exclude else {
            return false;
        };
        sec.records().any(|rec| {
            let len = usize::from(
                rec.get(PREFIX_RECORD.saturating_sub(1))
                    .copied()
                    .unwrap_or(0),
            );
            let prefix = rec.get(..len).unwrap_or(&[]);
            let (p_tag, p_name) = prefix.split_at(tag.len().min(prefix.len()));
            tag.starts_with(p_tag)
                && (p_name.is_empty() || (p_tag.len() == tag.len() && name.starts_with(p_name)))
        })
    }

    fn lookup(&self, tag: &[u8], name: &[u8], fd: &FileDigest<'_>) -> Result<(), FindingKind> {
        if !fd.is_well_formed() {
            return Err(if fd.kernel_hash().is_some() {
                FindingKind::MalformedDigest
            } else {
                FindingKind::UnknownDigestAlgorithm
            });
        }
        let alg = fd.hash_alg().ok_or(FindingKind::UnknownDigestAlgorithm)?;
        let ph = path_hash(tag, name);
        let mut key = [0u8; 8 + crate::alg::MAX_DIGEST_SIZE];
        key.iter_mut()
            .zip(ph.iter().chain(fd.as_bytes()))
            .for_each(|(o, i)| *o = *i);
        let key = key
            .get(..fd.as_bytes().len().saturating_add(8))
            .unwrap_or(&[]);
        let (found, path_known) = self
            .allow
            .get(alg_slot(alg))
            .copied()
            .flatten()
            .map_or((false, false), |s| find_record(&s, key));
        if found {
            return Ok(());
        }
        if path_known || self.allow.iter().flatten().any(|s| s.contains_prefix(&ph)) {
            Err(FindingKind::DigestNotAllowed)
        } else {
            Err(FindingKind::NotInAllowlist)
        }
    }

    /// Appraise one entry, reporting findings (fatal and not) to `report`.
    pub fn appraise<'a>(&mut self, e: &Event<'a>, report: &mut impl FnMut(Finding<'a>)) {
        self.stats.entries = self.stats.entries.saturating_add(1);
        let name = e.name.unwrap_or(&[]);
        let mut emit = |stats: &mut Stats, kind: FindingKind, digest: Option<FileDigest<'a>>| {
            if kind.is_fatal() {
                stats.findings = stats.findings.saturating_add(1);
            }
            report(Finding {
                index: e.index,
                kind,
                name,
                digest,
            });
        };
        if e.pcr != self.pcr {
            emit(
                &mut self.stats,
                FindingKind::WrongPcr { pcr: e.pcr },
                e.file_digest,
            );
            return;
        }
        if e.is_violation() {
            self.stats.violations = self.stats.violations.saturating_add(1);
            emit(&mut self.stats, FindingKind::Violation, e.file_digest);
            return;
        }
        if e.is_boot_aggregate() {
            self.stats.boot_aggregate = self.stats.boot_aggregate.saturating_add(1);
            return;
        }
        if e.template == Template::Unknown {
            emit(&mut self.stats, FindingKind::UnknownTemplate, None);
            return;
        }
        let Some(fd) = e.file_digest.filter(|_| e.name.is_some()) else {
            emit(&mut self.stats, FindingKind::MissingField, e.file_digest);
            return;
        };
        if e.template == Template::ImaBuf {
            let keyring = matches!(name.first(), Some(b'.' | b'_'))
                && e.buf.is_some_and(|b| b.starts_with(&[0x30]));
            let (tag, missing) = if keyring {
                (KEYRING_TAG, FindingKind::KeyringNotAllowed)
            } else {
                (BUF_TAG, FindingKind::BufNotAllowed)
            };
            if self.is_excluded(tag, name) {
                self.stats.excluded = self.stats.excluded.saturating_add(1);
            } else if !self.enforced() {
                self.stats.unchecked = self.stats.unchecked.saturating_add(1);
            } else if self.lookup(tag, name, &fd).is_ok() {
                self.stats.allowed = self.stats.allowed.saturating_add(1);
            } else {
                emit(&mut self.stats, missing, Some(fd));
            }
            return;
        }
        if self.is_excluded(&[], name) {
            self.stats.excluded = self.stats.excluded.saturating_add(1);
            return;
        }
        let mut signed = false;
        if let (Some(s), false) = (e.sig, self.keys.is_empty()) {
            match fd.kernel_hash() {
                Some(k) => match sig::verify(&s, k, fd.as_bytes(), self.keys) {
                    Ok(_) => signed = true,
                    Err(err) => {
                        emit(&mut self.stats, FindingKind::Signature(err), Some(fd));
                        return;
                    }
                },
                None => {
                    emit(
                        &mut self.stats,
                        FindingKind::UnknownDigestAlgorithm,
                        Some(fd),
                    );
                    return;
                }
            }
        }
        if !self.enforced() {
            if signed {
                self.stats.signed = self.stats.signed.saturating_add(1);
            } else {
                self.stats.unchecked = self.stats.unchecked.saturating_add(1);
            }
            return;
        }
        match self.lookup(&[], name, &fd) {
            Ok(()) => self.stats.allowed = self.stats.allowed.saturating_add(1),
            Err(FindingKind::NotInAllowlist) if signed => {
                self.stats.signed = self.stats.signed.saturating_add(1);
            }
            Err(kind) => emit(&mut self.stats, kind, Some(fd)),
        }
    }

    /// Findings about the whole log, once every entry was appraised: SELinux enforcing
    /// when the whitelist requires it (`SELINUX_ENFORCING_REQUIRED`).
    pub fn finish<'a>(&mut self, facts: &Facts<'a>, report: &mut impl FnMut(Finding<'a>)) {
        if self.flags & flag::SELINUX_ENFORCING_REQUIRED != 0
            && facts.selinux_enforcing != Some(true)
        {
            self.stats.findings = self.stats.findings.saturating_add(1);
            report(Finding {
                index: facts.selinux_state.map_or(u64::MAX, |(i, _)| i),
                kind: FindingKind::SelinuxNotEnforcing,
                name: b"selinux-state",
                digest: None,
            });
        }
    }
}

/// Host facts from `ima-buf` entries (critical data measured by the kernel,
/// `ima_measure_critical_data()`), each the last one seen with its entry number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts<'a> {
    /// `selinux-state`: text such as `initialized=1;enabled=1;enforcing=1;checkreqprot=0;…`
    /// (`security/selinux/ima.c`).
    pub selinux_state: Option<(u64, Blob<'a>)>,
    /// `enforcing=` of the last `selinux-state`.
    pub selinux_enforcing: Option<bool>,
    /// `selinux-policy-hash`: the buffer is the hash of the loaded policy.
    pub selinux_policy_hash: Option<(u64, Blob<'a>)>,
    /// `kexec-cmdline`: the command line of a kexec'd kernel.
    pub kexec_cmdline: Option<(u64, Blob<'a>)>,
    /// The `boot_aggregate` digest.
    pub boot_aggregate: Option<FileDigest<'a>>,
    /// Keys measured into keyrings.
    pub keys_measured: u64,
}

impl<'a> Facts<'a> {
    pub fn observe(&mut self, e: &Event<'a>) {
        if e.is_boot_aggregate() && self.boot_aggregate.is_none() {
            self.boot_aggregate = e.file_digest;
        }
        let (Some(name), Some(buf)) = (e.name, e.buf) else {
            return;
        };
        match name {
            b"selinux-state" => {
                self.selinux_state = Some((e.index, buf));
                self.selinux_enforcing = selinux_enforcing(&buf);
            }
            b"selinux-policy-hash" => self.selinux_policy_hash = Some((e.index, buf)),
            b"kexec-cmdline" => self.kexec_cmdline = Some((e.index, buf)),
            _ if matches!(name.first(), Some(b'.' | b'_')) && buf.starts_with(&[0x30]) => {
                self.keys_measured = self.keys_measured.saturating_add(1);
            }
            _ => {}
        }
    }
}

/// `enforcing=` from a `selinux-state` buffer (`key=value;` pairs).
pub fn selinux_enforcing(buf: &Blob<'_>) -> Option<bool> {
    let mut text = [0u8; 1024];
    let text = buf.decode_into(&mut text)?;
    text.split(|c| *c == b';').find_map(|kv| match kv {
        b"enforcing=1" => Some(true),
        b"enforcing=0" => Some(false),
        _ => None,
    })
}

/// Appraise a whole log: every entry, then the log-wide checks. Returns the counts and
/// facts, or the first parse error.
pub fn appraise_log<'a, I>(
    entries: I,
    appraiser: &mut Appraiser<'_, '_>,
    report: &mut impl FnMut(Finding<'a>),
) -> Result<Facts<'a>, super::Error>
where
    I: IntoIterator<Item = Result<Event<'a>, super::Error>>,
{
    let mut facts = Facts::default();
    for e in entries {
        let e = e?;
        facts.observe(&e);
        appraiser.appraise(&e, report);
    }
    appraiser.finish(&facts, report);
    Ok(facts)
}
