//! `binary_runtime_measurements[_<alg>]`: a zero-copy iterator over the entries
//! (`ima_measurements_show()`, `security/integrity/ima/ima_fs.c`).
//!
//! ```text
//! u32 pcr ‖ template_digest[alg size] ‖ u32 name_len ‖ name
//!   ‖ (template "ima":  d[20] ‖ u32 n_len ‖ n[n_len])           (no data length; n without NUL)
//!   ‖ (other templates: u32 data_len ‖ data = (u32 len ‖ field)*)
//! ```
//!
//! Every length is checked against what remains before it is used.

use crate::alg::HashAlg;
use crate::codec::{ErrorKind, Reader};

use super::event::{Blob, Event, FieldId, FileDigest, Source, Template};
use super::{Error, EVENT_NAME_LEN_MAX, TEMPLATE_DATA_MAX, TEMPLATE_NAME_MAX};

const S: &str = "ima_entry";

/// Integer byte order of a binary log. Little-endian unless the host is big-endian and was
/// not booted with `ima_canonical_fmt` (which makes the kernel write little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl Endian {
    /// Guess from the first entry's PCR field (a PCR index is below 32 in either order).
    pub fn detect(log: &[u8]) -> Endian {
        let Some(first) = log.get(..4) else {
            return Endian::Little;
        };
        let mut b = [0u8; 4];
        b.copy_from_slice(first);
        if u32::from_le_bytes(b) < 32 {
            Endian::Little
        } else if u32::from_be_bytes(b) < 32 {
            Endian::Big
        } else {
            Endian::Little
        }
    }

    pub(crate) fn u32(self, r: &mut Reader<'_>, field: &'static str) -> Result<u32, Error> {
        match self {
            Endian::Little => r.u32_le(field),
            Endian::Big => r.u32_be(field),
        }
    }
}

/// The entries of a binary log whose template digests are of `template_alg` (SHA-1 for
/// `binary_runtime_measurements`). Yields `Err` once, at the first malformed entry, then
/// stops.
#[derive(Debug, Clone)]
pub struct BinaryLog<'a> {
    bytes: &'a [u8],
    template_alg: HashAlg,
    endian: Endian,
    pos: usize,
    index: u64,
    failed: bool,
}

impl<'a> BinaryLog<'a> {
    /// A log with the byte order detected from its first entry.
    pub fn new(bytes: &'a [u8], template_alg: HashAlg) -> Self {
        Self::with_endian(bytes, template_alg, Endian::detect(bytes))
    }

    pub fn with_endian(bytes: &'a [u8], template_alg: HashAlg, endian: Endian) -> Self {
        BinaryLog {
            bytes,
            template_alg,
            endian,
            pos: 0,
            index: 0,
            failed: false,
        }
    }

    /// Continue from byte `offset`, which starts entry number `index` (both from a previous
    /// run's [`Event::end`] and entry count). `bytes` is still the whole log, so offsets stay
    /// absolute.
    pub fn resume(mut self, offset: usize, index: u64) -> Self {
        self.pos = offset;
        self.index = index;
        self
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    pub fn template_alg(&self) -> HashAlg {
        self.template_alg
    }

    /// Byte offset of the next entry.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// Number of the next entry.
    pub fn index(&self) -> u64 {
        self.index
    }

    fn entry(&self) -> Result<Event<'a>, Error> {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        let mut r = Reader::with_base(rest, self.pos, S);
        let e = self.endian;
        let pcr = e.u32(&mut r, "pcr")?;
        let digest = r.take(self.template_alg.size(), "template_digest")?;
        let at = r.offset();
        let name_len = usize::try_from(e.u32(&mut r, "template_name_len")?).unwrap_or(usize::MAX);
        if name_len > TEMPLATE_NAME_MAX {
            return Err(r.error_at(
                ErrorKind::TooLarge {
                    size: name_len,
                    max: TEMPLATE_NAME_MAX,
                },
                "template_name_len",
                at,
            ));
        }
        let at = r.offset();
        let name_bytes = r.take(name_len, "template_name")?;
        let name = core::str::from_utf8(name_bytes)
            .ok()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(r.error_at(ErrorKind::InvalidValue { value: 0 }, "template_name", at))?;
        let mut ev;
        if name == "ima" {
            let start = r.position();
            let d = r.take(20, "d")?;
            let at = r.offset();
            let n_len = usize::try_from(e.u32(&mut r, "n.len")?).unwrap_or(usize::MAX);
            if n_len > EVENT_NAME_LEN_MAX {
                return Err(r.error_at(
                    ErrorKind::TooLarge {
                        size: n_len,
                        max: EVENT_NAME_LEN_MAX,
                    },
                    "n.len",
                    at,
                ));
            }
            let n = r.take(n_len, "n")?;
            let data = rest.get(start..r.position()).unwrap_or(&[]);
            ev = Event::new(self.index, self.pos, pcr, name, Source::Binary { data }, e);
            ev.file_digest = FileDigest::from_slice(None, "sha1", d);
            ev.name = Some(n);
        } else {
            let at = r.offset();
            let len = usize::try_from(e.u32(&mut r, "template_data_len")?).unwrap_or(usize::MAX);
            if len > TEMPLATE_DATA_MAX {
                return Err(r.error_at(
                    ErrorKind::TooLarge {
                        size: len,
                        max: TEMPLATE_DATA_MAX,
                    },
                    "template_data_len",
                    at,
                ));
            }
            let data_off = r.offset();
            let data = r.take(len, "template_data")?;
            let mut data_r = Reader::with_base(data, data_off, "ima_template_data");
            ev = Event::new(self.index, self.pos, pcr, name, Source::Binary { data }, e);
            if ev.template != Template::Unknown {
                for id in ev.template.fields(name) {
                    let at = data_r.offset();
                    let flen =
                        usize::try_from(e.u32(&mut data_r, "field.len")?).unwrap_or(usize::MAX);
                    if flen > data_r.remaining() {
                        return Err(data_r.error_at(
                            ErrorKind::Truncated {
                                needed: flen,
                                available: data_r.remaining(),
                            },
                            "field.len",
                            at,
                        ));
                    }
                    let at = data_r.offset();
                    let field = data_r.take(flen, "field.data")?;
                    apply_field(&mut ev, id, field)
                        .map_err(|(kind, f)| data_r.error_at(kind, f, at))?;
                }
                data_r.finish()?;
            }
        }
        ev.set_template_digest_slice(digest);
        ev.end = r.offset();
        Ok(ev)
    }
}

