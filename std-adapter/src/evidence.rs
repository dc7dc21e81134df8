//! The evidence bundle: one versioned JSON document for everything a TPM's host hands to a
//! verifier — the TPM's identity, the attestation key, the nonce, the quote and its signature,
//! the quoted PCR values, and the firmware and IMA logs. Documented in `docs/evidence.md`.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use trustpool_core::eventlog::Workarounds;
use trustpool_core::pcr::{write_tpm2_tools_pcrs, PcrValues};
use trustpool_core::{Attest, HashAlg, PcrSet, QuoteError, SignatureVerifier};

use crate::files::{self, AkFile, FileError};
use crate::quote_cmd::{self, QuoteEvidence, QuoteReport, VerifyFailure};
use crate::verify_cmd::VerifyInput;

/// The format version this build writes and reads.
pub const EVIDENCE_VERSION: u32 = 1;

/// A whole evidence bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Format version: 1.
    pub version: u32,
    /// Who made the TPM (informational: nothing here is signed).
    #[serde(default)]
    pub tpm: TpmIdentity,
    pub ak: AkEvidence,
    /// The nonce the quote was asked for (`extraData`), hex.
    #[serde(with = "hex_bytes")]
    pub nonce: Vec<u8>,
    pub quote: QuoteParts,
    /// Quoted PCR values: bank name → PCR index → value (hex).
    #[serde(with = "pcr_map")]
    pub pcrs: BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>>,
    /// The TCG PC Client firmware event log (`binary_bios_measurements`), base64, or null.
    #[serde(with = "opt_b64", default)]
    pub eventlog: Option<Vec<u8>>,
    /// The IMA runtime measurement log, or null.
    #[serde(default)]
    pub ima_log: Option<ImaLog>,
}

/// The TPM's self-description (`TPM_PT_MANUFACTURER`, `TPM_PT_VENDOR_STRING_*`,
/// `TPM_PT_FIRMWARE_VERSION_1/2`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmIdentity {
    /// `TPM_PT_MANUFACTURER` as text, e.g. `IFX`, `STM`, `IBM`.
    #[serde(default)]
    pub manufacturer: String,
    /// The vendor strings, e.g. `SLB9670`, `SW   TPM`.
    #[serde(default)]
    pub vendor: String,
    /// `FIRMWARE_VERSION_1 << 32 | FIRMWARE_VERSION_2`, hex as `0x…` (16 digits): the value
    /// quotes carry as `firmwareVersion`.
    #[serde(default)]
    pub firmware_version: String,
}

/// The attestation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AkEvidence {
    /// `TPM2B_PUBLIC` (size prefix included), base64.
    #[serde(with = "b64")]
    pub tpm2b_public: Vec<u8>,
}

