//! `ascii_runtime_measurements` (what Keylime agents send): one entry per line,
//! `ima_ascii_measurements_show()` in `security/integrity/ima/ima_fs.c`:
//!
//! ```text
//! "%2d " pcr, hex template digest, " " template name, then " " before each field
//! 10 91f3…  ima-ng sha256:f484…  /usr/bin/kmod
//! 10 6f34…  ima-sig sha256:0bc7…  /usr/bin/ls 030204…      (sig as hex; empty → trailing " ")
//! ```
//!
//! The ASCII form carries no template data, so the template hash is recomputed by
//! re-serializing the fields as the kernel hashed them ([`Event::template_hash`]), streamed
//! into the hasher: nothing is copied and no length limit applies beyond the kernel's
//! (`n` of the legacy `ima` template: 255 bytes; `n-ng` is not limited).
//!
//! Names never contain spaces (the kernel writes `_` for them), so fields split on single
//! spaces. Templates whose fields print as decimal integers or raw strings (`evm-sig`'s
//! `iuid`, `igid`, `imode`, `xattrnames`, `xattrlengths`) cannot be re-serialized from the
//! ASCII form and are rejected as unsupported.

use crate::alg::HashAlg;
use crate::codec::ErrorKind;

use super::binary::Endian;
use super::event::{is_hex, Blob, Event, FieldId, FileDigest, Source, Template};
use super::{Error, EVENT_NAME_LEN_MAX, MAX_FIELDS};

const S: &str = "ascii_runtime_measurements";

/// The entries of an ASCII log. Yields `Err` once, at the first malformed line, then stops.
/// Blank lines are skipped.
#[derive(Debug, Clone)]
pub struct AsciiLog<'a> {
    text: &'a [u8],
    template_alg: Option<HashAlg>,
    endian: Endian,
    pos: usize,
    index: u64,
    failed: bool,
}

fn err(kind: ErrorKind, field: &'static str, offset: usize) -> Error {
    Error::new(kind, S, field, offset)
}

fn bad(field: &'static str, offset: usize) -> Error {
    err(ErrorKind::InvalidValue { value: 0 }, field, offset)
}

impl<'a> AsciiLog<'a> {
    /// A log whose template digest algorithm is taken from each line's hex length
    /// (40 → SHA-1, 64 → SHA-256, 96 → SHA-384, 128 → SHA-512).
    pub fn new(text: &'a [u8]) -> Self {
        AsciiLog {
            text,
            template_alg: None,
            endian: Endian::Little,
            pos: 0,
            index: 0,
            failed: false,
        }
    }

    /// Require template digests of `alg` (e.g. `ascii_runtime_measurements_sha256`).
    pub fn with_template_alg(mut self, alg: HashAlg) -> Self {
        self.template_alg = Some(alg);
        self
    }

    /// Byte order of the template data lengths the kernel hashed: little-endian unless the
    /// log comes from a big-endian host booted without `ima_canonical_fmt`.
    pub fn with_endian(mut self, endian: Endian) -> Self {
        self.endian = endian;
        self
    }