/// Split `<prefix>:` NUL `<digest>`: the kernel's `DATA_FMT_DIGEST_WITH_ALGO` and
/// `DATA_FMT_DIGEST_WITH_TYPE_AND_ALGO` (`ima_eventdigest_init_common()`).
pub(crate) fn split_digest_field(data: &[u8]) -> Option<(Option<&str>, &str, &[u8])> {
    let nul = data.iter().position(|b| *b == 0)?;
    let prefix = data.get(..nul)?;
    let body = prefix.strip_suffix(b":")?;
    let body = core::str::from_utf8(body).ok()?;
    let digest = data.get(nul.checked_add(1)?..)?;
    Some(match body.split_once(':') {
        Some((kind, algo)) => (Some(kind), algo, digest),
        None => (None, body, digest),
    })
}

fn until_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    data.get(..end).unwrap_or(data)
}

type FieldError = (ErrorKind, &'static str);

fn digest_of<'a>(
    kind: Option<&'a str>,
    algo: &'a str,
    d: &'a [u8],
) -> Result<FileDigest<'a>, FieldError> {
    FileDigest::from_slice(kind, algo, d).ok_or((
        ErrorKind::TooLarge {
            size: d.len(),
            max: crate::alg::MAX_DIGEST_SIZE,
        },
        "digest",
    ))
}

fn apply_field<'a>(ev: &mut Event<'a>, id: FieldId, data: &'a [u8]) -> Result<(), FieldError> {
    let blob = |d: &'a [u8]| (!d.is_empty()).then_some(Blob::Raw(d));
    match id {
        FieldId::D => {
            let algo = match data.len() {
                0 => return Ok(()),
                16 => "md5",
                20 => "sha1",
                n => return Err((ErrorKind::InvalidValue { value: n as u64 }, "d")),
            };
            ev.file_digest = Some(digest_of(None, algo, data)?);
        }
        FieldId::DNg | FieldId::DNgV2 | FieldId::DModsig => {
            if data.is_empty() {
                return Ok(());
            }
            let (kind, algo, d) =
                split_digest_field(data).ok_or((ErrorKind::InvalidValue { value: 0 }, "d-ng"))?;
            let fd = digest_of(kind, algo, d)?;
            if id == FieldId::DModsig {
                ev.modsig_digest = Some(fd);
            } else {
                ev.file_digest = Some(fd);
            }
        }
        FieldId::N | FieldId::NNg => ev.name = Some(until_nul(data)),
        FieldId::Sig => ev.sig = blob(data),
        FieldId::Buf => ev.buf = blob(data),
        FieldId::Modsig => ev.modsig = blob(data),
        FieldId::EvmSig => ev.evmsig = blob(data),
        _ => {}
    }
    Ok(())
}

impl<'a> Iterator for BinaryLog<'a> {
    type Item = Result<Event<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.bytes.len() {
            return None;
        }
        match self.entry() {
            Ok(ev) => {
                self.pos = ev.end;
                self.index = self.index.saturating_add(1);
                Some(Ok(ev))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
