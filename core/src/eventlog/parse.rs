//! Framing of TCG PC Client event logs: the SHA-1 format (`TCG_PCClientPCREvent`, PFP §10.2.1)
//! and the crypto-agile format (a SHA-1-format `TCG_EfiSpecIDEvent` header, PFP §10.4.5.1,
//! then `TCG_PCR_EVENT2` records, PFP §10.2.2). A checked, zero-copy view in the manner of
//! smoltcp's `wire` modules: [`EventLog::parse`] checks every record once, after which
//! iteration cannot fail.

use core::fmt;

use crate::alg::{id, HashAlg, MAX_DIGEST_SIZE};
use crate::codec::{self, ErrorKind, Reader};

use super::types::EventType;

/// Largest `eventSize` accepted (real events are at most a few hundred KiB: certificate
/// databases, `dbx`).
pub const MAX_EVENT_SIZE: usize = 16 << 20;
/// Most algorithms a Spec ID event may declare (the TCG registry has eight hash algorithms).
pub const MAX_ALGORITHMS: usize = 8;
/// Largest `pcrIndex` of an event that extends a PCR (`TPML_PCR_SELECTION` covers 32 PCRs;
/// PC Client TPMs implement 24).
pub const MAX_PCR_INDEX: u32 = 31;
/// `pcrIndex` of EV_NO_ACTION events that belong to no PCR: Windows writes its own
/// (non-measured) entries this way.
pub const PCR_INDEX_NONE: u32 = u32::MAX;
/// `TCG_EfiSpecIDEvent.signature` of a crypto-agile log (PFP §10.4.5.1).
pub const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";

/// Bytes before `event` in a `TCG_PCClientPCREvent`: pcrIndex, eventType, digest, eventDataSize.
pub(crate) const SHA1_HEADER_LEN: usize = 4 + 4 + 20 + 4;

/// The two log formats of PFP §10.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum LogFormat {
    /// Every record is a `TCG_PCClientPCREvent` with one SHA-1 digest (TPM 1.2 style).
    Sha1,
    /// A `TCG_EfiSpecIDEvent` header, then `TCG_PCR_EVENT2` records.
    CryptoAgile,
}

/// Why a log was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case", tag = "kind"))]
pub enum EventLogError {
    /// The log has no event: it is zero bytes long, or nothing but zero bytes.
    Empty { len: usize },
    /// The event with this index (0 is the first record, the Spec ID event in a crypto-agile
    /// log), starting at byte `event_offset`, is malformed. `error` names the structure, field
    /// and byte offset.
    Event {
        index: u32,
        event_offset: usize,
        error: codec::Error,
    },
}

impl EventLogError {
    /// The underlying field error, unless the log was empty.
    pub fn field_error(&self) -> Option<&codec::Error> {
        match self {
            EventLogError::Empty { .. } => None,
            EventLogError::Event { error, .. } => Some(error),
        }
    }
}

impl fmt::Display for EventLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventLogError::Empty { len: 0 } => f.write_str("event log is empty"),
            EventLogError::Empty { len } => {
                write!(f, "event log has no events ({len} bytes, all zero)")
            }
            EventLogError::Event {
                index,
                event_offset,
                error,
            } => write!(f, "event {index} (at byte {event_offset}): {error}"),
        }
    }
}

/// One `TCG_EfiSpecIdEventAlgorithmSize`: an algorithm and its digest size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AlgorithmSize {
    /// `TPM_ALG_ID`, possibly one this build does not know.
    pub alg: u16,
    pub size: u16,
}

impl AlgorithmSize {
    pub fn hash(&self) -> Option<HashAlg> {
        HashAlg::from_id(self.alg)
    }
}

/// The algorithms of a log, in Spec ID order, stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlgTable {
    entries: [AlgorithmSize; MAX_ALGORITHMS],
    len: u8,
}