    /// Continue from byte `offset` (a line start), which is entry number `index`.
    pub fn resume(mut self, offset: usize, index: u64) -> Self {
        self.pos = offset;
        self.index = index;
        self
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    fn line(&self, start: usize, line: &'a [u8]) -> Result<Event<'a>, Error> {
        // "%2d ": a PCR below 10 has a leading space.
        let lead = line.iter().take_while(|c| **c == b' ').count();
        let mut toks = Tokens {
            line,
            pos: lead,
            base: start,
        };
        let (at, pcr_text) = toks.next_token().ok_or(bad("pcr", start))?;
        let pcr = parse_u32(pcr_text).ok_or(bad("pcr", at))?;
        let (at, th) = toks.next_token().ok_or(bad("template_hash", at))?;
        match self.template_alg {
            Some(a) if th.len() == a.size().saturating_mul(2) => {}
            Some(a) => {
                return Err(err(
                    ErrorKind::InvalidValue {
                        value: th.len() as u64,
                    },
                    match a {
                        HashAlg::Sha1 => "template_hash (40 hex digits for sha1)",
                        _ => "template_hash (length does not match the algorithm)",
                    },
                    at,
                ))
            }
            None => match th.len() {
                40 | 64 | 96 | 128 => {}
                n => {
                    return Err(err(
                        ErrorKind::InvalidValue { value: n as u64 },
                        "template_hash",
                        at,
                    ))
                }
            },
        };
        if !is_hex(th) {
            return Err(bad("template_hash", at));
        }
        let (at, name) = toks.next_token().ok_or(bad("template_name", at))?;
        let name = core::str::from_utf8(name)
            .ok()
            .filter(|n| n.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(bad("template_name", at))?;
        let fields_at = toks.pos;
        let fields = line.get(fields_at..).unwrap_or(&[]);
        let mut ev = Event::new(
            self.index,
            start,
            pcr,
            name,
            Source::Ascii { fields },
            self.endian,
        );
        if matches!(ev.template, Template::Unknown) {
            return Err(err(
                ErrorKind::Unsupported { value: 0 },
                "template_name",
                at,
            ));
        }
        ev.set_template_digest(Blob::Hex(th).bytes());
        let mut parts = fields.split(|c| *c == b' ');
        let mut off = start.saturating_add(fields_at);
        let legacy = ev.template == Template::Ima;
        let mut n = 0usize;
        for id in ev.template.fields(name) {
            n = n.saturating_add(1);
            let text = parts.next().unwrap_or(&[]);
            apply_field(&mut ev, id, text, legacy, off)?;
            off = off.saturating_add(text.len()).saturating_add(1);
        }
        if n > MAX_FIELDS || parts.next().is_some() {
            return Err(err(
                ErrorKind::TrailingBytes {
                    count: line.len().saturating_sub(off.saturating_sub(start)),
                },
                "fields",
                off,
            ));
        }
        ev.end = start.saturating_add(line.len());
        Ok(ev)
    }
}

struct Tokens<'a> {
    line: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Tokens<'a> {
    /// The next space-terminated token and its absolute offset; consumes one space after it.
    fn next_token(&mut self) -> Option<(usize, &'a [u8])> {
        let rest = self.line.get(self.pos..)?;
        if rest.is_empty() {
            return None;
        }
        let len = rest.iter().position(|c| *c == b' ').unwrap_or(rest.len());
        let tok = rest.get(..len)?;
        let at = self.base.saturating_add(self.pos);
        self.pos = self
            .pos
            .saturating_add(len)
            .saturating_add(1)
            .min(self.line.len());
        (!tok.is_empty()).then_some((at, tok))
    }
}

fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 {
        return None;
    }
    s.iter().try_fold(0u32, |acc, c| {
        let d = u32::from(c.checked_sub(b'0').filter(|d| *d < 10)?);
        acc.checked_mul(10)?.checked_add(d)
    })
}

fn ascii_digest<'a>(
    text: &'a [u8],
    with_algo: bool,
    at: usize,
) -> Result<Option<FileDigest<'a>>, Error> {
    if text.is_empty() {
        return Ok(None);
    }
    let (kind, algo, hex) = if with_algo {
        let colon = text
            .iter()
            .rposition(|c| *c == b':')
            .ok_or(bad("d-ng", at))?;
        let prefix =
            core::str::from_utf8(text.get(..colon).unwrap_or(&[])).map_err(|_| bad("d-ng", at))?;
        let hex = text.get(colon.saturating_add(1)..).unwrap_or(&[]);
        match prefix.split_once(':') {
            Some((k, a)) => (Some(k), a, hex),
            None => (None, prefix, hex),
        }
    } else {
        let algo = match text.len() {
            32 => "md5",
            40 => "sha1",
            n => return Err(err(ErrorKind::InvalidValue { value: n as u64 }, "d", at)),
        };
        (None, algo, text)
    };
    if !is_hex(hex) {
        return Err(bad("digest (hex)", at));
    }
    FileDigest::new(kind, algo, Blob::Hex(hex).bytes())
        .map(Some)
        .ok_or(err(
            ErrorKind::TooLarge {
                size: hex.len() / 2,
                max: crate::alg::MAX_DIGEST_SIZE,
            },
            "digest",
            at,
        ))
}

fn hex_blob<'a>(text: &'a [u8], field: &'static str, at: usize) -> Result<Option<Blob<'a>>, Error> {
    if !is_hex(text) {
        return Err(bad(field, at));
    }
    Ok((!text.is_empty()).then_some(Blob::Hex(text)))
}

fn apply_field<'a>(
    ev: &mut Event<'a>,
    id: FieldId,
    text: &'a [u8],
    legacy: bool,
    at: usize,
) -> Result<(), Error> {
    match id {
        FieldId::D => ev.file_digest = ascii_digest(text, false, at)?,
        FieldId::DNg | FieldId::DNgV2 => ev.file_digest = ascii_digest(text, true, at)?,
        FieldId::DModsig => ev.modsig_digest = ascii_digest(text, true, at)?,
        FieldId::N | FieldId::NNg => {
            if legacy && text.len() > EVENT_NAME_LEN_MAX {
                return Err(err(
                    ErrorKind::TooLarge {
                        size: text.len(),
                        max: EVENT_NAME_LEN_MAX,
                    },
                    "n",
                    at,
                ));
            }
            ev.name = Some(text);
        }
        FieldId::Sig => ev.sig = hex_blob(text, "sig", at)?,
        FieldId::Buf => ev.buf = hex_blob(text, "buf", at)?,
        FieldId::Modsig => ev.modsig = hex_blob(text, "modsig", at)?,
        FieldId::EvmSig => ev.evmsig = hex_blob(text, "evmsig", at)?,
        FieldId::XattrValues => {
            hex_blob(text, "xattrvalues", at)?;
        }
        _ => {
            return Err(err(
                ErrorKind::Unsupported { value: 0 },
                "field (not re-serializable from ASCII)",
                at,
            ))
        }
    }
    Ok(())
}

impl<'a> Iterator for AsciiLog<'a> {
    type Item = Result<Event<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed && self.pos < self.text.len() {
            let rest = self.text.get(self.pos..).unwrap_or(&[]);
            let nl = rest.iter().position(|c| *c == b'\n');
            let raw = rest.get(..nl.unwrap_or(rest.len())).unwrap_or(&[]);
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            let start = self.pos;
            let next = self
                .pos
                .saturating_add(raw.len())
                .saturating_add(usize::from(nl.is_some()));
            if line.iter().all(|c| c.is_ascii_whitespace()) {
                self.pos = next;
                continue;
            }
            return Some(match self.line(start, line) {
                Ok(mut ev) => {
                    ev.end = next;
                    self.pos = next;
                    self.index = self.index.saturating_add(1);
                    Ok(ev)
                }
                Err(e) => {
                    self.failed = true;
                    Err(e)
                }
            });
        }
        None
    }
}
