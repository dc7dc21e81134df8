//! TCG PC Client firmware event logs (TCG PC Client Platform Firmware Profile (PFP), §10):
//! parsing ([`EventLog`], zero-copy, both the SHA-1 and the crypto-agile format), replay into
//! PCR banks ([`Replay`], a state machine over fixed arrays), comparison with quoted PCRs
//! ([`compare_quote`]), digest-to-data consistency ([`check_event`]), decoding of event data
//! ([`decode`], [`uefi`]) and a derived boot summary ([`BootSummary`]). No heap anywhere.
//!
//! ```no_run
//! # use trustpool_core::eventlog::*;
//! # fn f(bytes: &[u8]) -> Result<(), EventLogError> {
//! let log = EventLog::parse(bytes)?;
//! let replay = Replay::log(&log, ALL_PCRS);
//! for ev in log.events() {
//!     let _ = (ev.pcr, ev.event_type, decode(&ev, log.uintn_bytes()), check_event(&ev));
//! }
//! # let _ = replay; Ok(()) }
//! ```

mod check;
mod decode;
mod devpath;
mod parse;
mod replay;
mod summary;
mod types;
pub mod uefi;

pub use check::{check_event, check_event_bank, is_checkable, DigestBasis, DigestCheck};
pub use decode::{decode, EventData};
pub use devpath::{DevicePath, DevicePathNode, MAX_DEVICE_PATH_NODES};
pub use parse::{
    AlgorithmSize, DigestIter, Digests, Event, EventDigest, EventLog, EventLogError, Events,
    LogFormat, RawEvents, SpecIdEvent, MAX_ALGORITHMS, MAX_EVENT_SIZE, MAX_PCR_INDEX,
    PCR_INDEX_NONE, SPEC_ID_SIGNATURE,
};
pub use replay::{
    compare_pcr, compare_quote, compare_selection, startup_locality, Comparison, PcrComparison,
    PcrStatus, Replay, ReplayError, Workaround, Workarounds, ALL_PCRS, STARTUP_LOCALITY_SIGNATURE,
};
pub use summary::{BootApplication, BootSummary, Fact, KernelCmdline, MAX_BOOT_APPLICATIONS};
pub use types::EventType;