impl AlgTable {
    const EMPTY: AlgTable = AlgTable {
        entries: [AlgorithmSize { alg: 0, size: 0 }; MAX_ALGORITHMS],
        len: 0,
    };

    const SHA1: AlgTable = {
        let mut t = AlgTable::EMPTY;
        t.entries[0] = AlgorithmSize {
            alg: id::SHA1,
            size: 20,
        };
        t.len = 1;
        t
    };

    pub(crate) fn as_slice(&self) -> &[AlgorithmSize] {
        self.entries.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// Position and digest size of `alg`.
    fn find(&self, alg: u16) -> Option<(usize, usize)> {
        self.as_slice()
            .iter()
            .position(|a| a.alg == alg)
            .and_then(|i| Some((i, usize::from(self.entries.get(i)?.size))))
    }
}

/// The `TCG_EfiSpecIDEvent` that heads a crypto-agile log (PFP §10.4.5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecIdEvent<'a> {
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    /// 1: `UINTN` is 32 bits; 2: 64 bits. Sizes the `UINTN` fields of event data.
    pub uintn_size: u8,
    algs: AlgTable,
    pub vendor_info: &'a [u8],
}

impl<'a> SpecIdEvent<'a> {
    /// The declared algorithms and digest sizes, in order.
    pub fn algorithms(&self) -> &[AlgorithmSize] {
        self.algs.as_slice()
    }

    /// Size of a `UINTN` in bytes (4 or 8).
    pub fn uintn_bytes(&self) -> usize {
        if self.uintn_size == 1 {
            4
        } else {
            8
        }
    }

    /// Parse the event data of the header event. `base` is its offset in the log.
    pub fn parse(data: &'a [u8], base: usize) -> codec::Result<SpecIdEvent<'a>> {
        let mut r = Reader::with_base(data, base, "TCG_EfiSpecIDEvent");
        let at = r.offset();
        let sig: [u8; 16] = r.array("signature")?;
        if &sig != SPEC_ID_SIGNATURE {
            return Err(r.error_at(ErrorKind::InvalidValue { value: 0 }, "signature", at));
        }
        let platform_class = r.u32_le("platformClass")?;
        let spec_version_minor = r.u8("specVersionMinor")?;
        let at = r.offset();
        let spec_version_major = r.u8("specVersionMajor")?;
        if spec_version_major != 2 {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: spec_version_major.into(),
                },
                "specVersionMajor",
                at,
            ));
        }
        let spec_errata = r.u8("specErrata")?;
        let at = r.offset();
        let uintn_size = r.u8("uintnSize")?;
        if !matches!(uintn_size, 1 | 2) {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: uintn_size.into(),
                },
                "uintnSize",
                at,
            ));
        }
        let at = r.offset();
        let n = r.u32_le("numberOfAlgorithms")?;
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n == 0 {
            return Err(r.error_at(
                ErrorKind::InvalidValue { value: 0 },
                "numberOfAlgorithms",
                at,
            ));
        }
        if n > MAX_ALGORITHMS {
            return Err(r.error_at(
                ErrorKind::TooLarge {
                    size: n,
                    max: MAX_ALGORITHMS,
                },
                "numberOfAlgorithms",
                at,
            ));
        }
        let mut algs = AlgTable::EMPTY;
        for _ in 0..n {
            let at = r.offset();
            let alg = r.u16_le("digestSizes.algorithmId")?;
            let size = r.u16_le("digestSizes.digestSize")?;
            let known_size = HashAlg::from_id(alg).map(HashAlg::size);
            let size_ok = match known_size {
                Some(s) => usize::from(size) == s,
                None => size != 0 && usize::from(size) <= MAX_DIGEST_SIZE,
            };
            if !size_ok {
                return Err(r.error_at(
                    ErrorKind::InvalidValue { value: size.into() },
                    "digestSizes.digestSize",
                    at.saturating_add(2),
                ));
            }
            if algs.find(alg).is_some() {
                return Err(r.error_at(
                    ErrorKind::InvalidValue { value: alg.into() },
                    "digestSizes.algorithmId",
                    at,
                ));
            }
            if let Some(slot) = algs.entries.get_mut(usize::from(algs.len)) {
                *slot = AlgorithmSize { alg, size };
                algs.len = algs.len.saturating_add(1);
            }
        }
        let vendor_size = usize::from(r.u8("vendorInfoSize")?);
        let vendor_info = r.take(vendor_size, "vendorInfo")?;
        r.finish()?;
        Ok(SpecIdEvent {
            platform_class,
            spec_version_minor,
            spec_version_major,
            spec_errata,
            uintn_size,
            algs,
            vendor_info,
        })
    }
}

