//! A checked cursor over untrusted bytes, in the manner of rustls' `codec`.
//!
//! TPM 2.0 structures (TPM 2.0 Library Part 2) are big-endian; TCG PC Client event logs and IMA
//! logs are little-endian, so the reader offers both. Every read is bounds-checked once and, on
//! failure, returns an [`Error`] naming the structure, the field and the byte offset from the
//! start of the outermost buffer.

use core::fmt;

/// What was wrong with the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum ErrorKind {
    /// The field needs more bytes than remain.
    Truncated { needed: usize, available: usize },
    /// Bytes remain after the structure ended.
    TrailingBytes { count: usize },
    /// `TPMS_ATTEST.magic` is not `TPM_GENERATED_VALUE`.
    BadMagic { found: u32 },
    /// A `TPM_ALG_ID` that is unknown or not allowed in this field.
    UnknownAlgorithm { alg: u16 },
    /// A known algorithm or structure kind that this build does not support.
    Unsupported { value: u32 },
    /// A value outside the range the specification allows for the field.
    InvalidValue { value: u64 },
    /// A size or count above the bound the specification (or trustpool) sets.
    TooLarge { size: usize, max: usize },
}

/// A parse error: what was wrong, in which structure and field, at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Error {
    pub kind: ErrorKind,
    /// Structure name as the specification spells it, e.g. `TPMS_ATTEST`.
    pub structure: &'static str,
    /// Field name as the specification spells it, e.g. `extraData`.
    pub field: &'static str,
    /// Byte offset of the field from the start of the input.
    pub offset: usize,
}

impl Error {
    pub const fn new(
        kind: ErrorKind,
        structure: &'static str,
        field: &'static str,
        offset: usize,
    ) -> Self {
        Error {
            kind,
            structure,
            field,
            offset,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ErrorKind::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} bytes, {available} left")
            }
            ErrorKind::TrailingBytes { count } => write!(f, "{count} trailing bytes"),
            ErrorKind::BadMagic { found } => {
                write!(
                    f,
                    "magic is {found:#010x}, not TPM_GENERATED_VALUE 0xff544347"
                )
            }
            ErrorKind::UnknownAlgorithm { alg } => {
                write!(f, "unknown or disallowed algorithm {alg:#06x}")
            }
            ErrorKind::Unsupported { value } => write!(f, "unsupported value {value:#x}"),
            ErrorKind::InvalidValue { value } => write!(f, "invalid value {value:#x}"),
            ErrorKind::TooLarge { size, max } => write!(f, "size {size} exceeds the maximum {max}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} at byte {}: {}",
            self.structure, self.field, self.offset, self.kind
        )
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// A cursor over a byte slice. `base` is the offset of `buf[0]` in the caller's whole input, so
/// errors from nested readers still report absolute offsets.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, reporting errors against `structure`.
    pub fn new(buf: &'a [u8], structure: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base: 0,
            structure,
        }
    }

    /// A reader whose offsets start at `base` (for a slice cut out of a larger input).
    pub fn with_base(buf: &'a [u8], base: usize, structure: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            structure,
        }
    }

    /// Name the structure being read, for error messages.
    pub fn set_structure(&mut self, structure: &'static str) {
        self.structure = structure;
    }

    pub fn structure(&self) -> &'static str {
        self.structure
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    /// Position relative to the start of this reader's slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The bytes not yet read.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// The bytes read so far.
    pub fn consumed(&self) -> &'a [u8] {
        self.buf.get(..self.pos).unwrap_or(&[])
    }

    /// An error at the current offset.
    pub fn error(&self, kind: ErrorKind, field: &'static str) -> Error {
        Error::new(kind, self.structure, field, self.offset())
    }

    /// An error at an absolute offset.
    pub fn error_at(&self, kind: ErrorKind, field: &'static str, offset: usize) -> Error {
        Error::new(kind, self.structure, field, offset)
    }

    /// Take exactly `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let available = self.remaining();
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end).map(|s| (s, end))) {
            Some((s, end)) => {
                self.pos = end;
                Ok(s)
            }
            None => Err(self.error(
                ErrorKind::Truncated {
                    needed: n,
                    available,
                },
                field,
            )),
        }
    }

    /// Take a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let s = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array(field)?))
    }
    pub fn u16_be(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }
    pub fn u32_be(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
    pub fn u64_be(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }
    pub fn u16_le(&mut self, field: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }
    pub fn u32_le(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }
    pub fn u64_le(&mut self, field: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// A `TPM2B_*` sized buffer: a big-endian u16 size then that many bytes, with the size
    /// bounded by `max` (the buffer's capacity in Part 2).
    pub fn tpm2b(&mut self, max: usize, field: &'static str) -> Result<&'a [u8]> {
        let at = self.offset();
        let size = usize::from(self.u16_be(field)?);
        if size > max {
            return Err(self.error_at(ErrorKind::TooLarge { size, max }, field, at));
        }
        self.take(size, field)
    }

    /// A sub-reader over the next `n` bytes, keeping absolute offsets.
    pub fn sub(
        &mut self,
        n: usize,
        field: &'static str,
        structure: &'static str,
    ) -> Result<Reader<'a>> {
        let base = self.offset();
        let buf = self.take(n, field)?;
        Ok(Reader::with_base(buf, base, structure))
    }

    /// Fail unless every byte has been read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(self.error(ErrorKind::TrailingBytes { count }, "(end)")),
        }
    }
}

