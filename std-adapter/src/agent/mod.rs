//! `trustpool agent`: the host agent. It holds the host's attestation key in the TPM, enrolls
//! with a registrar by TPM credential activation, and answers verifiers with fresh quotes and
//! logs over mutual TLS, speaking the Keylime agent pull API (2.1–2.6), so that the Keylime
//! verifier and trustpool's server can both attest the host.
//!
//! - [`api`]: paths, queries and answers (pure; tested and fuzzed alone).
//! - [`config`]: the TOML configuration.
//! - [`state`]: UUID, TLS certificate, transport key, kept across restarts.
//! - [`quoter`]: the TPM thread, its bounded queue, the PCR 16 binding.
//! - [`registrar`]: enrollment (Keylime registrar protocol).
//! - [`serve`]: HTTPS with mutual TLS, and the handlers.

pub mod api;
pub mod client;
pub mod config;
pub mod quoter;
pub mod registrar;
pub mod serve;
pub mod state;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use trustpool_core::tpm::{AkTemplate, EkTemplate};
use trustpool_core::HashAlg;

use crate::tpm::TpmSession;
use config::AgentConfig;

/// The AK and EK templates a configuration names.
pub fn templates(cfg: &AgentConfig) -> Result<(AkTemplate, EkTemplate, HashAlg)> {
    let ak = AkTemplate::from_name(&cfg.ak)
        .ok_or_else(|| anyhow!("ak = '{}': expected rsa or ecc", cfg.ak))?;
    let ek = match cfg.ek.to_ascii_lowercase().as_str() {
        "rsa" | "rsa2048" => EkTemplate::Rsa2048,
        "ecc" | "ecc256" | "p256" => EkTemplate::EccP256,
        other => bail!("ek = '{other}': expected rsa or ecc"),
    };
    let alg = HashAlg::from_name(&cfg.hash_alg)
        .filter(|a| matches!(a, HashAlg::Sha1 | HashAlg::Sha256 | HashAlg::Sha384))
        .ok_or_else(|| {
            anyhow!(
                "hash_alg = '{}': expected sha256, sha1 or sha384",
                cfg.hash_alg
            )
        })?;
    Ok((ak, ek, alg))
}

/// Start the agent and serve until the process is stopped: open the TPM, make or load the
/// keys and state, register (when a registrar is configured), then serve.
pub fn run(cfg: AgentConfig) -> Result<()> {
    let started = Instant::now();
    let (ak_t, ek_t, alg) = templates(&cfg)?;
    let listen = cfg.listen_addr()?;
    let (contact_ip, contact_port) = cfg.contact()?;
    if !cfg.insecure_http && cfg.client_ca.is_none() {
        bail!("client_ca is not set: mutual TLS needs the CA of the verifiers' client certificates (or insecure_http = true, for tests only)");
    }
    let mut session =
        TpmSession::open(&cfg.tpm).with_context(|| format!("opening TPM {}", cfg.tpm))?;
    let keys = quoter::make_keys(&mut session, ak_t, ek_t).context("creating the EK and AK")?;
    let tls_files = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => bail!("tls_cert and tls_key must be given together"),
    };
    let state = state::AgentState::load_or_create(
        &cfg.state_dir,
        cfg.uuid.as_deref(),
        tls_files,
        &contact_ip,
    )?;
    tracing::info!(uuid = %state.uuid, ak = ak_t.name(), ek = ?ek_t, bank = alg.name(), "agent keys ready");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    if !cfg.registrar.trim().is_empty() {
        let registrar = registrar::Registrar::new(cfg.registrar.trim())?;
        let reg = registrar::Registration {
            uuid: state.uuid.clone(),
            ek_tpm: keys.ek.public.clone(),
            aik_tpm: keys.ak.public.clone(),
            ekcert: keys.ek_cert.clone(),
            ip: contact_ip.clone(),
            port: contact_port,
            mtls_cert: state.tls_cert_pem.clone(),
        };
        let version = rt.block_on(registrar::enroll(&registrar, &reg, |blob| {
            session
                .activate(&keys.ak, &keys.ek, blob)
                .map_err(|e| anyhow!("{e}"))
        }))?;
        tracing::info!(
            registrar = %cfg.registrar,
            api = %version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "registered and activated"
        );
    }

    let ak_handle = keys.ak.handle;
    let algs = api::Algorithms {
        hash: alg.name(),
        ek_rsa: matches!(ek_t, EkTemplate::Rsa2048),
        sign: match ak_t {
            AkTemplate::Rsa2048 => "rsassa",
            AkTemplate::EccP256 => "ecdsa",
        },
    };
    let tls = if cfg.insecure_http {
        tracing::warn!(
            "insecure_http: serving plain HTTP without client certificates (tests only)"
        );
        None
    } else {
        let ca = cfg
            .client_ca
            .as_deref()
            .ok_or_else(|| anyhow!("client_ca is not set"))?;
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            serve::tls_config(&state.tls_cert_pem, &state.tls_key_pem, ca)?,
        )))
    };
    let quoter = quoter::Quoter::spawn(
        session,
        keys,
        alg,
        cfg.queue,
        Duration::from_millis(cfg.tpm_timeout_ms.max(1)),
    );
    let agent = Arc::new(serve::Agent {
        state,
        quoter,
        algs,
        ak_handle,
        eventlog: AgentConfig::log_path(&cfg.eventlog),
        ima_log: AgentConfig::log_path(&cfg.ima_log),
        boottime: serve::boottime(),
        halves: Mutex::new(serve::KeyHalves::default()),
    });
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        tracing::info!(
            address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = !cfg.insecure_http,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "listening on {}", listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        serve::serve(agent, listener, tls, cfg.max_connections).await
    })
}

