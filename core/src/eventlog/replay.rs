//! Replay: recompute PCR values from a log's digests, event by event (a state machine, so a
//! log fed in pieces gives the same values as the whole log), and compare them with quoted PCR
//! values.

use core::fmt;

use crate::alg::{Digest, HashAlg};
use crate::pcr::{PcrBank, PcrSelection, PcrValues, MAX_BANKS, NUM_PCRS};
use crate::quote::{QuoteError, VerifiedQuote};

use super::parse::{Event, EventLog};
use super::types::EventType;

/// Mask of PCRs 0–23.
pub const ALL_PCRS: u32 = (1 << NUM_PCRS) - 1;

/// `TCG_EfiStartupLocalityEvent.signature` (PFP §10.4.5.3).
pub const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";

/// The locality of a StartupLocality EV_NO_ACTION event's data: `"StartupLocality\0"` then
/// one byte (PFP §10.4.5.3, `TCG_EfiStartupLocalityEvent`).
pub fn startup_locality(data: &[u8]) -> Option<u8> {
    match data.split_first_chunk::<16>() {
        Some((sig, [locality])) if sig == STARTUP_LOCALITY_SIGNATURE => Some(*locality),
        _ => None,
    }
}

/// Why a [`Replay`] could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "error"))]
pub enum ReplayError {
    /// This build cannot compute the bank's hash (only SHA-1, SHA-256, SHA-384 and SHA-512
    /// banks are replayable; SHA-1 needs the `sha1` feature).
    NotReplayable { alg: HashAlg },
    /// More banks than a replay holds.
    TooManyBanks { max: usize },
    /// The same bank was asked for twice.
    DuplicateBank { alg: HashAlg },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::NotReplayable { alg } => write!(f, "the {alg} bank is not replayable"),
            ReplayError::TooManyBanks { max } => write!(f, "at most {max} banks can be replayed"),
            ReplayError::DuplicateBank { alg } => write!(f, "the {alg} bank is listed twice"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct BankReplay {
    values: PcrBank,
    /// PCRs fed an event without a digest for this bank: their value is unknown.
    missing: u32,
}

/// PCR values being replayed: one [`PcrBank`] per chosen bank, starting from the PCRs' reset
/// values (zero, all-0xFF for 17–22; PCR 0 per StartupLocality). Feed it the events in log
/// order with [`Replay::feed`]. No heap: about 1.6 KiB per bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    banks: heapless::Vec<BankReplay, MAX_BANKS>,
    mask: u32,
    pcr0_extended: bool,
    locality: Option<u8>,
    ignored_locality: bool,
    ignored_pcrs: u32,
    fed: u32,
}

impl Replay {
    /// A replay of no banks; [`Replay::reset`] or [`Replay::reset_for_log`] choose them in
    /// place (so a microcontroller can keep one `Replay` in a static and never move it).
    pub const fn empty() -> Replay {
        Replay {
            banks: heapless::Vec::new(),
            mask: 0,
            pcr0_extended: false,
            locality: None,
            ignored_locality: false,
            ignored_pcrs: 0,
            fed: 0,
        }
    }

    /// Replay `banks`, for the PCRs in `pcr_mask` (bit i = PCR i; bits 24–31 are ignored).
    /// Events of other PCRs are not hashed.
    pub fn new(banks: &[HashAlg], pcr_mask: u32) -> Result<Replay, ReplayError> {
        let mut r = Replay::empty();
        r.reset(banks, pcr_mask)?;
        Ok(r)
    }

