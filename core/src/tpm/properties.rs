//! The TPM's fixed properties (`TPM_PT` in the `PT_FIXED` group, Part 2 §6.13), gathered from
//! TPM2_GetCapability(`TPM_CAP_TPM_PROPERTIES`) into a fixed array.

use core::fmt;

use super::pt;
use super::response::TaggedProperties;

/// Properties held: `PT_FIXED` .. `PT_FIXED + 63` (the group has 47 in Part 2 1.59).
pub const FIXED_PROPERTIES: usize = 64;

/// Fixed properties of a TPM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TpmProperties {
    values: [u32; FIXED_PROPERTIES],
    present: u64,
}

impl Default for TpmProperties {
    fn default() -> Self {
        TpmProperties {
            values: [0; FIXED_PROPERTIES],
            present: 0,
        }
    }
}

/// Up to 16 bytes of ASCII text packed into `TPM_PT` values (manufacturer, vendor strings,
/// family), trimmed of NULs and spaces at both ends, other unprintable bytes as `.`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PackedText {
    bytes: [u8; 16],
    len: u8,
}

impl PackedText {
    fn from_words(words: &[Option<u32>]) -> PackedText {
        let mut bytes = [0u8; 16];
        let mut len = 0usize;
        for w in words.iter().flatten() {
            for b in w.to_be_bytes() {
                if let Some(slot) = bytes.get_mut(len) {
                    *slot = b;
                    len = len.saturating_add(1);
                }
            }
        }
        let raw = bytes.get(..len).unwrap_or(&[]);
        let junk = |b: &u8| *b == 0 || *b == b' ';
        let start = raw.iter().position(|b| !junk(b)).unwrap_or(raw.len());
        let end = raw
            .iter()
            .rposition(|b| !junk(b))
            .map_or(start, |i| i.saturating_add(1));
        let mut out = [0u8; 16];
        let mut n = 0usize;
        for b in raw.get(start..end).unwrap_or(&[]) {
            if let Some(slot) = out.get_mut(n) {
                *slot = if b.is_ascii_graphic() || *b == b' ' {
                    *b
                } else {
                    b'.'
                };
                n = n.saturating_add(1);
            }
        }
        PackedText {
            bytes: out,
            len: u8::try_from(n).unwrap_or(0),
        }
    }

    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("")
    }
}

impl fmt::Display for PackedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PackedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The company behind a `TPM_PT_MANUFACTURER` value (TCG Vendor ID Registry).
pub fn manufacturer_name(id: u32) -> Option<&'static str> {
    Some(match &id.to_be_bytes() {
        b"AMD\0" => "AMD",
        b"ATML" => "Atmel",
        b"BRCM" => "Broadcom",
        b"CSCO" => "Cisco",
        b"FLYS" => "Flyslice Technologies",
        b"GOOG" => "Google",
        b"HPE\0" => "HPE",
        b"HISI" => "Huawei",
        b"IBM\0" => "IBM",
        b"IFX\0" => "Infineon",
        b"INTC" => "Intel",
        b"LEN\0" => "Lenovo",
        b"MSFT" => "Microsoft",
        b"NSM " => "National Semiconductor",
        b"NTZ\0" => "Nationz",
        b"NTC\0" => "Nuvoton Technology",
        b"QCOM" => "Qualcomm",
        b"ROCC" => "Fuzhou Rockchip",
        b"SMSC" => "SMSC",
        b"SNS\0" => "Sinosun",
        b"STM " => "STMicroelectronics",
        b"TXN\0" => "Texas Instruments",
        b"WEC\0" => "Winbond",
        _ => return None,
    })
}

impl TpmProperties {
    pub fn new() -> Self {
        Self::default()
    }

    fn slot(property: u32) -> Option<usize> {
        let i = usize::try_from(property.checked_sub(pt::FIXED)?).ok()?;
        (i < FIXED_PROPERTIES).then_some(i)
    }

    /// Record a value; `false` when the property is outside the fixed group.
    pub fn set(&mut self, property: u32, value: u32) -> bool {
        match Self::slot(property).and_then(|i| self.values.get_mut(i).map(|v| (i, v))) {
            Some((i, v)) => {
                *v = value;
                self.present |= 1u64 << (i % 64);
                true
            }
            None => false,
        }
    }

    pub fn get(&self, property: u32) -> Option<u32> {
        let i = Self::slot(property)?;
        if self.present & (1u64 << (i % 64)) == 0 {
            return None;
        }
        self.values.get(i).copied()
    }

    /// Take every fixed property of a GetCapability answer; returns the last property listed.
    pub fn absorb(&mut self, props: &TaggedProperties<'_>) -> Option<u32> {
        let mut last = None;
        for (p, v) in props.iter() {
            self.set(p, v);
            last = Some(p);
        }
        last
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.present == 0
    }

    /// `TPM_PT_MANUFACTURER`: four ASCII characters, e.g. `IFX`, `STM `, `IBM`.
    pub fn manufacturer(&self) -> Option<u32> {
        self.get(pt::MANUFACTURER)
    }

    /// The manufacturer ID as text.
    pub fn manufacturer_text(&self) -> PackedText {
        PackedText::from_words(&[self.manufacturer()])
    }

    /// `TPM_PT_VENDOR_STRING_1..4` as text.
    pub fn vendor_string(&self) -> PackedText {
        PackedText::from_words(&[
            self.get(pt::VENDOR_STRING_1),
            self.get(pt::VENDOR_STRING_2),
            self.get(pt::VENDOR_STRING_3),
            self.get(pt::VENDOR_STRING_4),
        ])
    }

    /// `TPM_PT_FAMILY_INDICATOR` as text (`2.0`).
    pub fn family(&self) -> PackedText {
        PackedText::from_words(&[self.get(pt::FAMILY_INDICATOR)])
    }

    /// `TPM_PT_FIRMWARE_VERSION_1` in the high and `_2` in the low 32 bits: the value a quote
    /// reports as `TPMS_ATTEST.firmwareVersion`.
    pub fn firmware_version(&self) -> Option<u64> {
        let hi = self.get(pt::FIRMWARE_VERSION_1)?;
        let lo = self.get(pt::FIRMWARE_VERSION_2).unwrap_or(0);
        Some((u64::from(hi) << 32) | u64::from(lo))
    }

    /// Specification revision × 100 (`TPM_PT_REVISION`, e.g. 138 for 1.38).
    pub fn revision(&self) -> Option<u32> {
        self.get(pt::REVISION)
    }

    /// `TPM_PT_NV_BUFFER_MAX`: the most bytes one TPM2_NV_Read returns.
    pub fn nv_buffer_max(&self) -> Option<u32> {
        self.get(pt::NV_BUFFER_MAX)
    }

    /// `TPM_PT_MAX_RESPONSE_SIZE`.
    pub fn max_response_size(&self) -> Option<u32> {
        self.get(pt::MAX_RESPONSE_SIZE)
    }

    /// `TPM_PT_PCR_COUNT`: PCRs implemented.
    pub fn pcr_count(&self) -> Option<u32> {
        self.get(pt::PCR_COUNT)
    }

    /// Every recorded (property, value), ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.values
            .iter()
            .zip(pt::FIXED..)
            .enumerate()
            .filter(|(i, _)| self.present & (1u64 << (i % 64)) != 0)
            .map(|(_, (v, p))| (p, *v))
    }
}
