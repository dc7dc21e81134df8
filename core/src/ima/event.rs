//! One measurement, as either log form gives it: [`Event`], with its template
//! ([`Template`], [`FieldId`]), its file digest ([`FileDigest`]), byte fields ([`Blob`]) and
//! the kernel's hash algorithm numbering ([`KernelHash`]).
//!
//! Field formats are those of `security/integrity/ima/ima_template_lib.c`:
//!
//! | field | binary data | ASCII |
//! |---|---|---|
//! | `d` | 20-byte SHA-1 (or 16-byte MD5) digest | hex |
//! | `n` | name (legacy `ima` template: no NUL in the log, hashed padded to 256 bytes) | text |
//! | `d-ng`, `d-modsig` | `<algo>` `:` NUL digest | `<algo>:<hex>` |
//! | `d-ngv2` | `<ima\|verity>` `:` `<algo>` `:` NUL digest | `<type>:<algo>:<hex>` |
//! | `n-ng` | name NUL (spaces replaced by `_`) | text |
//! | `sig`, `buf`, `modsig`, `evmsig`, … | bytes | hex |
//!
//! Every field but those of the legacy `ima` template is preceded by a u32 length in the
//! binary log and in the hashed template data.

use core::fmt;

use crate::alg::{Digest, HashAlg, Hasher, MAX_DIGEST_SIZE};

use super::binary::Endian;
use super::{EVENT_NAME_LEN_MAX, MAX_FIELDS};

