//! Facts derived from a log in one pass, with no heap. Only events whose digests are
//! consistent with their data contribute facts (see [`super::check_event`]), except for boot
//! applications, whose digest is an Authenticode hash (bound to the PCRs by replay) and whose
//! device path is an unauthenticated hint.

use crate::alg::HashAlg;

use super::check::{check_event, DigestCheck};
use super::decode::{decode, EventData};
use super::parse::{Event, EventLog};
use super::types::EventType;
use super::uefi::{guids, CrtmVersion, EventText, GrubString, Utf16Str};

/// Boot applications a summary records.
pub const MAX_BOOT_APPLICATIONS: usize = 16;

/// A fact and the index of the event it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fact<T> {
    pub index: u32,
    pub value: T,
}

/// An EV_EFI_BOOT_SERVICES_APPLICATION (PCR 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootApplication {
    pub index: u32,
    /// The event's SHA-256 digest: the image's Authenticode hash (PFP §10.4.3).
    pub authenticode_sha256: Option<[u8; 32]>,
}

impl BootApplication {
    /// The image's device path (rendered on demand with `Display`; unauthenticated).
    pub fn device_path<'a>(&self, log: &EventLog<'a>) -> Option<super::DevicePath<'a>> {
        match decode(&log.event(self.index)?, log.uintn_bytes()) {
            EventData::ImageLoad(i) => Some(i.device_path),
            _ => None,
        }
    }
}

/// The kernel command line as measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelCmdline<'a> {
    /// GRUB's `kernel_cmdline: ` string (PCR 8), the kernel path first. GRUB does not measure
    /// the prefix, so the text is authenticated but that it is the kernel command line (and
    /// not a `grub_cmd: ` string relabelled) is not.
    Grub(&'a str),
    /// systemd-boot's UTF-16 command line (PCR 12).
    Utf16(Utf16Str<'a>),
}

/// Facts about a boot, from consistent events.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootSummary<'a> {
    /// The SecureBoot variable (PCR 7, EV_EFI_VARIABLE_DRIVER_CONFIG) before the PCR 7
    /// separator: `true` when 1; `false` when 0 or empty (the variable does not exist).
    pub secure_boot: Option<Fact<bool>>,
    /// The SetupMode variable, if measured.
    pub setup_mode: Option<Fact<bool>>,
    /// SHA-256 of the PK, KEK, db and dbx variable data as measured into PCR 7.
    pub pk: Option<Fact<[u8; 32]>>,
    pub kek: Option<Fact<[u8; 32]>>,
    pub db: Option<Fact<[u8; 32]>>,
    pub dbx: Option<Fact<[u8; 32]>>,
    /// Boot applications in log order (at most [`MAX_BOOT_APPLICATIONS`]).
    pub boot_applications: heapless::Vec<BootApplication, MAX_BOOT_APPLICATIONS>,
    /// Boot applications beyond the capacity.
    pub boot_applications_omitted: u32,
    /// The last kernel command line measured.
    pub kernel_cmdline: Option<Fact<KernelCmdline<'a>>>,
    pub crtm_version: Option<Fact<CrtmVersion<'a>>>,
    /// Bit i set: PCR i (0–7) has a consistent EV_SEPARATOR with value 0.
    pub separators: u8,
    /// Bit i set: PCR i (0–7) has an error separator (value other than 0).
    pub separator_errors: u8,
    /// Consistent EV_EFI_VARIABLE_AUTHORITY events in PCR 7 before / after its separator.
    pub authorities_before_separator: u32,
    pub authorities_after_separator: u32,
    /// Secure Boot configuration variables measured into PCR 7 after its separator (ignored).
    pub late_config_variables: u32,
    /// Events whose digest does not match their data, and the first of them.
    pub inconsistent_events: u32,
    pub first_inconsistent: Option<u32>,
    /// Checkable events none of whose digests this build can compute.
    pub unverifiable_events: u32,
}