/// One digest of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDigest<'a> {
    /// `TPM_ALG_ID` as logged (declared in the Spec ID event).
    pub alg: u16,
    pub bytes: &'a [u8],
}

impl EventDigest<'_> {
    /// The hash algorithm, when this build knows it.
    pub fn hash(&self) -> Option<HashAlg> {
        HashAlg::from_id(self.alg)
    }
}

/// The digests of one event (`TPML_DIGEST_VALUES`, or the single SHA-1 digest of a
/// `TCG_PCClientPCREvent`), borrowed from the log.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digests<'a> {
    /// The `digests` array (without its count): `(u16 alg, digest)*` for a crypto-agile record,
    /// the bare 20-byte digest for a SHA-1 record.
    raw: &'a [u8],
    count: u32,
    table: AlgTable,
    sha1_record: bool,
}

impl<'a> Digests<'a> {
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> DigestIter<'a> {
        DigestIter {
            raw: self.raw,
            left: self.count,
            table: self.table,
            sha1_record: self.sha1_record,
        }
    }

    /// The digest for `alg`, if the event has one.
    pub fn get(&self, alg: HashAlg) -> Option<&'a [u8]> {
        self.get_id(alg.id())
    }

    /// The digest for a `TPM_ALG_ID`, if the event has one.
    pub fn get_id(&self, alg: u16) -> Option<&'a [u8]> {
        self.iter().find(|d| d.alg == alg).map(|d| d.bytes)
    }
}

impl<'a> IntoIterator for Digests<'a> {
    type Item = EventDigest<'a>;
    type IntoIter = DigestIter<'a>;
    fn into_iter(self) -> DigestIter<'a> {
        self.iter()
    }
}

impl fmt::Debug for Digests<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hex<'b>(&'b [u8]);
        impl fmt::Debug for Hex<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
        f.debug_map()
            .entries(self.iter().map(|d| (d.alg, Hex(d.bytes))))
            .finish()
    }
}

/// Iterator over [`Digests`].
#[derive(Debug, Clone)]
pub struct DigestIter<'a> {
    raw: &'a [u8],
    left: u32,
    table: AlgTable,
    sha1_record: bool,
}

impl<'a> Iterator for DigestIter<'a> {
    type Item = EventDigest<'a>;

    fn next(&mut self) -> Option<EventDigest<'a>> {
        self.left = self.left.checked_sub(1)?;
        if self.sha1_record {
            return Some(EventDigest {
                alg: id::SHA1,
                bytes: self.raw,
            });
        }
        let (head, rest) = self.raw.split_first_chunk::<2>()?;
        let alg = u16::from_le_bytes(*head);
        let (_, size) = self.table.find(alg)?;
        let bytes = rest.get(..size)?;
        self.raw = rest.get(size..)?;
        Some(EventDigest { alg, bytes })
    }
}

/// One event of a log, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Position in the log; 0 is the first record (in a crypto-agile log, the Spec ID event),
    /// as tpm2-tools' `tpm2_eventlog` numbers events.
    pub index: u32,
    /// Byte offset of the record in the log.
    pub offset: usize,
    /// `pcrIndex`: at most [`MAX_PCR_INDEX`], or [`PCR_INDEX_NONE`] for EV_NO_ACTION.
    pub pcr: u32,
    pub event_type: EventType,
    pub digests: Digests<'a>,
    /// The event data (`event` / `eventData`).
    pub data: &'a [u8],
}

