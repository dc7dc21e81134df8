//! Zero-copy views of UEFI event data: `UEFI_VARIABLE_DATA` (PFP §10.4.2), `EFI_SIGNATURE_LIST`
//! (UEFI §32.4.1), `EFI_LOAD_OPTION` (UEFI §3.1.3), `UEFI_IMAGE_LOAD_EVENT` (PFP §10.4.3),
//! `UEFI_GPT_DATA` (PFP §10.4.4), `UEFI_PLATFORM_FIRMWARE_BLOB`/`BLOB2` (PFP §10.4.5), and the
//! strings of EV_S_CRTM_VERSION, EV_IPL and EV_EFI_ACTION. All integers are little-endian.

use core::fmt;

use crate::codec::{self, ErrorKind, Reader};

use super::devpath::DevicePath;

/// An `EFI_GUID`, in its in-memory (mixed-endian) byte order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// From the textual fields `d1-d2-d3-d4[0..2]-d4[2..8]`.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Guid> {
        bytes.try_into().ok().map(Guid)
    }

    fn read(r: &mut Reader<'_>, field: &'static str) -> codec::Result<Guid> {
        r.array(field).map(Guid)
    }
}

impl fmt::Display for Guid {
    /// Lower-case `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
        let d2 = u16::from_le_bytes([g[4], g[5]]);
        let d3 = u16::from_le_bytes([g[6], g[7]]);
        write!(f, "{d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-", g[8], g[9])?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Well-known GUIDs.
pub mod guids {
    use super::Guid;
    /// `EFI_GLOBAL_VARIABLE`: SecureBoot, SetupMode, PK, KEK, BootOrder, Boot####.
    pub const EFI_GLOBAL_VARIABLE: Guid = Guid::from_fields(
        0x8be4_df61,
        0x93ca,
        0x11d2,
        [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
    );
    /// `EFI_IMAGE_SECURITY_DATABASE_GUID`: db, dbx.
    pub const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid::from_fields(
        0xd719_b2cb,
        0x3d3a,
        0x4596,
        [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
    );
    /// `EFI_CERT_X509_GUID`: a signature list of DER certificates.
    pub const EFI_CERT_X509: Guid = Guid::from_fields(
        0xa5c0_59a1,
        0x94e4,
        0x4aa7,
        [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
    );
    /// `EFI_CERT_SHA256_GUID`: a signature list of SHA-256 image digests.
    pub const EFI_CERT_SHA256: Guid = Guid::from_fields(
        0xc1c4_1626,
        0x504c,
        0x4092,
        [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
    );
    /// shim's `SHIM_LOCK_GUID` (MokList, the "Shim" authority, SbatLevel).
    pub const SHIM_LOCK: Guid = Guid::from_fields(
        0x605d_ab50,
        0xe046,
        0x4300,
        [0xab, 0xb6, 0x3d, 0xd8, 0x10, 0xdd, 0x8b, 0x23],
    );
}

/// A UTF-16LE string borrowed from event data (an even number of bytes; no terminator).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Utf16Str<'a>(&'a [u8]);

impl<'a> Utf16Str<'a> {
    /// `None` unless `bytes` has an even length.
    pub fn new(bytes: &'a [u8]) -> Option<Utf16Str<'a>> {
        (bytes.len() & 1 == 0).then_some(Utf16Str(bytes))
    }

    /// The string up to (not including) the first NUL unit.
    pub fn until_nul(bytes: &'a [u8]) -> Utf16Str<'a> {
        let units = bytes.chunks_exact(2).take_while(|u| u != &[0, 0]).count();
        Utf16Str(bytes.get(..units.saturating_mul(2)).unwrap_or(&[]))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Number of UTF-16 code units.
    pub fn len(&self) -> usize {
        self.0.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn units(&self) -> impl Iterator<Item = u16> + 'a {
        self.0.chunks_exact(2).map(|u| {
            u16::from_le_bytes([
                u.first().copied().unwrap_or(0),
                u.get(1).copied().unwrap_or(0),
            ])
        })
    }

    /// The characters; unpaired surrogates become U+FFFD.
    pub fn chars(&self) -> impl Iterator<Item = char> + 'a {
        char::decode_utf16(self.units()).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
    }

    /// Whether the string is exactly `s` (no replacement characters involved).
    pub fn eq_str(&self, s: &str) -> bool {
        let mut mine = char::decode_utf16(self.units());
        let mut theirs = s.chars();
        loop {
            match (mine.next(), theirs.next()) {
                (None, None) => return true,
                (Some(Ok(a)), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Utf16Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        self.chars().try_for_each(|c| f.write_char(c))
    }
}

impl fmt::Debug for Utf16Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        self.chars()
            .try_for_each(|c| c.escape_debug().try_for_each(|e| f.write_char(e)))?;
        f.write_char('"')
    }
}

fn uintn(r: &mut Reader<'_>, uintn_bytes: usize, field: &'static str) -> codec::Result<u64> {
    if uintn_bytes == 4 {
        r.u32_le(field).map(u64::from)
    } else {
        r.u64_le(field)
    }
}

/// `UEFI_VARIABLE_DATA` (PFP §10.4.2): the data of EV_EFI_VARIABLE_* events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UefiVariableData<'a> {
    /// `VariableName`: the vendor GUID.
    pub guid: Guid,
    pub name: Utf16Str<'a>,
    pub data: &'a [u8],
    /// Bytes after `VariableData` (none in a well-formed event; old shim adds some).
    pub trailing: &'a [u8],
}

impl<'a> UefiVariableData<'a> {
    pub fn parse(bytes: &'a [u8]) -> codec::Result<UefiVariableData<'a>> {
        let mut r = Reader::new(bytes, "UEFI_VARIABLE_DATA");
        let guid = Guid::read(&mut r, "VariableName")?;
        let at = r.offset();
        let name_units = r.u64_le("UnicodeNameLength")?;
        let data_len = r.u64_le("VariableDataLength")?;
        let name_len = usize::try_from(name_units)
            .ok()
            .and_then(|n| n.checked_mul(2))
            .filter(|n| *n <= r.remaining())
            .ok_or(r.error_at(
                ErrorKind::Truncated {
                    needed: usize::try_from(name_units).unwrap_or(usize::MAX),
                    available: r.remaining(),
                },
                "UnicodeNameLength",
                at,
            ))?;
        let name = Utf16Str(r.take(name_len, "UnicodeName")?);
        let data_len = usize::try_from(data_len).unwrap_or(usize::MAX);
        let data = r.take(data_len, "VariableData")?;
        Ok(UefiVariableData {
            guid,
            name,
            data,
            trailing: r.rest(),
        })
    }

    /// Whether this is variable `name` of vendor `guid`.
    pub fn is(&self, guid: &Guid, name: &str) -> bool {
        self.guid == *guid && self.name.eq_str(name)
    }

    /// For `Boot####` variables, the option number.
    pub fn boot_option_number(&self) -> Option<u16> {
        if self.guid != guids::EFI_GLOBAL_VARIABLE || self.name.len() != 8 {
            return None;
        }
        let mut chars = self.name.chars();
        if !"Boot".chars().all(|c| chars.next() == Some(c)) {
            return None;
        }
        chars.try_fold(0u16, |n, c| {
            let d = c.to_digit(16).and_then(|d| u16::try_from(d).ok())?;
            // Upper-case hex only, as UEFI names them.
            if c.is_ascii_lowercase() {
                return None;
            }
            n.checked_mul(16)?.checked_add(d)
        })
    }

    /// A one-byte boolean variable (SecureBoot, SetupMode, AuditMode, DeployedMode): `Some`
    /// only for data `[0]` or `[1]`.
    pub fn as_bool(&self) -> Option<bool> {
        match self.data {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }

    /// The data as `EFI_SIGNATURE_LIST`s (PK, KEK, db, dbx, MokList, authority events).
    pub fn signature_lists(&self) -> SignatureLists<'a> {
        SignatureLists::new(self.data)
    }

    /// The data as a `BootOrder` array, if its length is even.
    pub fn boot_order(&self) -> Option<impl Iterator<Item = u16> + 'a> {
        (self.data.len() & 1 == 0).then(|| {
            self.data.chunks_exact(2).map(|c| {
                u16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ])
            })
        })
    }

    /// The data as an `EFI_LOAD_OPTION` (Boot####).
    pub fn load_option(&self) -> codec::Result<LoadOption<'a>> {
        LoadOption::parse(self.data)
    }
}

/// The kind of an `EFI_SIGNATURE_LIST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    X509,
    Sha256,
    Other(Guid),
}

/// One `EFI_SIGNATURE_LIST` (UEFI §32.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureList<'a> {
    pub signature_type: Guid,
    pub header: &'a [u8],
    signature_size: usize,
    signatures: &'a [u8],
}

/// One `EFI_SIGNATURE_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureData<'a> {
    pub owner: Guid,
    /// A DER certificate for X.509 lists, a 32-byte digest for SHA-256 lists.
    pub data: &'a [u8],
}

impl<'a> SignatureList<'a> {
    pub fn kind(&self) -> SignatureKind {
        match self.signature_type {
            guids::EFI_CERT_X509 => SignatureKind::X509,
            guids::EFI_CERT_SHA256 => SignatureKind::Sha256,
            g => SignatureKind::Other(g),
        }
    }

