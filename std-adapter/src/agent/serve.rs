//! Serving the Keylime agent API: HTTPS with mutual TLS (rustls; client certificates must
//! chain to the configured CA; no host names are checked, as in Keylime), bounded connections,
//! header and body sizes and times.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::api::{self, Algorithms, ApiError, KeyHalf, QuoteResults, Route};
use super::quoter::{QuoteFailure, Quoter};
use super::state::AgentState;

/// Largest request body read (revocation notices, key halves).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest log served.
pub const MAX_LOG: u64 = 64 * 1024 * 1024;
/// Time allowed for a TLS handshake and for request headers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler needs.
pub struct Agent {
    pub state: AgentState,
    pub quoter: Quoter,
    pub algs: Algorithms,
    pub ak_handle: u32,
    pub eventlog: Option<PathBuf>,
    pub ima_log: Option<PathBuf>,
    pub boottime: u64,
    pub halves: Mutex<KeyHalves>,
}

/// The bootstrap key halves the tenant (U) and verifier (V) deliver.
#[derive(Default)]
pub struct KeyHalves {
    pub u: Option<Vec<u8>>,
    pub v: Option<Vec<u8>>,
    pub auth_tag: Option<String>,
    /// K = U xor V, once both arrived and the tenant's tag matched.
    pub k: Option<Vec<u8>>,
}

/// A rustls server configuration: our certificate and key, client certificates required
/// and checked against `client_ca`.
pub fn tls_config(cert_pem: &str, key_pem: &str, client_ca: &Path) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("agent TLS certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow!("agent TLS key: {e}"))?;
    let ca_pem = std::fs::read(client_ca)
        .with_context(|| format!("reading client CA {}", client_ca.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&ca_pem) {
        let cert = cert.map_err(|e| anyhow!("client CA {}: {e}", client_ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| anyhow!("client CA {}: {e}", client_ca.display()))?;
    }
    if roots.is_empty() {
        return Err(anyhow!(
            "client CA {}: no certificate in it",
            client_ca.display()
        ));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| anyhow!("client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("agent TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accept connections until the listener fails.
pub async fn serve(
    agent: Arc<Agent>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
) -> Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    loop {
        let (stream, peer) = listener.accept().await.context("accepting")?;
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: {max_connections} connections open");
            drop(stream);
            continue;
        };
        let agent = agent.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(agent, s).await,
                        Ok(Err(e)) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(agent, stream).await,
            }
        });
    }
}

async fn serve_connection<S>(agent: Arc<Agent>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let agent = agent.clone();
        async move { Ok::<_, Infallible>(handle(&agent, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service);
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

fn json_response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    json_response(e.code, &e.body())
}

/// Answer one request.
pub async fn handle(agent: &Agent, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let route = match api::route(&method, &path, query.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(%method, %path, "{e}");
            return error_response(&e);
        }
    };
    let body = match route {
        Route::Revocation(_) | Route::KeyHalf(..) => {
            match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    return error_response(&ApiError {
                        code: 413,
                        status: format!("request body unreadable or over {MAX_BODY} bytes: {e}"),
                    })
                }
            }
        }
        _ => Bytes::new(),
    };
    match answer(agent, route, &body).await {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => {
            tracing::info!(%method, %path, "{e}");
            let mut r = error_response(&e);
            if e.code == 503 {
                r.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
            }
            r
        }
    }
}

/// The answer to a routed request, with its body already read.
pub async fn answer(agent: &Agent, route: Route, body: &[u8]) -> Result<(u16, Value), ApiError> {
    match route {
        Route::Version => Ok((200, api::version_body())),
        Route::Integrity(v, q) => {
            let tq = tpm_quote(agent, q.nonce.as_bytes(), q.mask).await?;
            let (ima, entry) = match &agent.ima_log {
                Some(path) => match read_bounded(path) {
                    Ok(data) => {
                        let text = String::from_utf8_lossy(&data);
                        let (start, slice) = api::ima_slice(&text, q.ima_ml_entry);
                        (Some(slice.to_string()), Some(start))
                    }
                    Err(e) => {
                        tracing::warn!("IMA log {}: {e}", path.display());
                        (None, None)
                    }
                },
                None => (None, None),
            };
            let mb = match (&agent.eventlog, q.mask & 1 != 0) {
                (Some(path), true) => match read_bounded(path) {
                    Ok(data) => Some(base64::engine::general_purpose::STANDARD.encode(data)),
                    Err(e) => {
                        tracing::warn!("event log {}: {e}", path.display());
                        None
                    }
                },
                _ => None,
            };
            let results = QuoteResults {
                quote: tq,
                hash_alg: agent.algs.hash,
                enc_alg: agent.algs.enc_alg(v),
                sign_alg: agent.algs.sign,
                pubkey: (!q.partial).then(|| agent.state.transport_pub_pem.clone()),
                ima_measurement_list: ima,
                ima_measurement_list_entry: entry,
                mb_measurement_list: mb,
                boottime: agent.boottime,
            };
            Ok((200, api::success(to_value(&results))))
        }
        Route::Identity(v, nonce) => {
            let tq = tpm_quote(agent, nonce.as_bytes(), 0).await?;
            let results = QuoteResults {
                quote: tq,
                hash_alg: agent.algs.hash,
                enc_alg: agent.algs.enc_alg(v),
                sign_alg: agent.algs.sign,
                pubkey: Some(agent.state.transport_pub_pem.clone()),
                ima_measurement_list: None,
                ima_measurement_list_entry: None,
                mb_measurement_list: None,
                boottime: agent.boottime,
            };
            Ok((200, api::success(to_value(&results))))
        }
        Route::Info(v) => Ok((
            200,
            api::success(json!({
                "agent_uuid": agent.state.uuid,
                "tpm_hash_alg": agent.algs.hash,
                "tpm_enc_alg": agent.algs.enc_alg(v),
                "tpm_sign_alg": agent.algs.sign,
                "ak_handle": agent.ak_handle,
            })),
        )),
        Route::Revocation(_) => {
            let text = String::from_utf8_lossy(body);
            tracing::warn!(
                "revocation notification received: {}",
                text.chars().take(2000).collect::<String>()
            );
            Ok((200, api::success(json!({}))))
        }
        Route::KeyHalf(_, half) => {
            key_half(agent, half, body).map(|()| (200, api::success(json!({}))))
        }
        Route::Pubkey(_) => Ok((
            200,
            api::success(json!({"pubkey": agent.state.transport_pub_pem})),
        )),
        Route::VerifyKey(_, challenge) => {
            let halves = agent
                .halves
                .lock()
                .map_err(|_| ApiError::bad_request("key state unavailable"))?;
            let k = halves.k.as_ref().ok_or_else(|| {
                ApiError::bad_request("bootstrap key not derived yet (U and V not both received)")
            })?;
            Ok((
                200,
                api::success(json!({"hmac": hmac_sha384_hex(k, challenge.as_bytes())})),
            ))
        }
    }
}