/// The kernel's hash algorithm identifiers (`enum hash_algo`,
/// `include/uapi/linux/hash_info.h`), used in `signature_v2_hdr.hash_algo`, and their names
/// (`hash_algo_name[]`, `crypto/hash_info.c`), used in `d-ng` fields.
///
/// Not the TPM's `TPM_ALG_ID`s: SHA-256 is 4 here, `0x000B` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum KernelHash {
    Md4,
    Md5,
    Sha1,
    RipeMd160,
    Sha256,
    Sha384,
    Sha512,
    Sha224,
    RipeMd128,
    RipeMd256,
    RipeMd320,
    Wp256,
    Wp384,
    Wp512,
    Tgr128,
    Tgr160,
    Tgr192,
    Sm3_256,
    Streebog256,
    Streebog512,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl KernelHash {
    /// All, in `enum hash_algo` order (the index is the id).
    pub const ALL: [KernelHash; 23] = [
        KernelHash::Md4,
        KernelHash::Md5,
        KernelHash::Sha1,
        KernelHash::RipeMd160,
        KernelHash::Sha256,
        KernelHash::Sha384,
        KernelHash::Sha512,
        KernelHash::Sha224,
        KernelHash::RipeMd128,
        KernelHash::RipeMd256,
        KernelHash::RipeMd320,
        KernelHash::Wp256,
        KernelHash::Wp384,
        KernelHash::Wp512,
        KernelHash::Tgr128,
        KernelHash::Tgr160,
        KernelHash::Tgr192,
        KernelHash::Sm3_256,
        KernelHash::Streebog256,
        KernelHash::Streebog512,
        KernelHash::Sha3_256,
        KernelHash::Sha3_384,
        KernelHash::Sha3_512,
    ];

    /// From `HASH_ALGO_*`.
    pub fn from_id(id: u8) -> Option<KernelHash> {
        KernelHash::ALL.get(usize::from(id)).copied()
    }

    /// `HASH_ALGO_*`.
    pub fn id(self) -> u8 {
        KernelHash::ALL
            .iter()
            .position(|k| *k == self)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(u8::MAX)
    }

    /// The name the kernel writes in `d-ng` fields (`hash_algo_name[]`).
    pub const fn name(self) -> &'static str {
        match self {
            KernelHash::Md4 => "md4",
            KernelHash::Md5 => "md5",
            KernelHash::Sha1 => "sha1",
            KernelHash::RipeMd160 => "rmd160",
            KernelHash::Sha256 => "sha256",
            KernelHash::Sha384 => "sha384",
            KernelHash::Sha512 => "sha512",
            KernelHash::Sha224 => "sha224",
            KernelHash::RipeMd128 => "rmd128",
            KernelHash::RipeMd256 => "rmd256",
            KernelHash::RipeMd320 => "rmd320",
            KernelHash::Wp256 => "wp256",
            KernelHash::Wp384 => "wp384",
            KernelHash::Wp512 => "wp512",
            KernelHash::Tgr128 => "tgr128",
            KernelHash::Tgr160 => "tgr160",
            KernelHash::Tgr192 => "tgr192",
            KernelHash::Sm3_256 => "sm3",
            KernelHash::Streebog256 => "streebog256",
            KernelHash::Streebog512 => "streebog512",
            KernelHash::Sha3_256 => "sha3-256",
            KernelHash::Sha3_384 => "sha3-384",
            KernelHash::Sha3_512 => "sha3-512",
        }
    }

    /// From a `d-ng` algorithm name. Also accepts `sm3-256` (the kernel's name for SM3 before
    /// it was shortened) and `sm3_256` / `sha3_256`-style spellings some tools write.
    pub fn from_name(name: &str) -> Option<KernelHash> {
        Some(match name {
            "sha256" => KernelHash::Sha256,
            "sha1" => KernelHash::Sha1,
            "sha384" => KernelHash::Sha384,
            "sha512" => KernelHash::Sha512,
            "md4" => KernelHash::Md4,
            "md5" => KernelHash::Md5,
            "rmd160" => KernelHash::RipeMd160,
            "sha224" => KernelHash::Sha224,
            "rmd128" => KernelHash::RipeMd128,
            "rmd256" => KernelHash::RipeMd256,
            "rmd320" => KernelHash::RipeMd320,
            "wp256" => KernelHash::Wp256,
            "wp384" => KernelHash::Wp384,
            "wp512" => KernelHash::Wp512,
            "tgr128" => KernelHash::Tgr128,
            "tgr160" => KernelHash::Tgr160,
            "tgr192" => KernelHash::Tgr192,
            "sm3" | "sm3-256" | "sm3_256" => KernelHash::Sm3_256,
            "streebog256" => KernelHash::Streebog256,
            "streebog512" => KernelHash::Streebog512,
            "sha3-256" | "sha3_256" => KernelHash::Sha3_256,
            "sha3-384" | "sha3_384" => KernelHash::Sha3_384,
            "sha3-512" | "sha3_512" => KernelHash::Sha3_512,
            _ => return None,
        })
    }

    /// Digest size in bytes (`hash_digest_size[]`).
    pub const fn size(self) -> usize {
        match self {
            KernelHash::Md4 | KernelHash::Md5 | KernelHash::RipeMd128 | KernelHash::Tgr128 => 16,
            KernelHash::Sha1 | KernelHash::RipeMd160 | KernelHash::Tgr160 => 20,
            KernelHash::Tgr192 => 24,
            KernelHash::Sha224 => 28,
            KernelHash::Sha256
            | KernelHash::RipeMd256
            | KernelHash::Wp256
            | KernelHash::Sm3_256
            | KernelHash::Streebog256
            | KernelHash::Sha3_256 => 32,
            KernelHash::RipeMd320 => 40,
            KernelHash::Sha384 | KernelHash::Wp384 | KernelHash::Sha3_384 => 48,
            KernelHash::Sha512
            | KernelHash::Wp512
            | KernelHash::Streebog512
            | KernelHash::Sha3_512 => 64,
        }
    }

    /// The TPM algorithm with the same hash, if there is one.
    pub const fn hash_alg(self) -> Option<HashAlg> {
        Some(match self {
            KernelHash::Sha1 => HashAlg::Sha1,
            KernelHash::Sha256 => HashAlg::Sha256,
            KernelHash::Sha384 => HashAlg::Sha384,
            KernelHash::Sha512 => HashAlg::Sha512,
            KernelHash::Sm3_256 => HashAlg::Sm3_256,
            KernelHash::Sha3_256 => HashAlg::Sha3_256,
            KernelHash::Sha3_384 => HashAlg::Sha3_384,
            KernelHash::Sha3_512 => HashAlg::Sha3_512,
            _ => return None,
        })
    }

    pub const fn from_hash_alg(alg: HashAlg) -> KernelHash {
        match alg {
            HashAlg::Sha1 => KernelHash::Sha1,
            HashAlg::Sha256 => KernelHash::Sha256,
            HashAlg::Sha384 => KernelHash::Sha384,
            HashAlg::Sha512 => KernelHash::Sha512,
            HashAlg::Sm3_256 => KernelHash::Sm3_256,
            HashAlg::Sha3_256 => KernelHash::Sha3_256,
            HashAlg::Sha3_384 => KernelHash::Sha3_384,
            HashAlg::Sha3_512 => KernelHash::Sha3_512,
        }
    }
}