    /// Number of signatures.
    pub fn len(&self) -> usize {
        self.signatures
            .len()
            .checked_div(self.signature_size)
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn signatures(&self) -> impl Iterator<Item = SignatureData<'a>> + 'a {
        self.signatures
            .chunks_exact(self.signature_size.max(16))
            .map(|s| {
                let (owner, data) = s.split_at(16.min(s.len()));
                SignatureData {
                    owner: Guid::from_slice(owner).unwrap_or(Guid([0; 16])),
                    data,
                }
            })
    }
}

/// Iterator over the `EFI_SIGNATURE_LIST`s of a variable's data; stops after the first error.
#[derive(Debug, Clone)]
pub struct SignatureLists<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> SignatureLists<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        SignatureLists {
            r: Reader::new(bytes, "EFI_SIGNATURE_LIST"),
            failed: false,
        }
    }

    fn read(&mut self) -> codec::Result<SignatureList<'a>> {
        let r = &mut self.r;
        let start = r.offset();
        let signature_type = Guid::read(r, "SignatureType")?;
        let list_size = usize::try_from(r.u32_le("SignatureListSize")?).unwrap_or(usize::MAX);
        let header_size = usize::try_from(r.u32_le("SignatureHeaderSize")?).unwrap_or(usize::MAX);
        let size_at = r.offset();
        let signature_size = usize::try_from(r.u32_le("SignatureSize")?).unwrap_or(usize::MAX);
        let body = list_size
            .checked_sub(28)
            .and_then(|b| b.checked_sub(header_size))
            .ok_or(r.error_at(
                ErrorKind::InvalidValue {
                    value: list_size as u64,
                },
                "SignatureListSize",
                start.saturating_add(16),
            ))?;
        if signature_size < 16 || body.checked_rem(signature_size) != Some(0) {
            return Err(r.error_at(
                ErrorKind::InvalidValue {
                    value: signature_size as u64,
                },
                "SignatureSize",
                size_at,
            ));
        }
        let header = r.take(header_size, "SignatureHeader")?;
        let signatures = r.take(body, "Signatures")?;
        Ok(SignatureList {
            signature_type,
            header,
            signature_size,
            signatures,
        })
    }
}