/// Appends big-endian TPM structures into a caller-supplied buffer (no allocation).
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// The caller's buffer is too small for what is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    pub needed: usize,
    pub capacity: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "buffer of {} bytes too small: {} needed",
            self.capacity, self.needed
        )
    }
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    pub fn bytes(&mut self, data: &[u8]) -> core::result::Result<(), BufferTooSmall> {
        let capacity = self.buf.len();
        let end = self.len.checked_add(data.len()).ok_or(BufferTooSmall {
            needed: usize::MAX,
            capacity,
        })?;
        let dst = self.buf.get_mut(self.len..end).ok_or(BufferTooSmall {
            needed: end,
            capacity,
        })?;
        dst.copy_from_slice(data);
        self.len = end;
        Ok(())
    }

    pub fn u8(&mut self, v: u8) -> core::result::Result<(), BufferTooSmall> {
        self.bytes(&[v])
    }
    pub fn u16_be(&mut self, v: u16) -> core::result::Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }
    pub fn u32_be(&mut self, v: u32) -> core::result::Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }
    pub fn u64_be(&mut self, v: u64) -> core::result::Result<(), BufferTooSmall> {
        self.bytes(&v.to_be_bytes())
    }

    /// A `TPM2B_*`: big-endian u16 size then the bytes.
    pub fn tpm2b(&mut self, data: &[u8]) -> core::result::Result<(), BufferTooSmall> {
        let size = u16::try_from(data.len()).map_err(|_| BufferTooSmall {
            needed: data.len(),
            capacity: usize::from(u16::MAX),
        })?;
        self.u16_be(size)?;
        self.bytes(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_reports_offsets() {
        let data = [0x00, 0x02, 0xaa, 0xbb, 0x01];
        let mut r = Reader::new(&data, "T");
        assert_eq!(r.tpm2b(8, "b").unwrap(), &[0xaa, 0xbb]);
        assert_eq!(r.offset(), 4);
        let e = r.u16_be("x").unwrap_err();
        assert_eq!(
            e,
            Error::new(
                ErrorKind::Truncated {
                    needed: 2,
                    available: 1
                },
                "T",
                "x",
                4
            )
        );
        let e = Reader::new(&[0x00, 0x09], "T").tpm2b(8, "b").unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge { size: 9, max: 8 });
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn writer_bounds() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf);
        w.u16_be(0x0102).unwrap();
        assert_eq!(
            w.u16_be(1),
            Err(BufferTooSmall {
                needed: 4,
                capacity: 3
            })
        );
        assert_eq!(w.written(), &[1, 2]);
    }
}
