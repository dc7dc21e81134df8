//! UEFI device paths (UEFI §10.3) and their text form (UEFI §10.6, as the UEFI shell and
//! EDK2's `DevicePathToText` print them: `PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)/
//! HD(1,GPT,<guid>,0x800,0x100000)/\EFI\BOOT\BOOTX64.EFI`). Numbers print as upper-case hex,
//! GUIDs in lower case; nodes this module does not know print as `Path(type,subtype,hex)`.

use core::fmt::{self, Write};

use crate::codec::{self, ErrorKind, Reader};

use super::uefi::{Guid, Utf16Str};

/// Most nodes a device path may have.
pub const MAX_DEVICE_PATH_NODES: usize = 64;

const END: u8 = 0x7F;
const END_ENTIRE: u8 = 0xFF;
const END_INSTANCE: u8 = 0x01;

/// A checked `EFI_DEVICE_PATH_PROTOCOL` sequence: every node's length is at least 4 and within
/// the bytes, at most [`MAX_DEVICE_PATH_NODES`] nodes, ending at the first End Entire node (or
/// at the end of the bytes).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct DevicePath<'a>(&'a [u8]);

/// One device path node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePathNode<'a> {
    pub node_type: u8,
    pub subtype: u8,
    /// The node's data after its 4-byte header.
    pub data: &'a [u8],
}

impl<'a> DevicePath<'a> {
    pub fn parse(bytes: &'a [u8]) -> codec::Result<DevicePath<'a>> {
        Self::parse_at(bytes, 0)
    }

    /// Parse, reporting offsets from `base`.
    pub fn parse_at(bytes: &'a [u8], base: usize) -> codec::Result<DevicePath<'a>> {
        let mut r = Reader::with_base(bytes, base, "EFI_DEVICE_PATH_PROTOCOL");
        let mut nodes = 0usize;
        while !r.is_empty() {
            let at = r.offset();
            if nodes == MAX_DEVICE_PATH_NODES {
                return Err(r.error_at(
                    ErrorKind::TooLarge {
                        size: nodes.saturating_add(1),
                        max: MAX_DEVICE_PATH_NODES,
                    },
                    "Type",
                    at,
                ));
            }
            nodes = nodes.saturating_add(1);
            let ty = r.u8("Type")?;
            let sub = r.u8("SubType")?;
            let len_at = r.offset();
            let len = usize::from(r.u16_le("Length")?);
            let body = len.checked_sub(4).ok_or(r.error_at(
                ErrorKind::InvalidValue { value: len as u64 },
                "Length",
                len_at,
            ))?;
            r.take(body, "Data")?;
            if ty == END && sub == END_ENTIRE {
                break;
            }
        }
        Ok(DevicePath(r.consumed()))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nodes, End nodes included.
    pub fn nodes(&self) -> impl Iterator<Item = DevicePathNode<'a>> + 'a {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            let (hdr, tail) = rest.split_first_chunk::<4>()?;
            let len = usize::from(u16::from_le_bytes([hdr[2], hdr[3]]));
            let data = tail.get(..len.checked_sub(4)?)?;
            rest = tail.get(data.len()..)?;
            Some(DevicePathNode {
                node_type: hdr[0],
                subtype: hdr[1],
                data,
            })
        })
    }

    /// The file name of the last File Path node, if any (e.g. `\EFI\BOOT\BOOTX64.EFI`).
    pub fn file_path(&self) -> Option<Utf16Str<'a>> {
        self.nodes()
            .filter(|n| n.node_type == 4 && n.subtype == 4)
            .last()
            .map(|n| Utf16Str::until_nul(n.data))
    }
}

impl fmt::Display for DevicePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        for node in self.nodes() {
            if node.node_type == END {
                if node.subtype == END_INSTANCE {
                    sep = ",";
                    continue;
                }
                break;
            }
            f.write_str(sep)?;
            node.fmt(f)?;
            sep = "/";
        }
        Ok(())
    }
}

