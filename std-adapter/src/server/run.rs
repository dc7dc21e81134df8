//! The running server: HTTPS (PollHosts, management API, /metrics, /healthz), the registrar
//! listener, and the poller that leases due hosts and attests them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};

use super::check::{self, check_answer};
use super::config::ServerConfig;
use super::registrar::Registrar;
use super::store::{self, NewHost, NewVerdict, PollUpdate, Store};
use crate::agent::client::AgentClient;
use crate::oat::{self, TrustLevel};

/// PCRs asked of every agent: the firmware's 0–9 and 14; PCR 10 too when the group's
/// whitelist has IMA rules. PCR 16 is added by the agent.
pub const FIRMWARE_MASK: u32 = 0x0000_43FF;

/// Keys and certificates the server uses.
pub struct Identity {
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
    pub agent_ca_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
    pub api_token: String,
}

/// Counters for /metrics.
#[derive(Default)]
pub struct Metrics {
    pub polls: AtomicU64,
    pub polls_trusted: AtomicU64,
    pub polls_untrusted: AtomicU64,
    pub polls_unknown: AtomicU64,
    pub failures_timeout: AtomicU64,
    pub failures_connect: AtomicU64,
    pub failures_answer: AtomicU64,
    pub poll_hosts_requests: AtomicU64,
    /// Poll latency histogram buckets (ms): ≤10, ≤50, ≤100, ≤500, ≤1000, ≤5000, +Inf.
    pub latency: [AtomicU64; 7],
    pub latency_sum_ms: AtomicU64,
}

const BUCKETS_MS: [u64; 6] = [10, 50, 100, 500, 1000, 5000];

/// Everything the server's tasks share.
pub struct Server {
    pub cfg: ServerConfig,
    pub store: Store,
    pub id: Identity,
    pub replica: String,
    pub metrics: Metrics,
    /// Signs attestation results (EAR tokens).
    pub ear: super::ear::EarSigner,
    /// Seals data keys; `None`: the key service is off.
    pub master: Option<super::keys::MasterKey>,
    /// Pending key-release challenges: (host, key) → (nonce, when).
    challenges: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Agent API version per uuid, once negotiated down from 2.6.
    versions: Mutex<HashMap<String, String>>,
}

/// Make or load the server's identity in its state directory.
pub fn identity(cfg: &ServerConfig) -> Result<Identity> {
    let dir = &cfg.state_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()));
    let write = |name: &str, data: &str| {
        crate::agent::state::write_private(&dir.join(name), data.as_bytes())
    };
    let (tls_cert_pem, tls_key_pem) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (read(c)?, read(k)?),
        (None, None) => {
            let (c, k) = (dir.join("server-cert.pem"), dir.join("server-key.pem"));
            if c.is_file() && k.is_file() {
                (read(&c)?, read(&k)?)
            } else {
                let key = rcgen::KeyPair::generate()?;
                let mut p = rcgen::CertificateParams::new(vec!["localhost".to_string()])?;
                p.subject_alt_names
                    .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
                        127, 0, 0, 1,
                    ])));
                p.distinguished_name
                    .push(rcgen::DnType::CommonName, "trustpool server");
                let cert = p.self_signed(&key)?;
                write("server-cert.pem", &cert.pem())?;
                write("server-key.pem", &key.serialize_pem())?;
                (cert.pem(), key.serialize_pem())
            }
        }
        _ => return Err(anyhow!("tls_cert and tls_key must be given together")),
    };
    let (agent_ca_pem, client_cert_pem, client_key_pem) =
        match (&cfg.agent_ca, &cfg.agent_client_cert, &cfg.agent_client_key) {
            (Some(a), Some(c), Some(k)) => (read(a)?, read(c)?, read(k)?),
            (None, None, None) => {
                let (a, c, k) = (
                    dir.join("agent-ca.pem"),
                    dir.join("agent-client.pem"),
                    dir.join("agent-client-key.pem"),
                );
                if a.is_file() && c.is_file() && k.is_file() {
                    (read(&a)?, read(&c)?, read(&k)?)
                } else {
                    let ca_key = rcgen::KeyPair::generate()?;
                    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new())?;
                    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                    ca.distinguished_name
                        .push(rcgen::DnType::CommonName, "trustpool agent CA");
                    let ca_cert = ca.self_signed(&ca_key)?;
                    let issuer = rcgen::Issuer::new(ca, ca_key);
                    let key = rcgen::KeyPair::generate()?;
                    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
                    p.distinguished_name
                        .push(rcgen::DnType::CommonName, "trustpool server (agent client)");
                    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
                    let cert = p.signed_by(&key, &issuer)?;
                    write("agent-ca.pem", &ca_cert.pem())?;
                    write("agent-client.pem", &cert.pem())?;
                    write("agent-client-key.pem", &key.serialize_pem())?;
                    (ca_cert.pem(), cert.pem(), key.serialize_pem())
                }
            }
            _ => {
                return Err(anyhow!(
                    "agent_ca, agent_client_cert and agent_client_key must be given together"
                ))
            }
        };
    let api_token = match &cfg.api_token {
        Some(t) => t.clone(),
        None => {
            let p = dir.join("api-token");
            if p.is_file() {
                read(&p)?.trim().to_string()
            } else {
                let t = check::random_alnum(40)?;
                write("api-token", &format!("{t}\n"))?;
                t
            }
        }
    };
    Ok(Identity {
        tls_cert_pem,
        tls_key_pem,
        agent_ca_pem,
        client_cert_pem,
        client_key_pem,
        api_token,
    })
}

