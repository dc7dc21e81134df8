//! `trustpool agent` end to end on a real software TPM (swtpm on loopback): it enrolls with a
//! registrar by credential activation (a registrar made here with the core's MakeCredential,
//! checking the agent's auth_tag), then answers the Keylime agent API over mutual TLS: quotes
//! that verify with the enrolled AK, carry the nonce, bind the transport key through PCR 16,
//! and the logs; bad requests get 400s that say what was wrong, and the agent keeps serving.
//!
//! Skipped with a message when `swtpm` is not installed, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use trustpool::agent::client::AgentClient;
use trustpool::agent::config::AgentConfig;
use trustpool::files::KeylimeQuote;
use trustpool_core::credential::make_credential_rsa;
use trustpool_core::pcr::{parse_tpm2_tools_pcrs, PcrSet};
use trustpool_core::public::Public;
use trustpool_core::tpm::{AkTemplate, Hierarchy};
use trustpool_core::{AttestationKey, HashAlg, PcrValues, Quote};

mod swtpm;
use swtpm::*;

const UUID: &str = "d432fbb3-d2f1-4a97-9ef7-75bd81c00000";

/// A CA and a client certificate it issued (PEM cert, PEM key), plus the CA's PEM.
fn client_pki(name: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    (cert.pem(), key.serialize_pem(), ca_cert.pem())
}

/// What the test registrar saw.
#[derive(Default)]
struct RegistrarLog {
    registered: Option<Value>,
    secret: Vec<u8>,
    activated: bool,
}