impl fmt::Debug for DevicePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePath({self})")
    }
}

/// Little-endian fields of a node, read in order; `None` if the node is too short.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let (b, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(b)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }
    fn guid(&mut self) -> Option<Guid> {
        Guid::from_slice(self.bytes(16)?)
    }
    fn rest(&self) -> &'a [u8] {
        self.0
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

/// `EISA_PNP_ID(0x0A03)`, `EISA_PNP_ID(0x0A08)`: the PCI and PCIe root bridges.
const PNP0A03: u32 = 0x0A03_41D0;
const PNP0A08: u32 = 0x0A08_41D0;

impl DevicePathNode<'_> {
    /// Text for known nodes with the expected length; `Ok(false)` to fall back to `Path(..)`.
    fn fmt_known(&self, f: &mut fmt::Formatter<'_>) -> Result<bool, fmt::Error> {
        let mut d = Fields(self.data);
        // Each arm reads its fields first, and prints only when all were present.
        match (self.node_type, self.subtype) {
            // Hardware (UEFI §10.3.2)
            (1, 1) => {
                if let (Some(func), Some(dev), true) = (d.u8(), d.u8(), d.done()) {
                    write!(f, "Pci(0x{dev:X},0x{func:X})")?;
                    return Ok(true);
                }
            }
            (1, 3) => {
                if let (Some(t), Some(s), Some(e), true) = (d.u32(), d.u64(), d.u64(), d.done()) {
                    write!(f, "MemoryMapped(0x{t:X},0x{s:X},0x{e:X})")?;
                    return Ok(true);
                }
            }
            (1, 4) | (3, 10) | (4, 3) => {
                if let Some(g) = d.guid() {
                    let name = match self.node_type {
                        1 => "VenHw",
                        3 => "VenMsg",
                        _ => "VenMedia",
                    };
                    write!(f, "{name}({g}")?;
                    if !d.done() {
                        write!(f, ",{}", Hex(d.rest()))?;
                    }
                    f.write_char(')')?;
                    return Ok(true);
                }
            }
            (1, 5) => {
                if let (Some(c), true) = (d.u32(), d.done()) {
                    write!(f, "Ctrl(0x{c:X})")?;
                    return Ok(true);
                }
            }
            // ACPI (UEFI §10.3.3)
            (2, 1) => {
                if let (Some(hid), Some(uid), true) = (d.u32(), d.u32(), d.done()) {
                    match hid {
                        PNP0A03 => write!(f, "PciRoot(0x{uid:X})")?,
                        PNP0A08 => write!(f, "PcieRoot(0x{uid:X})")?,
                        _ if hid & 0xFFFF == 0x41D0 => {
                            write!(f, "Acpi(PNP{:04X},0x{uid:X})", hid >> 16)?;
                        }
                        _ => write!(f, "Acpi(0x{hid:X},0x{uid:X})")?,
                    }
                    return Ok(true);
                }
            }
            (2, 3) => {
                if let (Some(adr), true) = (d.u32(), d.done()) {
                    write!(f, "AcpiAdr(0x{adr:X})")?;
                    return Ok(true);
                }
            }
            // Messaging (UEFI §10.3.4)
            (3, 1) => {
                if let (Some(ps), Some(ms), Some(lun), true) = (d.u8(), d.u8(), d.u16(), d.done()) {
                    let ps = if ps == 0 { "Primary" } else { "Secondary" };
                    let ms = if ms == 0 { "Master" } else { "Slave" };
                    write!(f, "Ata({ps},{ms},0x{lun:X})")?;
                    return Ok(true);
                }
            }
            (3, 2) => {
                if let (Some(t), Some(l), true) = (d.u16(), d.u16(), d.done()) {
                    write!(f, "Scsi(0x{t:X},0x{l:X})")?;
                    return Ok(true);
                }
            }
            (3, 5) => {
                if let (Some(p), Some(i), true) = (d.u8(), d.u8(), d.done()) {
                    write!(f, "USB(0x{p:X},0x{i:X})")?;
                    return Ok(true);
                }
            }
            (3, 11) => {
                if let (Some(mac), Some(t), true) = (d.bytes(32), d.u8(), d.done()) {
                    let n = if t <= 1 { 6 } else { 32 };
                    write!(f, "MAC({},0x{t:X})", Hex(mac.get(..n).unwrap_or(mac)))?;
                    return Ok(true);
                }
            }
            (3, 0x12) => {
                if let (Some(h), Some(p), Some(l), true) = (d.u16(), d.u16(), d.u16(), d.done()) {
                    write!(f, "Sata(0x{h:X},0x{p:X},0x{l:X})")?;
                    return Ok(true);
                }
            }
            (3, 0x17) => {
                if let (Some(ns), Some(eui), true) = (d.u32(), d.bytes(8), d.done()) {
                    write!(f, "NVMe(0x{ns:X},")?;
                    let mut sep = "";
                    for b in eui.iter().rev() {
                        write!(f, "{sep}{b:02X}")?;
                        sep = "-";
                    }
                    f.write_char(')')?;
                    return Ok(true);
                }
            }
            (3, 0x18) => {
                if let Some(uri) = super::uefi::ascii_str(d.rest()) {
                    write!(f, "Uri({uri})")?;
                    return Ok(true);
                }
            }
            // Media (UEFI §10.3.5)
            (4, 1) => {
                if let (Some(n), Some(start), Some(size), Some(sig), Some(_mbr), Some(st), true) = (
                    d.u32(),
                    d.u64(),
                    d.u64(),
                    d.bytes(16),
                    d.u8(),
                    d.u8(),
                    d.done(),
                ) {
                    write!(f, "HD({n},")?;
                    match st {
                        1 => {
                            let s = u32::from_le_bytes(
                                sig.get(..4)
                                    .and_then(|s| s.try_into().ok())
                                    .unwrap_or([0; 4]),
                            );
                            write!(f, "MBR,0x{s:X}")?;
                        }
                        2 => write!(f, "GPT,{}", Guid::from_slice(sig).unwrap_or(Guid([0; 16])))?,
                        _ => write!(f, "{st},0")?,
                    }
                    write!(f, ",0x{start:X},0x{size:X})")?;
                    return Ok(true);
                }
            }
            (4, 2) => {
                if let (Some(e), Some(start), Some(size), true) =
                    (d.u32(), d.u64(), d.u64(), d.done())
                {
                    write!(f, "CDROM(0x{e:X},0x{start:X},0x{size:X})")?;
                    return Ok(true);
                }
            }
            (4, 4) => {
                if let Some(s) = Utf16Str::new(self.data) {
                    write!(f, "{}", Utf16Str::until_nul(s.as_bytes()))?;
                    return Ok(true);
                }
            }
            (4, 5) | (4, 6) | (4, 7) => {
                if let (Some(g), true) = (d.guid(), d.done()) {
                    let name = match self.subtype {
                        5 => "Media",
                        6 => "FvFile",
                        _ => "Fv",
                    };
                    write!(f, "{name}({g})")?;
                    return Ok(true);
                }
            }
            (4, 8) => {
                if let (Some(_), Some(s), Some(e), true) = (d.u32(), d.u64(), d.u64(), d.done()) {
                    write!(f, "Offset(0x{s:X},0x{e:X})")?;
                    return Ok(true);
                }
            }
            _ => {}
        }
        Ok(false)
    }
}

impl fmt::Display for DevicePathNode<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fmt_known(f)? {
            return Ok(());
        }
        write!(f, "Path({},{}", self.node_type, self.subtype)?;
        if !self.data.is_empty() {
            write!(f, ",{}", Hex(self.data))?;
        }
        f.write_char(')')
    }
}