    /// Start over in place with `banks` and `pcr_mask`, as [`Replay::new`] does. On error the
    /// replay is left with no banks.
    pub fn reset(&mut self, banks: &[HashAlg], pcr_mask: u32) -> Result<(), ReplayError> {
        self.banks.clear();
        self.mask = pcr_mask & ALL_PCRS;
        self.pcr0_extended = false;
        self.locality = None;
        self.ignored_locality = false;
        self.ignored_pcrs = 0;
        self.fed = 0;
        for &alg in banks {
            let err = if !alg.is_supported() {
                Some(ReplayError::NotReplayable { alg })
            } else if self.banks.iter().any(|b| b.values.alg() == alg) {
                Some(ReplayError::DuplicateBank { alg })
            } else {
                None
            };
            if let Some(e) = err {
                self.banks.clear();
                return Err(e);
            }
            if self
                .banks
                .push(BankReplay {
                    values: PcrBank::reset(alg),
                    missing: 0,
                })
                .is_err()
            {
                self.banks.clear();
                return Err(ReplayError::TooManyBanks { max: MAX_BANKS });
            }
        }
        Ok(())
    }

    /// Start over in place with every bank of `log` this build can hash (up to
    /// [`MAX_BANKS`]), and feed it the whole log.
    pub fn reset_for_log(&mut self, log: &EventLog<'_>, pcr_mask: u32) {
        let mut banks: heapless::Vec<HashAlg, MAX_BANKS> = heapless::Vec::new();
        for alg in log.algorithms().iter().filter_map(|a| a.hash()) {
            if alg.is_supported() && banks.push(alg).is_err() {
                break;
            }
        }
        // Banks are supported and distinct, and there are at most MAX_BANKS of them; on an
        // error the replay has no banks and replays nothing.
        let _ = self.reset(&banks, pcr_mask);
    }

    /// Replay every bank of `log` this build can hash (up to [`MAX_BANKS`]), not yet fed.
    pub fn for_log(log: &EventLog<'_>, pcr_mask: u32) -> Replay {
        let mut r = Replay::empty();
        r.reset_for_log(log, pcr_mask);
        r
    }

    /// Replay a whole log.
    pub fn log(log: &EventLog<'_>, pcr_mask: u32) -> Replay {
        let mut r = Replay::empty();
        r.replay_log(log, pcr_mask);
        r
    }

    /// Start over in place and replay a whole log (no `Replay` moves: for small stacks).
    pub fn replay_log(&mut self, log: &EventLog<'_>, pcr_mask: u32) {
        self.reset_for_log(log, pcr_mask);
        self.feed_all(log.events());
    }

    /// Feed one event.
    ///
    /// - EV_NO_ACTION is never extended. A StartupLocality EV_NO_ACTION on PCR 0 (PFP
    ///   §10.4.5.3) that comes before any PCR 0 extension sets PCR 0's starting value to the
    ///   locality (last byte), in every bank; one after a PCR 0 extension, or with a locality
    ///   above 4, is ignored and noted ([`Replay::ignored_locality`]).
    /// - An EV_EFI_HCRTM_EVENT that is PCR 0's first extension starts PCR 0 from locality 4,
    ///   as `_TPM_Hash_Start`/`_TPM_Hash_End` do (TPM 2.0 Part 1 §34.3).
    /// - Events for PCRs 24–31 are not replayed; they are noted in [`Replay::ignored_pcrs`].
    /// - A bank whose digest the event lacks marks that PCR unknown in that bank.
    pub fn feed(&mut self, ev: &Event<'_>) {
        self.fed = self.fed.saturating_add(1);
        if ev.event_type == EventType::NO_ACTION {
            if ev.pcr == 0 {
                if let Some(locality) = startup_locality(ev.data) {
                    if self.pcr0_extended || locality > 4 {
                        self.ignored_locality = true;
                    } else {
                        self.set_pcr0_start(locality);
                    }
                }
            }
            return;
        }
        let Ok(pcr) = u8::try_from(ev.pcr) else {
            return;
        };
        if usize::from(pcr) >= NUM_PCRS {
            self.ignored_pcrs |= 1u32.checked_shl(ev.pcr).unwrap_or(0);
            return;
        }
        if pcr == 0 {
            if !self.pcr0_extended && ev.event_type == EventType::EFI_HCRTM_EVENT {
                self.set_pcr0_start(4);
            }
            self.pcr0_extended = true;
        }
        let bit = 1u32 << pcr;
        if self.mask & bit == 0 {
            return;
        }
        for bank in self.banks.iter_mut() {
            let alg = bank.values.alg();
            match (ev.digests.get(alg), bank.values.get_mut(pcr)) {
                (Some(d), Some(value)) if d.len() == alg.size() => {
                    value.extend(d);
                }
                _ => bank.missing |= bit,
            }
        }
    }