/// A registrar speaking the Keylime protocol: MakeCredential for the posted AK under the
/// posted EK, then a check of the auth_tag.
async fn registrar(log: Arc<Mutex<RegistrarLog>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (s, _) = listener.accept().await.unwrap();
            let log = log.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let method = req.method().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let (code, v) = registrar_answer(&log, method.as_str(), &path, &body);
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(code)
                                    .body(Full::new(Bytes::from(v.to_string())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

fn registrar_answer(
    log: &Mutex<RegistrarLog>,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, Value) {
    let b64 = base64::engine::general_purpose::STANDARD;
    match (method, path) {
        ("GET", "/version") => (
            200,
            json!({"code":200,"status":"Success","results":{"current_version":"2.6","supported_versions":["1.0","2.0","2.1","2.2","2.3","2.4","2.5","2.6","3.0"]}}),
        ),
        ("POST", p) if p == format!("/v2.6/agents/{UUID}") => {
            let v: Value = serde_json::from_slice(body).unwrap();
            let ek = b64.decode(v["ek_tpm"].as_str().unwrap()).unwrap();
            let ak = b64.decode(v["aik_tpm"].as_str().unwrap()).unwrap();
            let ak_pub = Public::parse_tpm2b(&ak).unwrap();
            let mut name = [0u8; 66];
            let n = ak_pub.name().unwrap().to_bytes(&mut name);
            let secret: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(7)).collect();
            let blob = make_credential_rsa(
                &Public::parse_tpm2b(&ek).unwrap(),
                &name[..n],
                &secret,
                &[0x11; 32],
                &[0x22; 32],
            )
            .unwrap()
            .to_blob();
            let mut l = log.lock().unwrap();
            l.registered = Some(v);
            l.secret = secret;
            (
                200,
                json!({"code":200,"status":"Success","results":{"blob": b64.encode(blob)}}),
            )
        }
        ("PUT", p) if p == format!("/v2.6/agents/{UUID}") => {
            let v: Value = serde_json::from_slice(body).unwrap();
            let mut l = log.lock().unwrap();
            let key = b64.encode(&l.secret);
            let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA384, key.as_bytes());
            let expected = hex::encode(ring::hmac::sign(&k, UUID.as_bytes()).as_ref());
            if v["auth_tag"].as_str() == Some(expected.as_str()) {
                l.activated = true;
                (200, json!({"code":200,"status":"Success","results":{}}))
            } else {
                (
                    400,
                    json!({"code":400,"status":"auth_tag mismatch","results":{}}),
                )
            }
        }
        _ => (404, json!({"code":404,"status":"not found","results":{}})),
    }
}

fn wait_port(port: u16, secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("agent did not listen on {port} within {secs}s");
}

/// PCR values of a Keylime quote's third part.
fn pcrs_of(q: &KeylimeQuote) -> PcrSet {
    let mut set = PcrSet::new();
    parse_tpm2_tools_pcrs(&q.pcrs, &mut set).unwrap();
    set
}

#[test]
fn agent_enrolls_and_serves_keylime_quotes_over_mutual_tls() {
    if !have(&["swtpm"]) {
        return;
    }
    let tpm = Swtpm::start();
    // The AK is a primary key of the endorsement hierarchy: the test makes the same key the
    // agent will, to verify its quotes.
    let ak_public = {
        let mut s = tpm.session();
        let ak = s
            .create_ak(AkTemplate::Rsa2048, Hierarchy::Endorsement)
            .unwrap();
        s.flush(ak.handle).unwrap();
        ak.public
    };
    let dir = TempDir::new("agent");
    let (client_cert, client_key, ca_pem) = client_pki("verifier");
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    let ima = "10 0000000000000000000000000000000000000000 ima-ng sha256:aa boot_aggregate\n\
               10 1111111111111111111111111111111111111111 ima-ng sha256:bb /usr/bin/a\n\
               10 2222222222222222222222222222222222222222 ima-ng sha256:cc /usr/bin/b\n";
    std::fs::write(dir.path().join("ima.txt"), ima).unwrap();
    let firmware_log = b"firmware log bytes".to_vec();
    std::fs::write(dir.path().join("eventlog.bin"), &firmware_log).unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let log = Arc::new(Mutex::new(RegistrarLog::default()));
    let reg_port = rt.block_on(registrar(log.clone()));

    let port = free_port_pair();
    let cfg = AgentConfig {
        tpm: tpm.uri(),
        listen: format!("127.0.0.1:{port}"),
        uuid: Some(UUID.to_string()),
        registrar: format!("http://127.0.0.1:{reg_port}"),
        state_dir: dir.path().join("state"),
        client_ca: Some(dir.path().join("ca.pem")),
        eventlog: dir.path().join("eventlog.bin").display().to_string(),
        ima_log: dir.path().join("ima.txt").display().to_string(),
        ..AgentConfig::default()
    };
    std::thread::spawn(move || {
        if let Err(e) = trustpool::agent::run(cfg) {
            eprintln!("agent stopped: {e:#}");
        }
    });
    wait_port(port, 60);

    // Enrollment: the registrar saw the EK, the AK (the test's), the certificate, and the
    // auth_tag proved the TPM opened the credential.
    let registered = {
        let l = log.lock().unwrap();
        assert!(l.activated, "the agent did not activate");
        l.registered.clone().unwrap()
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        b64.decode(registered["aik_tpm"].as_str().unwrap()).unwrap(),
        ak_public
    );
    assert_eq!(registered["ip"], "127.0.0.1");
    assert_eq!(registered["port"], port);
    // swtpm_setup made an EK certificate (issued by swtpm-localca): it is sent, DER in base64.
    let ekcert = b64.decode(registered["ekcert"].as_str().unwrap()).unwrap();
    assert_eq!(&ekcert[..2], &[0x30, 0x82]);
    let agent_cert = registered["mtls_cert"].as_str().unwrap().to_string();
    assert!(agent_cert.starts_with("-----BEGIN CERTIFICATE-----"));

    let addr = format!("127.0.0.1:{port}");
    let client = AgentClient::new(
        &addr,
        &agent_cert,
        &client_cert,
        &client_key,
        Duration::from_secs(30),
    )
    .unwrap();
    let ak_pub = Public::parse_tpm2b(&ak_public).unwrap();
    let ak = AttestationKey::from_public(ak_pub).unwrap();

    rt.block_on(async {
        let (code, v) = client.get("/version").await.unwrap();
        assert_eq!(code, 200);
        assert_eq!(v["results"]["supported_version"], "2.6");

        // An integrity quote of PCRs 0 and 10, with the transport key.
        let (code, v) = client
            .get("/v2.6/quotes/integrity?nonce=abcDEF0123456789xyz0&mask=0x401&partial=0&ima_ml_entry=1")
            .await
            .unwrap();
        assert_eq!(code, 200, "{v}");
        let r = &v["results"];
        assert_eq!(r["hash_alg"], "sha256");
        assert_eq!(r["enc_alg"], "rsa2048");
        assert_eq!(r["sign_alg"], "rsassa");
        assert_eq!(r["ima_measurement_list_entry"], 1);
        assert_eq!(
            r["ima_measurement_list"].as_str().unwrap(),
            ima.split_inclusive('\n').skip(1).collect::<String>()
        );
        assert_eq!(b64.decode(r["mb_measurement_list"].as_str().unwrap()).unwrap(), firmware_log);
        let pubkey = r["pubkey"].as_str().unwrap().to_string();
        assert!(pubkey.starts_with("-----BEGIN PUBLIC KEY-----"));

        let q = KeylimeQuote::parse(r["quote"].as_str().unwrap()).unwrap();
        let verified = Quote::verify(&q.attest, &q.signature, &ak, b"abcDEF0123456789xyz0").unwrap();
        let pcrs = pcrs_of(&q);
        verified.check_pcrs(&pcrs).unwrap();
        let selected: Vec<(u16, u8)> = verified.info.pcr_select.iter().collect();
        assert_eq!(selected, vec![(0x000b, 0), (0x000b, 10), (0x000b, 16)]);
        // PCR 16 = H(0…0 ‖ H(PEM)).
        let inner = HashAlg::Sha256.hash(pubkey.as_bytes()).unwrap();
        let mut buf = [0u8; 64];
        buf[32..].copy_from_slice(inner.as_bytes());
        let expected16 = HashAlg::Sha256.hash(&buf).unwrap();
        assert_eq!(pcrs.pcr(HashAlg::Sha256, 16).unwrap().as_bytes(), expected16.as_bytes());

        // partial=1: no transport key; no PCR 0: no firmware log; an entry past the end of the
        // IMA list restarts it at 0 (how Keylime's verifier sees a reboot).
        let (code, v) = client
            .get("/v2.1/quotes/integrity?nonce=n2&mask=0x400&partial=1&ima_ml_entry=9")
            .await
            .unwrap();
        assert_eq!(code, 200, "{v}");
        assert!(v["results"].get("pubkey").is_none());
        assert!(v["results"].get("mb_measurement_list").is_none());
        assert_eq!(v["results"]["enc_alg"], "rsa");
        assert_eq!(v["results"]["ima_measurement_list_entry"], 0);
        assert_eq!(v["results"]["ima_measurement_list"], ima);

        // The identity quote carries the key and PCR 16 only.
        let (code, v) = client.get("/v2.6/quotes/identity?nonce=ident1").await.unwrap();
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["results"]["pubkey"].as_str().unwrap(), pubkey);
        let q = KeylimeQuote::parse(v["results"]["quote"].as_str().unwrap()).unwrap();
        let verified = Quote::verify(&q.attest, &q.signature, &ak, b"ident1").unwrap();
        verified.check_pcrs(&pcrs_of(&q)).unwrap();
        assert_eq!(verified.info.pcr_select.iter().collect::<Vec<_>>(), vec![(0x000b, 16)]);

        let (code, v) = client.get("/v2.6/agent/info").await.unwrap();
        assert_eq!(code, 200);
        assert_eq!(v["results"]["agent_uuid"], UUID);
        assert_eq!(v["results"]["tpm_sign_alg"], "rsassa");

        // Bad input: 400s that say what was wrong.
        for (path, code, status) in [
            ("/v3.0/quotes/integrity?nonce=a&mask=0x1", 400, "API version not supported"),
            ("/v2.6/quotes/integrity?nonce=a-b&mask=0x1", 400, "nonce must be letters and digits only"),
            ("/v2.6/quotes/integrity?nonce=abc&mask=0x1000000", 400, "selects PCRs above 23"),
            ("/v2.6/quotes/identity", 400, "missing query parameter 'nonce'"),
            ("/v2.6/nothing", 404, "no such path"),
        ] {
            let (c, v) = client.get(path).await.unwrap();
            assert_eq!(c, code, "{path}: {v}");
            assert!(v["status"].as_str().unwrap().contains(status), "{path}: {v}");
            assert_eq!(v["results"], json!({}));
        }
        let long = format!("/v2.6/quotes/identity?nonce={}", "a".repeat(65));
        assert_eq!(client.get(&long).await.unwrap().0, 400);
        let (c, _) = client
            .request("POST", "/v2.6/notifications/revocation", Some(&json!({"type":"revocation"})))
            .await
            .unwrap();
        assert_eq!(c, 200);

        // Mutual TLS: a client certificate from another CA is refused.
        let (other_cert, other_key, _) = client_pki("stranger");
        let stranger =
            AgentClient::new(&addr, &agent_cert, &other_cert, &other_key, Duration::from_secs(10)).unwrap();
        assert!(stranger.get("/version").await.is_err());
        // Still serving.
        assert_eq!(client.get("/version").await.unwrap().0, 200);
    });
}