/// Run the server until the process stops.
pub fn run(cfg: ServerConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(cfg))
}

pub async fn serve(cfg: ServerConfig) -> Result<()> {
    let id = identity(&cfg)?;
    let store = Store::open(&cfg.database_url())
        .await
        .with_context(|| format!("opening database {}", cfg.database_url()))?;
    let replica = cfg.replica.clone().unwrap_or_else(|| {
        format!(
            "{}-{}",
            std::fs::read_to_string("/etc/hostname")
                .unwrap_or_default()
                .trim(),
            std::process::id()
        )
    });
    let mut roots = Vec::new();
    for p in &cfg.ek_ca_roots {
        let pem = std::fs::read(p).with_context(|| format!("reading EK CA {}", p.display()))?;
        for c in CertificateDer::pem_slice_iter(&pem) {
            roots.push(
                c.map_err(|e| anyhow!("EK CA {}: {e}", p.display()))?
                    .as_ref()
                    .to_vec(),
            );
        }
    }
    let ear = super::ear::EarSigner::load_or_create(&cfg.state_dir)?;
    let master = match super::keys::MasterKey::load(cfg.master_key_file.as_deref()) {
        Ok(Some(m)) => Some(m),
        Ok(None) => {
            tracing::error!(
                "key service off: no master key (set master_key_file or {}); attestation and PollHosts run",
                super::keys::MASTER_KEY_ENV
            );
            None
        }
        Err(e) => {
            tracing::error!(
                "key service off: master key unusable: {e:#}; attestation and PollHosts run"
            );
            None
        }
    };
    let server = Arc::new(Server {
        ear,
        master,
        challenges: Mutex::new(HashMap::new()),
        store: store.clone(),
        id,
        replica,
        metrics: Metrics::default(),
        versions: Mutex::new(HashMap::new()),
        cfg: cfg.clone(),
    });
    let tls = if cfg.insecure_http {
        None
    } else {
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_tls(
            &server.id.tls_cert_pem,
            &server.id.tls_key_pem,
        )?)))
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("listening on {}", cfg.listen))?;
    tracing::info!(address = %cfg.listen, database = store.backend(), replica = %server.replica, "server listening");
    if !cfg.registrar_listen.trim().is_empty() {
        let reg = Registrar::new(store.clone(), cfg.accept_unsigned_eks, roots);
        let l = tokio::net::TcpListener::bind(&cfg.registrar_listen)
            .await
            .with_context(|| format!("registrar listening on {}", cfg.registrar_listen))?;
        tracing::info!(address = %cfg.registrar_listen, "registrar listening");
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let reg = reg.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let reg = reg.clone();
                        async move {
                            let method = req.method().as_str().to_string();
                            let path = req.uri().path().to_string();
                            let (code, v) = match read_body(req, 64 * 1024).await {
                                Ok(b) => reg.handle(&method, &path, &b).await,
                                Err(e) => (413, json!({"code":413,"status":e,"results":{}})),
                            };
                            Ok::<_, Infallible>(json_response(code, &v))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    }
    let poller = server.clone();
    tokio::spawn(async move { poll_loop(poller).await });
    let slots = Arc::new(tokio::sync::Semaphore::new(1024));
    loop {
        let (stream, _) = listener.accept().await?;
        // Answers go out as several TLS records: without this, Nagle holds the last one for
        // the client's delayed ACK (40 ms).
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let server = server.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                Some(acc) => {
                    if let Ok(Ok(s)) =
                        tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await
                    {
                        // A client certificate, when one was presented (agents fetching keys).
                        let peer = s
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.as_ref().to_vec());
                        serve_connection(server, s, peer).await;
                    }
                }
                None => serve_connection(server, stream, None).await,
            }
        });
    }
}

fn server_tls(cert_pem: &str, key_pem: &str) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("server certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow!("server key: {e}"))?;
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| anyhow!("{e}"))?
        .with_client_cert_verifier(Arc::new(super::keys::RegisteredAgentCert::new()))
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("server certificate and key: {e}"))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(c)
}