fn to_value(r: &QuoteResults) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

async fn tpm_quote(agent: &Agent, nonce: &[u8], mask: u32) -> Result<String, ApiError> {
    match agent
        .quoter
        .quote(nonce, mask, &agent.state.transport_pub_pem)
        .await
    {
        Ok(q) => Ok(q.quote),
        Err(QuoteFailure::Busy) => Err(ApiError {
            code: 503,
            status: "TPM busy: the quote queue is full, retry later".into(),
        }),
        Err(QuoteFailure::Timeout) => Err(ApiError {
            code: 503,
            status: "TPM did not answer in time, retry later".into(),
        }),
        Err(QuoteFailure::Tpm(e)) => Err(ApiError {
            code: 500,
            status: format!("TPM quote failed: {e}"),
        }),
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(MAX_LOG).read_to_end(&mut data)?;
    Ok(data)
}

/// `HMAC-SHA384(key, message)` as lower-case hex (Keylime's `crypto.do_hmac`).
pub fn hmac_sha384_hex(key: &[u8], message: &[u8]) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA384, key);
    hex::encode(ring::hmac::sign(&k, message).as_ref())
}

/// `POST /keys/ukey` or `/keys/vkey`: `{"encrypted_key": base64(RSA-OAEP-SHA1(half)),
/// "auth_tag": hex, "payload": …}`; decrypted with the transport key. When both halves are
/// here, K = U xor V, checked against the tenant's `auth_tag` = HMAC-SHA384(K, uuid).
fn key_half(agent: &Agent, half: KeyHalf, body: &[u8]) -> Result<(), ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let enc = v
        .get("encrypted_key")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("missing string field 'encrypted_key'"))?;
    let enc = base64::engine::general_purpose::STANDARD
        .decode(enc)
        .map_err(|e| ApiError::bad_request(format!("encrypted_key is not base64: {e}")))?;
    let plain = agent
        .state
        .transport_key
        .decrypt(rsa::Oaep::<sha1::Sha1>::new(), &enc)
        .map_err(|_| {
            ApiError::bad_request("encrypted_key does not decrypt with the transport key")
        })?;
    if v.get("payload").is_some() {
        tracing::warn!("a payload came with the key; trustpool does not run payloads");
    }
    let mut h = agent
        .halves
        .lock()
        .map_err(|_| ApiError::bad_request("key state unavailable"))?;
    match half {
        KeyHalf::U => {
            h.u = Some(plain);
            h.auth_tag = v
                .get("auth_tag")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        KeyHalf::V => h.v = Some(plain),
    }
    if let (Some(u), Some(vk)) = (&h.u, &h.v) {
        if u.len() != vk.len() {
            return Err(ApiError::bad_request(format!(
                "key halves differ in length ({} and {} bytes)",
                u.len(),
                vk.len()
            )));
        }
        let k: Vec<u8> = u.iter().zip(vk).map(|(a, b)| a ^ b).collect();
        if let Some(tag) = &h.auth_tag {
            if !tag.eq_ignore_ascii_case(&hmac_sha384_hex(&k, agent.state.uuid.as_bytes())) {
                h.u = None;
                h.v = None;
                h.k = None;
                return Err(ApiError::bad_request(
                    "auth_tag does not match the key derived from U and V",
                ));
            }
        }
        tracing::info!("bootstrap key derived from U and V");
        h.k = Some(k);
    }
    Ok(())
}

/// Seconds since the epoch when this host booted (`btime` of `/proc/stat`), 0 if unknown.
pub fn boottime() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}
