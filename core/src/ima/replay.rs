//! PCR replay of an IMA log, resumable from any entry, and the `boot_aggregate` check.
//!
//! How the kernel extends each PCR bank for one entry (`ima_pcr_extend()`,
//! `security/integrity/ima/ima_queue.c`, and `ima_calc_field_array_hash()`, `ima_crypto.c`):
//!
//! - Linux ≥ 5.8 (commit 1ea973df6e21, "ima: Calculate and extend PCR with digests in
//!   ima_template_entry"): every bank whose algorithm the kernel can compute is extended
//!   with that algorithm's hash of the template data ([`BankMode::TemplateHash`]); a bank
//!   whose algorithm it cannot compute still gets the SHA-1 template digest zero-padded to
//!   the bank size ([`BankMode::PaddedSha1`]).
//! - Linux < 5.8: every bank got the SHA-1 template digest, zero-padded
//!   ([`BankMode::PaddedSha1`]); so a SHA-256 PCR 10 of such a kernel cannot be computed from
//!   SHA-256 template hashes.
//! - A violation (`ima_add_violation()`: all-zero template digest in the log) extends
//!   all-0xFF of the bank's size (`ima_init_digests()`); for a padded bank, 20 bytes of 0xFF
//!   then zeros.
//!
//! The SHA-1 log (`binary_runtime_measurements`) replays the SHA-1 bank directly; the same
//! log also replays the other banks, since each entry's template data is there to hash.

use crate::alg::{Digest, HashAlg, MAX_DIGEST_SIZE};
use crate::pcr::{PcrBank, PcrValues, MAX_BANKS};

use super::event::Event;
use super::Error;

/// How the kernel extends a bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BankMode {
    /// The bank's own hash of the template data (Linux ≥ 5.8).
    TemplateHash,
    /// The SHA-1 template digest zero-padded (Linux < 5.8 for every non-SHA-1 bank; ≥ 5.8
    /// for banks of an algorithm the kernel has no crypto for).
    PaddedSha1,
}

/// One bank being replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankState {
    pub alg: HashAlg,
    pub mode: BankMode,
    pub value: Digest,
}

/// Why replay could not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ReplayError {
    /// More than [`MAX_BANKS`] banks, or none.
    BankCount,
    /// This build cannot compute the algorithm.
    UnsupportedAlg(HashAlg),
    /// The entry's template digest is not of the log's algorithm.
    DigestSize {
        index: u64,
        expected: usize,
        found: usize,
    },
    /// The template data cannot be hashed (an ASCII entry whose fields cannot be
    /// re-serialized).
    Unhashable { index: u64 },
    /// The log did not parse.
    Parse(Error),
}

impl core::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReplayError::BankCount => write!(f, "1 to {MAX_BANKS} banks can be replayed"),
            ReplayError::UnsupportedAlg(a) => write!(f, "{a} is not supported by this build"),
            ReplayError::DigestSize {
                index,
                expected,
                found,
            } => write!(
                f,
                "entry {index}: template digest of {found} bytes, the log's algorithm has {expected}"
            ),
            ReplayError::Unhashable { index } => {
                write!(f, "entry {index}: template data cannot be re-serialized")
            }
            ReplayError::Parse(e) => write!(f, "{e}"),
        }
    }
}

/// What one entry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Step {
    pub index: u64,
    /// The entry was for the replayed PCR and was extended.
    pub extended: bool,
    pub violation: bool,
    /// Whether the logged template digest is the hash of the template data (`None` for
    /// violations, whose digest is zero by design).
    pub template_hash_ok: Option<bool>,
}

/// Running PCR values and position: feed entries in order, stop anywhere, and resume later
/// from [`Replay::entries`] / [`Replay::offset`] with the same state (it is plain data: keep
/// it, or rebuild it with [`Replay::resume`]). No allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pcr: u32,
    log_alg: HashAlg,
    banks: heapless::Vec<BankState, MAX_BANKS>,
    entries: u64,
    offset: usize,
    violations: u64,
    other_pcr: u64,
    mismatches: u64,
}

impl Replay {
    /// Replay PCR 10 of the log's own bank (`log_alg`, the template digest algorithm: SHA-1
    /// for `binary_runtime_measurements`).
    pub fn new(log_alg: HashAlg) -> Result<Replay, ReplayError> {
        Replay::with_banks(
            log_alg,
            super::IMA_PCR,
            &[(log_alg, BankMode::TemplateHash)],
        )
    }

    /// Replay PCR `pcr` of several banks from zero.
    pub fn with_banks(
        log_alg: HashAlg,
        pcr: u32,
        banks: &[(HashAlg, BankMode)],
    ) -> Result<Replay, ReplayError> {
        let mut states: heapless::Vec<BankState, MAX_BANKS> = heapless::Vec::new();
        for (alg, mode) in banks {
            states
                .push(BankState {
                    alg: *alg,
                    mode: *mode,
                    value: Digest::zero(*alg),
                })
                .map_err(|_| ReplayError::BankCount)?;
        }
        Replay::resume(log_alg, pcr, &states, 0, 0)
    }

