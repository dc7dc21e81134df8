//! Signed attestation results: EAT Attestation Results (EAR) as a JWT signed with ES256.
//!
//! # Profile and claim names
//!
//! The IETF draft changed its claim names: draft-ietf-rats-ear-03 (March 2026) uses the
//! profile `tag:ietf.org,2026:rats/ear#03` and the claims `ear_status`,
//! `ear_trustworthiness_vector`, `ear_verifier_id` and `ear_appraisal_policy_ids` (a list).
//! The deployed implementations — Veraison's `ear` crate 0.5.0 (docs.rs/ear, its
//! `misc/claims.json`), its Go and C libraries — use the earlier form of draft-fv-rats-ear,
//! which this module follows:
//!
//! - `eat_profile` = [`EAR_PROFILE`] (`tag:github.com,2023:veraison/ear`);
//! - `iat`, `exp` (seconds), `eat_nonce` (the caller's nonce, when given);
//! - `ear.verifier-id` {`developer`, `build`};
//! - `submods` {host name: {`ear.status`, `ear.trustworthiness-vector`,
//!   `ear.appraisal-policy-id`}}, plus the private claims `trustpool.policy-version`,
//!   `trustpool.verdict-time` (seconds) and `trustpool.findings` (the verdict's findings).
//!
//! The trustworthiness vector uses the AR4SI claim values (draft-ietf-rats-ar4si, section
//! "Specific Claims"): tiers none 0, affirming 2–31, warning 32–95, contraindicated 96–127;
//! all four claims are always present, 0 meaning no claim:
//!
//! | claim | value | when |
//! | --- | --- | --- |
//! | `instance-identity` | 2 | the AK was proven by credential activation and no identity finding |
//! | | 96 | `attestation-key`, `transport-key-binding`, `counters-decreased`, `clock-*` |
//! | | 99 | `quote` (cryptographic validation of the evidence failed) |
//! | `hardware` | 96 | `firmware-version` (TPM firmware older than the whitelist's minimum) |
//! | | 0 | otherwise (the verdict does not say whether firmware was checked) |
//! | `executables` | 3 | only approved executables loaded during boot (event log appraised) |
//! | | 96 | `event-digest`, `unknown-event`, `authority`, `ima` |
//! | | 99 | the event log or IMA log is not bound to the quote (see below) |
//! | `configuration` | 2 | a known and approved configuration |
//! | | 96 | `golden-pcr`, `secure-boot*`, `dbx-revocation`, `kernel-cmdline-*` |
//! | | 99 | the event log is not bound to the quote |
//!
//! "Not bound" rules: `pcr-digest`, `log-replay`, `eventlog-missing`, `eventlog-invalid`,
//! `digest-inconsistent`, `pcr-not-quoted`, `pcr-values-unavailable` (executables and
//! configuration), `ima-replay`, `ima-unbound` (executables).
//!
//! `ear.status` is `affirming` for a trusted verdict, `contraindicated` for an untrusted one
//! and `none` for unknown or timeout. A trusted verdict's findings are informational and do
//! not lower the vector. In an untrusted verdict a claim without a finding is affirmed only
//! when the evidence itself held (no identity, binding or unrecognized finding); otherwise it
//! is 0.
//!
//! The token is a JWS compact serialization (RFC 7515) with header
//! `{"alg":"ES256","kid":…,"typ":"JWT"}`; `kid` is the RFC 7638 thumbprint of the JWK.
//! It is made here with `ring` (ECDSA P-256, fixed-size `r‖s` signatures) rather than with
//! the `ear` crate, whose default features pull `openssl`, `cose-rust` and `jsonwebtoken` 11
//! on `aws-lc-rs` — a second native crypto library beside `ring` — for two functions of a
//! few dozen lines each.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use pki_types::pem::PemObject;
use pki_types::PrivatePkcs8KeyDer;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{json, Map, Value};

use crate::oat::TrustLevel;

/// The `eat_profile` of the tokens issued.
pub const EAR_PROFILE: &str = "tag:github.com,2023:veraison/ear";
/// `iat` may be this far in the future (clock skew between server and relying party).
pub const IAT_SKEW_SECS: i64 = 60;

const KEY_PEM: &str = "ear-signing-key.pem";
const KEY_DER: &str = "ear-signing-key.der";