/// The quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteParts {
    /// `TPMS_ATTEST` (as `tpm2_quote -m` writes it), base64.
    #[serde(with = "b64")]
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE` (as `tpm2_quote -s` writes it), base64.
    #[serde(with = "b64")]
    pub signature: Vec<u8>,
}

/// Which file the IMA log came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImaFormat {
    /// `ascii_runtime_measurements`.
    Ascii,
    /// `binary_runtime_measurements`.
    Binary,
}

/// An IMA runtime measurement log, or the part of it from entry `from_entry` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImaLog {
    pub format: ImaFormat,
    #[serde(with = "b64")]
    pub data: Vec<u8>,
    /// Index of the first entry in `data` (0: the whole log).
    #[serde(default)]
    pub from_entry: u64,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}

mod opt_b64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => super::b64::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        use base64::Engine as _;
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("not base64: {e}"))),
        }
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s.trim()).map_err(|e| serde::de::Error::custom(format!("not hex: {e}")))
    }
}

mod pcr_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use trustpool_core::HashAlg;

    type Map = BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>>;

    pub fn serialize<S: Serializer>(v: &Map, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&str, BTreeMap<u8, String>> = v
            .iter()
            .map(|(alg, pcrs)| {
                (
                    alg.name(),
                    pcrs.iter().map(|(i, d)| (*i, hex::encode(d))).collect(),
                )
            })
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        use serde::de::Error;
        let text = BTreeMap::<String, BTreeMap<u8, String>>::deserialize(d)?;
        let mut out = Map::new();
        for (bank, pcrs) in text {
            let alg = HashAlg::from_name(&bank)
                .ok_or_else(|| D::Error::custom(format!("unknown PCR bank {bank:?}")))?;
            let mut values = BTreeMap::new();
            for (i, h) in pcrs {
                if usize::from(i) >= trustpool_core::pcr::NUM_PCRS {
                    return Err(D::Error::custom(format!(
                        "{bank}: PCR {i} out of range 0-23"
                    )));
                }
                let v = hex::decode(h.trim())
                    .map_err(|e| D::Error::custom(format!("{bank}:{i}: not hex: {e}")))?;
                if v.len() != alg.size() {
                    return Err(D::Error::custom(format!(
                        "{bank}:{i}: {} bytes, {bank} values have {}",
                        v.len(),
                        alg.size()
                    )));
                }
                values.insert(i, v);
            }
            if out.insert(alg, values).is_some() {
                return Err(D::Error::custom(format!("PCR bank {bank:?} given twice")));
            }
        }
        Ok(out)
    }
}

/// PCR values in the evidence's map form.
pub fn pcr_map(set: &PcrSet) -> BTreeMap<HashAlg, BTreeMap<u8, Vec<u8>>> {
    set.banks()
        .iter()
        .map(|b| {
            (
                b.alg(),
                b.iter().map(|(i, d)| (i, d.as_bytes().to_vec())).collect(),
            )
        })
        .collect()
}

fn format_err(what: &str, msg: impl Into<String>) -> FileError {
    FileError::Format {
        what: what.to_string(),
        msg: msg.into(),
    }
}

impl Evidence {
    /// Parse and check an evidence document (`what` names it in errors).
    pub fn from_json(text: &str, what: &str) -> Result<Evidence, FileError> {
        let ev: Evidence = serde_json::from_str(text).map_err(|e| {
            format_err(
                what,
                format!("line {} column {}: {e}", e.line(), e.column()),
            )
        })?;
        if ev.version != EVIDENCE_VERSION {
            return Err(format_err(
                what,
                format!(
                    "evidence version {} is not supported (this build reads version {EVIDENCE_VERSION})",
                    ev.version
                ),
            ));
        }
        ev.ak_file(what)?;
        Ok(ev)
    }

    /// Read an evidence file.
    pub fn load(path: impl AsRef<Path>) -> Result<Evidence, FileError> {
        let p = path.as_ref();
        let what = p.display().to_string();
        let bytes = files::read(p)?;
        let text = String::from_utf8(bytes).map_err(|_| format_err(&what, "not UTF-8"))?;
        Self::from_json(&text, &what)
    }

    /// Pretty JSON, as `trustpool tpm quote` writes it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The attestation key.
    pub fn ak_file(&self, what: &str) -> Result<AkFile, FileError> {
        let ak = AkFile::from_bytes(self.ak.tpm2b_public.clone(), &format!("{what}: ak"))?;
        if ak.format != files::AkFormat::Tpm2bPublic {
            return Err(format_err(what, "ak.tpm2b_public is not a TPM2B_PUBLIC"));
        }
        Ok(ak)
    }

    /// The PCR values.
    pub fn pcr_set(&self) -> Result<PcrSet, FileError> {
        let mut set = PcrSet::new();
        for (alg, values) in &self.pcrs {
            for (i, v) in values {
                if !set.set(*alg, *i, v) {
                    return Err(format_err(
                        "evidence pcrs",
                        format!("{alg}:{i}: cannot hold the value (more than 4 banks?)"),
                    ));
                }
            }
        }
        Ok(set)
    }

    /// The PCR selection the quote covers, as (bank, mask).
    pub fn quote_selection(&self) -> Result<Vec<(HashAlg, u32)>, VerifyFailure> {
        let attest = Attest::parse(&self.quote.attest)
            .map_err(|e| VerifyFailure::Quote(QuoteError::Attest(e)))?;
        let info = attest
            .quote()
            .ok_or(VerifyFailure::Quote(QuoteError::NotAQuote {
                attest_type: attest.attest_type,
            }))?;
        info.pcr_select
            .banks()
            .map(|b| {
                b.hash().map(|alg| (alg, b.mask())).ok_or_else(|| {
                    VerifyFailure::Input(format_err(
                        "evidence quote",
                        format!("selects PCRs of unknown bank {:#06x}", b.alg),
                    ))
                })
            })
            .collect()
    }

    /// The quoted PCR values as tpm2-tools' PCR file (`tpm2_quote -o`), in the quote's
    /// selection order. A selected PCR without a value is [`QuoteError::PcrMissing`].
    pub fn tpm2_tools_pcrs(&self) -> Result<Vec<u8>, VerifyFailure> {
        let selection = self.quote_selection()?;
        let set = self.pcr_set()?;
        for (alg, mask) in &selection {
            for pcr in 0u8..32 {
                if mask & (1u32 << pcr) != 0 && set.pcr(*alg, pcr).is_none() {
                    return Err(VerifyFailure::Quote(QuoteError::PcrMissing {
                        bank: alg.id(),
                        pcr,
                    }));
                }
            }
        }
        let mut buf = vec![0u8; 4 + 16 * 8 + 4 + 16 * (4 + 8 * (2 + 64))];
        let n = write_tpm2_tools_pcrs(&selection, &set, &mut buf).map_err(|e| {
            VerifyFailure::Input(format_err(
                "evidence pcrs",
                format!("selection too large: {e}"),
            ))
        })?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Everything `trustpool verify` needs, from this evidence, a compiled whitelist and the
    /// workarounds allowed. (The IMA log is carried in the evidence but not yet appraised.)
    pub fn to_verify_input(
        &self,
        policy: Vec<u8>,
        workarounds: Workarounds,
    ) -> Result<VerifyInput, VerifyFailure> {
        Ok(VerifyInput {
            ak: self.ak_file("evidence")?,
            attest: self.quote.attest.clone(),
            signature: self.quote.signature.clone(),
            pcrs: Some(self.tpm2_tools_pcrs()?),
            nonce: self.nonce.clone(),
            event_log: self.eventlog.clone(),
            policy,
            workarounds,
            plain_scheme: None,
        })
    }

    /// The quote, for `quote_cmd::verify_quote`.
    pub fn to_quote_evidence(&self) -> Result<QuoteEvidence, VerifyFailure> {
        Ok(QuoteEvidence {
            attest: self.quote.attest.clone(),
            signature: self.quote.signature.clone(),
            pcrs: Some(self.tpm2_tools_pcrs()?),
        })
    }

    /// Verify the quote alone (signature, nonce, PCR values) against the evidence's AK and
    /// `nonce` (the verifier's own copy of the nonce it sent).
    pub fn verify_quote(
        &self,
        backend: &dyn SignatureVerifier,
        nonce: &[u8],
    ) -> Result<QuoteReport, VerifyFailure> {
        let ak = self.ak_file("evidence")?;
        let q = self.to_quote_evidence()?;
        quote_cmd::verify_quote(backend, &ak, &q, nonce, None).map(|(r, _)| r)
    }
}

/// Base64 as the evidence writes it (for docs and tests).
pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}