impl<'a> Iterator for SignatureLists<'a> {
    type Item = codec::Result<SignatureList<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let item = self.read();
        self.failed = item.is_err();
        Some(item)
    }
}

/// `EFI_LOAD_OPTION` (UEFI §3.1.3): the data of a `Boot####` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOption<'a> {
    pub attributes: u32,
    pub description: Utf16Str<'a>,
    pub file_path: DevicePath<'a>,
    pub optional_data: &'a [u8],
}

impl<'a> LoadOption<'a> {
    pub fn parse(bytes: &'a [u8]) -> codec::Result<LoadOption<'a>> {
        let mut r = Reader::new(bytes, "EFI_LOAD_OPTION");
        let attributes = r.u32_le("Attributes")?;
        let fp_len = usize::from(r.u16_le("FilePathListLength")?);
        let at = r.offset();
        let description = Utf16Str::until_nul(r.rest());
        // The description and its NUL terminator.
        let nul_terminated = r
            .rest()
            .get(description.as_bytes().len()..)
            .is_some_and(|t| t.starts_with(&[0, 0]));
        if !nul_terminated {
            return Err(r.error_at(
                ErrorKind::Truncated {
                    needed: description.as_bytes().len().saturating_add(2),
                    available: r.remaining(),
                },
                "Description",
                at,
            ));
        }
        r.take(
            description.as_bytes().len().saturating_add(2),
            "Description",
        )?;
        let fp_at = r.offset();
        let fp = r.take(fp_len, "FilePathList")?;
        let file_path = DevicePath::parse_at(fp, fp_at)?;
        Ok(LoadOption {
            attributes,
            description,
            file_path,
            optional_data: r.rest(),
        })
    }

    /// `LOAD_OPTION_ACTIVE`.
    pub fn is_active(&self) -> bool {
        self.attributes & 1 != 0
    }
}

/// `UEFI_IMAGE_LOAD_EVENT` (PFP §10.4.3): the data of EV_EFI_BOOT_SERVICES_APPLICATION,
/// EV_EFI_BOOT_SERVICES_DRIVER and EV_EFI_RUNTIME_SERVICES_DRIVER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLoadEvent<'a> {
    pub image_location: u64,
    pub image_length: u64,
    pub link_time_address: u64,
    pub device_path: DevicePath<'a>,
    /// Bytes after the device path (none in a well-formed event).
    pub trailing: &'a [u8],
}

