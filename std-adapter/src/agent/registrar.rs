//! Enrollment with a Keylime registrar (or trustpool's): `POST /v{X.Y}/agents/{uuid}` with the
//! EK, the AK, the EK certificate and the agent's TLS certificate; the answer is a
//! MakeCredential blob that only this TPM can open (TPM2_ActivateCredential with the EK);
//! `PUT /v{X.Y}/agents/{uuid}` proves it with `auth_tag = HMAC-SHA384(base64(secret), uuid)`.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::api;

/// Longest time for one registrar request.
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest registrar answer read.
pub const MAX_ANSWER: usize = 1024 * 1024;

/// What the agent registers.
#[derive(Debug, Clone)]
pub struct Registration {
    pub uuid: String,
    /// `TPM2B_PUBLIC` of the EK and of the AK.
    pub ek_tpm: Vec<u8>,
    pub aik_tpm: Vec<u8>,
    /// EK certificate, DER.
    pub ekcert: Option<Vec<u8>>,
    pub ip: String,
    pub port: u16,
    /// The agent's TLS certificate, PEM.
    pub mtls_cert: String,
}

impl Registration {
    /// The JSON body of the `POST`.
    pub fn body(&self) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        json!({
            "ek_tpm": b64.encode(&self.ek_tpm),
            "aik_tpm": b64.encode(&self.aik_tpm),
            "ekcert": self.ekcert.as_ref().map(|c| b64.encode(c)),
            "ip": self.ip,
            "port": self.port,
            "mtls_cert": self.mtls_cert,
        })
    }
}

/// A registrar at `http://host:port`.
pub struct Registrar {
    host: String,
    port: u16,
    authority: String,
}

impl Registrar {
    pub fn new(url: &str) -> Result<Registrar> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| anyhow!("registrar URL '{url}': {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("registrar URL '{url}': scheme {other} not supported (use http://, the registrar's registration port, 8890 by default)"),
            None => bail!("registrar URL '{url}' has no scheme (e.g. http://127.0.0.1:8890)"),
        }
        let host = uri
            .host()
            .ok_or_else(|| anyhow!("registrar URL '{url}' has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(8890);
        let authority = uri
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_else(|| format!("{host}:{port}"));
        Ok(Registrar {
            host,
            port,
            authority,
        })
    }

    /// One request; the answer's HTTP code and JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        tokio::time::timeout(TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| {
                anyhow!(
                    "registrar {}: {method} {path} timed out after {}s",
                    self.authority,
                    TIMEOUT.as_secs()
                )
            })?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value)> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| format!("connecting to registrar {}", self.authority))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the registrar")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let data = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(data)))
            .map_err(|e| anyhow!("building request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .with_context(|| format!("registrar {}: {method} {path}", self.authority))?;
        let code = resp.status().as_u16();
        let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| {
                anyhow!(
                    "registrar {}: {method} {path}: reading the answer: {e}",
                    self.authority
                )
            })?
            .to_bytes();
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow!(
                "registrar {}: {method} {path} answered {code} with a body that is not JSON ({e}): {:?}",
                self.authority,
                String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
            )
        })?;
        Ok((code, v))
    }

    /// The newest API version both sides speak (`GET /version`); 2.1 when the registrar does
    /// not answer that path.
    pub async fn negotiate(&self) -> Result<api::ApiVersion> {
        let (code, v) = self.request("GET", "/version", None).await?;
        if code == 404 {
            return Ok(api::ApiVersion { minor: 1 });
        }
        if code != 200 {
            bail!(
                "registrar {}: GET /version answered {code}: {}",
                self.authority,
                status(&v)
            );
        }
        api::pick_version(&v).ok_or_else(|| {
            anyhow!(
                "registrar {}: no API version in common (it offers {}, this agent speaks {})",
                self.authority,
                v.pointer("/results/supported_versions")
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "none".into()),
                api::SUPPORTED_VERSIONS.join(", ")
            )
        })
    }
}

