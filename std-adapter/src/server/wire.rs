//! The server's request bodies from agents, read and checked without I/O (and fuzzed alone:
//! this file is compiled into the fuzz target `server_requests`, so it uses only serde_json,
//! base64, the core and `crate::agent::api`).
//!
//! - Keylime registrar protocol: `POST /v{X.Y}/agents/{uuid}` (ek_tpm, aik_tpm, ekcert,
//!   mtls_cert, ip, port) and `PUT` (auth_tag).
//! - Key provider: `POST /v1/keys/{name}/release` (nonce, key_public, certify_attest,
//!   certify_signature).

use base64::Engine;
use serde_json::Value;
use trustpool_core::public::Public;

use crate::agent::api::ApiError;

/// A registration, decoded and checked: both keys parse as `TPM2B_PUBLIC`, the AK is a
/// restricted signing key trustpool can verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationBody {
    pub ek_tpm: Vec<u8>,
    pub aik_tpm: Vec<u8>,
    /// DER, when the agent sent one.
    pub ek_cert: Option<Vec<u8>>,
    pub mtls_cert: String,
    pub ip: String,
    pub port: u16,
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str, ApiError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing string field '{name}'")))
}

fn b64(v: &Value, name: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(field(v, name)?)
        .map_err(|e| ApiError::bad_request(format!("{name} is not base64: {e}")))
}

/// `POST /v{X.Y}/agents/{uuid}`.
pub fn parse_registration(body: &[u8]) -> Result<RegistrationBody, ApiError> {
    let v = json(body)?;
    let ek_tpm = b64(&v, "ek_tpm")?;
    let aik_tpm = b64(&v, "aik_tpm")?;
    Public::parse_tpm2b(&ek_tpm)
        .map_err(|e| ApiError::bad_request(format!("ek_tpm is not a TPM2B_PUBLIC: {e}")))?;
    let ak = Public::parse_tpm2b(&aik_tpm)
        .map_err(|e| ApiError::bad_request(format!("aik_tpm is not a TPM2B_PUBLIC: {e}")))?;
    trustpool_core::AttestationKey::from_public(ak).map_err(|e| {
        ApiError::bad_request(format!("aik_tpm is not a usable attestation key: {e}"))
    })?;
    let ek_cert = match v.get("ekcert") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| ApiError::bad_request(format!("ekcert is not base64 DER: {e}")))?,
        ),
        Some(_) => return Err(ApiError::bad_request("ekcert must be a string")),
    };
    let mtls_cert = field(&v, "mtls_cert")?.to_string();
    if !mtls_cert.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ApiError::bad_request("mtls_cert is not a PEM certificate"));
    }
    let ip = field(&v, "ip")?.to_string();
    if ip.is_empty() || ip.len() > 253 {
        return Err(ApiError::bad_request("ip must be 1 to 253 characters"));
    }
    let port = v
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ApiError::bad_request("port must be a number 0-65535"))?;
    Ok(RegistrationBody {
        ek_tpm,
        aik_tpm,
        ek_cert,
        mtls_cert,
        ip,
        port,
    })
}

/// `PUT /v{X.Y}/agents/{uuid}`: the auth_tag, lower-cased.
pub fn parse_activation(body: &[u8]) -> Result<String, ApiError> {
    let v = json(body)?;
    let tag = field(&v, "auth_tag")?;
    if tag.len() != 96 || !tag.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "auth_tag must be 96 hex digits (HMAC-SHA384)",
        ));
    }
    Ok(tag.to_ascii_lowercase())
}

/// A key release request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseBody {
    pub nonce: String,
    /// `TPM2B_PUBLIC` of the binding key.
    pub key_public: Vec<u8>,
    /// `TPMS_ATTEST` of TPM2_Certify.
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
}

/// `POST /v1/keys/{name}/release`.
pub fn parse_release(body: &[u8]) -> Result<ReleaseBody, ApiError> {
    let v = json(body)?;
    let nonce = field(&v, "nonce")?.to_string();
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(ApiError::bad_request("nonce must be 1 to 64 characters"));
    }
    Ok(ReleaseBody {
        nonce,
        key_public: b64(&v, "key_public")?,
        attest: b64(&v, "certify_attest")?,
        signature: b64(&v, "certify_signature")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        let e = |b: &str| parse_registration(b.as_bytes()).unwrap_err().status;
        assert!(e("{").starts_with("body is not JSON"));
        assert_eq!(e("{}"), "missing string field 'ek_tpm'");
        assert!(e(r#"{"ek_tpm":"!!","aik_tpm":""}"#).starts_with("ek_tpm is not base64"));
        assert!(
            e(r#"{"ek_tpm":"AAA=","aik_tpm":"AAA="}"#).starts_with("ek_tpm is not a TPM2B_PUBLIC")
        );
        let a = |b: &str| parse_activation(b.as_bytes()).unwrap_err().status;
        assert_eq!(
            a(r#"{"auth_tag":"abc"}"#),
            "auth_tag must be 96 hex digits (HMAC-SHA384)"
        );
        assert_eq!(
            parse_activation(format!(r#"{{"auth_tag":"{}"}}"#, "AB".repeat(48)).as_bytes())
                .unwrap(),
            "ab".repeat(48)
        );
        let r = |b: &str| parse_release(b.as_bytes()).unwrap_err().status;
        assert_eq!(r(r#"{"nonce":""}"#), "nonce must be 1 to 64 characters");
        assert_eq!(r(r#"{"nonce":"n"}"#), "missing string field 'key_public'");
    }
}