impl<'a> ImageLoadEvent<'a> {
    /// `uintn_bytes` sizes the `UINTN` fields ([`super::EventLog::uintn_bytes`]).
    pub fn parse(bytes: &'a [u8], uintn_bytes: usize) -> codec::Result<ImageLoadEvent<'a>> {
        let mut r = Reader::new(bytes, "UEFI_IMAGE_LOAD_EVENT");
        let image_location = r.u64_le("ImageLocationInMemory")?;
        let image_length = uintn(&mut r, uintn_bytes, "ImageLengthInMemory")?;
        let link_time_address = uintn(&mut r, uintn_bytes, "ImageLinkTimeAddress")?;
        let at = r.offset();
        let len = uintn(&mut r, uintn_bytes, "LengthOfDevicePath")?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > r.remaining() {
            return Err(r.error_at(
                ErrorKind::Truncated {
                    needed: len,
                    available: r.remaining(),
                },
                "LengthOfDevicePath",
                at,
            ));
        }
        let dp_at = r.offset();
        let device_path = DevicePath::parse_at(r.take(len, "DevicePath")?, dp_at)?;
        Ok(ImageLoadEvent {
            image_location,
            image_length,
            link_time_address,
            device_path,
            trailing: r.rest(),
        })
    }
}

/// Bytes of an `EFI_PARTITION_TABLE_HEADER` as firmware logs it.
const GPT_HEADER_LEN: usize = 92;

/// `UEFI_GPT_DATA` (PFP §10.4.4): the data of EV_EFI_GPT_EVENT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptData<'a> {
    /// The `EFI_PARTITION_TABLE_HEADER` (92 bytes, starting `"EFI PART"`).
    pub header: &'a [u8],
    pub disk_guid: Guid,
    pub number_of_partitions: u64,
    entry_size: usize,
    entries: &'a [u8],
}

/// One `EFI_PARTITION_ENTRY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptPartition<'a> {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub starting_lba: u64,
    pub ending_lba: u64,
    pub attributes: u64,
    pub name: Utf16Str<'a>,
}