    /// Continue from saved values: `entries` entries were consumed, ending at byte `offset`.
    pub fn resume(
        log_alg: HashAlg,
        pcr: u32,
        banks: &[BankState],
        entries: u64,
        offset: usize,
    ) -> Result<Replay, ReplayError> {
        if banks.is_empty() || banks.len() > MAX_BANKS {
            return Err(ReplayError::BankCount);
        }
        for a in core::iter::once(log_alg).chain(banks.iter().map(|b| b.alg)) {
            if !a.is_supported() {
                return Err(ReplayError::UnsupportedAlg(a));
            }
        }
        if banks.iter().any(|b| b.mode == BankMode::PaddedSha1) && !HashAlg::Sha1.is_supported() {
            return Err(ReplayError::UnsupportedAlg(HashAlg::Sha1));
        }
        Ok(Replay {
            pcr,
            log_alg,
            banks: heapless::Vec::from_slice(banks).map_err(|_| ReplayError::BankCount)?,
            entries,
            offset,
            violations: 0,
            other_pcr: 0,
            mismatches: 0,
        })
    }

    pub fn pcr(&self) -> u32 {
        self.pcr
    }

    pub fn log_alg(&self) -> HashAlg {
        self.log_alg
    }

    pub fn banks(&self) -> &[BankState] {
        &self.banks
    }

    /// The replayed value of a bank.
    pub fn value(&self, alg: HashAlg) -> Option<&Digest> {
        self.banks.iter().find(|b| b.alg == alg).map(|b| &b.value)
    }

    /// Entries consumed (including those for other PCRs).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Byte offset just past the last entry consumed: where to resume parsing.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Entries whose template digest is not the hash of their template data.
    pub fn template_mismatches(&self) -> u64 {
        self.mismatches
    }

    /// Entries for a PCR other than the replayed one (IMA policy `pcr=` rules).
    pub fn other_pcr_entries(&self) -> u64 {
        self.other_pcr
    }

    /// Consume one entry.
    pub fn feed(&mut self, e: &Event<'_>) -> Result<Step, ReplayError> {
        let logged = e.template_digest();
        if logged.len() != self.log_alg.size() {
            return Err(ReplayError::DigestSize {
                index: e.index,
                expected: self.log_alg.size(),
                found: logged.len(),
            });
        }
        let violation = e.is_violation();
        let mut step = Step {
            index: e.index,
            extended: false,
            violation,
            template_hash_ok: None,
        };
        if !violation {
            let computed = e
                .template_hash(self.log_alg)
                .ok_or(ReplayError::Unhashable { index: e.index })?;
            let ok = computed.as_bytes() == logged;
            if !ok {
                self.mismatches = self.mismatches.saturating_add(1);
            }
            step.template_hash_ok = Some(ok);
        }
        if e.pcr == self.pcr {
            let log_alg = self.log_alg;
            for b in self.banks.iter_mut() {
                let mut buf = [0u8; MAX_DIGEST_SIZE];
                let size = b.alg.size();
                let ext: &[u8] = match (violation, b.mode) {
                    (true, BankMode::TemplateHash) => {
                        buf.iter_mut().take(size).for_each(|x| *x = 0xff);
                        buf.get(..size).unwrap_or(&[])
                    }
                    (true, BankMode::PaddedSha1) => {
                        buf.iter_mut().take(20.min(size)).for_each(|x| *x = 0xff);
                        buf.get(..size).unwrap_or(&[])
                    }
                    (false, BankMode::TemplateHash) if b.alg == log_alg => logged,
                    (false, BankMode::TemplateHash) => {
                        let d = e
                            .template_hash(b.alg)
                            .ok_or(ReplayError::Unhashable { index: e.index })?;
                        buf.iter_mut().zip(d.as_bytes()).for_each(|(o, i)| *o = *i);
                        buf.get(..size).unwrap_or(&[])
                    }
                    (false, BankMode::PaddedSha1) => {
                        let sha1;
                        let src: &[u8] = if log_alg == HashAlg::Sha1 {
                            logged
                        } else {
                            sha1 = e
                                .template_hash(HashAlg::Sha1)
                                .ok_or(ReplayError::Unhashable { index: e.index })?;
                            sha1.as_bytes()
                        };
                        buf.iter_mut()
                            .zip(src)
                            .take(size)
                            .for_each(|(o, i)| *o = *i);
                        buf.get(..size).unwrap_or(&[])
                    }
                };
                if !b.value.extend(ext) {
                    return Err(ReplayError::UnsupportedAlg(b.alg));
                }
            }
            step.extended = true;
            if violation {
                self.violations = self.violations.saturating_add(1);
            }
        } else {
            self.other_pcr = self.other_pcr.saturating_add(1);
        }
        self.entries = self.entries.saturating_add(1);
        self.offset = e.end;
        Ok(step)
    }