async fn serve_connection<S>(server: Arc<Server>, io: S, peer: Option<Vec<u8>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = Arc::new(peer);
    let svc = hyper::service::service_fn(move |req| {
        let server = server.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(&server, req, peer.as_deref()).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, String> {
    Limited::new(req.into_body(), max)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| format!("request body unreadable or over {max} bytes: {e}"))
}

fn json_response(code: u16, v: &Value) -> Response<Full<Bytes>> {
    bytes_response(code, "application/json", Bytes::from(v.to_string()))
}

fn bytes_response(code: u16, ctype: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

fn err(code: u16, msg: impl Into<String>) -> Response<Full<Bytes>> {
    json_response(code, &json!({"error": msg.into()}))
}

async fn handle(
    server: &Server,
    req: Request<Incoming>,
    peer: Option<&[u8]>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    if oat::is_poll_hosts_path(&path) {
        if method != "POST" {
            return err(405, "PollHosts takes POST");
        }
        server
            .metrics
            .poll_hosts_requests
            .fetch_add(1, Ordering::Relaxed);
        let blob = req
            .headers()
            .get("x-auth-blob")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let ovirt = path
            .trim_start_matches('/')
            .starts_with("AttestationService");
        let open = server.cfg.auth_blobs.is_empty()
            || (ovirt && server.cfg.ovirt_path_without_auth && blob.is_none());
        let accepted = blob
            .as_ref()
            .is_some_and(|b| server.cfg.auth_blobs.iter().any(|a| a == b));
        if !open && !accepted {
            return err(401, "x-auth-blob missing or not accepted");
        }
        let body = match read_body(req, oat::MAX_BODY).await {
            Ok(b) => b,
            Err(e) => return err(413, e),
        };
        return poll_hosts(server, &body).await;
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => {
            return match server.store.schema_version().await {
                Ok(_) => bytes_response(200, "text/plain", Bytes::from_static(b"ok\n")),
                Err(e) => {
                    bytes_response(503, "text/plain", Bytes::from(format!("database: {e}\n")))
                }
            }
        }
        ("GET", "/metrics") => return metrics(server).await,
        // Relying parties: the JWKS and signed results need no token (they are signed).
        ("GET", "/v1/jwks" | "/.well-known/jwks.json") => {
            return json_response(200, &server.ear.jwks())
        }
        ("POST", p)
            if p.starts_with("/v1/keys/")
                && (p.ends_with("/challenge") || p.ends_with("/release")) =>
        {
            let rest = p.trim_start_matches("/v1/keys/");
            let (name, action) = rest.rsplit_once('/').unwrap_or((rest, ""));
            let name = crate::agent::api::decode_segment(name);
            let action = action.to_string();
            let body = match read_body(req, 64 * 1024).await {
                Ok(b) => b,
                Err(e) => return err(413, e),
            };
            return match key_request(server, &name, &action, peer, &body).await {
                Ok(v) => json_response(200, &v),
                Err((code, msg)) => err(code, msg),
            };
        }
        ("GET", p) if p.starts_with("/v1/hosts/") && p.ends_with("/result") => {
            let name = crate::agent::api::decode_segment(
                p.trim_start_matches("/v1/hosts/")
                    .trim_end_matches("/result"),
            );
            let nonce = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("nonce=")))
                .map(crate::agent::api::decode_segment);
            return result_token(server, &name, nonce).await;
        }
        _ => {}
    }
    // The management API: bearer token.
    let authorized = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| {
            use subtle::ConstantTimeEq;
            bool::from(t.as_bytes().ct_eq(server.id.api_token.as_bytes()))
        });
    if !path.starts_with("/v1/") {
        return err(404, format!("no such path: {path}"));
    }
    if !authorized {
        return err(
            401,
            "management API: Authorization: Bearer <api token> required",
        );
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let body = match read_body(req, 4 << 20).await {
        Ok(b) => b,
        Err(e) => return err(413, e),
    };
    match management(server, &method, &path, &query, &body).await {
        Ok((code, v)) => json_response(code, &v),
        Err((code, msg)) => err(code, msg),
    }
}

async fn poll_hosts(server: &Server, body: &[u8]) -> Response<Full<Bytes>> {
    let names = oat::parse_request(body).unwrap_or_default();
    let now_ms = store::now_ms();
    let verdicts = match server.store.latest_verdicts(&names).await {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("PollHosts: database: {e}");
            HashMap::new()
        }
    };
    let lifetime_ms =
        i64::try_from(server.cfg.verdict_lifetime_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let out = oat::answer(
        body,
        |h| {
            verdicts.get(h).map(|v| {
                let t = u64::try_from(v.time / 1000).unwrap_or(0);
                if now_ms.saturating_sub(v.time) > lifetime_ms {
                    (TrustLevel::Unknown, t)
                } else {
                    (v.trust, t)
                }
            })
        },
        now,
    );
    bytes_response(200, "application/json", Bytes::from(out))
}

/// `POST /v1/keys/NAME/challenge` and `/release`, from an agent over mutual TLS (its
/// registered certificate). Every release and refusal is audited.
async fn key_request(
    server: &Server,
    name: &str,
    action: &str,
    peer: Option<&[u8]>,
    body: &[u8],
) -> Result<Value, (u16, String)> {
    let Some(master) = &server.master else {
        return Err((
            503,
            format!(
                "key service off: the server has no master key (master_key_file or {})",
                super::keys::MASTER_KEY_ENV
            ),
        ));
    };
    let peer = peer.ok_or((
        401,
        "a key request needs the agent's registered client certificate (mutual TLS)".to_string(),
    ))?;
    let hosts = server.store.list_hosts(None).await.map_err(db)?;
    let host = hosts
        .into_iter()
        .find(|h| {
            h.mtls_cert.as_deref().is_some_and(|pem| {
                CertificateDer::from_pem_slice(pem.as_bytes()).is_ok_and(|c| c.as_ref() == peer)
            })
        })
        .ok_or((
            403,
            "the client certificate is not a registered agent's".to_string(),
        ))?;
    let host_name = host.name.clone();
    let refuse = |code: u16, reason: String| {
        let host_name = host_name.clone();
        async move {
            let _ = server
                .store
                .audit(
                    store::AuditKind::KeyRefused,
                    Some(&host_name),
                    &json!({"key": name, "reason": reason}),
                )
                .await;
            Err::<Value, _>((code, reason))
        }
    };
    let key = match server.store.get_key(name).await.map_err(db)? {
        Some(k) => k,
        None => return refuse(404, format!("no such key: {name}")).await,
    };
    if key.revoked {
        return refuse(403, format!("key {name} is revoked")).await;
    }
    if !key.groups.contains(&host.group) {
        return refuse(
            403,
            format!(
                "host group {} may not receive key {name} (allowed: {})",
                host.group,
                key.groups.join(", ")
            ),
        )
        .await;
    }
    let latest = server
        .store
        .latest_verdicts(std::slice::from_ref(&host.name))
        .await
        .map_err(db)?
        .remove(&host.name);
    let now = store::now_ms();
    match &latest {
        None => return refuse(403, format!("host {} has no verdict yet", host.name)).await,
        Some(v) if v.trust != TrustLevel::Trusted => {
            return refuse(
                403,
                format!(
                    "host {}'s latest verdict is {}",
                    host.name,
                    store::trust_str(v.trust)
                ),
            )
            .await
        }
        Some(v) if now.saturating_sub(v.time) > key.max_age_secs.saturating_mul(1000) => {
            return refuse(
                403,
                format!(
                    "host {}'s trusted verdict is {} s old, more than the key's {} s",
                    host.name,
                    now.saturating_sub(v.time) / 1000,
                    key.max_age_secs
                ),
            )
            .await
        }
        Some(_) => {}
    }
    let slot = (host.name.clone(), name.to_string());
    match action {
        "challenge" => {
            let nonce = check::fresh_nonce().map_err(|e| (500, format!("{e}")))?;
            if let Ok(mut c) = server.challenges.lock() {
                c.retain(|_, (_, t)| t.elapsed() < Duration::from_secs(120));
                c.insert(slot, (nonce.clone(), Instant::now()));
            }
            Ok(json!({"nonce": nonce}))
        }
        "release" => {
            let r = match super::wire::parse_release(body) {
                Ok(x) => x,
                Err(e) => return refuse(e.code, e.status).await,
            };
            let expected = server
                .challenges
                .lock()
                .ok()
                .and_then(|mut c| c.remove(&slot));
            match expected {
                Some((n, t)) if n == r.nonce && t.elapsed() < Duration::from_secs(120) => {}
                _ => {
                    return refuse(
                        403,
                        "no matching challenge: ask /challenge first and certify with its nonce"
                            .into(),
                    )
                    .await
                }
            }
            let Some(aik) = &host.aik_tpm else {
                return refuse(403, format!("host {} has no enrolled AK", host.name)).await;
            };
            let data = master
                .open(name, &key.sealed)
                .map_err(|e| (500, format!("{e:#}")))?;
            let wrapped = match super::keys::check_and_wrap(
                aik,
                &r.nonce,
                &r.key_public,
                &r.attest,
                &r.signature,
                &data,
            ) {
                Ok(w) => w,
                Err((c, m)) => return refuse(c, m).await,
            };
            let _ = server
                .store
                .audit(
                    store::AuditKind::KeyRelease,
                    Some(&host.name),
                    &json!({"key": name, "verdict_time": latest.map(|v| v.time)}),
                )
                .await;
            use base64::Engine;
            Ok(
                json!({"key": name, "wrapped_key": base64::engine::general_purpose::STANDARD.encode(wrapped)}),
            )
        }
        other => Err((404, format!("no such key action: {other}"))),
    }
}

/// The latest verdict of `name` as a signed EAR token: `{"host": …, "token": "<JWS>"}`.
async fn result_token(server: &Server, name: &str, nonce: Option<String>) -> Response<Full<Bytes>> {
    if nonce.as_ref().is_some_and(|n| n.is_empty() || n.len() > 88) {
        return err(400, "nonce must be 1 to 88 characters");
    }
    let host = match server.store.get_host(name).await {
        Ok(Some(h)) => h,
        Ok(None) => return err(404, format!("no such host: {name}")),
        Err(e) => return err(500, format!("database: {e}")),
    };
    let latest = match server.store.latest_verdicts(&[name.to_string()]).await {
        Ok(mut v) => v.remove(name),
        Err(e) => return err(500, format!("database: {e}")),
    };
    let now_ms = store::now_ms();
    let input = match latest {
        Some(v) => super::ear::EarInput {
            host: name.to_string(),
            trust: v.trust,
            findings: v.findings,
            whitelist_digest: v.whitelist_digest,
            policy_version: v.policy_version,
            verdict_time: v.time,
            lifetime_secs: server.cfg.verdict_lifetime_secs,
            nonce,
            ak_bound: host.activated,
        },
        None => super::ear::EarInput {
            host: name.to_string(),
            trust: TrustLevel::Unknown,
            findings: json!([]),
            whitelist_digest: String::new(),
            policy_version: None,
            verdict_time: now_ms,
            lifetime_secs: server.cfg.verdict_lifetime_secs,
            nonce,
            ak_bound: host.activated,
        },
    };
    let token = server.ear.issue(&input, now_ms / 1000);
    json_response(200, &json!({"host": name, "token": token}))
}

async fn metrics(server: &Server) -> Response<Full<Bytes>> {
    use std::fmt::Write;
    let m = &server.metrics;
    let mut s = String::new();
    let hosts = server.store.list_hosts(None).await.unwrap_or_default();
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let latest = server
        .store
        .latest_verdicts(&names)
        .await
        .unwrap_or_default();
    let mut levels: HashMap<&str, u64> = HashMap::new();
    for n in &names {
        let l = latest
            .get(n)
            .map_or("unknown", |v| store::trust_str(v.trust));
        *levels.entry(l).or_default() += 1;
    }
    let _ = writeln!(s, "# HELP trustpool_hosts Hosts by the trust level of their latest verdict.\n# TYPE trustpool_hosts gauge");
    for l in ["trusted", "untrusted", "unknown", "timeout"] {
        let _ = writeln!(
            s,
            "trustpool_hosts{{trust_lvl=\"{l}\"}} {}",
            levels.get(l).copied().unwrap_or(0)
        );
    }
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let _ = writeln!(
        s,
        "# HELP trustpool_polls_total Polls by result.\n# TYPE trustpool_polls_total counter"
    );
    for (l, v) in [
        ("trusted", &m.polls_trusted),
        ("untrusted", &m.polls_untrusted),
        ("unknown", &m.polls_unknown),
    ] {
        let _ = writeln!(s, "trustpool_polls_total{{result=\"{l}\"}} {}", g(v));
    }
    let _ = writeln!(s, "# HELP trustpool_poll_failures_total Polls without a usable answer, by kind.\n# TYPE trustpool_poll_failures_total counter");
    for (k, v) in [
        ("timeout", &m.failures_timeout),
        ("connect", &m.failures_connect),
        ("answer", &m.failures_answer),
    ] {
        let _ = writeln!(s, "trustpool_poll_failures_total{{kind=\"{k}\"}} {}", g(v));
    }
    let _ = writeln!(
        s,
        "# HELP trustpool_poll_seconds Time of one poll.\n# TYPE trustpool_poll_seconds histogram"
    );
    let mut cum = 0;
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        cum += g(&m.latency[i]);
        let _ = writeln!(
            s,
            "trustpool_poll_seconds_bucket{{le=\"{}\"}} {cum}",
            *b as f64 / 1000.0
        );
    }
    cum += g(&m.latency[6]);
    let _ = writeln!(s, "trustpool_poll_seconds_bucket{{le=\"+Inf\"}} {cum}");
    let _ = writeln!(
        s,
        "trustpool_poll_seconds_sum {}",
        g(&m.latency_sum_ms) as f64 / 1000.0
    );
    let _ = writeln!(s, "trustpool_poll_seconds_count {}", g(&m.polls));
    let _ = writeln!(
        s,
        "# TYPE trustpool_pollhosts_requests_total counter\ntrustpool_pollhosts_requests_total {}",
        g(&m.poll_hosts_requests)
    );
    bytes_response(200, "text/plain; version=0.0.4", Bytes::from(s))
}

