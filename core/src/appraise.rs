//! Appraisal: from evidence (a quote, its PCR values, the firmware event log) and a compact
//! whitelist to a verdict a scheduler can act on, with findings that say exactly why.
//!
//! Checks run in this order, each trusting only what the earlier ones established: the quote's
//! signature and nonce; the attestation key, firmware version and PCR coverage the whitelist
//! requires; the PCR values against the quote's digest; the log's replay against the quoted
//! PCRs; then the whitelist's rules — golden PCR values, event reference digests, Secure Boot,
//! kernel command line — using only events on PCRs the quote confirmed and facts from events
//! whose data matches their digest.

use core::fmt;

use crate::alg::{Digest, HashAlg};
use crate::eventlog::{
    check_event, decode, BootSummary, DigestCheck, EventData, EventLog, EventLogError, EventType,
    KernelCmdline, PcrStatus, Replay, Workaround, Workarounds, ALL_PCRS,
};
use crate::pcr::{PcrSet, PcrValues};
use crate::public::PublicKey;
use crate::quote::{AttestationKey, Quote, QuoteError};
use crate::signature::{Signature, SignatureVerifier};
use crate::whitelist::{flag, section, Whitelist};

/// The rule a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Rule {
    /// The quote did not verify (signature, nonce, structure).
    Quote,
    /// The attestation key is not one the whitelist accepts.
    AttestationKey,
    /// The TPM firmware is older than the whitelist's minimum.
    FirmwareVersion,
    /// A PCR the whitelist requires is not in the quote.
    PcrNotQuoted,
    /// The supplied PCR values do not match the quote's digest.
    PcrDigest,
    /// The event log is required and missing.
    EventLogMissing,
    /// The event log cannot be parsed.
    EventLogInvalid,
    /// The log's replay does not give the quoted PCR value.
    LogReplay,
    /// A known firmware defect was worked around (opt-in) to match a PCR.
    WorkaroundApplied,
    /// A PCR value is not one of the golden values.
    GoldenPcr,
    /// No PCR values bound to the quote are available to check golden values against.
    PcrValuesUnavailable,
    /// An event's digest is not among the reference digests for its PCR and type.
    EventDigest,
    /// An event of a type no rule covers, on a PCR where that is not allowed.
    UnknownEvent,
    /// An event's digest does not match its data (facts from it are ignored).
    DigestInconsistent,
    /// Secure Boot is off, or its state is not in the log.
    SecureBoot,
    /// PK, KEK, db or dbx differ from the whitelist.
    SecureBootVariable,
    /// dbx lacks a required revocation.
    DbxRevocation,
    /// A boot application was authorized by an authority not in the whitelist.
    Authority,
    /// The kernel command line has a forbidden token.
    KernelCmdlineForbidden,
    /// The kernel command line lacks a required token (or is not in the log).
    KernelCmdlineRequired,
    /// The whitelist has kernel command line rules, and the log's command line cannot be
    /// established: an event that would carry it does not match its digest.
    KernelCmdlineUnknown,
}

impl Rule {
    pub const fn name(self) -> &'static str {
        match self {
            Rule::Quote => "quote",
            Rule::AttestationKey => "attestation-key",
            Rule::FirmwareVersion => "firmware-version",
            Rule::PcrNotQuoted => "pcr-not-quoted",
            Rule::PcrDigest => "pcr-digest",
            Rule::EventLogMissing => "eventlog-missing",
            Rule::EventLogInvalid => "eventlog-invalid",
            Rule::LogReplay => "log-replay",
            Rule::WorkaroundApplied => "workaround-applied",
            Rule::GoldenPcr => "golden-pcr",
            Rule::PcrValuesUnavailable => "pcr-values-unavailable",
            Rule::EventDigest => "event-digest",
            Rule::UnknownEvent => "unknown-event",
            Rule::DigestInconsistent => "digest-inconsistent",
            Rule::SecureBoot => "secure-boot",
            Rule::SecureBootVariable => "secure-boot-variable",
            Rule::DbxRevocation => "dbx-revocation",
            Rule::Authority => "authority",
            Rule::KernelCmdlineForbidden => "kernel-cmdline-forbidden",
            Rule::KernelCmdlineRequired => "kernel-cmdline-required",
            Rule::KernelCmdlineUnknown => "kernel-cmdline-unknown",
        }
    }
}

