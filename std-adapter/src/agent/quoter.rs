//! The agent's TPM: one thread owns it and does one command at a time; requests wait in a
//! short bounded queue, and beyond it are refused at once (the HTTP side answers 503 with a
//! retry hint). A caller waits at most the configured time for its answer.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use trustpool_core::pcr::write_tpm2_tools_pcrs;
use trustpool_core::tpm::{AkTemplate, EkTemplate, Hierarchy};
use trustpool_core::{Digest, HashAlg};

use crate::files::KeylimeQuote;
use crate::tpm::{Ak, Ek, TpmError, TpmSession};

/// Keylime's data PCR: the transport key's PEM is bound to every quote through it.
pub const DATA_PCR: u32 = 16;

/// The keys the agent made in its TPM at start-up.
#[derive(Debug, Clone)]
pub struct TpmKeys {
    pub ak: Ak,
    pub ek: Ek,
    /// An EK certificate (DER) read from the TPM's NV, for the EK's algorithm.
    pub ek_cert: Option<Vec<u8>>,
}

/// Open the TPM's keys: the EK of `ek` (TCG default template) and the AK of `ak`, a primary
/// key in the endorsement hierarchy, so the same key comes back after every restart.
pub fn make_keys(
    session: &mut TpmSession,
    ak: AkTemplate,
    ek: EkTemplate,
) -> Result<TpmKeys, TpmError> {
    // A socket TPM has no resource manager: what a previous run left loaded stays there.
    if !matches!(session.uri(), crate::tpm::TpmUri::Device(_)) {
        let n = session.flush_transient()?;
        if n > 0 {
            tracing::info!("flushed {n} transient objects a previous run left in the TPM");
        }
    }
    let ek_key = session.create_ek(ek)?;
    let ak_key = session.create_ak(ak, Hierarchy::Endorsement)?;
    let wanted = match ek {
        EkTemplate::Rsa2048 => "rsa2048",
        EkTemplate::EccP256 => "ecc-p256",
    };
    let ek_cert = session
        .ek_certificates()?
        .into_iter()
        .find(|c| c.key == wanted)
        .map(|c| c.der);
    Ok(TpmKeys {
        ak: ak_key,
        ek: ek_key,
        ek_cert,
    })
}

/// What a quote answer carries from the TPM.
#[derive(Debug, Clone)]
pub struct TpmQuote {
    /// Keylime's quote string.
    pub quote: String,
}

enum Job {
    Quote {
        nonce: Vec<u8>,
        mask: u32,
        data: Digest,
        enqueued: Instant,
        reply: tokio::sync::oneshot::Sender<Result<TpmQuote, String>>,
    },
}

/// Why a quote was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuoteFailure {
    /// The queue is full: retry later.
    Busy,
    /// The TPM did not answer in time.
    Timeout,
    /// The TPM failed; the text says how.
    Tpm(String),
}

/// The handle the HTTP side holds.
#[derive(Clone)]
pub struct Quoter {
    tx: SyncSender<Job>,
    timeout: Duration,
    pub alg: HashAlg,
}

impl Quoter {
    /// Move the TPM session and keys to their own thread.
    pub fn spawn(
        mut session: TpmSession,
        keys: TpmKeys,
        alg: HashAlg,
        queue: usize,
        timeout: Duration,
    ) -> Quoter {
        let (tx, rx) = sync_channel::<Job>(queue);
        std::thread::Builder::new()
            .name("tpm".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Quote {
                            nonce,
                            mask,
                            data,
                            enqueued,
                            reply,
                        } => {
                            // The caller gave up: do not spend the TPM on it.
                            if reply.is_closed() || enqueued.elapsed() > timeout {
                                continue;
                            }
                            let r = quote(&mut session, &keys.ak, alg, &nonce, mask, &data)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(r);
                        }
                    }
                }
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("starting the TPM thread: {e}"));
        Quoter { tx, timeout, alg }
    }

    /// A quote over `mask` (PCR 16 always added) with `nonce` as extraData, after PCR 16 was
    /// reset and extended with `H(transport key PEM)`.
    pub async fn quote(
        &self,
        nonce: &[u8],
        mask: u32,
        transport_pem: &str,
    ) -> Result<TpmQuote, QuoteFailure> {
        let data = self
            .alg
            .hash(transport_pem.as_bytes())
            .ok_or_else(|| QuoteFailure::Tpm(format!("{} not available", self.alg.name())))?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.tx.try_send(Job::Quote {
            nonce: nonce.to_vec(),
            mask,
            data,
            enqueued: Instant::now(),
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(QuoteFailure::Busy),
            Err(TrySendError::Disconnected(_)) => {
                return Err(QuoteFailure::Tpm("the TPM thread has stopped".into()))
            }
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r.map_err(QuoteFailure::Tpm),
            Ok(Err(_)) => Err(QuoteFailure::Timeout),
            Err(_) => Err(QuoteFailure::Timeout),
        }
    }
}

/// Reset PCR 16, extend it with `data` in bank `alg`, and quote `mask | PCR 16` in that bank.
pub fn quote(
    session: &mut TpmSession,
    ak: &Ak,
    alg: HashAlg,
    nonce: &[u8],
    mask: u32,
    data: &Digest,
) -> Result<TpmQuote, TpmError> {
    session.reset_pcr(DATA_PCR)?;
    session.extend(DATA_PCR, core::slice::from_ref(data))?;
    let selection = [(alg, mask | (1 << DATA_PCR))];
    let (attest, signature, pcrs) = session.quote_with_pcrs(ak, nonce, &selection)?;
    let mut buf = vec![0u8; 4 + 16 * 8 + 4 + 16 * (4 + 8 * (2 + 64))];
    let n = write_tpm2_tools_pcrs(&selection, &pcrs, &mut buf)
        .map_err(|e| TpmError::Input(format!("PCR values: {e}")))?;
    buf.truncate(n);
    let quote = KeylimeQuote {
        attest,
        signature,
        pcrs: buf,
    }
    .to_string();
    Ok(TpmQuote { quote })
}