type ApiResult = Result<(u16, Value), (u16, String)>;

fn db<E: std::fmt::Display>(e: E) -> (u16, String) {
    let msg = e.to_string();
    let code = if msg.contains("no such") || msg.contains("NoSuch") {
        404
    } else if msg.contains("exists") {
        409
    } else {
        400
    };
    (code, msg)
}

async fn management(
    server: &Server,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> ApiResult {
    let decoded: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(crate::agent::api::decode_segment)
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let json_body = || -> Result<Value, (u16, String)> {
        serde_json::from_slice(body).map_err(|e| (400, format!("body is not JSON: {e}")))
    };
    match (method, parts.as_slice()) {
        ("GET", ["v1", "hosts"]) => {
            let hosts = server.store.list_hosts(None).await.map_err(db)?;
            Ok((
                200,
                json!({"hosts": hosts.iter().map(host_summary).collect::<Vec<_>>()}),
            ))
        }
        ("POST", ["v1", "hosts"]) => {
            let v = json_body()?;
            let s = |k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or((400, format!("missing string field '{k}'")))
            };
            let h = NewHost {
                name: s("name")?,
                group: v
                    .get("group")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
                ip: s("ip")?,
                port: v
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or((400, "port must be a number 0-65535".to_string()))?,
                uuid: s("uuid")?,
            };
            if server
                .store
                .list_groups()
                .await
                .map_err(db)?
                .iter()
                .all(|g| g.name != h.group)
            {
                server.store.add_group(&h.group).await.map_err(db)?;
            }
            server.store.add_host(&h).await.map_err(db)?;
            Ok((201, json!({"added": h.name})))
        }
        ("GET", ["v1", "hosts", name]) => {
            let h = server
                .store
                .get_host(name)
                .await
                .map_err(db)?
                .ok_or((404, format!("no such host: {name}")))?;
            let latest = server
                .store
                .latest_verdicts(&[name.to_string()])
                .await
                .map_err(db)?;
            Ok((
                200,
                json!({"host": host_summary(&h), "latest": latest.get(*name)}),
            ))
        }
        ("DELETE", ["v1", "hosts", name]) => {
            server.store.remove_host(name).await.map_err(db)?;
            Ok((200, json!({"removed": name})))
        }
        ("GET", ["v1", "hosts", name, "results"]) => {
            let n = query
                .split('&')
                .find_map(|p| p.strip_prefix("history="))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(1)
                .clamp(1, 1000);
            let h = server.store.history(name, n).await.map_err(db)?;
            Ok((200, json!({"host": name, "verdicts": h})))
        }
        ("PUT", ["v1", "groups", group, "policy"]) => {
            let text = std::str::from_utf8(body)
                .map_err(|_| (400, "policy must be UTF-8 TOML".to_string()))?;
            let policy = crate::policy::Policy::from_toml(text, "policy")
                .map_err(|e| (400, e.to_string()))?;
            let compiled = policy.compile(None).map_err(|e| (400, e.to_string()))?;
            let digest =
                hex::encode(ring::digest::digest(&ring::digest::SHA256, &compiled).as_ref());
            if server
                .store
                .list_groups()
                .await
                .map_err(db)?
                .iter()
                .all(|g| g.name != *group)
            {
                server.store.add_group(group).await.map_err(db)?;
            }
            let version = server
                .store
                .set_policy(group, text, &compiled, &digest)
                .await
                .map_err(db)?;
            Ok((
                200,
                json!({"group": group, "version": version, "whitelist": format!("sha256:{digest}")}),
            ))
        }
        ("GET", ["v1", "audit"]) => {
            let log = server
                .store
                .audit_log(&store::AuditFilter::default(), 1000)
                .await
                .map_err(db)?;
            Ok((200, json!({"audit": log})))
        }
        ("POST", ["v1", "keys"]) => {
            let master = server
                .master
                .as_ref()
                .ok_or((503, "key service off: no master key".to_string()))?;
            let v = json_body()?;
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or((400, "missing string field 'name'".to_string()))?;
            if name.is_empty() || name.len() > 128 || name.contains('/') {
                return Err((
                    400,
                    "key name must be 1 to 128 characters without '/'".into(),
                ));
            }
            let groups = key_groups(&v)?;
            let max_age_secs = v.get("max_age_secs").and_then(Value::as_i64).unwrap_or(300);
            let mut data = [0u8; 32];
            getrandom::fill(&mut data).map_err(|e| (500, format!("OS RNG: {e}")))?;
            let sealed = master
                .seal(name, &data)
                .map_err(|e| (500, format!("{e:#}")))?;
            server
                .store
                .create_key(&store::StoredKey {
                    name: name.to_string(),
                    sealed,
                    groups,
                    max_age_secs,
                    revoked: false,
                    created: store::now_ms(),
                })
                .await
                .map_err(db)?;
            Ok((201, json!({"created": name})))
        }
        ("GET", ["v1", "keys"]) => Ok((
            200,
            json!({"keys": server.store.list_keys().await.map_err(db)?}),
        )),
        ("PUT", ["v1", "keys", name, "policy"]) => {
            let v = json_body()?;
            let groups = key_groups(&v)?;
            let max_age_secs = v.get("max_age_secs").and_then(Value::as_i64).unwrap_or(300);
            server
                .store
                .set_key_policy(name, &groups, max_age_secs)
                .await
                .map_err(db)?;
            Ok((
                200,
                json!({"key": name, "groups": groups, "max_age_secs": max_age_secs}),
            ))
        }
        ("POST", ["v1", "keys", name, "revoke"]) => {
            server.store.revoke_key(name).await.map_err(db)?;
            Ok((200, json!({"revoked": name})))
        }
        ("GET", ["v1", "agent-ca"]) => Ok((200, json!({"pem": server.id.agent_ca_pem}))),
        _ => Err((404, format!("no such management path: {method} {path}"))),
    }
}