impl fmt::Display for KernelHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A template field identifier (`supported_fields[]` in `ima_template.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum FieldId {
    D,
    N,
    DNg,
    DNgV2,
    NNg,
    Sig,
    Buf,
    DModsig,
    Modsig,
    EvmSig,
    XattrNames,
    XattrLengths,
    XattrValues,
    Iuid,
    Igid,
    Imode,
    /// A field id this build does not know (it is still carried and hashed as bytes).
    Other,
}

impl FieldId {
    pub fn from_id(id: &str) -> FieldId {
        match id {
            "d" => FieldId::D,
            "n" => FieldId::N,
            "d-ng" => FieldId::DNg,
            "d-ngv2" => FieldId::DNgV2,
            "n-ng" => FieldId::NNg,
            "sig" => FieldId::Sig,
            "buf" => FieldId::Buf,
            "d-modsig" => FieldId::DModsig,
            "modsig" => FieldId::Modsig,
            "evmsig" => FieldId::EvmSig,
            "xattrnames" => FieldId::XattrNames,
            "xattrlengths" => FieldId::XattrLengths,
            "xattrvalues" => FieldId::XattrValues,
            "iuid" => FieldId::Iuid,
            "igid" => FieldId::Igid,
            "imode" => FieldId::Imode,
            _ => FieldId::Other,
        }
    }
}

/// A template (`builtin_templates[]` in `ima_template.c`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Template {
    /// `d|n`: the original format, SHA-1/MD5 digests and names up to 255 bytes.
    Ima,
    /// `d-ng|n-ng` (the default).
    ImaNg,
    /// `d-ngv2|n-ng`.
    ImaNgV2,
    /// `d-ng|n-ng|sig`.
    ImaSig,
    /// `d-ngv2|n-ng|sig`.
    ImaSigV2,
    /// `d-ng|n-ng|buf`: measured buffers (keys, critical data, kexec command line).
    ImaBuf,
    /// `d-ng|n-ng|sig|d-modsig|modsig`.
    ImaModsig,
    /// `d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode`.
    EvmSig,
    /// A custom `ima_template_fmt=` format: the log names it by its format string.
    Custom,
    /// A name this build does not know: the entry can be replayed (the template data is
    /// hashed as given) but not interpreted.
    Unknown,
}

impl Template {
    /// The template a log entry names.
    pub fn from_name(name: &str) -> Template {
        match name {
            "ima" => Template::Ima,
            "ima-ng" => Template::ImaNg,
            "ima-ngv2" => Template::ImaNgV2,
            "ima-sig" => Template::ImaSig,
            "ima-sigv2" => Template::ImaSigV2,
            "ima-buf" => Template::ImaBuf,
            "ima-modsig" => Template::ImaModsig,
            "evm-sig" => Template::EvmSig,
            _ if is_format(name) => Template::Custom,
            _ => Template::Unknown,
        }
    }

    /// The format string (`|`-separated field ids); `name` is used for custom formats.
    pub fn format(self, name: &str) -> Option<&str> {
        Some(match self {
            Template::Ima => "d|n",
            Template::ImaNg => "d-ng|n-ng",
            Template::ImaNgV2 => "d-ngv2|n-ng",
            Template::ImaSig => "d-ng|n-ng|sig",
            Template::ImaSigV2 => "d-ngv2|n-ng|sig",
            Template::ImaBuf => "d-ng|n-ng|buf",
            Template::ImaModsig => "d-ng|n-ng|sig|d-modsig|modsig",
            Template::EvmSig => {
                "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode"
            }
            Template::Custom => name,
            Template::Unknown => return None,
        })
    }

    /// The fields, in order (empty for [`Template::Unknown`]).
    pub fn fields<'n>(self, name: &'n str) -> impl Iterator<Item = FieldId> + 'n {
        self.format(name)
            .unwrap_or("")
            .split('|')
            .filter(|s| !s.is_empty())
            .map(FieldId::from_id)
    }
}

/// Whether `name` is a custom template format: known field ids joined by `|`.
fn is_format(name: &str) -> bool {
    !name.is_empty()
        && name.split('|').count() <= MAX_FIELDS
        && name
            .split('|')
            .all(|f| FieldId::from_id(f) != FieldId::Other)
}

/// Bytes of a field: raw (binary log) or hex text (ASCII log), never copied.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Blob<'a> {
    Raw(&'a [u8]),
    /// Validated hex (even length, hex digits).
    Hex(&'a [u8]),
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c.wrapping_sub(b'0')),
        b'a'..=b'f' => Some(c.wrapping_sub(b'a').wrapping_add(10)),
        b'A'..=b'F' => Some(c.wrapping_sub(b'A').wrapping_add(10)),
        _ => None,
    }
}

/// Whether `s` is valid hex of even length.
pub(crate) fn is_hex(s: &[u8]) -> bool {
    s.len() & 1 == 0 && s.iter().all(|c| hex_val(*c).is_some())
}

impl<'a> Blob<'a> {
    /// Length in bytes (decoded).
    pub fn len(&self) -> usize {
        match self {
            Blob::Raw(b) => b.len(),
            Blob::Hex(h) => h.len() / 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, decoded.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        let (raw, hex): (&'a [u8], &'a [u8]) = match *self {
            Blob::Raw(b) => (b, &[]),
            Blob::Hex(h) => (&[], h),
        };
        raw.iter().copied().chain(hex.chunks_exact(2).map(|p| {
            let hi = p.first().copied().and_then(hex_val).unwrap_or(0);
            let lo = p.get(1).copied().and_then(hex_val).unwrap_or(0);
            (hi << 4) | lo
        }))
    }

    /// The raw bytes, when the blob is not hex.
    pub fn as_raw(&self) -> Option<&'a [u8]> {
        match self {
            Blob::Raw(b) => Some(b),
            Blob::Hex(_) => None,
        }
    }

    /// Decode into `out`; `None` when it does not fit.
    pub fn decode_into<'o>(&self, out: &'o mut [u8]) -> Option<&'o [u8]> {
        let n = self.len();
        let dst = out.get_mut(..n)?;
        dst.iter_mut().zip(self.bytes()).for_each(|(d, s)| *d = s);
        Some(dst)
    }

    /// Feed the decoded bytes to a hasher.
    pub fn update(&self, h: &mut Hasher) {
        match self {
            Blob::Raw(b) => h.update(b),
            Blob::Hex(_) => {
                let mut buf = [0u8; 256];
                let mut n = 0usize;
                for b in self.bytes() {
                    if let Some(slot) = buf.get_mut(n) {
                        *slot = b;
                        n = n.saturating_add(1);
                    }
                    if n == buf.len() {
                        h.update(&buf);
                        n = 0;
                    }
                }
                h.update(buf.get(..n).unwrap_or(&[]));
            }
        }
    }

    /// Whether the decoded bytes equal `other`.
    pub fn eq_bytes(&self, other: &[u8]) -> bool {
        self.len() == other.len() && self.bytes().zip(other).all(|(a, b)| a == *b)
    }

    /// Whether the decoded bytes start with `prefix`.
    pub fn starts_with(&self, prefix: &[u8]) -> bool {
        self.len() >= prefix.len() && self.bytes().zip(prefix).all(|(a, b)| a == *b)
    }
}

impl fmt::Debug for Blob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes: ", self.len())?;
        for b in self.bytes().take(32) {
            write!(f, "{b:02x}")?;
        }
        if self.len() > 32 {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Blob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The digest a `d`, `d-ng`, `d-ngv2` or `d-modsig` field holds, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FileDigest<'a> {
    /// `ima` or `verity` (from `d-ngv2`), `None` otherwise.
    pub kind: Option<&'a str>,
    /// The algorithm name as the log gives it (`sha256`); `sha1`/`md5` for `d` by size.
    pub algo: &'a str,
    hash: Option<KernelHash>,
    len: u8,
    bytes: [u8; MAX_DIGEST_SIZE],
}

impl<'a> FileDigest<'a> {
    /// `None` when `digest` is longer than any supported digest.
    pub fn new(
        kind: Option<&'a str>,
        algo: &'a str,
        digest: impl Iterator<Item = u8>,
    ) -> Option<Self> {
        let mut d = FileDigest {
            kind,
            algo,
            hash: KernelHash::from_name(algo),
            len: 0,
            bytes: [0; MAX_DIGEST_SIZE],
        };
        for b in digest {
            let slot = d.bytes.get_mut(usize::from(d.len))?;
            *slot = b;
            d.len = d.len.checked_add(1)?;
        }
        Some(d)
    }

    /// From a slice (a copy, no iteration); `None` when it is too long.
    pub fn from_slice(kind: Option<&'a str>, algo: &'a str, digest: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; MAX_DIGEST_SIZE];
        bytes.get_mut(..digest.len())?.copy_from_slice(digest);
        Some(FileDigest {
            kind,
            algo,
            hash: KernelHash::from_name(algo),
            len: u8::try_from(digest.len()).ok()?,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }

    /// The kernel algorithm named, if known.
    pub fn kernel_hash(&self) -> Option<KernelHash> {
        self.hash
    }

    /// The TPM hash algorithm, when the name is known, has one, and the size matches.
    pub fn hash_alg(&self) -> Option<HashAlg> {
        self.kernel_hash()
            .filter(|k| k.size() == self.as_bytes().len())
            .and_then(KernelHash::hash_alg)
    }

    /// Whether the algorithm is known and the digest has its size.
    pub fn is_well_formed(&self) -> bool {
        self.kernel_hash()
            .is_some_and(|k| k.size() == self.as_bytes().len())
    }

    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|b| *b == 0)
    }

    /// As a [`Digest`], when the algorithm is a TPM one of the right size.
    pub fn digest(&self) -> Option<Digest> {
        Digest::from_slice(self.hash_alg()?, self.as_bytes())
    }
}

impl fmt::Display for FileDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(k) = self.kind {
            write!(f, "{k}:")?;
        }
        write!(f, "{}:", self.algo)?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FileDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for FileDigest<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where an event's template data is, for re-hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source<'a> {
    /// Binary template data as logged (for the `ima` template: `d ‖ u32 len ‖ name`).
    Binary { data: &'a [u8] },
    /// ASCII fields (the text after the template name), validated by the parser.
    Ascii { fields: &'a [u8] },
}

/// One measurement from either log form. Fields the template does not have are `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// Entry number in the log (0 for the first entry, counting from where parsing resumed
    /// plus the index it resumed at).
    pub index: u64,
    /// Byte offset of the entry (binary) or line (ASCII) in the input.
    pub offset: usize,
    /// Byte offset just past the entry: where to resume.
    pub end: usize,
    pub pcr: u32,
    template_digest: [u8; MAX_DIGEST_SIZE],
    template_digest_len: u8,
    /// The template name as logged (a format string for custom templates).
    pub template_name: &'a str,
    pub template: Template,
    /// From `d`, `d-ng` or `d-ngv2`.
    pub file_digest: Option<FileDigest<'a>>,
    /// From `n` or `n-ng`, without the terminating NUL.
    pub name: Option<&'a [u8]>,
    pub sig: Option<Blob<'a>>,
    pub buf: Option<Blob<'a>>,
    /// From `d-modsig`.
    pub modsig_digest: Option<FileDigest<'a>>,
    pub modsig: Option<Blob<'a>>,
    pub evmsig: Option<Blob<'a>>,
    /// Integer byte order of the template data (ASCII logs are re-serialized with it).
    pub endian: Endian,
    pub(crate) source: Source<'a>,
}