/// `trustpool agent fetch-key NAME`: ask a trustpool server for the data key `NAME` over
/// mutual TLS (this agent's registered certificate; the server's certificate pinned). The
/// key comes wrapped to a binding key inside this TPM (fixedTPM, fixedParent, certified by the
/// AK with the server's nonce) and is unwrapped here by TPM2_RSA_Decrypt: it exists in the
/// clear only in this process. The binding key is made once and kept in the state directory.
pub fn fetch_key(
    cfg: &AgentConfig,
    server: &str,
    server_cert_pem: &str,
    name: &str,
) -> Result<Vec<u8>> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let (ak_t, _, _) = templates(cfg)?;
    let (contact_ip, _) = cfg.contact()?;
    let tls_files = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        _ => None,
    };
    let state = state::AgentState::load_or_create(
        &cfg.state_dir,
        cfg.uuid.as_deref(),
        tls_files,
        &contact_ip,
    )?;
    let mut session =
        TpmSession::open(&cfg.tpm).with_context(|| format!("opening TPM {}", cfg.tpm))?;
    if !matches!(session.uri(), crate::tpm::TpmUri::Device(_)) {
        session.flush_transient()?;
    }
    let ak = session.create_ak(ak_t, trustpool_core::tpm::Hierarchy::Endorsement)?;
    let (pub_path, priv_path) = (
        cfg.state_dir.join("binding-key.pub"),
        cfg.state_dir.join("binding-key.priv"),
    );
    let key = match (std::fs::read(&pub_path), std::fs::read(&priv_path)) {
        (Ok(p), Ok(s)) => session.load_binding_key(&p, &s)?,
        _ => {
            let k = session.create_binding_key()?;
            state::write_private(&pub_path, &k.public)?;
            state::write_private(&priv_path, &k.private)?;
            k
        }
    };
    let r = (|| -> Result<Vec<u8>> {
        let client = client::AgentClient::new(
            server,
            server_cert_pem,
            &state.tls_cert_pem,
            &state.tls_key_pem,
            Duration::from_secs(30),
        )?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let path = |action: &str| format!("/v1/keys/{}/{action}", api::encode_segment(name));
        let (code, v) =
            rt.block_on(client.request("POST", &path("challenge"), Some(&serde_json::json!({}))))?;
        if code != 200 {
            bail!(
                "server refused ({code}): {}",
                v.get("error").and_then(|e| e.as_str()).unwrap_or("?")
            );
        }
        let nonce = v
            .get("nonce")
            .and_then(|n| n.as_str())
            .ok_or_else(|| anyhow!("the server's challenge has no nonce"))?
            .to_string();
        let (attest, signature) = session.certify(&key, &ak, nonce.as_bytes())?;
        let body = serde_json::json!({
            "nonce": nonce,
            "key_public": b64.encode(&key.public),
            "certify_attest": b64.encode(&attest),
            "certify_signature": b64.encode(&signature),
        });
        let (code, v) = rt.block_on(client.request("POST", &path("release"), Some(&body)))?;
        if code != 200 {
            bail!(
                "server refused ({code}): {}",
                v.get("error").and_then(|e| e.as_str()).unwrap_or("?")
            );
        }
        let wrapped = b64
            .decode(v.get("wrapped_key").and_then(|w| w.as_str()).unwrap_or(""))
            .map_err(|e| anyhow!("wrapped_key is not base64: {e}"))?;
        Ok(session.rsa_decrypt(&key, &wrapped)?)
    })();
    // Whatever happened, nothing stays loaded in the TPM.
    let _ = session.flush(key.handle);
    let _ = session.flush(ak.handle);
    r
}