fn key_groups(v: &Value) -> Result<Vec<String>, (u16, String)> {
    v.get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .ok_or((400, "missing array field 'groups'".to_string()))
}

fn host_summary(h: &store::Host) -> Value {
    json!({"name": h.name, "group": h.group, "ip": h.ip, "port": h.port, "uuid": h.uuid, "state": h.state, "activated": h.activated})
}

/// Lease due hosts and poll them, forever.
async fn poll_loop(server: Arc<Server>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(server.cfg.concurrency.max(1)));
    let lease_for = Duration::from_secs(server.cfg.lease_secs.max(1));
    loop {
        // Lease as soon as a slot is free; wait only when nothing more is due.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let want = slots.available_permits().saturating_add(1);
        let batch = match server
            .store
            .lease_due(&server.replica, store::now_ms(), want, lease_for)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("leasing due hosts: {e}");
                Vec::new()
            }
        };
        let short = batch.len() < want;
        let mut first = Some(first);
        for h in batch {
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().acquire_owned().await {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let server = server.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = poll_one(&server, h).await {
                    tracing::error!("poll: {e:#}");
                }
            });
        }
        drop(first);
        if short {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A jittered delay: `base` ± 10 %.
fn jitter(base_ms: i64) -> i64 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let r = i64::from(u16::from_le_bytes(b)) - 32768; // −32768..32767
    base_ms + base_ms / 10 * r / 32768
}