    /// Whether every replayed bank equals the quoted value of the PCR; `None` when the
    /// quote has none of the banks.
    pub fn matches<P: PcrValues + ?Sized>(&self, quoted: &P) -> Option<bool> {
        let idx = u8::try_from(self.pcr).ok()?;
        let mut seen = false;
        for b in &self.banks {
            if let Some(q) = quoted.pcr(b.alg, idx) {
                seen = true;
                if *q != b.value {
                    return Some(false);
                }
            }
        }
        seen.then_some(true)
    }

    /// Feed entries until the replayed PCR equals the quoted one, checking before the first
    /// entry and after each: a log read after the quote may have more entries than the
    /// quote covers (Keylime does the same). Returns the number of entries consumed in total
    /// when it matches (resume the next round from [`Replay::offset`]), `None` when the log
    /// ends without matching. `on_step` sees every entry fed.
    pub fn until_match<'a, P, I, F>(
        &mut self,
        events: I,
        quoted: &P,
        mut on_step: F,
    ) -> Result<Option<u64>, ReplayError>
    where
        P: PcrValues + ?Sized,
        I: IntoIterator<Item = Result<Event<'a>, Error>>,
        F: FnMut(&Event<'a>, &Step),
    {
        if self.matches(quoted) == Some(true) {
            return Ok(Some(self.entries));
        }
        for e in events {
            let e = e.map_err(ReplayError::Parse)?;
            let step = self.feed(&e)?;
            on_step(&e, &step);
            if step.extended && self.matches(quoted) == Some(true) {
                return Ok(Some(self.entries));
            }
        }
        Ok(None)
    }
}

/// Which PCRs a `boot_aggregate` was found to cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BootAggregate {
    /// Hash over PCRs 0–7: the SHA-1 form, and what kernels before 5.8 computed.
    #[cfg_attr(feature = "serde", serde(rename = "pcrs_0_to_7"))]
    Pcrs0To7,
    /// Hash over PCRs 0–9: the non-SHA-1 form since Linux 5.8 (commit 20c59ce010f8, "ima:
    /// extend boot_aggregate with kernel measurements").
    #[cfg_attr(feature = "serde", serde(rename = "pcrs_0_to_9"))]
    Pcrs0To9,
}

/// Why a `boot_aggregate` did not check out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum BootAggregateError {
    /// The entry is not named `boot_aggregate`.
    NotBootAggregate,
    /// No digest, or one of an unknown algorithm or wrong size.
    BadDigest,
    /// All zero: the kernel found no TPM (or no usable bank).
    NoTpm,
    /// The digest is of another algorithm than the bank given.
    WrongBank { digest: HashAlg, bank: HashAlg },
    /// A PCR needed is not in the bank.
    MissingPcr(u8),
    /// Computed over neither PCRs 0–7 nor 0–9.
    Mismatch,
    /// This build cannot compute the algorithm.
    Unsupported,
}

/// Check a `boot_aggregate` entry against PCR values (`ima_calc_boot_aggregate()`,
/// `ima_crypto.c`): the hash, with the digest's algorithm, of PCRs 0–7 for SHA-1, and of
/// PCRs 0–9 otherwise since Linux 5.8. Since 5.8 the kernel takes the bank of `ima_hash`
/// if allocated, else SHA-256, else SHA-1 (commit 6f1a1d103b48, "ima: Switch to
/// ima_hash_algo for boot aggregate"); before, always SHA-1 over PCRs 0–7. A non-SHA-1
/// aggregate over PCRs 0–7 only (6f1a1d103b48 backported without 20c59ce010f8) is accepted
/// and reported as [`BootAggregate::Pcrs0To7`].
pub fn check_boot_aggregate(
    e: &Event<'_>,
    bank: &PcrBank,
) -> Result<BootAggregate, BootAggregateError> {
    if !e.is_boot_aggregate() {
        return Err(BootAggregateError::NotBootAggregate);
    }
    let fd = e.file_digest.ok_or(BootAggregateError::BadDigest)?;
    let alg = fd.hash_alg().ok_or(BootAggregateError::BadDigest)?;
    if fd.is_zero() {
        return Err(BootAggregateError::NoTpm);
    }
    if alg != bank.alg() {
        return Err(BootAggregateError::WrongBank {
            digest: alg,
            bank: bank.alg(),
        });
    }
    let over = |last: u8| -> Result<Digest, BootAggregateError> {
        let mut h = alg.hasher().ok_or(BootAggregateError::Unsupported)?;
        for i in 0..=last {
            h.update(
                bank.get(i)
                    .ok_or(BootAggregateError::MissingPcr(i))?
                    .as_bytes(),
            );
        }
        Ok(h.finalize())
    };
    if alg != HashAlg::Sha1 && over(9)?.as_bytes() == fd.as_bytes() {
        return Ok(BootAggregate::Pcrs0To9);
    }
    if over(7)?.as_bytes() == fd.as_bytes() {
        return Ok(BootAggregate::Pcrs0To7);
    }
    Err(BootAggregateError::Mismatch)
}
