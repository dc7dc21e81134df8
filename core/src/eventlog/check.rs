//! Digest-to-data consistency: for event types whose digest is the hash of (part of) their
//! data, check every bank the build can hash. Facts may only be derived from consistent
//! events: the data of any other event is unauthenticated by replay.

use crate::alg::HashAlg;

use super::parse::Event;
use super::types::EventType;
use super::uefi::UefiVariableData;

/// What an event's digests were found to be the hash of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum DigestBasis {
    /// The whole event data (PFP §10.4.1 for EV_SEPARATOR, EV_S_CRTM_VERSION, EV_EFI_ACTION,
    /// EV_EFI_GPT_EVENT, EV_EFI_VARIABLE_*; systemd-boot's PCR 12 EV_IPL).
    EventData,
    /// Only `VariableData` of the `UEFI_VARIABLE_DATA`: many firmwares (EDK2 among them) hash
    /// just the variable's value for EV_EFI_VARIABLE_BOOT. The variable's name and GUID are
    /// then not covered by the digest.
    VariableData,
    /// GRUB's PCR 8 EV_IPL: the string after its `grub_cmd: `/`kernel_cmdline: ` prefix,
    /// without the trailing NUL (what GRUB measures). The prefix is not covered by the digest:
    /// the text is authenticated, its kind (command or kernel command line) is not.
    GrubString,
    /// As [`DigestBasis::GrubString`] but including the NUL.
    GrubStringWithNul,
    /// The whole event data without its trailing NUL (a PCR 8 EV_IPL string measured whole).
    EventDataWithoutNul,
    /// The event data without its last byte: shim before rhboot/shim commit 8a27a48 logged
    /// its EV_EFI_VARIABLE_AUTHORITY events with an extra byte (go-attestation issue 157).
    /// Accepted only when the data is longer than its `UEFI_VARIABLE_DATA`.
    ShimAuthorityExtraByte,
}

/// Result of checking one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "check"))]
pub enum DigestCheck {
    /// The event type's digest is not a hash of its data (e.g. image loads, firmware blobs,
    /// EV_NO_ACTION), so there is nothing to check.
    NotApplicable,
    /// Every hashable digest is the hash of the same part of the data.
    Consistent { basis: DigestBasis },
    /// The digest of this bank (`TPM_ALG_ID`) is not the hash of the data.
    Inconsistent { alg: u16 },
    /// None of the event's digests uses a hash this build computes.
    Unverifiable,
}

impl DigestCheck {
    pub fn is_consistent(&self) -> bool {
        matches!(self, DigestCheck::Consistent { .. })
    }
}

/// GRUB's measured part of a PCR 8 EV_IPL string: after `^[A-Za-z_]+:? ` (tpm2-tools'
/// `verify_digests` uses the same rule).
fn grub_string(data: &[u8]) -> Option<&[u8]> {
    let word = data
        .iter()
        .take_while(|c| c.is_ascii_alphabetic() || **c == b'_')
        .count();
    let mut rest = data.get(word..)?;
    if word == 0 {
        return None;
    }
    rest = rest.strip_prefix(b":").unwrap_or(rest);
    rest.strip_prefix(b" ")
}

/// Candidate byte strings the digest may be the hash of, for this event.
fn candidates<'a>(ev: &Event<'a>) -> heapless::Vec<(DigestBasis, &'a [u8]), 4> {
    let mut c = heapless::Vec::new();
    let data = ev.data;
    let t = ev.event_type;
    // Capacity 4 is never exceeded below.
    let mut add = |b, d| {
        let _ = c.push((b, d));
    };
    match t {
        EventType::SEPARATOR
        | EventType::S_CRTM_VERSION
        | EventType::EFI_VARIABLE_DRIVER_CONFIG
        | EventType::EFI_ACTION
        | EventType::EFI_GPT_EVENT => add(DigestBasis::EventData, data),
        EventType::EFI_VARIABLE_BOOT | EventType::EFI_VARIABLE_BOOT2 => {
            add(DigestBasis::EventData, data);
            if let Ok(v) = UefiVariableData::parse(data) {
                add(DigestBasis::VariableData, v.data);
            }
        }
        EventType::EFI_VARIABLE_AUTHORITY => {
            add(DigestBasis::EventData, data);
            let extra = UefiVariableData::parse(data).is_ok_and(|v| !v.trailing.is_empty());
            if let (true, Some((_, shorter))) = (extra, data.split_last()) {
                add(DigestBasis::ShimAuthorityExtraByte, shorter);
            }
        }
        EventType::IPL if ev.pcr == 8 => {
            if let Some(s) = data.strip_suffix(&[0]) {
                if let Some(g) = grub_string(s) {
                    add(DigestBasis::GrubString, g);
                }
                if let Some(g) = grub_string(data) {
                    add(DigestBasis::GrubStringWithNul, g);
                }
                add(DigestBasis::EventDataWithoutNul, s);
            }
            add(DigestBasis::EventData, data);
        }
        EventType::IPL if ev.pcr == 12 => add(DigestBasis::EventData, data),
        _ => {}
    }
    c
}

/// Whether [`check_event`] can say anything about this event's type and PCR.
pub fn is_checkable(ev: &Event<'_>) -> bool {
    matches!(
        ev.event_type,
        EventType::SEPARATOR
            | EventType::S_CRTM_VERSION
            | EventType::EFI_VARIABLE_DRIVER_CONFIG
            | EventType::EFI_ACTION
            | EventType::EFI_GPT_EVENT
            | EventType::EFI_VARIABLE_BOOT
            | EventType::EFI_VARIABLE_BOOT2
            | EventType::EFI_VARIABLE_AUTHORITY
    ) || (ev.event_type == EventType::IPL && matches!(ev.pcr, 8 | 12))
}

/// Check an event's digests against its data, in every bank this build can hash. The first
/// hashable bank picks the basis; every other bank must hash the same bytes.
pub fn check_event(ev: &Event<'_>) -> DigestCheck {
    if !is_checkable(ev) {
        return DigestCheck::NotApplicable;
    }
    let cands = candidates(ev);
    let mut basis: Option<(DigestBasis, &[u8])> = None;
    for d in ev.digests.iter() {
        let Some(alg) = d.hash().filter(|a| a.is_supported()) else {
            continue;
        };
        let hashes_to = |bytes: &[u8]| alg.hash(bytes).is_some_and(|h| h.as_bytes() == d.bytes);
        match basis {
            None => match cands.iter().find(|(_, bytes)| hashes_to(bytes)) {
                Some(&found) => basis = Some(found),
                None => return DigestCheck::Inconsistent { alg: d.alg },
            },
            Some((_, bytes)) => {
                if !hashes_to(bytes) {
                    return DigestCheck::Inconsistent { alg: d.alg };
                }
            }
        }
    }
    match basis {
        Some((basis, _)) => DigestCheck::Consistent { basis },
        None => DigestCheck::Unverifiable,
    }
}

/// Check one bank only (e.g. the bank a quote covers).
pub fn check_event_bank(ev: &Event<'_>, alg: HashAlg) -> DigestCheck {
    if !is_checkable(ev) {
        return DigestCheck::NotApplicable;
    }
    let Some(d) = ev.digests.get(alg).filter(|_| alg.is_supported()) else {
        return DigestCheck::Unverifiable;
    };
    candidates(ev)
        .iter()
        .find(|(_, bytes)| alg.hash(bytes).is_some_and(|h| h.as_bytes() == d))
        .map_or(DigestCheck::Inconsistent { alg: alg.id() }, |(basis, _)| {
            DigestCheck::Consistent { basis: *basis }
        })
}