impl<'a> Event<'a> {
    /// The digest for `alg`, if the event has one.
    pub fn digest(&self, alg: HashAlg) -> Option<&'a [u8]> {
        self.digests.get(alg)
    }

    /// Whether the event was extended into its PCR (everything but EV_NO_ACTION, PFP §10.4.5).
    pub fn extends(&self) -> bool {
        self.event_type != EventType::NO_ACTION
    }
}

/// Whether `rest` is trailing zero padding: it starts a record and every byte is zero.
///
/// Linux exposes the firmware's event log buffer with trailing zeros. An all-zero record is
/// not a valid crypto-agile event (its digest count would be 0), and in a SHA-1-format log it
/// would be an EV_PREBOOT_CERT on PCR 0 with a zero digest and no data, indistinguishable from
/// padding; it is taken as padding (if the firmware really extended it, replay then reports
/// PCR 0 as a mismatch rather than accepting something).
fn is_padding(rest: &[u8]) -> bool {
    !rest.is_empty() && rest.iter().all(|b| *b == 0)
}

/// The state needed to read records after the header.
#[derive(Debug, Clone, Copy)]
struct Framing {
    format: LogFormat,
    table: AlgTable,
}

/// A fallible, streaming iterator over the records of a log: yields each event, or the first
/// error (then stops). [`EventLog::parse`] runs it to the end once; use it directly to process
/// a log in a single pass without validating first.
#[derive(Debug, Clone)]
pub struct RawEvents<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: u32,
    framing: Option<Framing>,
    spec_id: Option<SpecIdEvent<'a>>,
    done: bool,
}

