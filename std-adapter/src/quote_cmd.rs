//! `trustpool quote verify`: check a quote from files, print a summary or JSON.

use serde::Serialize;
use trustpool_core::attest::ClockInfo;
use trustpool_core::pcr::PcrValues;
use trustpool_core::{PcrSet, Quote, QuoteError, SignatureVerifier};

use crate::files::{self, AkFile, KeylimeQuote};

/// Owned quote evidence: the bytes a verification borrows from.
#[derive(Debug, Clone)]
pub struct QuoteEvidence {
    pub attest: Vec<u8>,
    pub signature: Vec<u8>,
    pub pcrs: Option<Vec<u8>>,
}

impl From<KeylimeQuote> for QuoteEvidence {
    fn from(k: KeylimeQuote) -> Self {
        QuoteEvidence {
            attest: k.attest,
            signature: k.signature,
            pcrs: Some(k.pcrs),
        }
    }
}

/// One selected PCR and its value, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct PcrReport {
    pub bank: String,
    pub pcr: u8,
    pub value: Option<String>,
}

/// What a successful quote verification established.
#[derive(Debug, Clone, Serialize)]
pub struct QuoteReport {
    pub verified: bool,
    pub key_type: String,
    pub key_bits: usize,
    /// TPM Name of the AK (when given as a TPM public area).
    pub ak_name: Option<String>,
    pub signature_scheme: String,
    pub nonce: String,
    pub clock_info: ClockInfo,
    pub firmware_version: String,
    pub qualified_signer: String,
    pub pcr_digest: String,
    /// Whether PCR values were supplied and matched the digest.
    pub pcrs_checked: bool,
    pub pcrs: Vec<PcrReport>,
}

/// Why `quote verify` failed: unusable input, or a quote that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error(transparent)]
    Input(#[from] files::FileError),
    #[error("{0}")]
    Quote(QuoteError),
}

impl VerifyFailure {
    /// Process exit status: 1 for a quote that fails, 2 for input that cannot be used.
    pub fn exit_code(&self) -> i32 {
        match self {
            VerifyFailure::Input(_) => 2,
            VerifyFailure::Quote(QuoteError::Attest(_) | QuoteError::Signature(_)) => 2,
            VerifyFailure::Quote(_) => 1,
        }
    }

    /// A machine-readable name for the failure.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyFailure::Input(_) => "unusable-input",
            VerifyFailure::Quote(q) => q.code(),
        }
    }
}

/// Verify quote evidence against an AK and nonce, with a chosen backend.
pub fn verify_quote<V: SignatureVerifier + ?Sized>(
    backend: &V,
    ak_file: &AkFile,
    ev: &QuoteEvidence,
    nonce: &[u8],
    plain_scheme: Option<trustpool_core::SigScheme>,
) -> Result<(QuoteReport, Option<PcrSet>), VerifyFailure> {
    verify_quote_view(backend, ak_file, ev, nonce, plain_scheme).map(|(_, r, p)| (r, p))
}

/// As [`verify_quote`], also returning the verified quote itself (for further checks such as
/// a log replay against its PCR digest).
pub fn verify_quote_view<'e, V: SignatureVerifier + ?Sized>(
    backend: &V,
    ak_file: &AkFile,
    ev: &'e QuoteEvidence,
    nonce: &[u8],
    plain_scheme: Option<trustpool_core::SigScheme>,
) -> Result<
    (
        trustpool_core::VerifiedQuote<'e>,
        QuoteReport,
        Option<PcrSet>,
    ),
    VerifyFailure,
> {
    let ak = ak_file.ak().map_err(VerifyFailure::Quote)?;
    let scheme = plain_scheme.or_else(|| ak.public.and_then(|p| p.scheme()));
    let sig = files::parse_signature(&ev.signature, scheme, "signature")?;
    let q =
        Quote::verify_with(backend, &ev.attest, &sig, &ak, nonce).map_err(VerifyFailure::Quote)?;
    let pcrs = match &ev.pcrs {
        Some(bytes) => {
            let set = files::parse_pcrs(bytes, "PCR values")?;
            q.check_pcrs(&set).map_err(VerifyFailure::Quote)?;
            Some(set)
        }
        None => None,
    };
    let pcr_list = q
        .info
        .pcr_select
        .iter()
        .map(|(bank, pcr)| {
            let alg = trustpool_core::HashAlg::from_id(bank);
            PcrReport {
                bank: alg.map_or_else(|| format!("{bank:#06x}"), |a| a.name().to_string()),
                pcr,
                value: alg
                    .and_then(|a| pcrs.as_ref().and_then(|s| s.pcr(a, pcr)))
                    .map(|d| hex::encode(d.as_bytes())),
            }
        })
        .collect();
    let report = QuoteReport {
        verified: true,
        key_type: ak.key.kind().to_string(),
        key_bits: ak.key.bits(),
        ak_name: ak.name().map(|n| n.to_string()),
        signature_scheme: sig.scheme().to_string(),
        nonce: hex::encode(q.attest.extra_data),
        clock_info: q.attest.clock_info,
        firmware_version: format!("{:#018x}", q.attest.firmware_version),
        qualified_signer: hex::encode(q.attest.qualified_signer),
        pcr_digest: hex::encode(q.info.pcr_digest),
        pcrs_checked: pcrs.is_some(),
        pcrs: pcr_list,
    };
    Ok((q, report, pcrs))
}

/// Compact selection text: `sha256:0-7,10`.
pub fn selection_text(pcrs: &[PcrReport]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < pcrs.len() {
        let bank = &pcrs[i].bank;
        if !out.is_empty() {
            out.push('+');
        }
        out.push_str(bank);
        out.push(':');
        let mut first = true;
        while i < pcrs.len() && &pcrs[i].bank == bank {
            let start = pcrs[i].pcr;
            let mut end = start;
            while i + 1 < pcrs.len() && &pcrs[i + 1].bank == bank && pcrs[i + 1].pcr == end + 1 {
                i += 1;
                end += 1;
            }
            if !first {
                out.push(',');
            }
            first = false;
            if start == end {
                out.push_str(&start.to_string());
            } else {
                out.push_str(&format!("{start}-{end}"));
            }
            i += 1;
        }
    }
    out
}

/// The human summary of a verified quote.
pub fn summary(r: &QuoteReport) -> String {
    let mut s = format!(
        "quote verified: {} {}-bit AK, {}, nonce {}\n",
        r.key_type,
        r.key_bits,
        r.signature_scheme,
        if r.nonce.is_empty() {
            "(empty)"
        } else {
            &r.nonce
        }
    );
    if let Some(name) = &r.ak_name {
        s.push_str(&format!("  AK name:   {name}\n"));
    }
    s.push_str(&format!(
        "  clock:     {} ms, resets {}, restarts {}, safe {}\n  firmware:  {}\n",
        r.clock_info.clock,
        r.clock_info.reset_count,
        r.clock_info.restart_count,
        r.clock_info.safe,
        r.firmware_version
    ));
    s.push_str(&format!(
        "  PCRs:      {} {}\n",
        selection_text(&r.pcrs),
        if r.pcrs_checked {
            "(values match the quoted digest)"
        } else {
            "(values not supplied; digest not checked)"
        }
    ));
    s
}