async fn poll_one(server: &Server, h: store::HostToPoll) -> Result<()> {
    let host = h.host;
    let now = store::now_ms();
    let interval =
        i64::try_from(server.cfg.poll_interval_secs.saturating_mul(1000)).unwrap_or(30_000);
    let (Some(aik), Some(cert), true) = (&host.aik_tpm, &host.mtls_cert, host.activated) else {
        // Not enrolled yet: look again soon.
        server
            .store
            .release(&server.replica, &host.name, now + interval.min(2_000))
            .await?;
        return Ok(());
    };
    let policy = server.store.current_policy(&host.group).await?;
    let started = Instant::now();
    let nonce = check::fresh_nonce()?;
    let mut ima_next = None;
    let mut boottime = None;
    let (trust, findings, digest, version, counters, ok) = match &policy {
        None => (
            TrustLevel::Unknown,
            json!([{"rule": "no-policy", "message": format!("group {} has no whitelist", host.group)}]),
            String::new(),
            None,
            None,
            true,
        ),
        Some(p) => {
            let ima = trustpool_core::whitelist::Whitelist::parse(&p.compiled)
                .map(|wl| wl.section(0x6004).is_some() || wl.section(0x600b).is_some())
                .unwrap_or(false);
            let mask = FIRMWARE_MASK | if ima { 1 << 10 } else { 0 };
            // IMA incrementally: from the entry after the last one a quote covered.
            let first = if ima { h.poll.ima.next_index } else { 0 };
            match fetch_quote(server, &host, cert, &nonce, mask, first).await {
                Ok(answer) => {
                    let o = check_answer(
                        &answer,
                        &nonce,
                        aik,
                        &p.compiled,
                        h.poll.counters,
                        h.poll.boottime,
                        &h.poll.ima,
                    );
                    ima_next = o.ima.clone();
                    boottime = Some(o.boottime);
                    if o.rebooted {
                        tracing::info!(host = %host.name, "reboot detected (TPM reset or new boot time)");
                    }
                    (
                        o.level,
                        serde_json::to_value(&o.findings).unwrap_or(Value::Null),
                        o.whitelist.trim_start_matches("sha256:").to_string(),
                        Some(p.version),
                        o.counters,
                        true,
                    )
                }
                Err((kind, msg)) => {
                    match kind {
                        "timeout" => server
                            .metrics
                            .failures_timeout
                            .fetch_add(1, Ordering::Relaxed),
                        "connect" => server
                            .metrics
                            .failures_connect
                            .fetch_add(1, Ordering::Relaxed),
                        _ => server
                            .metrics
                            .failures_answer
                            .fetch_add(1, Ordering::Relaxed),
                    };
                    let level = if kind == "answer" {
                        TrustLevel::Untrusted
                    } else {
                        TrustLevel::Timeout
                    };
                    (
                        level,
                        json!([{"rule": format!("agent-{kind}"), "message": msg}]),
                        p.digest.clone(),
                        Some(p.version),
                        h.poll.counters,
                        false,
                    )
                }
            }
        }
    };
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let m = &server.metrics;
    m.polls.fetch_add(1, Ordering::Relaxed);
    m.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
    let bucket = BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(6);
    if let Some(b) = m.latency.get(bucket) {
        b.fetch_add(1, Ordering::Relaxed);
    }
    match trust {
        TrustLevel::Trusted => m.polls_trusted.fetch_add(1, Ordering::Relaxed),
        TrustLevel::Untrusted => m.polls_untrusted.fetch_add(1, Ordering::Relaxed),
        _ => m.polls_unknown.fetch_add(1, Ordering::Relaxed),
    };
    let failures = if ok {
        0
    } else {
        h.poll.failures.saturating_add(1)
    };
    let next = if ok {
        jitter(interval)
    } else {
        let max =
            i64::try_from(server.cfg.max_backoff_secs.saturating_mul(1000)).unwrap_or(300_000);
        jitter((interval.min(5_000) << failures.min(10)).min(max))
    };
    server
        .store
        .record_verdict(
            &NewVerdict {
                host: host.name.clone(),
                time: store::now_ms(),
                trust,
                findings,
                whitelist_digest: digest,
                policy_version: version,
                nonce: hex::encode(nonce.as_bytes()),
                counters,
            },
            &PollUpdate {
                next_due: store::now_ms() + next.max(100),
                failures,
                boot_id: None,
                boottime,
                ima: ima_next,
                owner: Some(server.replica.clone()),
            },
        )
        .await?;
    Ok(())
}

