//! PCR selections (`TPML_PCR_SELECTION`, TPM 2.0 Library Part 2 §10.9.7), PCR values held in
//! fixed arrays (no heap), and the PCR values file `tpm2_quote -o` / `tpm2_pcrread -o` write.

use crate::alg::{Digest, HashAlg, MAX_DIGEST_SIZE};
use crate::codec::{ErrorKind, Reader, Result};

/// PCRs of a PC Client TPM (`IMPLEMENTATION_PCR`).
pub const NUM_PCRS: usize = 24;
/// Largest `sizeofSelect` accepted (`PCR_SELECT_MAX` for up to 32 PCRs).
pub const PCR_SELECT_MAX: usize = 4;
/// Largest `TPML_PCR_SELECTION.count` (`HASH_COUNT` as tpm2-tools sizes it).
pub const MAX_SELECTION_BANKS: usize = 16;
/// PCR banks a [`PcrSet`] holds at once.
pub const MAX_BANKS: usize = 4;

/// One `TPMS_PCR_SELECTION`: a hash algorithm and a bitmap of PCRs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankSelection<'a> {
    /// The `TPMI_ALG_HASH` as given (may be one this build does not know).
    pub alg: u16,
    /// The `pcrSelect` bitmap: bit `i % 8` of byte `i / 8` selects PCR `i`.
    pub select: &'a [u8],
}

impl<'a> BankSelection<'a> {
    pub fn hash(&self) -> Option<HashAlg> {
        HashAlg::from_id(self.alg)
    }

    pub fn is_selected(&self, pcr: usize) -> bool {
        self.select
            .get(pcr / 8)
            .is_some_and(|b| b & (1u8 << (pcr % 8)) != 0)
    }

    /// Selected PCR indices, ascending.
    pub fn pcrs(&self) -> impl Iterator<Item = u8> + 'a {
        let select = self.select;
        (0u8..32).filter(move |i| {
            select
                .get(usize::from(*i / 8))
                .is_some_and(|b| b & (1u8 << (*i % 8)) != 0)
        })
    }

    /// A 32-bit mask of the selected PCRs.
    pub fn mask(&self) -> u32 {
        self.select
            .iter()
            .take(PCR_SELECT_MAX)
            .enumerate()
            .fold(0u32, |m, (i, b)| {
                m | (u32::from(*b) << (i.saturating_mul(8)))
            })
    }
}

/// A validated `TPML_PCR_SELECTION`, borrowing its marshaled bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrSelection<'a> {
    count: u32,
    /// The marshaled `pcrSelections` entries (already validated).
    entries: &'a [u8],
}