fn status(v: &Value) -> String {
    v.get("status")
        .and_then(Value::as_str)
        .unwrap_or("(no status)")
        .chars()
        .take(300)
        .collect()
}

/// `auth_tag` of the activation: hex(HMAC-SHA384(key = base64(secret), message = uuid)).
pub fn auth_tag(secret: &[u8], uuid: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode(secret);
    super::serve::hmac_sha384_hex(key.as_bytes(), uuid.as_bytes())
}

/// Register, then activate with `activate` (which runs TPM2_ActivateCredential on the blob
/// and returns the secret). Returns the API version used.
pub async fn enroll(
    registrar: &Registrar,
    reg: &Registration,
    activate: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
) -> Result<api::ApiVersion> {
    let version = registrar.negotiate().await?;
    let path = format!("/v{version}/agents/{}", reg.uuid);
    let (code, v) = registrar.request("POST", &path, Some(&reg.body())).await?;
    if code != 200 {
        bail!(
            "registrar refused the registration (POST {path}: {code} {})",
            status(&v)
        );
    }
    let blob = api::blob_of(&v).map_err(|e| anyhow!(e))?;
    let secret = activate(&blob).context("activating the registrar's credential")?;
    let body = json!({"auth_tag": auth_tag(&secret, &reg.uuid)});
    let (code, v) = registrar.request("PUT", &path, Some(&body)).await?;
    if code != 200 {
        bail!(
            "registrar refused the activation (PUT {path}: {code} {})",
            status(&v)
        );
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_choice() {
        let v = json!({"code":200,"status":"Success","results":{"current_version":"2.6","supported_versions":["1.0","2.0","2.1","2.2","2.3","2.4","2.5","2.6","3.0"]}});
        assert_eq!(api::pick_version(&v), Some(api::ApiVersion { minor: 6 }));
        let v = json!({"results":{"supported_versions":["1.0","2.0","2.3"]}});
        assert_eq!(api::pick_version(&v), Some(api::ApiVersion { minor: 3 }));
        assert_eq!(
            api::pick_version(&json!({"results":{"supported_versions":["3.0"]}})),
            None
        );
        assert_eq!(api::pick_version(&json!("garbage")), None);
    }

    #[test]
    fn auth_tag_is_keylimes() {
        // python3: hmac.new(base64.b64encode(bytes(range(32))), b"agent-1", hashlib.sha384).hexdigest()
        let secret: Vec<u8> = (0u8..32).collect();
        assert_eq!(
            auth_tag(&secret, "agent-1"),
            "4e7a8e745a4ac357a8b310fe75225d5d13af5b3be3edc7536309b5658e849e049f7b29ad74473074439ceda85cbde9c1"
        );
    }

    #[test]
    fn a_registrar_answering_garbage_is_a_clear_error() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                while let Ok((mut s, _)) = l.accept().await {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n<html>?</ht>")
                        .await;
                }
            });
            let r = Registrar::new(&format!("http://127.0.0.1:{port}")).unwrap();
            let e = r.negotiate().await.unwrap_err().to_string();
            assert!(
                e.contains("GET /version answered 200 with a body that is not JSON"),
                "{e}"
            );
            assert!(e.contains("<html>?</ht"), "{e}");
            // Nobody listening: the error names the registrar.
            let dead = Registrar::new("http://127.0.0.1:1").unwrap();
            let e = dead.negotiate().await.unwrap_err().to_string();
            assert!(e.contains("connecting to registrar 127.0.0.1:1"), "{e}");
        });
    }

    #[test]
    fn urls() {
        assert!(Registrar::new("http://127.0.0.1:8890").is_ok());
        assert!(Registrar::new("https://127.0.0.1:8891")
            .err()
            .unwrap()
            .to_string()
            .contains("not supported"));
        assert!(Registrar::new("127.0.0.1:8890").is_err());
    }
}
