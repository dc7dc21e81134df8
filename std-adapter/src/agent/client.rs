//! A client of the Keylime agent API over mutual TLS, as verifiers use it: the agent's
//! registered certificate is the only trust anchor (pinned byte for byte; no host name is
//! checked, as in Keylime), and the client presents its own certificate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

/// Largest answer read from an agent (quotes with logs).
pub const MAX_ANSWER: usize = 96 * 1024 * 1024;

/// Accepts exactly one certificate: the agent's, as registered.
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the agent's certificate is not the one registered".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connections to one agent.
#[derive(Clone)]
pub struct AgentClient {
    tls: Option<tokio_rustls::TlsConnector>,
    addr: String,
    timeout: Duration,
    bearer: Option<String>,
    headers: Vec<(String, String)>,
}

impl AgentClient {
    /// Over mutual TLS: `agent_cert_pem` the agent's registered certificate, and the client's
    /// certificate chain and key (PEM).
    pub fn new(
        addr: &str,
        agent_cert_pem: &str,
        client_cert_pem: &str,
        client_key_pem: &str,
        timeout: Duration,
    ) -> Result<AgentClient> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der = CertificateDer::from_pem_slice(agent_cert_pem.as_bytes())
            .map_err(|e| anyhow!("agent certificate: {e}"))?
            .as_ref()
            .to_vec();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(client_cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow!("client certificate: {e}"))?;
        let key = PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes())
            .map_err(|e| anyhow!("client key: {e}"))?;
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { der, provider }))
            .with_client_auth_cert(chain, key)
            .map_err(|e| anyhow!("client certificate and key: {e}"))?;
        Ok(AgentClient {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            addr: addr.to_string(),
            timeout,
            bearer: None,
            headers: Vec::new(),
        })
    }

    /// A client of a trustpool server's management API: its certificate pinned, no client
    /// certificate, a bearer token.
    pub fn management(
        addr: &str,
        server_cert_pem: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<AgentClient> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der = CertificateDer::from_pem_slice(server_cert_pem.as_bytes())
            .map_err(|e| anyhow!("server certificate: {e}"))?
            .as_ref()
            .to_vec();
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned { der, provider }))
            .with_no_client_auth();
        Ok(AgentClient {
            tls: Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            addr: addr.to_string(),
            timeout,
            bearer: Some(token.to_string()),
            headers: Vec::new(),
        })
    }

    /// Send this header with every request (none when `value` is `None`).
    pub fn with_header(mut self, name: &str, value: Option<String>) -> AgentClient {
        if let Some(v) = value {
            self.headers.push((name.to_string(), v));
        }
        self
    }

    /// The same request with a raw body (e.g. a TOML policy).
    pub async fn request_raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Bytes,
    ) -> Result<(u16, Value)> {
        tokio::time::timeout(
            self.timeout,
            self.request_bytes(method, path_and_query, body, None),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "{}: {method} {path_and_query}: no answer in time",
                self.addr
            )
        })?
    }

    /// Plain HTTP (agents started with `insecure_http`, tests only).
    pub fn insecure(addr: &str, timeout: Duration) -> AgentClient {
        AgentClient {
            tls: None,
            addr: addr.to_string(),
            timeout,
            bearer: None,
            headers: Vec::new(),
        }
    }

    /// `GET path` (with its query): the HTTP code and the JSON body.
    pub async fn get(&self, path_and_query: &str) -> Result<(u16, Value)> {
        self.request("GET", path_and_query, None).await
    }

    pub async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        tokio::time::timeout(
            self.timeout,
            self.request_inner(method, path_and_query, body),
        )
        .await
        .map_err(|_| {
            anyhow!(
                "agent {}: {method} {path_and_query}: no answer within {} ms",
                self.addr,
                self.timeout.as_millis()
            )
        })?
    }

    async fn request_inner(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let data = body.map(|b| b.to_string()).unwrap_or_default();
        let ctype = body.map(|_| "application/json");
        self.request_bytes(method, path_and_query, Bytes::from(data), ctype)
            .await
    }

    async fn request_bytes(
        &self,
        method: &str,
        path_and_query: &str,
        data: Bytes,
        ctype: Option<&str>,
    ) -> Result<(u16, Value)> {
        let (code, bytes) = self.exchange(method, path_and_query, data, ctype).await?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow!(
                "agent {}: answer {code} is not JSON ({e}): {:?}",
                self.addr,
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )
        })?;
        Ok((code, v))
    }

    /// `GET` with the answer's bytes as they came (e.g. `/metrics`).
    pub async fn get_raw(&self, path_and_query: &str) -> Result<(u16, Bytes)> {
        tokio::time::timeout(
            self.timeout,
            self.exchange("GET", path_and_query, Bytes::new(), None),
        )
        .await
        .map_err(|_| anyhow!("{}: GET {path_and_query}: no answer in time", self.addr))?
    }

    async fn exchange(
        &self,
        method: &str,
        path_and_query: &str,
        data: Bytes,
        ctype: Option<&str>,
    ) -> Result<(u16, Bytes)> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .with_context(|| format!("connecting to agent {}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(hyper::header::HOST, &self.addr);
        if let Some(t) = ctype {
            req = req.header(hyper::header::CONTENT_TYPE, t);
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(t) = &self.bearer {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req
            .body(Full::new(data))
            .map_err(|e| anyhow!("building request: {e}"))?;
        let resp = match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from("agent").map_err(|e| anyhow!("{e}"))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS with agent {}", self.addr))?;
                send(TokioIo::new(tls), req).await?
            }
            None => send(TokioIo::new(tcp), req).await?,
        };
        let code = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| anyhow!("agent {}: reading the answer: {e}", self.addr))?
            .to_bytes();
        Ok((code, bytes))
    }
}

async fn send<I>(
    io: I,
    req: hyper::Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .context("HTTP handshake")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.context("HTTP request")
}