/// AR4SI trustworthiness claim values used here.
pub mod tier {
    pub const NONE: i64 = 0;
    /// Affirming: instance recognized, approved configuration, genuine hardware.
    pub const AFFIRMING: i64 = 2;
    /// Affirming (executables): only approved executables loaded during boot.
    pub const APPROVED_BOOT: i64 = 3;
    pub const CONTRAINDICATED: i64 = 96;
    /// Contraindicated: cryptographic validation of the evidence failed.
    pub const CRYPTO_FAILED: i64 = 99;
}

/// What a signed result says about one host's verdict.
#[derive(Debug, Clone)]
pub struct EarInput {
    pub host: String,
    pub trust: TrustLevel,
    /// Array of `{rule, pcr?, event_index?, message}`.
    pub findings: Value,
    /// The whitelist's SHA-256 (hex, with or without `sha256:`); empty when none was used.
    pub whitelist_digest: String,
    pub policy_version: Option<i64>,
    /// When the verdict was reached (Unix milliseconds).
    pub verdict_time: i64,
    /// How long after the verdict the token is valid.
    pub lifetime_secs: u64,
    pub nonce: Option<String>,
    /// The AK was proven by credential activation.
    pub ak_bound: bool,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EarError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unsupported alg {0:?}: only ES256 is accepted")]
    Alg(String),
    #[error("no key with kid {0:?} in the JWKS")]
    NoKey(String),
    #[error("the JWKS has no usable P-256 key: {0}")]
    Jwks(String),
    #[error("signature does not verify")]
    Signature,
    #[error("expired at {} ({exp})", crate::oat::iso8601_utc((*.exp).max(0) as u64))]
    Expired { exp: i64 },
    #[error("issued in the future: iat {} ({iat})", crate::oat::iso8601_utc((*.iat).max(0) as u64))]
    NotYetValid { iat: i64 },
}

/// The server's result-signing key (ECDSA P-256).
pub struct EarSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
    jwk: Value,
}

impl EarSigner {
    /// Load `ear-signing-key.pem` (or `.der`), PKCS#8, from `state_dir`, or make one and keep
    /// it there as PEM (mode 0600).
    pub fn load_or_create(state_dir: &Path) -> Result<EarSigner> {
        let pem_path = state_dir.join(KEY_PEM);
        let der_path = state_dir.join(KEY_DER);
        let der = if pem_path.exists() {
            let pem = std::fs::read(&pem_path)
                .with_context(|| format!("reading {}", pem_path.display()))?;
            PrivatePkcs8KeyDer::from_pem_slice(&pem)
                .map_err(|e| anyhow!("{}: not a PKCS#8 PEM key: {e}", pem_path.display()))?
                .secret_pkcs8_der()
                .to_vec()
        } else if der_path.exists() {
            std::fs::read(&der_path).with_context(|| format!("reading {}", der_path.display()))?
        } else {
            std::fs::create_dir_all(state_dir)
                .with_context(|| format!("creating {}", state_dir.display()))?;
            let doc = EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .map_err(|_| anyhow!("generating the EAR signing key"))?;
            crate::agent::state::write_private(
                &pem_path,
                pem_private_key(doc.as_ref()).as_bytes(),
            )?;
            doc.as_ref().to_vec()
        };
        Self::from_pkcs8(&der)
            .with_context(|| format!("EAR signing key in {}", state_dir.display()))
    }

