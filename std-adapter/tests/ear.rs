//! Signed attestation results (EAR, ES256 JWT): issue, verify, and the failures a relying
//! party must see — a changed byte, another key, an expired token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{json, Value};
use trustpool::oat::TrustLevel;
use trustpool::server::ear::{self, EarError, EarInput, EarSigner, EAR_PROFILE};

const NOW: i64 = 1_750_000_000;
const DIGEST: &str = "3f0c5d6e2a1b4c7d8e9f00112233445566778899aabbccddeeff001122334455";

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("trustpool-ear-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn trusted() -> EarInput {
    EarInput {
        host: "compute-1".into(),
        trust: TrustLevel::Trusted,
        findings: json!([]),
        whitelist_digest: DIGEST.into(),
        policy_version: Some(4),
        verdict_time: NOW * 1000 - 2_500,
        lifetime_secs: 600,
        nonce: None,
        ak_bound: true,
    }
}

fn untrusted() -> EarInput {
    EarInput {
        trust: TrustLevel::Untrusted,
        findings: json!([{"rule": "event-digest", "pcr": 4, "event_index": 17,
                          "message": "EV_EFI_BOOT_SERVICES_APPLICATION digest not in the whitelist"}]),
        ..trusted()
    }
}

fn payload(token: &str) -> Value {
    let p = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap()
}

#[test]
fn trusted_verdict_verifies_and_is_affirming() {
    let dir = tmpdir("trusted");
    let signer = EarSigner::load_or_create(&dir).unwrap();
    let token = signer.issue(&trusted(), NOW);
    let claims = ear::verify(&token, &signer.jwks(), NOW).unwrap();
    assert_eq!(
        claims,
        json!({
            "eat_profile": EAR_PROFILE,
            "iat": NOW,
            "exp": NOW - 3 + 600,
            "ear.verifier-id": {
                "developer": "trustpool",
                "build": format!("trustpool {}", env!("CARGO_PKG_VERSION")),
            },
            "submods": {
                "compute-1": {
                    "ear.status": "affirming",
                    "ear.trustworthiness-vector": {
                        "instance-identity": 2,
                        "hardware": 0,
                        "executables": 3,
                        "configuration": 2,
                    },
                    "ear.appraisal-policy-id": format!("sha256:{DIGEST}"),
                    "trustpool.policy-version": 4,
                    "trustpool.verdict-time": NOW - 3,
                }
            }
        })
    );
    assert!(claims.get("eat_nonce").is_none());
    // The header names the key.
    let h: Value =
        serde_json::from_slice(&B64URL.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        h,
        json!({"alg": "ES256", "kid": signer.kid(), "typ": "JWT"})
    );
}

#[test]
fn untrusted_event_digest_is_contraindicated_executables() {
    let signer = EarSigner::load_or_create(&tmpdir("untrusted")).unwrap();
    let input = untrusted();
    let token = signer.issue(&input, NOW);
    let claims = ear::verify(&token, &signer.jwks(), NOW).unwrap();
    let sub = &claims["submods"]["compute-1"];
    assert_eq!(sub["ear.status"], "contraindicated");
    assert_eq!(
        sub["ear.trustworthiness-vector"],
        json!({"instance-identity": 2, "hardware": 0, "executables": 96, "configuration": 2})
    );
    assert_eq!(sub["trustpool.findings"], input.findings);
}

#[test]
fn nonce_is_eat_nonce() {
    let signer = EarSigner::load_or_create(&tmpdir("nonce")).unwrap();
    let input = EarInput {
        nonce: Some("q8r7YlZ0b3VuZGVkLW5vbmNl".into()),
        ..trusted()
    };
    let claims = ear::verify(&signer.issue(&input, NOW), &signer.jwks(), NOW).unwrap();
    assert_eq!(claims["eat_nonce"], "q8r7YlZ0b3VuZGVkLW5vbmNl");
}

#[test]
fn changed_bytes_fail() {
    let signer = EarSigner::load_or_create(&tmpdir("tamper")).unwrap();
    let token = signer.issue(&trusted(), NOW);
    let jwks = signer.jwks();
    // The payload re-encoded with another status, the signature kept.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = payload(&token);
    claims["submods"]["compute-1"]["ear.status"] = json!("contraindicated");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        B64URL.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(ear::verify(&forged, &jwks, NOW), Err(EarError::Signature));
    // One byte of the payload, one of the signature (bits that base64url keeps).
    for pos in [parts[0].len() + 5, token.len() - 10] {
        let mut b = token.clone().into_bytes();
        b[pos] = if b[pos] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(b).unwrap();
        assert_eq!(ear::verify(&t, &jwks, NOW), Err(EarError::Signature));
    }
    assert_eq!(EarError::Signature.to_string(), "signature does not verify");
}

#[test]
fn another_keys_jwks_fails() {
    let a = EarSigner::load_or_create(&tmpdir("key-a")).unwrap();
    let b = EarSigner::load_or_create(&tmpdir("key-b")).unwrap();
    assert_ne!(a.kid(), b.kid());
    let token = a.issue(&trusted(), NOW);
    let e = ear::verify(&token, &b.jwks(), NOW).unwrap_err();
    assert_eq!(e, EarError::NoKey(a.kid().to_string()));
    assert!(e.to_string().contains("no key with kid"), "{e}");
    // B's key under A's kid: the signature is what fails.
    let mut jwks = b.jwks();
    jwks["keys"][0]["kid"] = json!(a.kid());
    assert_eq!(ear::verify(&token, &jwks, NOW), Err(EarError::Signature));
    // A key published without a kid is tried.
    let mut anon = a.jwks();
    anon["keys"][0].as_object_mut().unwrap().remove("kid");
    assert!(ear::verify(&token, &anon, NOW).is_ok());
    // Both keys: the right one is found.
    let both = json!({"keys": [b.jwks()["keys"][0], a.jwks()["keys"][0]]});
    assert!(ear::verify(&token, &both, NOW).is_ok());
}