impl<'a> BootSummary<'a> {
    /// Summarize a log in one pass.
    pub fn from_log(log: &EventLog<'a>) -> BootSummary<'a> {
        let mut s = BootSummary::default();
        let uintn = log.uintn_bytes();
        for ev in log.events() {
            s.add(&ev, uintn);
        }
        s
    }

    fn add(&mut self, ev: &Event<'a>, uintn: usize) {
        if ev.event_type.is_image_load() {
            if ev.event_type == EventType::EFI_BOOT_SERVICES_APPLICATION && ev.pcr == 4 {
                let app = BootApplication {
                    index: ev.index,
                    authenticode_sha256: ev
                        .digest(HashAlg::Sha256)
                        .and_then(|d| <[u8; 32]>::try_from(d).ok()),
                };
                if self.boot_applications.push(app).is_err() {
                    self.boot_applications_omitted =
                        self.boot_applications_omitted.saturating_add(1);
                }
            }
            return;
        }
        match check_event(ev) {
            DigestCheck::Consistent { .. } => {}
            DigestCheck::NotApplicable => return,
            DigestCheck::Unverifiable => {
                self.unverifiable_events = self.unverifiable_events.saturating_add(1);
                return;
            }
            DigestCheck::Inconsistent { .. } => {
                self.inconsistent_events = self.inconsistent_events.saturating_add(1);
                self.first_inconsistent.get_or_insert(ev.index);
                return;
            }
        }
        let pcr7_sealed = self.separators & (1 << 7) != 0 || self.separator_errors & (1 << 7) != 0;
        let index = ev.index;
        match (ev.event_type, decode(ev, uintn)) {
            (EventType::SEPARATOR, data) if ev.pcr < 8 => {
                let bit = 1u8 << ev.pcr;
                if data == EventData::Separator(0) {
                    self.separators |= bit;
                } else {
                    self.separator_errors |= bit;
                }
            }
            (EventType::EFI_VARIABLE_DRIVER_CONFIG, EventData::Variable(v)) if ev.pcr == 7 => {
                if pcr7_sealed {
                    self.late_config_variables = self.late_config_variables.saturating_add(1);
                    return;
                }
                let sha256 = || {
                    HashAlg::Sha256
                        .hash(v.data)
                        .and_then(|d| <[u8; 32]>::try_from(d.as_bytes()).ok())
                        .map(|value| Fact { index, value })
                };
                let global = v.guid == guids::EFI_GLOBAL_VARIABLE;
                let secdb = v.guid == guids::EFI_IMAGE_SECURITY_DATABASE;
                // An empty SecureBoot variable is how firmware without Secure Boot measures
                // its absence: not enabled.
                let flag = || match v.data {
                    [] => Some(false),
                    _ => v.as_bool(),
                };
                if global && v.name.eq_str("SecureBoot") {
                    self.secure_boot = self
                        .secure_boot
                        .or(flag().map(|value| Fact { index, value }));
                } else if global && v.name.eq_str("SetupMode") {
                    self.setup_mode = self
                        .setup_mode
                        .or(v.as_bool().map(|value| Fact { index, value }));
                } else if global && v.name.eq_str("PK") {
                    self.pk = self.pk.or_else(sha256);
                } else if global && v.name.eq_str("KEK") {
                    self.kek = self.kek.or_else(sha256);
                } else if secdb && v.name.eq_str("db") {
                    self.db = self.db.or_else(sha256);
                } else if secdb && v.name.eq_str("dbx") {
                    self.dbx = self.dbx.or_else(sha256);
                }
            }
            (EventType::EFI_VARIABLE_AUTHORITY, _) if ev.pcr == 7 => {
                let n = if pcr7_sealed {
                    &mut self.authorities_after_separator
                } else {
                    &mut self.authorities_before_separator
                };
                *n = n.saturating_add(1);
            }
            (EventType::S_CRTM_VERSION, EventData::CrtmVersion(v)) if ev.pcr == 0 => {
                self.crtm_version = Some(Fact { index, value: v });
            }
            (
                EventType::IPL,
                EventData::Text(EventText::Grub {
                    kind: GrubString::KernelCmdline,
                    text,
                }),
            ) if ev.pcr == 8 => {
                self.kernel_cmdline = Some(Fact {
                    index,
                    value: KernelCmdline::Grub(text),
                })
            }
            (EventType::IPL, EventData::Text(EventText::Utf16(text))) if ev.pcr == 12 => {
                self.kernel_cmdline = Some(Fact {
                    index,
                    value: KernelCmdline::Utf16(text),
                });
            }
            _ => {}
        }
    }
}