    /// From a PKCS#8 DER P-256 key.
    pub fn from_pkcs8(der: &[u8]) -> Result<EarSigner> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| anyhow!("not a PKCS#8 P-256 key: {e}"))?;
        let point = key.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(anyhow!("unexpected public key encoding")),
        };
        let (x, y) = (B64URL.encode(x), B64URL.encode(y));
        // RFC 7638: the required members in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = B64URL.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canonical.as_bytes(),
        ));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"});
        Ok(EarSigner { key, rng, kid, jwk })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK Set.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk.clone()]})
    }

    /// The claims a token for `input` carries, issued at `now` (Unix seconds).
    pub fn claims(input: &EarInput, now: i64) -> Value {
        let verdict_secs = input.verdict_time.div_euclid(1000);
        let exp =
            verdict_secs.saturating_add(i64::try_from(input.lifetime_secs).unwrap_or(i64::MAX));
        let mut sub = Map::new();
        let status = match input.trust {
            TrustLevel::Trusted => "affirming",
            TrustLevel::Untrusted => "contraindicated",
            TrustLevel::Unknown | TrustLevel::Timeout => "none",
        };
        sub.insert("ear.status".into(), status.into());
        sub.insert("ear.trustworthiness-vector".into(), trust_vector(input));
        if !input.whitelist_digest.is_empty() {
            let d = &input.whitelist_digest;
            let id = if d.starts_with("sha256:") {
                d.clone()
            } else {
                format!("sha256:{d}")
            };
            sub.insert("ear.appraisal-policy-id".into(), id.into());
        }
        if let Some(v) = input.policy_version {
            sub.insert("trustpool.policy-version".into(), v.into());
        }
        sub.insert("trustpool.verdict-time".into(), verdict_secs.into());
        if input.findings.as_array().is_some_and(|a| !a.is_empty()) {
            sub.insert("trustpool.findings".into(), input.findings.clone());
        }
        let mut claims = json!({
            "eat_profile": EAR_PROFILE,
            "iat": now,
            "exp": exp,
            "ear.verifier-id": {
                "developer": "trustpool",
                "build": concat!("trustpool ", env!("CARGO_PKG_VERSION")),
            },
            "submods": { input.host.clone(): Value::Object(sub) },
        });
        if let (Some(n), Some(m)) = (&input.nonce, claims.as_object_mut()) {
            m.insert("eat_nonce".into(), n.clone().into());
        }
        claims
    }

    /// A signed EAR (JWS compact serialization) for `input`, issued at `now` (Unix seconds).
    pub fn issue(&self, input: &EarInput, now: i64) -> String {
        let header = json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"});
        let mut out = B64URL.encode(header.to_string());
        out.push('.');
        out.push_str(&B64URL.encode(Self::claims(input, now).to_string()));
        // Signing with a valid key and the system RNG does not fail short of the RNG failing.
        let sig = self
            .key
            .sign(&self.rng, out.as_bytes())
            .map(|s| B64URL.encode(s.as_ref()))
            .unwrap_or_default();
        out.push('.');
        out.push_str(&sig);
        out
    }
}

fn pem_private_key(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str("-----END PRIVATE KEY-----\n");
    s
}

const IDENTITY_RULES: &[&str] = &[
    "attestation-key",
    "transport-key-binding",
    "counters-decreased",
];
const UNBOUND_RULES: &[&str] = &[
    "pcr-digest",
    "log-replay",
    "eventlog-missing",
    "eventlog-invalid",
    "digest-inconsistent",
    "pcr-not-quoted",
    "pcr-values-unavailable",
];
const IMA_UNBOUND_RULES: &[&str] = &["ima-replay", "ima-unbound"];
const EXECUTABLE_RULES: &[&str] = &["event-digest", "unknown-event", "authority", "ima"];
const CONFIGURATION_RULES: &[&str] = &[
    "golden-pcr",
    "dbx-revocation",
    "secure-boot",
    "secure-boot-variable",
    "kernel-cmdline-forbidden",
    "kernel-cmdline-required",
    "kernel-cmdline-unknown",
];
const HARDWARE_RULES: &[&str] = &["firmware-version"];
/// Informational: never make a host untrusted.
const INFO_RULES: &[&str] = &["workaround-applied"];