    /// Feed events in order.
    pub fn feed_all<'e>(&mut self, events: impl IntoIterator<Item = Event<'e>>) {
        for ev in events {
            self.feed(&ev);
        }
    }

    fn set_pcr0_start(&mut self, locality: u8) {
        self.locality = Some(locality);
        for bank in self.banks.iter_mut() {
            let alg = bank.values.alg();
            let mut start = [0u8; crate::alg::MAX_DIGEST_SIZE];
            if let Some(last) = start.get_mut(alg.size().saturating_sub(1)) {
                *last = locality;
            }
            bank.values.set(0, start.get(..alg.size()).unwrap_or(&[]));
        }
    }

    /// The banks being replayed.
    pub fn algorithms(&self) -> impl Iterator<Item = HashAlg> + '_ {
        self.banks.iter().map(|b| b.values.alg())
    }

    /// PCRs replayed (the mask given to [`Replay::new`], limited to 0–23).
    pub fn pcr_mask(&self) -> u32 {
        self.mask
    }

    /// The bank's values. PCRs outside the mask keep their reset values; check
    /// [`Replay::missing`] before trusting a value, or use the [`PcrValues`] impl, which
    /// returns only replayed values.
    pub fn bank(&self, alg: HashAlg) -> Option<&PcrBank> {
        self.banks
            .iter()
            .find(|b| b.values.alg() == alg)
            .map(|b| &b.values)
    }

    /// PCRs of `alg`'s bank fed an event that has no `alg` digest (their value is unknown).
    pub fn missing(&self, alg: HashAlg) -> u32 {
        self.banks
            .iter()
            .find(|b| b.values.alg() == alg)
            .map_or(0, |b| b.missing)
    }

    /// The StartupLocality (or H-CRTM locality 4) PCR 0 started from, if the log set one.
    pub fn startup_locality(&self) -> Option<u8> {
        self.locality
    }

    /// Whether a StartupLocality event was ignored (after PCR 0 was extended, or locality > 4).
    pub fn ignored_locality(&self) -> bool {
        self.ignored_locality
    }

    /// PCRs 24–31 that events named (not replayed).
    pub fn ignored_pcrs(&self) -> u32 {
        self.ignored_pcrs
    }

    /// Number of events fed.
    pub fn events_fed(&self) -> u32 {
        self.fed
    }
}

impl PcrValues for Replay {
    /// The replayed value: `None` for banks not replayed, PCRs outside the mask, and PCRs an
    /// event without this bank's digest fed.
    fn pcr(&self, alg: HashAlg, index: u8) -> Option<&Digest> {
        let bit = 1u32.checked_shl(u32::from(index)).unwrap_or(0);
        if self.mask & bit == 0 {
            return None;
        }
        let b = self.banks.iter().find(|b| b.values.alg() == alg)?;
        if b.missing & bit != 0 {
            return None;
        }
        b.values.get(index)
    }
}

/// Opt-in workarounds for known firmware log defects. All off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Workarounds {
    /// go-attestation's `ebs_event_missing_eventlog` case: GCE firmware extends PCR 5 with the
    /// ExitBootServices EV_EFI_ACTION events but does not log them. When PCR 5 mismatches, try
    /// the replayed value extended with the digests of the EV_EFI_ACTION strings
    /// (go-attestation's `eventlog_workarounds.go`, in its order).
    pub ebs_events_missing: bool,
}

