//! The HTTP side of a simulated host: the real agent's routing and answer shapes
//! (`trustpool::agent::api`), with quotes made in software.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ring::rand::SystemRandom;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use trustpool::agent::api::{self, Algorithms, ApiError, QuoteResults, Route};
use trustpool_core::PcrBank;

use super::host::Host;

/// Time allowed for a TLS handshake and for request headers (as the real agent).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counters over the whole fleet.
pub struct Counters {
    pub requests: AtomicU64,
    pub quotes: AtomicU64,
    pub errors: AtomicU64,
    pub connections: AtomicU64,
    pub tls_failures: AtomicU64,
    pub accept_errors: AtomicU64,
    /// Milliseconds since the start of the first and the last request (`u64::MAX`: none).
    pub first_ms: AtomicU64,
    pub last_ms: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            requests: AtomicU64::new(0),
            quotes: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            tls_failures: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            first_ms: AtomicU64::new(u64::MAX),
            last_ms: AtomicU64::new(0),
        }
    }
}

/// What every host shares.
pub struct Shared {
    pub good_pcrs: PcrBank,
    pub bad_pcrs: PcrBank,
    /// base64 of the event log (`mb_measurement_list`).
    pub eventlog_b64: String,
    /// The IMA logs (ASCII) of good and bad hosts, when the fleet has them.
    pub ima_good: Option<String>,
    pub ima_bad: Option<String>,
    pub transport_pem: String,
    pub boottime: u64,
    pub started: Instant,
    pub algs: Algorithms,
    pub rng: SystemRandom,
    pub counters: Counters,
}

/// Accept connections for `host` until the task is aborted.
pub async fn accept_loop(
    host: Arc<Host>,
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // Out of file descriptors, mostly: wait for connections to close.
                shared
                    .counters
                    .accept_errors
                    .fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let host = host.clone();
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => serve_connection(host, shared, s).await,
                        _ => {
                            shared.counters.tls_failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                None => serve_connection(host, shared, stream).await,
            }
        });
    }
}

async fn serve_connection<S>(host: Arc<Host>, shared: Arc<Shared>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let r = handle(&host, &shared, &req);
        async move { Ok::<_, Infallible>(r) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .await;
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

/// Answer one request (the body, if any, is not read).
pub fn handle<B>(host: &Host, shared: &Shared, req: &Request<B>) -> Response<Full<Bytes>> {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let now = shared.started.elapsed().as_millis() as u64;
    if c.first_ms.load(Ordering::Relaxed) == u64::MAX {
        let _ = c
            .first_ms
            .compare_exchange(u64::MAX, now, Ordering::Relaxed, Ordering::Relaxed);
    }
    c.last_ms.fetch_max(now, Ordering::Relaxed);
    let (code, body) = match answer(host, shared, req.method().as_str(), req.uri()) {
        Ok(v) => (200, v),
        Err(e) => {
            shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            (e.code, e.body())
        }
    };
    json_response(code, &body)
}

/// The JSON answer to `method` on `uri`, as the real agent's `serve::answer` gives it.
pub fn answer(
    host: &Host,
    shared: &Shared,
    method: &str,
    uri: &hyper::Uri,
) -> Result<Value, ApiError> {
    match api::route(method, uri.path(), uri.query())? {
        Route::Version => Ok(api::version_body()),
        Route::Integrity(v, q) => {
            let quote = quote(host, shared, q.nonce.as_bytes(), q.mask)?;
            let ima_log = if host.good {
                &shared.ima_good
            } else {
                &shared.ima_bad
            };
            let (ima, entry) = match ima_log {
                Some(log) => {
                    let (start, slice) = api::ima_slice(log, q.ima_ml_entry);
                    (Some(slice.to_string()), Some(start))
                }
                None => (None, None),
            };
            let results = QuoteResults {
                quote,
                hash_alg: shared.algs.hash,
                enc_alg: shared.algs.enc_alg(v),
                sign_alg: shared.algs.sign,
                pubkey: (!q.partial).then(|| shared.transport_pem.clone()),
                ima_measurement_list: ima,
                ima_measurement_list_entry: entry,
                mb_measurement_list: (q.mask & 1 != 0).then(|| shared.eventlog_b64.clone()),
                boottime: shared.boottime,
            };
            Ok(api::success(to_value(&results)))
        }
        Route::Identity(v, nonce) => {
            let quote = quote(host, shared, nonce.as_bytes(), 0)?;
            let results = QuoteResults {
                quote,
                hash_alg: shared.algs.hash,
                enc_alg: shared.algs.enc_alg(v),
                sign_alg: shared.algs.sign,
                pubkey: Some(shared.transport_pem.clone()),
                ima_measurement_list: None,
                ima_measurement_list_entry: None,
                mb_measurement_list: None,
                boottime: shared.boottime,
            };
            Ok(api::success(to_value(&results)))
        }
        Route::Info(v) => Ok(api::success(json!({
            "agent_uuid": host.uuid,
            "tpm_hash_alg": shared.algs.hash,
            "tpm_enc_alg": shared.algs.enc_alg(v),
            "tpm_sign_alg": shared.algs.sign,
            "ak_handle": 0x8101_0002u32,
        }))),
        Route::Revocation(_) => Ok(api::success(json!({}))),
        Route::Pubkey(_) => Ok(api::success(json!({"pubkey": shared.transport_pem}))),
        Route::KeyHalf(..) => Err(ApiError::bad_request(
            "simulated agent: key delivery (U/V halves) is not supported",
        )),
        Route::VerifyKey(..) => Err(ApiError::bad_request(
            "bootstrap key not derived yet (U and V not both received)",
        )),
    }
}

fn to_value(r: &QuoteResults) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn quote(host: &Host, shared: &Shared, nonce: &[u8], mask: u32) -> Result<String, ApiError> {
    let pcrs = if host.good {
        &shared.good_pcrs
    } else {
        &shared.bad_pcrs
    };
    let elapsed = shared.started.elapsed().as_millis() as u64;
    let q = host
        .quote(&shared.rng, pcrs, nonce, mask, elapsed)
        .map_err(|e| ApiError {
            code: 500,
            status: format!("TPM quote failed: {e}"),
        })?;
    shared.counters.quotes.fetch_add(1, Ordering::Relaxed);
    Ok(q)
}