fn trust_vector(input: &EarInput) -> Value {
    use tier::*;
    let rules: Vec<&str> = input
        .findings
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.get("rule").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let has = |set: &[&str]| rules.iter().any(|r| set.contains(r));
    let quote = rules.contains(&"quote");
    let identity = has(IDENTITY_RULES) || rules.iter().any(|r| r.starts_with("clock-"));
    let unbound = has(UNBOUND_RULES);
    let known = |r: &&str| {
        [
            IDENTITY_RULES,
            UNBOUND_RULES,
            IMA_UNBOUND_RULES,
            EXECUTABLE_RULES,
            CONFIGURATION_RULES,
            HARDWARE_RULES,
            INFO_RULES,
        ]
        .iter()
        .any(|set| set.contains(r))
            || *r == "quote"
            || r.starts_with("clock-")
    };
    let (mut ii, mut hw, mut ex, mut cf) = (NONE, NONE, NONE, NONE);
    match input.trust {
        TrustLevel::Unknown | TrustLevel::Timeout => {}
        TrustLevel::Trusted => {
            ii = if input.ak_bound { AFFIRMING } else { NONE };
            ex = APPROVED_BOOT;
            cf = AFFIRMING;
        }
        TrustLevel::Untrusted => {
            // The evidence held: the findings are about what it shows, and a claim with no
            // finding was checked and passed.
            let held = !quote && !identity && !unbound && rules.iter().all(known);
            ii = if quote {
                CRYPTO_FAILED
            } else if identity {
                CONTRAINDICATED
            } else if input.ak_bound && held {
                AFFIRMING
            } else {
                NONE
            };
            if has(HARDWARE_RULES) {
                hw = CONTRAINDICATED;
            }
            ex = if has(EXECUTABLE_RULES) {
                CONTRAINDICATED
            } else if unbound || has(IMA_UNBOUND_RULES) {
                CRYPTO_FAILED
            } else if held {
                APPROVED_BOOT
            } else {
                NONE
            };
            cf = if has(CONFIGURATION_RULES) {
                CONTRAINDICATED
            } else if unbound {
                CRYPTO_FAILED
            } else if held {
                AFFIRMING
            } else {
                NONE
            };
        }
    }
    json!({
        "instance-identity": ii,
        "hardware": hw,
        "executables": ex,
        "configuration": cf,
    })
}

fn b64_part(part: &str, what: &str) -> Result<Vec<u8>, EarError> {
    B64URL
        .decode(part)
        .map_err(|e| EarError::Malformed(format!("{what} is not base64url: {e}")))
}

/// A JWK's `kid` and its uncompressed P-256 point.
type JwkPoint = (Option<String>, Vec<u8>);

/// The P-256 keys of a JWK Set (or of a single JWK), with their `kid`s.
fn jwks_keys(jwks: &Value) -> Result<Vec<JwkPoint>, EarError> {
    let keys: Vec<&Value> = match jwks.get("keys").and_then(Value::as_array) {
        Some(a) => a.iter().collect(),
        None if jwks.get("kty").is_some() => vec![jwks],
        None => return Err(EarError::Jwks("no \"keys\" array".into())),
    };
    let mut out = Vec::new();
    for k in keys {
        let s = |name: &str| k.get(name).and_then(Value::as_str);
        if s("kty") != Some("EC") || s("crv") != Some("P-256") {
            continue;
        }
        if s("alg").is_some_and(|a| a != "ES256") || s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let coord = |name: &str| {
            s(name)
                .and_then(|v| B64URL.decode(v).ok())
                .filter(|b| b.len() == 32)
        };
        let (Some(x), Some(y)) = (coord("x"), coord("y")) else {
            continue;
        };
        let mut point = Vec::with_capacity(65);
        point.push(4);
        point.extend_from_slice(&x);
        point.extend_from_slice(&y);
        out.push((s("kid").map(str::to_string), point));
    }
    if out.is_empty() {
        return Err(EarError::Jwks("no EC P-256 signing key".into()));
    }
    Ok(out)
}

