//! The server's registrar: the Keylime registrar protocol agents enroll with.
//! `POST /v{X.Y}/agents/{uuid}` stores the EK, AK, EK certificate and the agent's TLS
//! certificate of a host the operator added, and answers a MakeCredential blob made by the
//! core for the AK's Name under the EK; `PUT /v{X.Y}/agents/{uuid}` checks
//! `auth_tag = HMAC-SHA384(base64(secret), uuid)` and marks the AK proven. Once activated, a
//! host's keys are immutable: a registration with other keys is refused and audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use trustpool_core::credential::{make_credential_ecc_p256, make_credential_rsa};
use trustpool_core::public::{Public, PublicKey};

use super::store::{self, Registration, Store, StoreError};
use crate::agent::api::{self, ApiError};

/// How long a registration waits for its activation.
pub const PENDING_FOR: Duration = Duration::from_secs(300);

/// What the registrar needs.
pub struct Registrar {
    pub store: Store,
    pub accept_unsigned_eks: bool,
    /// DER of the configured EK CA roots (their presence makes a certificate mandatory).
    pub ek_roots: Vec<Vec<u8>>,
    /// uuid → (expected auth_tag, when).
    pending: Mutex<HashMap<String, (String, Instant)>>,
}

impl Registrar {
    pub fn new(store: Store, accept_unsigned_eks: bool, ek_roots: Vec<Vec<u8>>) -> Arc<Registrar> {
        Arc::new(Registrar {
            store,
            accept_unsigned_eks,
            ek_roots,
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// Answer one request: (HTTP code, JSON body).
    pub async fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        match self.route(method, path, body).await {
            Ok(v) => (200, api::success(v)),
            Err(e) => {
                tracing::info!(%method, %path, "registrar: {e}");
                (e.code, e.body())
            }
        }
    }

    async fn route(&self, method: &str, path: &str, body: &[u8]) -> Result<Value, ApiError> {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        if path == "version" {
            return Ok(
                json!({"current_version": api::CURRENT_VERSION, "supported_versions": api::SUPPORTED_VERSIONS}),
            );
        }
        let mut parts = path.split('/');
        let (Some(v), Some("agents"), Some(uuid), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ApiError::not_found(format!("no such path: /{path}")));
        };
        if v.strip_prefix('v')
            .and_then(api::ApiVersion::parse)
            .is_none()
        {
            return Err(ApiError::bad_request(format!(
                "API version not supported: {v}"
            )));
        }
        if uuid.is_empty() || uuid.len() > 80 {
            return Err(ApiError::bad_request(
                "agent uuid must be 1 to 80 characters",
            ));
        }
        match method {
            "POST" => self.register(uuid, body).await,
            "PUT" => self.activate(uuid, body).await,
            _ => Err(ApiError {
                code: 405,
                status: format!("method {method} not allowed"),
            }),
        }
    }

    async fn register(&self, uuid: &str, body: &[u8]) -> Result<Value, ApiError> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let super::wire::RegistrationBody {
            ek_tpm,
            aik_tpm,
            ek_cert,
            mtls_cert,
            ip,
            port,
        } = super::wire::parse_registration(body)?;
        let ek = Public::parse_tpm2b(&ek_tpm)
            .map_err(|e| ApiError::bad_request(format!("ek_tpm is not a TPM2B_PUBLIC: {e}")))?;
        let ak = Public::parse_tpm2b(&aik_tpm)
            .map_err(|e| ApiError::bad_request(format!("aik_tpm is not a TPM2B_PUBLIC: {e}")))?;
        match &ek_cert {
            Some(der) => {
                let cert = crate::ekcert::EkCertificate::parse(der)
                    .map_err(|e| ApiError::bad_request(format!("{e}")))?;
                cert.check_ek(&ek_tpm).map_err(|e| ApiError {
                    code: 403,
                    status: format!("{e}"),
                })?;
                if !self.ek_roots.is_empty() {
                    super::ekchain::verify_chain(der, &self.ek_roots).map_err(|e| ApiError {
                        code: 403,
                        status: format!("EK certificate: {e}"),
                    })?;
                }
            }
            None if !self.accept_unsigned_eks || !self.ek_roots.is_empty() => {
                return Err(ApiError {
                    code: 403,
                    status: "the EK has no certificate, and accept_unsigned_eks is off".into(),
                })
            }
            None => {}
        }
        let reg = Registration {
            uuid: uuid.to_string(),
            ek_tpm: ek_tpm.clone(),
            aik_tpm: aik_tpm.clone(),
            ek_cert,
            mtls_cert,
            ip,
            port,
        };
        self.store.register(&reg).await.map_err(|e| match e {
            StoreError::RegistrationRefused { .. } => ApiError {
                code: 403,
                status: "re-registration with other TPM keys is refused: this host's EK and AK are fixed since activation".into(),
            },
            StoreError::NoSuchAgent(_) => ApiError::not_found(format!(
                "no host with agent uuid {uuid}: add it first (trustpool hosts add NAME --uuid {uuid})"
            )),
            other => ApiError { code: 500, status: format!("database: {other}") },
        })?;

        // The credential: 32 letters and digits (Keylime's form), for the AK's Name.
        let secret = super::check::random_alnum(32)
            .map_err(|e| ApiError {
                code: 500,
                status: format!("{e}"),
            })?
            .into_bytes();
        let mut name = [0u8; 66];
        let n = ak
            .name()
            .ok_or_else(|| {
                ApiError::bad_request("aik_tpm has a nameAlg this server does not hash")
            })?
            .to_bytes(&mut name);
        let name = name.get(..n).unwrap_or(&[]);
        let blob = match ek.key() {
            Some(PublicKey::Rsa { .. }) => {
                let mut seed = [0u8; 32];
                let mut oaep = [0u8; 32];
                fill(&mut seed)?;
                fill(&mut oaep)?;
                make_credential_rsa(&ek, name, &secret, &seed, &oaep)
                    .map_err(|e| ApiError::bad_request(format!("MakeCredential: {e}")))?
                    .to_blob()
            }
            _ => {
                let mut last = None;
                let mut made = None;
                for _ in 0..4 {
                    let mut d = [0u8; 32];
                    fill(&mut d)?;
                    match make_credential_ecc_p256(&ek, name, &secret, &d) {
                        Ok(m) => {
                            made = Some(m.to_blob());
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                }
                made.ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "MakeCredential: {}",
                        last.map(|e| e.to_string()).unwrap_or_default()
                    ))
                })?
            }
        };
        let tag = crate::agent::registrar::auth_tag(&secret, uuid);
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|_, (_, t)| t.elapsed() < PENDING_FOR);
            p.insert(uuid.to_string(), (tag, Instant::now()));
        }
        Ok(json!({"blob": b64.encode(blob)}))
    }

    async fn activate(&self, uuid: &str, body: &[u8]) -> Result<Value, ApiError> {
        let tag = super::wire::parse_activation(body)?;
        let expected = self
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(uuid))
            .filter(|(_, t)| t.elapsed() < PENDING_FOR)
            .map(|(tag, _)| tag)
            .ok_or_else(|| {
                ApiError::bad_request(format!("no registration of {uuid} waiting for activation"))
            })?;
        use subtle::ConstantTimeEq;
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(tag.to_ascii_lowercase().as_bytes()),
        ) {
            let _ = self
                .store
                .audit(
                    store::AuditKind::RegistrationRefused,
                    None,
                    &json!({"uuid": uuid, "reason": "auth_tag does not match: the AK is not resident with the EK"}),
                )
                .await;
            return Err(ApiError::bad_request(
                "auth_tag does not match: the credential was not activated by this EK's TPM",
            ));
        }
        self.store.activate(uuid).await.map_err(|e| ApiError {
            code: 500,
            status: format!("database: {e}"),
        })?;
        Ok(json!({}))
    }
}

fn fill(buf: &mut [u8]) -> Result<(), ApiError> {
    getrandom::fill(buf).map_err(|e| ApiError {
        code: 500,
        status: format!("OS RNG: {e}"),
    })
}