/// The TPM does one command at a time: with no queue, requests that arrive while a quote is
/// being made are refused at once with 503 and a retry hint, and the agent keeps serving.
#[test]
fn a_busy_tpm_answers_503_with_retry_after() {
    if !have(&["swtpm"]) {
        return;
    }
    let tpm = Swtpm::start();
    let dir = TempDir::new("agent-busy");
    let port = free_port_pair();
    let cfg = AgentConfig {
        tpm: tpm.uri(),
        listen: format!("127.0.0.1:{port}"),
        state_dir: dir.path().join("state"),
        insecure_http: true,
        eventlog: String::new(),
        ima_log: String::new(),
        queue: 0,
        ..AgentConfig::default()
    };
    std::thread::spawn(move || {
        if let Err(e) = trustpool::agent::run(cfg) {
            eprintln!("agent stopped: {e:#}");
        }
    });
    wait_port(port, 60);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let addr = format!("127.0.0.1:{port}");
    let codes: Vec<u16> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let c = AgentClient::insecure(&addr, Duration::from_secs(30));
            tasks.push(tokio::spawn(async move {
                let (code, v) = c
                    .get(&format!(
                        "/v2.6/quotes/integrity?nonce=busy{i}&mask=0xff&partial=1"
                    ))
                    .await
                    .unwrap();
                if code == 503 {
                    assert!(v["status"].as_str().unwrap().contains("retry later"), "{v}");
                }
                code
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes
    });
    assert!(codes.iter().all(|c| *c == 200 || *c == 503), "{codes:?}");
    assert!(codes.contains(&503), "no request was refused: {codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    // And it still serves.
    let (code, _) = rt
        .block_on(
            AgentClient::insecure(&addr, Duration::from_secs(30))
                .get("/v2.6/quotes/identity?nonce=after"),
        )
        .unwrap();
    assert_eq!(code, 200);
}