/// Whether a finding makes the host untrusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Severity {
    Fail,
    Info,
}

/// Extra detail of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Detail<'a> {
    None,
    Quote(QuoteError),
    EventLog(EventLogError),
    /// A kernel command line token.
    Token(&'a str),
    /// A Secure Boot variable name.
    Variable(&'static str),
    /// Seen and minimum values (firmware version).
    Version {
        seen: u64,
        min: u64,
    },
    Workaround(Workaround),
    /// Secure Boot state seen (`None`: not in the log).
    SecureBoot(Option<bool>),
}

/// One reason for (or remark on) a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding<'a> {
    pub rule: Rule,
    pub severity: Severity,
    pub pcr: Option<u8>,
    pub event_index: Option<u32>,
    pub event_type: Option<EventType>,
    /// The digest or PCR value seen.
    pub seen: Option<Digest>,
    /// The value expected, where there is a single one.
    pub expected: Option<Digest>,
    pub detail: Detail<'a>,
}

impl<'a> Finding<'a> {
    fn fail(rule: Rule) -> Self {
        Finding {
            rule,
            severity: Severity::Fail,
            pcr: None,
            event_index: None,
            event_type: None,
            seen: None,
            expected: None,
            detail: Detail::None,
        }
    }

    fn info(rule: Rule) -> Self {
        Finding {
            severity: Severity::Info,
            ..Finding::fail(rule)
        }
    }

    fn pcr(mut self, pcr: u8) -> Self {
        self.pcr = Some(pcr);
        self
    }

    fn event(mut self, index: u32, pcr: u32, t: EventType) -> Self {
        self.event_index = Some(index);
        self.pcr = u8::try_from(pcr).ok();
        self.event_type = Some(t);
        self
    }

    fn seen(mut self, d: Option<Digest>) -> Self {
        self.seen = d;
        self
    }

    fn expected(mut self, d: Option<Digest>) -> Self {
        self.expected = d;
        self
    }

    fn detail(mut self, d: Detail<'a>) -> Self {
        self.detail = d;
        self
    }
}

impl fmt::Display for Finding<'_> {
    /// One line, e.g. `PCR 4, event #37 EV_EFI_BOOT_SERVICES_APPLICATION sha256:ab12… is not
    /// in the whitelist`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_with(f, None)
    }
}