impl<'a> RawEvents<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        RawEvents {
            bytes,
            pos: 0,
            index: 0,
            framing: None,
            spec_id: None,
            done: false,
        }
    }

    /// The log format, once the first record has been read.
    pub fn format(&self) -> Option<LogFormat> {
        self.framing.map(|f| f.format)
    }

    /// The Spec ID event, once the first record of a crypto-agile log has been read.
    pub fn spec_id(&self) -> Option<&SpecIdEvent<'a>> {
        self.spec_id.as_ref()
    }

    /// Offset of the next record (after the last one read).
    pub fn offset(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, event_offset: usize, error: codec::Error) -> EventLogError {
        self.done = true;
        EventLogError::Event {
            index: self.index,
            event_offset,
            error,
        }
    }

    /// Read the record at `self.pos`.
    fn read(&mut self) -> Result<Event<'a>, codec::Error> {
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or(&[]);
        let framing = self.framing;
        let sha1_record = framing.is_none_or(|f| f.format == LogFormat::Sha1);
        let structure = if sha1_record {
            "TCG_PCClientPCREvent"
        } else {
            "TCG_PCR_EVENT2"
        };
        let mut r = Reader::with_base(rest, start, structure);
        let pcr_at = r.offset();
        let pcr = r.u32_le("pcrIndex")?;
        let event_type = EventType(r.u32_le("eventType")?);
        let pcr_ok =
            pcr <= MAX_PCR_INDEX || (pcr == PCR_INDEX_NONE && event_type == EventType::NO_ACTION);
        if !pcr_ok {
            return Err(r.error_at(
                ErrorKind::InvalidValue { value: pcr.into() },
                "pcrIndex",
                pcr_at,
            ));
        }
        let digests = if sha1_record {
            let raw = r.take(20, "digest")?;
            Digests {
                raw,
                count: 1,
                table: AlgTable::SHA1,
                sha1_record: true,
            }
        } else {
            let table = framing.map_or(AlgTable::EMPTY, |f| f.table);
            let count_at = r.offset();
            let count = r.u32_le("digests.count")?;
            // Each digest of a distinct declared algorithm. Not necessarily all of them:
            // tpm2-tools' fixtures event-uefiaction.bin and event-uefivar.bin declare four
            // banks and log two. Replay reports the missing banks' PCRs as unknown.
            if count == 0 || count > u32::from(table.len) {
                return Err(r.error_at(
                    ErrorKind::InvalidValue {
                        value: count.into(),
                    },
                    "digests.count",
                    count_at,
                ));
            }
            let raw_start = r.position();
            let mut seen = 0u32;
            for _ in 0..count {
                let at = r.offset();
                let alg = r.u16_le("digests.hashAlg")?;
                let (i, size) = table.find(alg).ok_or(r.error_at(
                    ErrorKind::UnknownAlgorithm { alg },
                    "digests.hashAlg",
                    at,
                ))?;
                let bit = 1u32
                    .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                    .unwrap_or(0);
                if seen & bit != 0 {
                    return Err(r.error_at(
                        ErrorKind::InvalidValue { value: alg.into() },
                        "digests.hashAlg",
                        at,
                    ));
                }
                seen |= bit;
                r.take(size, "digests.digest")?;
            }
            let raw = rest.get(raw_start..r.position()).unwrap_or(&[]);
            Digests {
                raw,
                count,
                table,
                sha1_record: false,
            }
        };
        let size_at = r.offset();
        let size = usize::try_from(r.u32_le("eventSize")?).unwrap_or(usize::MAX);
        if size > MAX_EVENT_SIZE {
            return Err(r.error_at(
                ErrorKind::TooLarge {
                    size,
                    max: MAX_EVENT_SIZE,
                },
                "eventSize",
                size_at,
            ));
        }
        let data = r.take(size, "event")?;
        self.pos = start.saturating_add(r.position());
        Ok(Event {
            index: self.index,
            offset: start,
            pcr,
            event_type,
            digests,
            data,
        })
    }

    /// Decide the format from the first record (`ev`).
    fn frame(&mut self, ev: &Event<'a>) -> Result<(), codec::Error> {
        let agile = ev.event_type == EventType::NO_ACTION && ev.data.starts_with(SPEC_ID_SIGNATURE);
        if !agile {
            self.framing = Some(Framing {
                format: LogFormat::Sha1,
                table: AlgTable::SHA1,
            });
            return Ok(());
        }
        let structure = "TCG_PCClientPCREvent";
        if ev.pcr != 0 {
            return Err(codec::Error::new(
                ErrorKind::InvalidValue {
                    value: ev.pcr.into(),
                },
                structure,
                "pcrIndex",
                ev.offset,
            ));
        }
        if ev.digests.raw.iter().any(|b| *b != 0) {
            return Err(codec::Error::new(
                ErrorKind::InvalidValue { value: 0 },
                structure,
                "digest",
                ev.offset.saturating_add(8),
            ));
        }
        let spec = SpecIdEvent::parse(ev.data, ev.offset.saturating_add(SHA1_HEADER_LEN))?;
        self.framing = Some(Framing {
            format: LogFormat::CryptoAgile,
            table: spec.algs,
        });
        self.spec_id = Some(spec);
        Ok(())
    }
}

impl<'a> Iterator for RawEvents<'a> {
    type Item = Result<Event<'a>, EventLogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let start = self.pos;
        let rest = self.bytes.get(start..).unwrap_or(&[]);
        if self.index == 0 && (rest.is_empty() || is_padding(rest)) {
            self.done = true;
            return Some(Err(EventLogError::Empty { len: rest.len() }));
        }
        if rest.is_empty() || is_padding(rest) {
            self.done = true;
            return None;
        }
        let ev = match self.read() {
            Ok(ev) => ev,
            Err(e) => return Some(Err(self.fail(start, e))),
        };
        if self.framing.is_none() {
            if let Err(e) = self.frame(&ev) {
                return Some(Err(self.fail(start, e)));
            }
        }
        self.index = self.index.saturating_add(1);
        Some(Ok(ev))
    }
}