/// The workaround that made a PCR match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Workaround {
    /// "Exit Boot Services Invocation", "Exit Boot Services Returned with Success".
    EbsInvocationSuccess,
    /// "Exit Boot Services Invocation", "Exit Boot Services Returned with Failure".
    EbsInvocationFailure,
    /// Invocation, Failure, then Success.
    EbsInvocationFailureSuccess,
}

const EBS_INVOCATION: &[u8] = b"Exit Boot Services Invocation";
const EBS_SUCCESS: &[u8] = b"Exit Boot Services Returned with Success";
const EBS_FAILURE: &[u8] = b"Exit Boot Services Returned with Failure";

impl Workaround {
    /// The PCR the workaround is about.
    pub const fn pcr(self) -> u8 {
        5
    }

    pub const fn name(self) -> &'static str {
        match self {
            Workaround::EbsInvocationSuccess => "ebs_events_missing: EBS Invocation + Success",
            Workaround::EbsInvocationFailure => "ebs_events_missing: EBS Invocation + Failure",
            Workaround::EbsInvocationFailureSuccess => {
                "ebs_events_missing: EBS Invocation + Failure + Success"
            }
        }
    }

    /// The EV_EFI_ACTION strings the workaround assumes were extended, in order.
    pub const fn actions(self) -> &'static [&'static [u8]] {
        match self {
            Workaround::EbsInvocationSuccess => &[EBS_INVOCATION, EBS_SUCCESS],
            Workaround::EbsInvocationFailure => &[EBS_INVOCATION, EBS_FAILURE],
            Workaround::EbsInvocationFailureSuccess => &[EBS_INVOCATION, EBS_FAILURE, EBS_SUCCESS],
        }
    }

    const ALL: [Workaround; 3] = [
        Workaround::EbsInvocationSuccess,
        Workaround::EbsInvocationFailure,
        Workaround::EbsInvocationFailureSuccess,
    ];
}

impl fmt::Display for Workaround {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How one quoted PCR compares with the replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "status"))]
pub enum PcrStatus {
    /// The replayed value equals the quoted value.
    Match,
    /// Equal only after applying the named workaround.
    MatchWithWorkaround { workaround: Workaround },
    /// The values differ. The events that fed the PCR are [`EventLog::events_for_pcr`]; a PCR
    /// the log never extends must hold its reset value.
    Mismatch,
    /// The bank or PCR was not replayed (bank not chosen or not replayable, PCR outside the
    /// mask, or PCR 24–31).
    NotReplayed,
    /// An event for this PCR lacks this bank's digest, so the replayed value is unknown.
    MissingDigest,
    /// The quote selects a bank that is not a known hash algorithm.
    UnknownBank,
    /// No quoted value was supplied for the PCR.
    NoQuotedValue,
}

impl PcrStatus {
    /// Whether the PCR is confirmed by the log (possibly with a workaround).
    pub fn is_match(&self) -> bool {
        matches!(
            self,
            PcrStatus::Match | PcrStatus::MatchWithWorkaround { .. }
        )
    }
}

/// Compare one PCR's replayed value with `quoted` (of `quoted.alg()`'s bank).
pub fn compare_pcr(
    replay: &Replay,
    pcr: u8,
    quoted: &Digest,
    workarounds: Workarounds,
) -> PcrStatus {
    let alg = quoted.alg();
    let bit = 1u32.checked_shl(u32::from(pcr)).unwrap_or(0);
    let Some(bank) = replay.banks.iter().find(|b| b.values.alg() == alg) else {
        return PcrStatus::NotReplayed;
    };
    if replay.mask & bit == 0 {
        return PcrStatus::NotReplayed;
    }
    if bank.missing & bit != 0 {
        return PcrStatus::MissingDigest;
    }
    let Some(value) = bank.values.get(pcr) else {
        return PcrStatus::NotReplayed;
    };
    if value.as_bytes() == quoted.as_bytes() {
        return PcrStatus::Match;
    }
    if workarounds.ebs_events_missing {
        for w in Workaround::ALL {
            if pcr != w.pcr() {
                continue;
            }
            let mut v = *value;
            let all_hashed = w
                .actions()
                .iter()
                .all(|a| alg.hash(a).is_some_and(|d| v.extend(d.as_bytes())));
            if all_hashed && v.as_bytes() == quoted.as_bytes() {
                return PcrStatus::MatchWithWorkaround { workaround: w };
            }
        }
    }
    PcrStatus::Mismatch
}