impl<'a> Event<'a> {
    pub(crate) fn new(
        index: u64,
        offset: usize,
        pcr: u32,
        template_name: &'a str,
        source: Source<'a>,
        endian: Endian,
    ) -> Self {
        Event {
            index,
            offset,
            end: offset,
            pcr,
            template_digest: [0; MAX_DIGEST_SIZE],
            template_digest_len: 0,
            template_name,
            template: Template::from_name(template_name),
            file_digest: None,
            name: None,
            sig: None,
            buf: None,
            modsig_digest: None,
            modsig: None,
            evmsig: None,
            endian,
            source,
        }
    }

    pub(crate) fn set_template_digest_slice(&mut self, d: &[u8]) -> bool {
        match (
            self.template_digest.get_mut(..d.len()),
            u8::try_from(d.len()),
        ) {
            (Some(dst), Ok(n)) => {
                dst.copy_from_slice(d);
                self.template_digest_len = n;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn set_template_digest(&mut self, d: impl Iterator<Item = u8>) -> bool {
        self.template_digest_len = 0;
        for b in d {
            let Some(slot) = self
                .template_digest
                .get_mut(usize::from(self.template_digest_len))
            else {
                return false;
            };
            *slot = b;
            self.template_digest_len = self.template_digest_len.saturating_add(1);
        }
        true
    }

    /// The template digest as logged.
    pub fn template_digest(&self) -> &[u8] {
        self.template_digest
            .get(..usize::from(self.template_digest_len))
            .unwrap_or(&[])
    }

    /// A violation (`ima_add_violation()`): the logged template digest is all zero; the PCR
    /// was extended with all-0xFF.
    pub fn is_violation(&self) -> bool {
        self.template_digest().iter().all(|b| *b == 0)
    }

    /// The `boot_aggregate` entry.
    pub fn is_boot_aggregate(&self) -> bool {
        self.name == Some(super::BOOT_AGGREGATE)
    }

    /// The name as text, when it is UTF-8.
    pub fn name_str(&self) -> Option<&'a str> {
        self.name.and_then(|n| core::str::from_utf8(n).ok())
    }

    /// Hash of the template data with `alg` (what the kernel extends into the `alg` bank
    /// since 5.8, and the template digest of `binary_runtime_measurements_<alg>`). `None`
    /// when this build cannot compute `alg`, or, for ASCII logs, when the template's fields
    /// cannot be re-serialized.
    pub fn template_hash(&self, alg: HashAlg) -> Option<Digest> {
        let mut h = alg.hasher()?;
        match self.source {
            Source::Binary { data } => {
                if self.template == Template::Ima {
                    // d (20 bytes) ‖ u32 len ‖ name: hashed as d ‖ name zero-padded to 256.
                    let d = data.get(..20)?;
                    let name = data.get(24..)?;
                    h.update(d);
                    update_padded_name(&mut h, name)?;
                } else {
                    h.update(data);
                }
            }
            Source::Ascii { fields } => self.hash_ascii(&mut h, fields)?,
        }
        Some(h.finalize())
    }

    /// Re-serialize ASCII fields into the hasher: each field as `u32 len ‖ data`
    /// (`ima_calc_field_array_hash_tfm()`), the `ima` template as `d ‖ n[256]`.
    fn hash_ascii(&self, h: &mut Hasher, fields: &[u8]) -> Option<()> {
        let legacy = self.template == Template::Ima;
        let mut parts = fields.split(|c| *c == b' ');
        for id in self.template.fields(self.template_name) {
            let text = parts.next().unwrap_or(&[]);
            match id {
                FieldId::D if legacy => hex_update(h, text),
                FieldId::N if legacy => update_padded_name(h, text)?,
                FieldId::D => {
                    self.len_prefix(h, text.len() / 2)?;
                    hex_update(h, text);
                }
                FieldId::DNg | FieldId::DModsig | FieldId::DNgV2 => {
                    if text.is_empty() {
                        self.len_prefix(h, 0)?;
                        continue;
                    }
                    // "<prefix>:<hex>" → "<prefix>:" NUL digest
                    let colon = text.iter().rposition(|c| *c == b':')?;
                    let prefix = text.get(..=colon)?;
                    let hex = text.get(colon.saturating_add(1)..)?;
                    let len = prefix.len().checked_add(1)?.checked_add(hex.len() / 2)?;
                    self.len_prefix(h, len)?;
                    h.update(prefix);
                    h.update(&[0]);
                    hex_update(h, hex);
                }
                FieldId::N | FieldId::NNg => {
                    self.len_prefix(h, text.len().checked_add(1)?)?;
                    h.update(text);
                    h.update(&[0]);
                }
                FieldId::Sig
                | FieldId::Buf
                | FieldId::Modsig
                | FieldId::EvmSig
                | FieldId::XattrValues => {
                    self.len_prefix(h, text.len() / 2)?;
                    hex_update(h, text);
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn len_prefix(&self, h: &mut Hasher, len: usize) -> Option<()> {
        let len = u32::try_from(len).ok()?;
        h.update(&match self.endian {
            Endian::Little => len.to_le_bytes(),
            Endian::Big => len.to_be_bytes(),
        });
        Some(())
    }
}

/// `n` of the `ima` template: the name, then zeros up to `IMA_EVENT_NAME_LEN_MAX + 1`.
fn update_padded_name(h: &mut Hasher, name: &[u8]) -> Option<()> {
    let pad = EVENT_NAME_LEN_MAX.checked_add(1)?.checked_sub(name.len())?;
    h.update(name);
    let zeros = [0u8; EVENT_NAME_LEN_MAX + 1];
    h.update(zeros.get(..pad)?);
    Some(())
}

fn hex_update(h: &mut Hasher, text: &[u8]) {
    Blob::Hex(text).update(h);
}