#[test]
fn expiry_and_issue_time() {
    let signer = EarSigner::load_or_create(&tmpdir("exp")).unwrap();
    let token = signer.issue(&trusted(), NOW);
    let exp = NOW - 3 + 600;
    assert!(ear::verify(&token, &signer.jwks(), exp - 1).is_ok());
    let e = ear::verify(&token, &signer.jwks(), exp).unwrap_err();
    assert_eq!(e, EarError::Expired { exp });
    assert!(e.to_string().starts_with("expired at 2025-06-15T"), "{e}");
    // Issued more than 60 s in the verifier's future.
    let e = ear::verify(&token, &signer.jwks(), NOW - 61).unwrap_err();
    assert_eq!(e, EarError::NotYetValid { iat: NOW });
    assert!(ear::verify(&token, &signer.jwks(), NOW - 60).is_ok());
}

#[test]
fn key_is_kept_private_and_reused() {
    let dir = tmpdir("reuse");
    let a = EarSigner::load_or_create(&dir).unwrap();
    let b = EarSigner::load_or_create(&dir).unwrap();
    assert_eq!(a.kid(), b.kid());
    assert_eq!(a.jwks(), b.jwks());
    let path = dir.join("ear-signing-key.pem");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let k = &a.jwks()["keys"][0];
    assert_eq!(k["kty"], "EC");
    assert_eq!(k["crv"], "P-256");
    assert_eq!(k["alg"], "ES256");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kid"], a.kid());
    assert_eq!(k["x"].as_str().unwrap().len(), 43);
}

#[test]
fn other_algorithms_are_refused() {
    let signer = EarSigner::load_or_create(&tmpdir("alg")).unwrap();
    let token = signer.issue(&trusted(), NOW);
    let rest = token.split_once('.').unwrap().1;
    let none = format!("{}.{rest}", B64URL.encode(r#"{"alg":"none"}"#));
    assert_eq!(
        ear::verify(&none, &signer.jwks(), NOW),
        Err(EarError::Alg("none".into()))
    );
    assert!(matches!(
        ear::verify("abc", &signer.jwks(), NOW),
        Err(EarError::Malformed(_))
    ));
}

/// `cargo test --release -p trustpool --test ear -- --ignored --nocapture timing`
#[test]
#[ignore]
fn timing() {
    let signer = EarSigner::load_or_create(&tmpdir("timing")).unwrap();
    let input = untrusted();
    let jwks = signer.jwks();
    let n = 2000;
    let t = std::time::Instant::now();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        tokens.push(signer.issue(&input, NOW + i as i64 % 10));
    }
    let issue = t.elapsed();
    let t = std::time::Instant::now();
    for tok in &tokens {
        ear::verify(tok, &jwks, NOW + 10).unwrap();
    }
    let verify = t.elapsed();
    println!(
        "EAR ES256: issue {:.1} µs/token, verify {:.1} µs/token ({} bytes)",
        issue.as_secs_f64() * 1e6 / n as f64,
        verify.as_secs_f64() * 1e6 / n as f64,
        tokens[0].len()
    );
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustpool"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_result_verify() {
    let dir = tmpdir("cli");
    let signer = EarSigner::load_or_create(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = EarInput {
        verdict_time: now * 1000,
        ..untrusted()
    };
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, signer.jwks().to_string()).unwrap();
    let jwks = jwks.to_str().unwrap();
    let token = signer.issue(&fresh, now);
    // An untrusted host's token with a good signature: exit 0, its status shown.
    let (code, out, err) = cli(&["result", "verify", &token, "--jwks", jwks]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("signature good, issued "), "{out}");
    assert!(
        out.contains(&format!(
            "compute-1: contraindicated (configuration 2, executables 96, hardware 0, instance-identity 2) policy sha256:{DIGEST}"
        )),
        "{out}"
    );
    // From a file, as JSON.
    let file = dir.join("token.jwt");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let (code, out, _) = cli(&[
        "result",
        "verify",
        file.to_str().unwrap(),
        "--jwks",
        jwks,
        "--json",
    ]);
    assert_eq!(code, 0);
    let claims: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        claims["submods"]["compute-1"]["ear.status"],
        "contraindicated"
    );
    // Expired: exit 1.
    let old = signer.issue(&untrusted(), NOW);
    let (code, _, err) = cli(&["result", "verify", &old, "--jwks", jwks]);
    assert_eq!(code, 1);
    assert!(err.contains("EAR token: expired at 2025-06-15T"), "{err}");
    // Another key: exit 1.
    let other = EarSigner::load_or_create(&tmpdir("cli-other")).unwrap();
    let (code, _, err) = cli(&[
        "result",
        "verify",
        &other.issue(&fresh, now),
        "--jwks",
        jwks,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("no key with kid"), "{err}");
}

#[test]
fn der_key_is_used() {
    let dir = tmpdir("der");
    let doc = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    std::fs::write(dir.join("ear-signing-key.der"), doc.as_ref()).unwrap();
    let a = EarSigner::load_or_create(&dir).unwrap();
    assert_eq!(a.kid(), EarSigner::from_pkcs8(doc.as_ref()).unwrap().kid());
    assert!(!dir.join("ear-signing-key.pem").exists());
}