/// One entry of a comparison: a quoted (bank, PCR) and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PcrComparison {
    /// The bank's `TPM_ALG_ID` as the quote names it.
    pub alg: u16,
    pub pcr: u8,
    pub status: PcrStatus,
}

/// Compare a verified quote's PCRs with a replay. `quoted` are the PCR values that came with
/// the quote; they are first checked against the quote's `pcrDigest`
/// ([`VerifiedQuote::check_pcrs`]). Yields one entry per selected PCR, in selection order.
pub fn compare_quote<'r, 'q, P: PcrValues + ?Sized>(
    replay: &'r Replay,
    quote: &VerifiedQuote<'q>,
    quoted: &'r P,
    workarounds: Workarounds,
) -> Result<Comparison<'r, 'q, P>, QuoteError> {
    quote.check_pcrs(quoted)?;
    Ok(compare_selection(
        replay,
        quote.info.pcr_select,
        quoted,
        workarounds,
    ))
}

/// Compare the PCRs of `selection` with a replay, without checking `quoted` against a quote.
pub fn compare_selection<'r, 'q, P: PcrValues + ?Sized>(
    replay: &'r Replay,
    selection: PcrSelection<'q>,
    quoted: &'r P,
    workarounds: Workarounds,
) -> Comparison<'r, 'q, P> {
    Comparison {
        replay,
        selection,
        quoted,
        workarounds,
        bank: 0,
        next_pcr: 0,
    }
}

/// Iterator of [`PcrComparison`]s (no storage: one entry is computed per step).
pub struct Comparison<'r, 'q, P: PcrValues + ?Sized> {
    replay: &'r Replay,
    selection: PcrSelection<'q>,
    quoted: &'r P,
    workarounds: Workarounds,
    bank: usize,
    next_pcr: u32,
}

impl<P: PcrValues + ?Sized> Comparison<'_, '_, P> {
    /// Whether every selected PCR matches (with workarounds, if enabled); false when the
    /// selection is empty.
    pub fn all_match(self) -> bool {
        let mut any = false;
        for c in self {
            if !c.status.is_match() {
                return false;
            }
            any = true;
        }
        any
    }
}

impl<P: PcrValues + ?Sized> Iterator for Comparison<'_, '_, P> {
    type Item = PcrComparison;

    fn next(&mut self) -> Option<PcrComparison> {
        loop {
            let bank = self.selection.banks().nth(self.bank)?;
            let pcr = (self.next_pcr..32).find(|p| bank.is_selected(*p as usize));
            let Some(pcr) = pcr.and_then(|p| u8::try_from(p).ok()) else {
                self.bank = self.bank.saturating_add(1);
                self.next_pcr = 0;
                continue;
            };
            self.next_pcr = u32::from(pcr).saturating_add(1);
            let status = match bank.hash() {
                None => PcrStatus::UnknownBank,
                Some(alg) => match self.quoted.pcr(alg, pcr) {
                    None => PcrStatus::NoQuotedValue,
                    Some(q) => compare_pcr(self.replay, pcr, q, self.workarounds),
                },
            };
            return Some(PcrComparison {
                alg: bank.alg,
                pcr,
                status,
            });
        }
    }
}