impl<'a> GptData<'a> {
    pub fn parse(bytes: &'a [u8], uintn_bytes: usize) -> codec::Result<GptData<'a>> {
        let mut r = Reader::new(bytes, "UEFI_GPT_DATA");
        let mut h = r.sub(
            GPT_HEADER_LEN,
            "UEFIPartitionHeader",
            "EFI_PARTITION_TABLE_HEADER",
        )?;
        let header = h.rest();
        let sig: [u8; 8] = h.array("Signature")?;
        if &sig != b"EFI PART" {
            return Err(h.error_at(ErrorKind::InvalidValue { value: 0 }, "Signature", 0));
        }
        h.take(48, "(header fields)")?;
        let disk_guid = Guid::read(&mut h, "DiskGUID")?;
        h.u64_le("PartitionEntryLBA")?;
        h.u32_le("NumberOfPartitionEntries")?;
        let at = h.offset();
        let entry_size = usize::try_from(h.u32_le("SizeOfPartitionEntry")?).unwrap_or(usize::MAX);
        if entry_size < 128 {
            return Err(h.error_at(
                ErrorKind::InvalidValue {
                    value: entry_size as u64,
                },
                "SizeOfPartitionEntry",
                at,
            ));
        }
        let at = r.offset();
        let number_of_partitions = uintn(&mut r, uintn_bytes, "NumberOfPartitions")?;
        let total = usize::try_from(number_of_partitions)
            .ok()
            .and_then(|n| n.checked_mul(entry_size))
            .ok_or(r.error_at(
                ErrorKind::InvalidValue {
                    value: number_of_partitions,
                },
                "NumberOfPartitions",
                at,
            ))?;
        let entries = r.take(total, "Partitions")?;
        r.finish()?;
        Ok(GptData {
            header,
            disk_guid,
            number_of_partitions,
            entry_size,
            entries,
        })
    }

    pub fn partitions(&self) -> impl Iterator<Item = GptPartition<'a>> + 'a {
        self.entries.chunks_exact(self.entry_size).filter_map(|e| {
            let mut r = Reader::new(e, "EFI_PARTITION_ENTRY");
            Some(GptPartition {
                type_guid: Guid(r.array("PartitionTypeGUID").ok()?),
                unique_guid: Guid(r.array("UniquePartitionGUID").ok()?),
                starting_lba: r.u64_le("StartingLBA").ok()?,
                ending_lba: r.u64_le("EndingLBA").ok()?,
                attributes: r.u64_le("Attributes").ok()?,
                name: Utf16Str::until_nul(r.take(72, "PartitionName").ok()?),
            })
        })
    }
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB` (PFP §10.4.5): EV_EFI_PLATFORM_FIRMWARE_BLOB,
/// EV_S_CRTM_CONTENTS, and EV_POST_CODE blobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareBlob {
    pub base: u64,
    pub length: u64,
}

impl FirmwareBlob {
    pub fn parse(bytes: &[u8]) -> codec::Result<FirmwareBlob> {
        let mut r = Reader::new(bytes, "UEFI_PLATFORM_FIRMWARE_BLOB");
        let base = r.u64_le("BlobBase")?;
        let length = r.u64_le("BlobLength")?;
        r.finish()?;
        Ok(FirmwareBlob { base, length })
    }
}

/// `UEFI_PLATFORM_FIRMWARE_BLOB2` (PFP §10.4.5): EV_EFI_PLATFORM_FIRMWARE_BLOB2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareBlob2<'a> {
    pub description: &'a [u8],
    pub base: u64,
    pub length: u64,
}

impl<'a> FirmwareBlob2<'a> {
    pub fn parse(bytes: &'a [u8]) -> codec::Result<FirmwareBlob2<'a>> {
        let mut r = Reader::new(bytes, "UEFI_PLATFORM_FIRMWARE_BLOB2");
        let n = usize::from(r.u8("BlobDescriptionSize")?);
        let description = r.take(n, "BlobDescription")?;
        let base = r.u64_le("BlobBase")?;
        let length = r.u64_le("BlobLength")?;
        r.finish()?;
        Ok(FirmwareBlob2 {
            description,
            base,
            length,
        })
    }

    /// The description as text, if it is ASCII (a trailing NUL is dropped).
    pub fn description_str(&self) -> Option<&'a str> {
        ascii_str(self.description)
    }
}

/// `bytes` as printable ASCII text, without one trailing NUL.
pub(crate) fn ascii_str(bytes: &[u8]) -> Option<&str> {
    let b = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if b.iter()
        .all(|c| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        core::str::from_utf8(b).ok()
    } else {
        None
    }
}

/// `bytes` as a NUL-terminated UTF-16LE string of printable characters, the NUL dropped. Also
/// accepted: a string whose last unit is cut to one zero byte (old systemd-boot logged its
/// PCR 8 command line one byte short).
fn utf16_text(bytes: &[u8]) -> Option<Utf16Str<'_>> {
    let b = match bytes.len() & 1 {
        0 => bytes.strip_suffix(&[0, 0])?,
        _ => bytes.strip_suffix(&[0])?,
    };
    let s = Utf16Str::new(b)?;
    let ok = char::decode_utf16(s.units()).all(|c| c.is_ok_and(|c| !c.is_control() || c == '\t'));
    ok.then_some(s)
}

/// The data of EV_S_CRTM_VERSION (PFP §10.4.1: a version string, usually UTF-16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrtmVersion<'a> {
    /// NUL-terminated UTF-16LE (the NUL dropped).
    Utf16(Utf16Str<'a>),
    Ascii(&'a str),
    /// 16 bytes that are not text: a GUID (GCE's firmware logs one).
    Guid(Guid),
    Raw(&'a [u8]),
}

impl<'a> CrtmVersion<'a> {
    pub fn decode(bytes: &'a [u8]) -> CrtmVersion<'a> {
        if let Some(s) = utf16_text(bytes).filter(|_| bytes.len() & 1 == 0) {
            return CrtmVersion::Utf16(s);
        }
        if let Some(s) = ascii_str(bytes).filter(|s| !s.is_empty()) {
            return CrtmVersion::Ascii(s);
        }
        match Guid::from_slice(bytes) {
            Some(g) => CrtmVersion::Guid(g),
            None => CrtmVersion::Raw(bytes),
        }
    }
}

impl fmt::Display for CrtmVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrtmVersion::Utf16(s) => write!(f, "{s}"),
            CrtmVersion::Ascii(s) => f.write_str(s),
            CrtmVersion::Guid(g) => write!(f, "{g}"),
            CrtmVersion::Raw(b) => b.iter().try_for_each(|c| write!(f, "{c:02x}")),
        }
    }
}

/// What a GRUB EV_IPL string measures (GRUB's `grub_tpm_verify_string`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrubString {
    /// `grub_cmd: `: a command GRUB ran.
    Command,
    /// `kernel_cmdline: `: the Linux command line (kernel path first).
    KernelCmdline,
    /// `module_cmdline: `.
    ModuleCmdline,
}

impl GrubString {
    const PREFIXES: [(&'static str, GrubString); 3] = [
        ("grub_cmd: ", GrubString::Command),
        ("kernel_cmdline: ", GrubString::KernelCmdline),
        ("module_cmdline: ", GrubString::ModuleCmdline),
    ];

    pub const fn prefix(self) -> &'static str {
        match self {
            GrubString::Command => "grub_cmd: ",
            GrubString::KernelCmdline => "kernel_cmdline: ",
            GrubString::ModuleCmdline => "module_cmdline: ",
        }
    }
}

/// Text event data: EV_IPL (GRUB in PCR 8, systemd-boot's kernel command line in PCR 12,
/// shim and GRUB file names in PCR 9/14), EV_EFI_ACTION, EV_ACTION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventText<'a> {
    /// A GRUB string: the measured text after the prefix (without the NUL).
    Grub { kind: GrubString, text: &'a str },
    /// Printable ASCII (one trailing NUL dropped).
    Ascii(&'a str),
    /// NUL-terminated UTF-16LE (systemd-boot), the NUL dropped.
    Utf16(Utf16Str<'a>),
    /// Not text.
    Binary(&'a [u8]),
}

impl<'a> EventText<'a> {
    pub fn decode(bytes: &'a [u8]) -> EventText<'a> {
        if let Some(s) = ascii_str(bytes) {
            for (prefix, kind) in GrubString::PREFIXES {
                if let Some(text) = s.strip_prefix(prefix) {
                    return EventText::Grub { kind, text };
                }
            }
            return EventText::Ascii(s);
        }
        match utf16_text(bytes) {
            Some(s) => EventText::Utf16(s),
            None => EventText::Binary(bytes),
        }
    }
}

impl fmt::Display for EventText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventText::Grub { kind, text } => write!(f, "{}{text}", kind.prefix()),
            EventText::Ascii(s) => f.write_str(s),
            EventText::Utf16(s) => write!(f, "{s}"),
            EventText::Binary(b) => b.iter().try_for_each(|c| write!(f, "{c:02x}")),
        }
    }
}