/// Check a token's signature against `jwks` (the key named by its `kid`, or every key when
/// it has none) and its times against `now` (Unix seconds); return its claims.
pub fn verify(token: &str, jwks: &Value, now: i64) -> Result<Value, EarError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(EarError::Malformed(
            "not a JWS compact serialization (three base64url parts joined by '.')".into(),
        ));
    };
    let header: Value = serde_json::from_slice(&b64_part(h64, "header")?)
        .map_err(|e| EarError::Malformed(format!("header is not JSON: {e}")))?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "ES256" {
        return Err(EarError::Alg(alg.to_string()));
    }
    if header.get("crit").is_some() {
        return Err(EarError::Malformed("header has \"crit\" extensions".into()));
    }
    let sig = b64_part(s64, "signature")?;
    let keys = jwks_keys(jwks)?;
    let candidates: Vec<&Vec<u8>> = match header.get("kid").and_then(Value::as_str) {
        Some(kid) => {
            let mut c: Vec<_> = keys
                .iter()
                .filter(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, p)| p)
                .collect();
            if c.is_empty() {
                // Keys published without a kid may still be the one.
                c = keys
                    .iter()
                    .filter(|(k, _)| k.is_none())
                    .map(|(_, p)| p)
                    .collect();
            }
            if c.is_empty() {
                return Err(EarError::NoKey(kid.to_string()));
            }
            c
        }
        None => keys.iter().map(|(_, p)| p).collect(),
    };
    let signed = token
        .len()
        .checked_sub(s64.len() + 1)
        .and_then(|n| token.get(..n))
        .unwrap_or_default();
    let ok = candidates.iter().any(|point| {
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(signed.as_bytes(), &sig)
            .is_ok()
    });
    if !ok {
        return Err(EarError::Signature);
    }
    let claims: Value = serde_json::from_slice(&b64_part(p64, "payload")?)
        .map_err(|e| EarError::Malformed(format!("payload is not JSON: {e}")))?;
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| EarError::Malformed(format!("no integer {name:?} claim")))
    };
    let exp = time("exp")?;
    let iat = time("iat")?;
    if exp <= now {
        return Err(EarError::Expired { exp });
    }
    if iat > now.saturating_add(IAT_SKEW_SECS) {
        return Err(EarError::NotYetValid { iat });
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(trust: TrustLevel, findings: Value) -> EarInput {
        EarInput {
            host: "h1".into(),
            trust,
            findings,
            whitelist_digest: "ab".repeat(32),
            policy_version: Some(3),
            verdict_time: 1_700_000_000_500,
            lifetime_secs: 300,
            nonce: None,
            ak_bound: true,
        }
    }

    fn vector(i: &EarInput) -> Value {
        EarSigner::claims(i, 1_700_000_001)["submods"]["h1"]["ear.trustworthiness-vector"].clone()
    }

    #[test]
    fn vectors() {
        let t = input(TrustLevel::Trusted, json!([]));
        assert_eq!(
            vector(&t),
            json!({"instance-identity": 2, "hardware": 0, "executables": 3, "configuration": 2})
        );
        let u = input(
            TrustLevel::Untrusted,
            json!([{"rule": "golden-pcr", "pcr": 7, "message": "x"}]),
        );
        assert_eq!(
            vector(&u),
            json!({"instance-identity": 2, "hardware": 0, "executables": 3, "configuration": 96})
        );
        let q = input(
            TrustLevel::Untrusted,
            json!([{"rule": "quote", "message": "x"}]),
        );
        assert_eq!(
            vector(&q),
            json!({"instance-identity": 99, "hardware": 0, "executables": 0, "configuration": 0})
        );
        let c = input(
            TrustLevel::Untrusted,
            json!([{"rule": "clock-not-increasing", "message": "x"}, {"rule": "firmware-version", "message": "y"}]),
        );
        assert_eq!(
            vector(&c),
            json!({"instance-identity": 96, "hardware": 96, "executables": 0, "configuration": 0})
        );
        let r = input(
            TrustLevel::Untrusted,
            json!([{"rule": "log-replay", "pcr": 0, "message": "x"}]),
        );
        assert_eq!(
            vector(&r),
            json!({"instance-identity": 0, "hardware": 0, "executables": 99, "configuration": 99})
        );
        let a = input(
            TrustLevel::Untrusted,
            json!([{"rule": "agent-answer", "message": "x"}]),
        );
        assert_eq!(
            vector(&a),
            json!({"instance-identity": 0, "hardware": 0, "executables": 0, "configuration": 0})
        );
        let mut n = input(
            TrustLevel::Timeout,
            json!([{"rule": "agent-timeout", "message": "x"}]),
        );
        n.ak_bound = true;
        let claims = EarSigner::claims(&n, 1);
        assert_eq!(claims["submods"]["h1"]["ear.status"], "none");
        assert_eq!(
            vector(&n),
            json!({"instance-identity": 0, "hardware": 0, "executables": 0, "configuration": 0})
        );
    }

    #[test]
    fn kid_is_rfc7638_thumbprint() {
        // RFC 7638 has no EC example; check against the canonical form computed by hand.
        let s = EarSigner::from_pkcs8(
            EcdsaKeyPair::generate_pkcs8(
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &SystemRandom::new(),
            )
            .unwrap()
            .as_ref(),
        )
        .unwrap();
        let k = &s.jwks()["keys"][0];
        let canon = format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            k["x"].as_str().unwrap(),
            k["y"].as_str().unwrap()
        );
        let want = B64URL.encode(ring::digest::digest(
            &ring::digest::SHA256,
            canon.as_bytes(),
        ));
        assert_eq!(k["kid"], want.as_str());
        assert_eq!(s.kid().len(), 43);
    }
}