/// A checked event log: every record has been read once and found well-formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLog<'a> {
    bytes: &'a [u8],
    format: LogFormat,
    table: AlgTable,
    spec_id: Option<SpecIdEvent<'a>>,
    count: u32,
    /// End of the last record; zero padding follows.
    end: usize,
}

impl<'a> EventLog<'a> {
    /// Check a whole log (no hashing): its format, every record's framing, digest list and
    /// bounds. Trailing zero padding after the last event is accepted.
    pub fn parse(bytes: &'a [u8]) -> Result<EventLog<'a>, EventLogError> {
        let mut it = RawEvents::new(bytes);
        let mut count = 0u32;
        for ev in it.by_ref() {
            ev?;
            count = count.saturating_add(1);
        }
        let framing = it
            .framing
            .ok_or(EventLogError::Empty { len: bytes.len() })?;
        let end = it.pos;
        Ok(EventLog {
            bytes,
            format: framing.format,
            table: framing.table,
            spec_id: it.spec_id,
            count,
            end,
        })
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The Spec ID event of a crypto-agile log.
    pub fn spec_id(&self) -> Option<&SpecIdEvent<'a>> {
        self.spec_id.as_ref()
    }

    /// The digest algorithms every event carries (SHA-1 alone for a SHA-1-format log).
    pub fn algorithms(&self) -> &[AlgorithmSize] {
        self.table.as_slice()
    }

    /// Size of a `UINTN` in event data (from the Spec ID event; 8 for SHA-1-format logs).
    pub fn uintn_bytes(&self) -> usize {
        self.spec_id.as_ref().map_or(8, SpecIdEvent::uintn_bytes)
    }

    /// Number of events, including the Spec ID event of a crypto-agile log.
    pub fn len(&self) -> usize {
        usize::try_from(self.count).unwrap_or(usize::MAX)
    }

    /// Always false: a log without events does not parse.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of trailing zero padding.
    pub fn padding(&self) -> usize {
        self.bytes.len().saturating_sub(self.end)
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The events, in log order.
    pub fn events(&self) -> Events<'a> {
        let mut raw = RawEvents::new(self.bytes.get(..self.end).unwrap_or(&[]));
        raw.framing = Some(Framing {
            format: self.format,
            table: self.table,
        });
        // The first record is always SHA-1 framed; `read` handles it when `index == 0`.
        Events {
            raw,
            first_sha1: true,
        }
    }

    /// The event with this index.
    pub fn event(&self, index: u32) -> Option<Event<'a>> {
        self.events().nth(usize::try_from(index).ok()?)
    }

    /// The events extended into `pcr` (EV_NO_ACTION excluded), in log order: the events that
    /// fed a replayed PCR value.
    pub fn events_for_pcr(&self, pcr: u32) -> impl Iterator<Item = Event<'a>> + 'a {
        self.events().filter(move |e| e.pcr == pcr && e.extends())
    }
}

/// Iterator over the events of a checked [`EventLog`].
#[derive(Debug, Clone)]
pub struct Events<'a> {
    raw: RawEvents<'a>,
    first_sha1: bool,
}

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        if self.raw.done || self.raw.pos >= self.raw.bytes.len() {
            return None;
        }
        let framing = self.raw.framing;
        if self.first_sha1 {
            // The header record is SHA-1 framed in both formats.
            self.first_sha1 = false;
            self.raw.framing = None;
        }
        let ev = self.raw.read().ok();
        self.raw.framing = framing;
        match ev {
            Some(ev) => {
                self.raw.index = self.raw.index.saturating_add(1);
                Some(ev)
            }
            None => {
                self.raw.done = true;
                None
            }
        }
    }
}