impl Finding<'_> {
    /// As `Display`, with a description of the event (e.g. its image path, decoded by the
    /// caller) after the event type.
    pub fn write_with(
        &self,
        f: &mut dyn fmt::Write,
        event: Option<&dyn fmt::Display>,
    ) -> fmt::Result {
        if let Some(p) = self.pcr {
            write!(f, "PCR {p}, ")?;
        }
        if let Some(i) = self.event_index {
            write!(f, "event #{i} ")?;
        }
        if let Some(t) = self.event_type {
            write!(f, "{t} ")?;
        }
        if let Some(e) = event {
            write!(f, "{e} ")?;
        }
        if let Some(s) = &self.seen {
            write!(f, "{s} ")?;
        }
        match (self.rule, &self.detail) {
            (Rule::Quote, Detail::Quote(e)) => write!(f, "quote rejected: {e}"),
            (Rule::AttestationKey, _) => f.write_str("attestation key is not in the whitelist"),
            (Rule::FirmwareVersion, Detail::Version { seen, min }) => {
                write!(
                    f,
                    "TPM firmware version {seen:#x} is below the minimum {min:#x}"
                )
            }
            (Rule::PcrNotQuoted, _) => {
                f.write_str("is required by the whitelist but not in the quote")
            }
            (Rule::PcrDigest, Detail::Quote(e)) => write!(f, "PCR values rejected: {e}"),
            (Rule::EventLogMissing, _) => {
                f.write_str("the whitelist requires the firmware event log; none was supplied")
            }
            (Rule::EventLogInvalid, Detail::EventLog(e)) => write!(f, "event log rejected: {e}"),
            (Rule::LogReplay, _) => match (&self.expected, self.pcr) {
                (Some(q), _) => write!(f, "is the event log's replay; the quote says {q}"),
                (None, Some(_)) => {
                    f.write_str("cannot be replayed from the event log in any quoted bank")
                }
                (None, None) => {
                    f.write_str("the event log's replay does not match the quote's PCR digest")
                }
            },
            (Rule::WorkaroundApplied, Detail::Workaround(w)) => {
                write!(f, "matched the quote only with the workaround {w}")
            }
            (Rule::GoldenPcr, _) => f.write_str("is not a golden value of this PCR"),
            (Rule::PcrValuesUnavailable, _) => {
                f.write_str("no PCR values bound to the quote: golden values cannot be checked")
            }
            (Rule::EventDigest, _) => f.write_str("is not in the whitelist"),
            (Rule::UnknownEvent, _) => {
                f.write_str("is of a type no whitelist rule covers on this PCR")
            }
            (Rule::DigestInconsistent, _) => {
                f.write_str("does not match the event data (facts from it are ignored)")
            }
            (Rule::SecureBoot, Detail::SecureBoot(Some(false))) => {
                f.write_str("Secure Boot is disabled")
            }
            (Rule::SecureBoot, _) => f.write_str("Secure Boot state is not in the log"),
            (Rule::SecureBootVariable, Detail::Variable(v)) => match self.seen {
                Some(_) => write!(f, "is not an allowed value of {v}"),
                None => write!(f, "{v} is not in the log"),
            },
            (Rule::DbxRevocation, _) => {
                f.write_str("is a revocation dbx must contain but does not")
            }
            (Rule::Authority, _) => {
                f.write_str("authority is not allowed to authorize boot applications")
            }
            (Rule::KernelCmdlineForbidden, Detail::Token(t)) => {
                write!(f, "kernel command line contains the forbidden token {t:?}")
            }
            (Rule::KernelCmdlineRequired, Detail::Token(t)) => {
                write!(f, "kernel command line lacks the required token {t:?}")
            }
            (Rule::KernelCmdlineUnknown, _) => f.write_str(
                "does not match its digest: the kernel command line cannot be established",
            ),
            (rule, _) => f.write_str(rule.name()),
        }
    }
}

/// Evidence to appraise. The PCR values, if given, are the quoted ones (e.g. `tpm2_quote -o`);
/// without them the log's replay must match the quote's digest by itself.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub attest: &'a [u8],
    pub signature: Signature<'a>,
    pub ak: AttestationKey<'a>,
    pub nonce: &'a [u8],
    pub pcrs: Option<&'a PcrSet>,
    pub event_log: Option<&'a [u8]>,
    pub workarounds: Workarounds,
    /// PCRs extended by the running OS's own logs (IMA: PCR 10), checked against those logs
    /// and not compared with the firmware event log.
    pub runtime_pcrs: u32,
}

/// The outcome: trusted or not, and why, in a fixed-capacity list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict<'a, const N: usize> {
    pub trusted: bool,
    pub findings: heapless::Vec<Finding<'a>, N>,
    /// Findings that did not fit (failures displace remarks first).
    pub dropped: u32,
    /// SHA-256 of the whitelist used.
    pub whitelist: [u8; 32],
    /// The quote's TPM firmware version and clock, when it verified.
    pub firmware_version: Option<u64>,
    pub events_checked: u32,
}