/// The agent's integrity quote answer, or (failure kind, message).
async fn fetch_quote(
    server: &Server,
    host: &store::Host,
    cert: &str,
    nonce: &str,
    mask: u32,
    ima_first: u64,
) -> Result<Value, (&'static str, String)> {
    let addr = format!("{}:{}", host.ip, host.port);
    let client = AgentClient::new(
        &addr,
        cert,
        &server.id.client_cert_pem,
        &server.id.client_key_pem,
        Duration::from_millis(server.cfg.agent_timeout_ms.max(1)),
    )
    .map_err(|e| ("answer", format!("agent certificate: {e}")))?;
    let version = server
        .versions
        .lock()
        .ok()
        .and_then(|v| v.get(&host.uuid).cloned())
        .unwrap_or_else(|| crate::agent::api::CURRENT_VERSION.to_string());
    let path = |v: &str| {
        format!("/v{v}/quotes/integrity?nonce={nonce}&mask={mask:#x}&partial=0&ima_ml_entry={ima_first}")
    };
    let classify = |e: anyhow::Error| {
        let msg = format!("{e:#}");
        let kind = if msg.contains("no answer within") {
            "timeout"
        } else if msg.contains("connecting") {
            "connect"
        } else {
            "answer"
        };
        (kind, msg)
    };
    let (mut code, mut v) = client.get(&path(&version)).await.map_err(classify)?;
    if code == 400
        && v.get("status")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("API version not supported"))
    {
        let (_, vv) = client.get("/version").await.map_err(classify)?;
        let picked = vv
            .pointer("/results/supported_versions")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(crate::agent::api::ApiVersion::parse)
                    .max()
            })
            .ok_or(("answer", "agent offers no API version 2.1-2.6".to_string()))?
            .to_string();
        if let Ok(mut m) = server.versions.lock() {
            m.insert(host.uuid.clone(), picked.clone());
        }
        (code, v) = client.get(&path(&picked)).await.map_err(classify)?;
    }
    if code != 200 {
        return Err((
            "answer",
            format!(
                "agent answered {code}: {}",
                v.get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("(no status)")
            ),
        ));
    }
    Ok(v)
}