impl<'a> PcrSelection<'a> {
    /// Read a marshaled (big-endian) `TPML_PCR_SELECTION`.
    pub fn read(r: &mut Reader<'a>) -> Result<PcrSelection<'a>> {
        let at = r.offset();
        let count = r.u32_be("pcrSelect.count")?;
        let n = usize::try_from(count).unwrap_or(usize::MAX);
        if n > MAX_SELECTION_BANKS {
            return Err(r.error_at(
                ErrorKind::TooLarge {
                    size: n,
                    max: MAX_SELECTION_BANKS,
                },
                "pcrSelect.count",
                at,
            ));
        }
        let rest = r.rest();
        let start = r.position();
        for _ in 0..n {
            r.u16_be("pcrSelections.hash")?;
            let at = r.offset();
            let size = usize::from(r.u8("pcrSelections.sizeofSelect")?);
            if size > PCR_SELECT_MAX {
                return Err(r.error_at(
                    ErrorKind::TooLarge {
                        size,
                        max: PCR_SELECT_MAX,
                    },
                    "pcrSelections.sizeofSelect",
                    at,
                ));
            }
            r.take(size, "pcrSelections.pcrSelect")?;
        }
        let len = r.position().saturating_sub(start);
        Ok(PcrSelection {
            count,
            entries: rest.get(..len).unwrap_or(&[]),
        })
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    /// The bank selections, in order.
    pub fn banks(&self) -> impl Iterator<Item = BankSelection<'a>> + 'a {
        let mut r = Reader::new(self.entries, "TPML_PCR_SELECTION");
        (0..self.count).map_while(move |_| {
            let alg = r.u16_be("hash").ok()?;
            let size = r.u8("sizeofSelect").ok()?;
            let select = r.take(usize::from(size), "pcrSelect").ok()?;
            Some(BankSelection { alg, select })
        })
    }

    /// Every selected (bank, PCR) pair in selection order: the order in which the TPM
    /// concatenates PCR values for `pcrDigest` (Part 3 §18.4, TPM2_Quote).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u8)> + 'a {
        self.banks().flat_map(|b| b.pcrs().map(move |p| (b.alg, p)))
    }

    /// Number of selected PCRs over all banks.
    pub fn len(&self) -> usize {
        self.banks().map(|b| b.mask().count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lookup of PCR values by bank and index.
pub trait PcrValues {
    fn pcr(&self, alg: HashAlg, index: u8) -> Option<&Digest>;
}

/// The PCR values of one bank, in a fixed array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrBank {
    alg: HashAlg,
    present: u32,
    values: [Digest; NUM_PCRS],
}

impl PcrBank {
    /// An empty bank (no PCR present).
    pub fn new(alg: HashAlg) -> Self {
        PcrBank {
            alg,
            present: 0,
            values: [Digest::zero(alg); NUM_PCRS],
        }
    }

    /// A bank at the TPM's reset values: zero, except PCRs 17–22 all-0xFF (PC Client PTP
    /// §3.7.1.1 / PFP §2.3.4).
    pub fn reset(alg: HashAlg) -> Self {
        let mut b = PcrBank::new(alg);
        for (i, v) in b.values.iter_mut().enumerate() {
            *v = if (17..=22).contains(&i) {
                Digest::ones(alg)
            } else {
                Digest::zero(alg)
            };
        }
        b.present = (1u32 << NUM_PCRS).wrapping_sub(1);
        b
    }

    pub fn alg(&self) -> HashAlg {
        self.alg
    }

    /// Bitmask of PCRs that have a value.
    pub fn present(&self) -> u32 {
        self.present
    }

    pub fn get(&self, index: u8) -> Option<&Digest> {
        if self.present & (1u32 << (index % 32)) == 0 || usize::from(index) >= NUM_PCRS {
            return None;
        }
        self.values.get(usize::from(index))
    }

    /// Mutable access to a PCR present in the bank.
    pub fn get_mut(&mut self, index: u8) -> Option<&mut Digest> {
        if self.present & (1u32 << (index % 32)) == 0 {
            return None;
        }
        self.values.get_mut(usize::from(index))
    }

    /// Set a PCR value; `false` if the index or the digest size is wrong.
    pub fn set(&mut self, index: u8, value: &[u8]) -> bool {
        match (
            self.values.get_mut(usize::from(index)),
            Digest::from_slice(self.alg, value),
        ) {
            (Some(slot), Some(d)) => {
                *slot = d;
                self.present |= 1u32 << index;
                true
            }
            _ => false,
        }
    }

    /// Values present, ascending by index.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Digest)> {
        let present = self.present;
        self.values
            .iter()
            .enumerate()
            .filter(move |(i, _)| present & (1u32 << i) != 0)
            .map(|(i, d)| (i as u8, d))
    }
}

impl PcrValues for PcrBank {
    fn pcr(&self, alg: HashAlg, index: u8) -> Option<&Digest> {
        if alg == self.alg {
            self.get(index)
        } else {
            None
        }
    }
}

impl PcrValues for [PcrBank] {
    fn pcr(&self, alg: HashAlg, index: u8) -> Option<&Digest> {
        self.iter()
            .find(|b| b.alg == alg)
            .and_then(|b| b.get(index))
    }
}

/// PCR values of up to [`MAX_BANKS`] banks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcrSet {
    banks: heapless::Vec<PcrBank, MAX_BANKS>,
}

impl PcrSet {
    pub fn new() -> Self {
        PcrSet::default()
    }

    pub fn banks(&self) -> &[PcrBank] {
        &self.banks
    }

    pub fn bank(&self, alg: HashAlg) -> Option<&PcrBank> {
        self.banks.iter().find(|b| b.alg == alg)
    }

    /// The bank for `alg`, added empty if absent; `None` when all slots are taken.
    pub fn bank_mut(&mut self, alg: HashAlg) -> Option<&mut PcrBank> {
        if let Some(i) = self.banks.iter().position(|b| b.alg == alg) {
            return self.banks.get_mut(i);
        }
        self.banks.push(PcrBank::new(alg)).ok()?;
        self.banks.last_mut()
    }