impl<'a, const N: usize> Verdict<'a, N> {
    fn push(&mut self, f: Finding<'a>) {
        if f.severity == Severity::Fail {
            self.trusted = false;
        }
        if let Err(f) = self.findings.push(f) {
            // Full: a failure replaces the last remark, if any.
            let slot = self
                .findings
                .iter()
                .rposition(|g| g.severity == Severity::Info);
            if let (Severity::Fail, Some(g)) =
                (f.severity, slot.and_then(|i| self.findings.get_mut(i)))
            {
                *g = f;
            }
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    /// Failures (as opposed to remarks).
    pub fn failures(&self) -> impl Iterator<Item = &Finding<'a>> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
    }
}

/// SHA-256 of a public key's raw material: the RSA modulus, or `04 ‖ x ‖ y` for ECC
/// (coordinates left-padded to the field size). The whitelist's "public key digest".
pub fn key_digest(key: &PublicKey<'_>) -> Option<Digest> {
    let mut h = HashAlg::Sha256.hasher()?;
    match key {
        PublicKey::Rsa { modulus, .. } => h.update(crate::public::strip_zeros(modulus)),
        PublicKey::Ecc { curve, x, y } => {
            h.update(&[4]);
            let n = curve.field_size();
            for c in [*x, *y] {
                let c = crate::public::strip_zeros(c);
                for _ in c.len()..n {
                    h.update(&[0]);
                }
                h.update(c);
            }
        }
    }
    Some(h.finalize())
}

/// Banks tried for event rules, in order of preference.
const EVENT_BANKS: [HashAlg; 4] = [
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
    HashAlg::Sha1,
];

/// Appraise evidence against a whitelist with the given signature backend.
pub fn appraise<'a, const N: usize>(
    backend: &(impl SignatureVerifier + ?Sized),
    ev: &Evidence<'a>,
    wl: &Whitelist<'a>,
) -> Verdict<'a, N> {
    let mut v = Verdict {
        trusted: true,
        findings: heapless::Vec::new(),
        dropped: 0,
        whitelist: *wl.digest(),
        firmware_version: None,
        events_checked: 0,
    };
    let settings = *wl.settings();

    // 1. The quote: signature, structure, nonce.
    let quote = match Quote::verify_with(backend, ev.attest, &ev.signature, &ev.ak, ev.nonce) {
        Ok(q) => q,
        Err(e) => {
            v.push(Finding::fail(Rule::Quote).detail(Detail::Quote(e)));
            return v;
        }
    };
    v.firmware_version = Some(quote.attest.firmware_version);

    // 2. What the whitelist requires of the quote.
    if settings.has(flag::AK_RESTRICTED) {
        let by_name = ev.ak.name().and_then(|n| {
            wl.section(section::AK_NAME | n.digest.alg().id())
                .map(|s| s.contains(n.digest.as_bytes()))
        });
        let by_key = key_digest(&ev.ak.key)
            .and_then(|d| wl.contains32(section::AK_KEY_DIGEST, d.as_bytes()));
        if by_name != Some(true) && by_key != Some(true) {
            v.push(Finding::fail(Rule::AttestationKey).seen(key_digest(&ev.ak.key)));
        }
    }
    if quote.attest.firmware_version < settings.min_firmware_version {
        v.push(
            Finding::fail(Rule::FirmwareVersion).detail(Detail::Version {
                seen: quote.attest.firmware_version,
                min: settings.min_firmware_version,
            }),
        );
    }
    for (alg, mask) in settings.required_pcrs {
        if alg == 0 {
            continue;
        }
        let quoted = quote
            .info
            .pcr_select
            .banks()
            .filter(|b| b.alg == alg)
            .fold(0u32, |m, b| m | b.mask());
        for pcr in 0u8..32 {
            let bit = 1u32 << pcr;
            if mask & bit != 0 && quoted & bit == 0 {
                let d = HashAlg::from_id(alg).map(Digest::zero);
                v.push(Finding::fail(Rule::PcrNotQuoted).pcr(pcr).expected(d));
            }
        }
    }

    // 3. The event log.
    let log = match ev.event_log.map(EventLog::parse) {
        Some(Ok(log)) => Some(log),
        Some(Err(e)) => {
            v.push(Finding::fail(Rule::EventLogInvalid).detail(Detail::EventLog(e)));
            None
        }
        None => {
            if settings.has(flag::EVENTLOG_REQUIRED) {
                v.push(Finding::fail(Rule::EventLogMissing));
            }
            None
        }
    };
    // Replayed in place: a `Replay` is 6 KiB, so it is never moved.
    let mut replay_state = Replay::empty();
    let replay = log.as_ref().map(|l| {
        replay_state.replay_log(l, ALL_PCRS);
        &replay_state
    });

    // 4. PCR values bound to the quote: the supplied ones if they match its digest, else the
    //    replay's if they do. `confirmed`: PCRs (any bank) whose log replay matches the quote.
    let mut supplied_ok = false;
    if let Some(p) = ev.pcrs {
        match quote.check_pcrs(p) {
            Ok(()) => supplied_ok = true,
            Err(e) => v.push(Finding::fail(Rule::PcrDigest).detail(Detail::Quote(e))),
        }
    }
    let mut confirmed = 0u32;
    let mut replay_bound = false;
    if let Some(replay) = &replay {
        if supplied_ok {
            if let Some(p) = ev.pcrs {
                let mut bad = 0u32;
                let mut selected = 0u32;
                for (alg, pcr) in quote.info.pcr_select.iter() {
                    let bit = 1u32.checked_shl(u32::from(pcr)).unwrap_or(0);
                    if ev.runtime_pcrs & bit != 0 {
                        continue;
                    }
                    selected |= bit;
                    let Some(quoted) = HashAlg::from_id(alg).and_then(|a| p.pcr(a, pcr)) else {
                        continue;
                    };
                    match crate::eventlog::compare_pcr(replay, pcr, quoted, ev.workarounds) {
                        PcrStatus::Match => confirmed |= bit,
                        PcrStatus::MatchWithWorkaround { workaround } => {
                            confirmed |= bit;
                            v.push(
                                Finding::info(Rule::WorkaroundApplied)
                                    .pcr(pcr)
                                    .detail(Detail::Workaround(workaround)),
                            );
                        }
                        PcrStatus::Mismatch => {
                            bad |= bit;
                            let seen = replay.bank(quoted.alg()).and_then(|b| b.get(pcr)).copied();
                            v.push(
                                Finding::fail(Rule::LogReplay)
                                    .pcr(pcr)
                                    .seen(seen)
                                    .expected(Some(*quoted)),
                            );
                        }
                        // A bank this build cannot replay, or an event without its digest:
                        // another bank may still confirm the PCR.
                        _ => {}
                    }
                }
                // A quoted PCR no bank could confirm: the log says nothing trustworthy about it.
                for pcr in 0u8..32 {
                    let bit = 1u32 << pcr;
                    if selected & bit != 0 && (confirmed | bad) & bit == 0 {
                        v.push(Finding::fail(Rule::LogReplay).pcr(pcr));
                    }
                }
                confirmed &= !bad;
            }
        } else {
            // No usable supplied values: the replay itself must hash to the quote's digest.
            match quote.check_pcrs(*replay) {
                Ok(()) => {
                    replay_bound = true;
                    confirmed = quote
                        .info
                        .pcr_select
                        .banks()
                        .fold(0u32, |m, b| m | b.mask());
                }
                Err(_) => v.push(Finding::fail(Rule::LogReplay)),
            }
        }
    }

    // 5. Golden PCR values, against values bound to the quote.
    let golden_banks = wl
        .sections()
        .filter(|s| s.id & 0xff00 == section::PCR_GOLDEN)
        .count();
    if golden_banks > 0 {
        if !supplied_ok && !replay_bound {
            v.push(Finding::fail(Rule::PcrValuesUnavailable));
        } else {
            for (alg, pcr) in quote.info.pcr_select.iter() {
                let Some(a) = HashAlg::from_id(alg) else {
                    continue;
                };
                let value = if supplied_ok {
                    ev.pcrs.and_then(|p| p.pcr(a, pcr)).copied()
                } else {
                    replay
                        .as_ref()
                        .and_then(|r| r.bank(a))
                        .and_then(|b| b.get(pcr))
                        .copied()
                };
                let Some(value) = value else { continue };
                if wl.pcr_value_allowed(a, pcr, value.as_bytes()) == Some(false) {
                    v.push(Finding::fail(Rule::GoldenPcr).pcr(pcr).seen(Some(value)));
                }
            }
        }
    }

    let Some(log) = log else { return v };

    // The facts, from consistent events. It checks every event's digest against its data
    // once; the loops below re-check events only when it found an inconsistent one.
    let summary = BootSummary::from_log(&log);
    let any_inconsistent = summary.inconsistent_events > 0;

    // 6. Event rules, on PCRs the quote confirmed.
    let event_bank = EVENT_BANKS.into_iter().find(|b| {
        wl.section(section::EVENT_DIGEST | b.id()).is_some()
            && log.algorithms().iter().any(|a| a.alg == b.id())
    });
    let event_bank = event_bank.or_else(|| {
        // SHA-1 format logs have no Spec ID algorithm list.
        (log.algorithms().is_empty()
            && wl
                .section(section::EVENT_DIGEST | HashAlg::Sha1.id())
                .is_some())
        .then_some(HashAlg::Sha1)
    });
    for e in log.events() {
        if !e.extends() {
            continue;
        }
        let Ok(pcr) = u8::try_from(e.pcr) else {
            continue;
        };
        let bit = 1u32.checked_shl(e.pcr).unwrap_or(0);
        if any_inconsistent && matches!(check_event(&e), DigestCheck::Inconsistent { .. }) {
            v.push(Finding::info(Rule::DigestInconsistent).event(e.index, e.pcr, e.event_type));
        }
        if settings.event_pcrs & bit == 0 || confirmed & bit == 0 {
            continue;
        }
        v.events_checked = v.events_checked.saturating_add(1);
        let Some(bank) = event_bank else {
            if settings.unknown_events_allowed & bit == 0 {
                v.push(Finding::fail(Rule::UnknownEvent).event(e.index, e.pcr, e.event_type));
            }
            continue;
        };
        let Some(d) = e.digest(bank) else { continue };
        let seen = Digest::from_slice(bank, d);
        match wl.event_digest_allowed(bank, pcr, e.event_type.0, d) {
            Some(true) => {}
            Some(false) => v.push(
                Finding::fail(Rule::EventDigest)
                    .event(e.index, e.pcr, e.event_type)
                    .seen(seen),
            ),
            None if settings.unknown_events_allowed & bit != 0 => {}
            None => v.push(
                Finding::fail(Rule::UnknownEvent)
                    .event(e.index, e.pcr, e.event_type)
                    .seen(seen),
            ),
        }
    }

    // 7. Secure Boot and the kernel command line, from consistent events on confirmed PCRs.
    let pcr7 = confirmed & (1 << 7) != 0;
    if settings.has(flag::SECURE_BOOT_REQUIRED) {
        let state = if pcr7 {
            summary.secure_boot.map(|f| f.value)
        } else {
            None
        };
        if state != Some(true) {
            v.push(
                Finding::fail(Rule::SecureBoot)
                    .pcr(7)
                    .detail(Detail::SecureBoot(state)),
            );
        }
    }
    if let Some(sb) = wl.section(section::SB_VAR) {
        for (var, name, fact) in [
            (0u8, "PK", summary.pk),
            (1, "KEK", summary.kek),
            (2, "db", summary.db),
            (3, "dbx", summary.dbx),
        ] {
            if !sb.contains_prefix(&[var]) {
                continue;
            }
            let seen = fact.filter(|_| pcr7);
            let mut key = [0u8; 33];
            key[0] = var;
            let ok = seen.is_some_and(|f| {
                key.get_mut(1..)
                    .map(|k| k.copy_from_slice(&f.value))
                    .is_some()
                    && sb.contains(&key)
            });
            if !ok {
                let mut f = Finding::fail(Rule::SecureBootVariable)
                    .pcr(7)
                    .seen(seen.and_then(|f| Digest::from_slice(HashAlg::Sha256, &f.value)))
                    .detail(Detail::Variable(name));
                f.event_index = seen.map(|s| s.index);
                v.push(f);
            }
        }
    }
    if let Some(req) = wl.section(section::DBX_REQUIRED) {
        let dbx = summary
            .dbx
            .filter(|_| pcr7)
            .and_then(|f| log.event(f.index))
            .and_then(|e| match decode(&e, log.uintn_bytes()) {
                EventData::Variable(var) => Some(var),
                _ => None,
            });
        for want in req.records() {
            let present = dbx.is_some_and(|var| {
                var.signature_lists()
                    .any(|l| l.is_ok_and(|l| l.signatures().any(|s| s.data == want)))
            });
            if !present {
                v.push(
                    Finding::fail(Rule::DbxRevocation)
                        .pcr(7)
                        .seen(Digest::from_slice(HashAlg::Sha256, want)),
                );
            }
        }
    }
    if settings.has(flag::AUTHORITY_RESTRICTED) && pcr7 {
        for e in log.events_for_pcr(7) {
            if e.event_type != EventType::EFI_VARIABLE_AUTHORITY {
                continue;
            }
            let d = if check_event(&e).is_consistent() {
                HashAlg::Sha256.hash(e.data)
            } else {
                None
            };
            let ok =
                d.is_some_and(|d| wl.contains32(section::AUTHORITY, d.as_bytes()) == Some(true));
            if !ok {
                v.push(
                    Finding::fail(Rule::Authority)
                        .event(e.index, e.pcr, e.event_type)
                        .seen(d),
                );
            }
        }
    }
    let rules = wl.cmdline_rules();
    // A command line hidden behind an event whose data no longer matches its digest must not
    // pass the rules by its absence: such an event on the PCRs that carry command lines (8 for
    // GRUB, 12 for systemd-boot) makes the command line unknown.
    if any_inconsistent && wl.cmdline_rules().next().is_some() {
        let hidden = [8u32, 12]
            .into_iter()
            .flat_map(|p| log.events_for_pcr(p))
            .find(|e| {
                matches!(e.event_type, EventType::IPL | EventType::EFI_ACTION)
                    && matches!(check_event(e), DigestCheck::Inconsistent { .. })
            });
        if let Some(e) = hidden {
            v.push(Finding::fail(Rule::KernelCmdlineUnknown).event(e.index, e.pcr, e.event_type));
            return v;
        }
    }
    let cmdline = summary.kernel_cmdline.map(|f| f.value);
    for (kind, token) in rules {
        let prefix = token.ends_with('=');
        let present = match cmdline {
            Some(KernelCmdline::Grub(s)) => s.split_ascii_whitespace().any(|t| {
                if prefix {
                    t.starts_with(token)
                } else {
                    t == token
                }
            }),
            Some(KernelCmdline::Utf16(u)) => utf16_has_token(u.chars(), token, prefix),
            None => false,
        };
        match kind {
            1 if !present => {
                v.push(Finding::fail(Rule::KernelCmdlineRequired).detail(Detail::Token(token)))
            }
            2 if present => {
                v.push(Finding::fail(Rule::KernelCmdlineForbidden).detail(Detail::Token(token)))
            }
            _ => {}
        }
    }
    v
}

/// Whether whitespace-separated text (given as chars, e.g. decoded UTF-16) has `token`
/// (`prefix`: a token starting with it), without a buffer.
fn utf16_has_token(chars: impl Iterator<Item = char>, token: &str, prefix: bool) -> bool {
    // Per text token: how many chars of `token` matched so far, or None once it differs.
    let mut matched: Option<usize> = Some(0);
    let want = token.chars().count();
    for c in chars.chain(core::iter::once(' ')) {
        if c.is_whitespace() {
            if matched == Some(want) {
                return true;
            }
            matched = Some(0);
            continue;
        }
        matched = match matched {
            Some(n) if n == want && prefix => return true,
            Some(n) if token.chars().nth(n) == Some(c) => n.checked_add(1),
            _ => None,
        };
    }
    false
}