    /// Set one value (adding the bank if needed).
    pub fn set(&mut self, alg: HashAlg, index: u8, value: &[u8]) -> bool {
        self.bank_mut(alg).is_some_and(|b| b.set(index, value))
    }
}

impl PcrValues for PcrSet {
    fn pcr(&self, alg: HashAlg, index: u8) -> Option<&Digest> {
        self.banks.as_slice().pcr(alg, index)
    }
}

/// Size of tpm2-tools' `TPML_PCR_SELECTION` C struct: u32 count + 16 × 8-byte
/// `TPMS_PCR_SELECTION` (u16 hash, u8 sizeofSelect, 4 select bytes, 1 padding byte).
const TSS_SELECTION_SIZE: usize = 4 + MAX_SELECTION_BANKS * 8;
/// Size of the `TPML_DIGEST` C struct: u32 count + 8 × `TPM2B_DIGEST` (u16 + 64 bytes).
const TSS_DIGEST_LIST_SIZE: usize = 4 + 8 * (2 + MAX_DIGEST_SIZE);
/// Most `TPML_DIGEST` structures tpm2-tools writes (`tpm2_pcrs.pcr_values`).
const TSS_MAX_DIGEST_LISTS: usize = 16;

/// Parse the PCR values file of `tpm2_quote -o` / `tpm2_pcrread -o` (tpm2-tools'
/// `pcr_fwrite_serialized`: host-order C structs, little-endian on every platform that
/// matters) into `out`. Values follow the selection order: banks in order, PCRs ascending,
/// at most eight per `TPML_DIGEST`.
pub fn parse_tpm2_tools_pcrs(bytes: &[u8], out: &mut PcrSet) -> Result<()> {
    let mut r = Reader::new(bytes, "tpm2-tools PCR file");
    let mut sel = r.sub(
        TSS_SELECTION_SIZE,
        "TPML_PCR_SELECTION",
        "TPML_PCR_SELECTION",
    )?;
    let at = sel.offset();
    let count = usize::try_from(sel.u32_le("count")?).unwrap_or(usize::MAX);
    if count > MAX_SELECTION_BANKS {
        return Err(sel.error_at(
            ErrorKind::TooLarge {
                size: count,
                max: MAX_SELECTION_BANKS,
            },
            "count",
            at,
        ));
    }
    let at = r.offset();
    let lists = usize::try_from(r.u32_le("pcrs.count")?).unwrap_or(usize::MAX);
    if lists > TSS_MAX_DIGEST_LISTS {
        return Err(r.error_at(
            ErrorKind::TooLarge {
                size: lists,
                max: TSS_MAX_DIGEST_LISTS,
            },
            "pcrs.count",
            at,
        ));
    }
    let mut digests = r.sub(
        lists.saturating_mul(TSS_DIGEST_LIST_SIZE),
        "pcrs.pcr_values",
        "TPML_DIGEST",
    )?;
    r.finish()?;

    // Position within the digest lists.
    let mut list_left = 0usize;
    let mut lists_left = lists;
    let mut list_end = digests.position();
    for _ in 0..count {
        let entry_at = sel.offset();
        let alg = sel.u16_le("pcrSelections.hash")?;
        let size = usize::from(sel.u8("pcrSelections.sizeofSelect")?);
        let select: [u8; PCR_SELECT_MAX] = sel.array("pcrSelections.pcrSelect")?;
        sel.u8("(padding)")?;
        if size > PCR_SELECT_MAX {
            return Err(sel.error_at(
                ErrorKind::TooLarge {
                    size,
                    max: PCR_SELECT_MAX,
                },
                "pcrSelections.sizeofSelect",
                entry_at.saturating_add(2),
            ));
        }
        let hash = HashAlg::from_id(alg).ok_or(sel.error_at(
            ErrorKind::UnknownAlgorithm { alg },
            "pcrSelections.hash",
            entry_at,
        ))?;
        let bank = BankSelection {
            alg,
            select: select.get(..size).unwrap_or(&[]),
        };
        for pcr in bank.pcrs() {
            if list_left == 0 {
                // Skip what remains of the previous list, then open the next.
                let skip = list_end.saturating_sub(digests.position());
                digests.take(skip, "digests")?;
                if lists_left == 0 {
                    return Err(digests.error(
                        ErrorKind::Truncated {
                            needed: TSS_DIGEST_LIST_SIZE,
                            available: 0,
                        },
                        "pcrs.pcr_values",
                    ));
                }
                lists_left = lists_left.saturating_sub(1);
                list_end = digests.position().saturating_add(TSS_DIGEST_LIST_SIZE);
                let at = digests.offset();
                list_left = usize::try_from(digests.u32_le("count")?).unwrap_or(usize::MAX);
                if list_left == 0 || list_left > 8 {
                    return Err(digests.error_at(
                        ErrorKind::InvalidValue {
                            value: list_left as u64,
                        },
                        "count",
                        at,
                    ));
                }
            }
            list_left = list_left.saturating_sub(1);
            let at = digests.offset();
            let dsize = usize::from(digests.u16_le("digests.size")?);
            let buf: [u8; MAX_DIGEST_SIZE] = digests.array("digests.buffer")?;
            let value = buf.get(..dsize).unwrap_or(&[]);
            let ok = dsize == hash.size() && out.bank_mut(hash).is_some_and(|b| b.set(pcr, value));
            if !ok {
                return Err(digests.error_at(
                    ErrorKind::InvalidValue {
                        value: dsize as u64,
                    },
                    "digests.size",
                    at,
                ));
            }
        }
    }
    Ok(())
}

/// Write PCR values in tpm2-tools' serialized format (the inverse of
/// [`parse_tpm2_tools_pcrs`]), for tests and for interop. Returns the bytes written.
pub fn write_tpm2_tools_pcrs(
    banks: &[(HashAlg, u32)],
    values: &impl PcrValues,
    out: &mut [u8],
) -> core::result::Result<usize, crate::codec::BufferTooSmall> {
    use crate::codec::{BufferTooSmall, Writer};
    let mut w = Writer::new(out);
    let n = banks.len().min(MAX_SELECTION_BANKS);
    w.bytes(&(n as u32).to_le_bytes())?;
    for i in 0..MAX_SELECTION_BANKS {
        match banks.get(i) {
            Some((alg, mask)) if i < n => {
                w.bytes(&alg.id().to_le_bytes())?;
                w.u8(3)?;
                w.bytes(&mask.to_le_bytes())?;
                w.u8(0)?;
            }
            _ => w.bytes(&[0u8; 8])?,
        }
    }
    // Flatten the selected values into lists of at most eight.
    let mut all: heapless::Vec<Digest, { MAX_SELECTION_BANKS * 8 }> = heapless::Vec::new();
    for (alg, mask) in banks.iter().take(n) {
        for pcr in 0u8..32 {
            if mask & (1u32 << pcr) != 0 {
                let d = values.pcr(*alg, pcr).copied().unwrap_or(Digest::zero(*alg));
                all.push(d).map_err(|_| BufferTooSmall {
                    needed: all.len().saturating_add(1),
                    capacity: all.capacity(),
                })?;
            }
        }
    }
    let chunks = all.chunks(8);
    w.bytes(&(chunks.len() as u32).to_le_bytes())?;
    for chunk in all.chunks(8) {
        w.bytes(&(chunk.len() as u32).to_le_bytes())?;
        for i in 0..8 {
            let mut buf = [0u8; MAX_DIGEST_SIZE];
            let mut size = 0u16;
            if let Some(d) = chunk.get(i) {
                let b = d.as_bytes();
                buf.iter_mut().zip(b).for_each(|(o, s)| *o = *s);
                size = b.len() as u16;
            }
            w.bytes(&size.to_le_bytes())?;
            w.bytes(&buf)?;
        }
    }
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_order() {
        // count 2: sha256 {0,1,7}, sha1 {16}
        let b = [
            0,
            0,
            0,
            2,
            0x00,
            0x0b,
            3,
            0b1000_0011,
            0,
            0,
            0x00,
            0x04,
            3,
            0,
            0,
            1,
        ];
        let mut r = Reader::new(&b, "T");
        let s = PcrSelection::read(&mut r).unwrap();
        r.finish().unwrap();
        let v: heapless::Vec<(u16, u8), 8> = s.iter().collect();
        assert_eq!(v.as_slice(), &[(0x0b, 0), (0x0b, 1), (0x0b, 7), (0x04, 16)]);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn tpm2_tools_roundtrip() {
        let mut set = PcrSet::new();
        for i in 0..10u8 {
            assert!(set.set(HashAlg::Sha256, i, &[i; 32]));
            assert!(set.set(HashAlg::Sha1, i, &[i ^ 0xff; 20]));
        }
        let mut buf = [0u8; 4096];
        let mask = 0b11_1111_1111;
        let n = write_tpm2_tools_pcrs(
            &[(HashAlg::Sha1, 0b111), (HashAlg::Sha256, mask)],
            &set,
            &mut buf,
        )
        .unwrap();
        // 3 + 10 values: two lists.
        assert_eq!(n, 132 + 4 + 2 * 532);
        let mut back = PcrSet::new();
        parse_tpm2_tools_pcrs(&buf[..n], &mut back).unwrap();
        assert_eq!(back.bank(HashAlg::Sha256).unwrap().present(), mask);
        assert_eq!(back.pcr(HashAlg::Sha256, 9).unwrap().as_bytes(), &[9; 32]);
        assert_eq!(back.pcr(HashAlg::Sha1, 2).unwrap().as_bytes(), &[0xfd; 20]);
        assert!(back.pcr(HashAlg::Sha1, 3).is_none());
        let e = parse_tpm2_tools_pcrs(&buf[..n - 1], &mut PcrSet::new()).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { .. }));
    }
}
