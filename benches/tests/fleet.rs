//! The simulated fleet answers as a real agent would: quotes verify against the manifest's AK,
//! PCR 16 binds the pubkey, the event log replays to the quoted PCRs (except the bad PCR of a
//! bad host), and the clock advances. Also prints how many quotes/s one client gets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use trustpool::agent::client::AgentClient;
use trustpool::files::KeylimeQuote;
use trustpool_benches::fleet::{tls::pinned_client_config, Fleet, FleetOptions, Manifest};
use trustpool_core::eventlog::{EventLog, Replay, ALL_PCRS};
use trustpool_core::pcr::parse_tpm2_tools_pcrs;
use trustpool_core::{Attest, AttestationKey, HashAlg, PcrSet, PcrValues, Public, Quote};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A CA and a client certificate it issued: (CA PEM, client cert PEM, client key PEM).
fn client_pki(cn: &str) -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{cn} CA"));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

struct Checked {
    results: Value,
    clock: u64,
    pcrs: PcrSet,
}

/// Fetch and verify a quote: signature with the manifest's AK, nonce, PCR digest, PCR 16.
async fn checked_quote(
    client: &AgentClient,
    manifest: &Manifest,
    host: usize,
    path: &str,
    nonce: &str,
) -> Checked {
    let (code, v) = client.get(path).await.unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "Success");
    let results = v["results"].clone();
    assert_eq!(results["hash_alg"], "sha256");
    assert_eq!(results["sign_alg"], "ecdsa");
    let q = KeylimeQuote::parse(results["quote"].as_str().unwrap()).unwrap();
    let aik = B64.decode(&manifest.hosts[host].aik_tpm).unwrap();
    let public = Public::parse_tpm2b(&aik).unwrap();
    let ak = AttestationKey::from_public(public).unwrap();
    let verified = Quote::verify(&q.attest, &q.signature, &ak, nonce.as_bytes()).unwrap();
    let mut pcrs = PcrSet::new();
    parse_tpm2_tools_pcrs(&q.pcrs, &mut pcrs).unwrap();
    verified.check_pcrs(&pcrs).unwrap();
    // PCR 16 = H(0^32 || H(pubkey)), with the manifest's pubkey (partial=1 sends none).
    let pem = manifest.transport_pubkey_pem.as_str();
    if let Some(sent) = results["pubkey"].as_str() {
        assert_eq!(sent, pem);
    }
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(&[0u8; 32]);
    h.update(ring::digest::digest(&ring::digest::SHA256, pem.as_bytes()).as_ref());
    assert_eq!(
        pcrs.pcr(HashAlg::Sha256, 16).unwrap().as_bytes(),
        h.finish().as_ref()
    );
    let attest = Attest::parse(&q.attest).unwrap();
    assert!(attest.clock_info.safe);
    Checked {
        results,
        clock: attest.clock_info.clock,
        pcrs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_answers_like_an_agent() {
    let (ca, cert, key) = client_pki("verifier");
    let opts = FleetOptions {
        client_ca_pem: Some(ca),
        bad_fraction: 0.34,
        seed: "test-fleet".into(),
        ..FleetOptions::default()
    };
    let fleet = Fleet::start(3, 0, opts.clone()).await.unwrap();
    let manifest = fleet.manifest().clone();
    assert_eq!(manifest.hosts.len(), 3);
    let expected: Vec<&str> = manifest.hosts.iter().map(|h| h.expected.as_str()).collect();
    assert_eq!(expected, ["good", "good", "bad"]);
    assert_eq!(manifest.hosts[0].name, "host-00001");
    assert_eq!(manifest.hosts[2].bad_pcr, Some(7));
    // The manifest round-trips through JSON, and each EK parses as an RSA-2048 key.
    let json = serde_json::to_string(&manifest).unwrap();
    assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), manifest);
    for h in &manifest.hosts {
        let ek = B64.decode(&h.ek_tpm).unwrap();
        let ek = Public::parse_tpm2b(&ek).unwrap();
        assert!(matches!(
            ek.key(),
            Some(trustpool_core::PublicKey::Rsa { .. })
        ));
    }

    for (i, mh) in manifest.hosts.iter().enumerate() {
        let addr = fleet.addr(i).unwrap().to_string();
        assert_eq!(addr, format!("{}:{}", mh.ip, mh.port));
        let client =
            AgentClient::new(&addr, &mh.mtls_cert, &cert, &key, Duration::from_secs(10)).unwrap();
        let (code, v) = client.get("/version").await.unwrap();
        assert_eq!(code, 200);
        assert_eq!(v["results"]["supported_version"], "2.6");

        let nonce = "AbCdEf0123456789wxyz";
        let c = checked_quote(
            &client,
            &manifest,
            i,
            &format!("/v2.6/quotes/integrity?nonce={nonce}&mask=0xff&partial=0&ima_ml_entry=0"),
            nonce,
        )
        .await;
        assert_eq!(c.results["enc_alg"], "rsa2048");
        assert!(c.results["boottime"].is_u64());
        assert!(c.results.get("ima_measurement_list").is_none());
        // The event log replays to the quoted PCRs 0-7, except a bad host's PCR 7.
        let log = B64
            .decode(c.results["mb_measurement_list"].as_str().unwrap())
            .unwrap();
        let log = EventLog::parse(&log).unwrap();
        let replay = Replay::log(&log, ALL_PCRS);
        for pcr in 0..8u8 {
            let quoted = c.pcrs.pcr(HashAlg::Sha256, pcr).unwrap();
            let replayed = replay.pcr(HashAlg::Sha256, pcr).unwrap();
            let bad = mh.expected == "bad" && pcr == 7;
            assert_eq!(quoted == replayed, !bad, "host {i} PCR {pcr}");
            let golden = if mh.expected == "good" {
                &manifest.good_pcrs_sha256
            } else {
                &manifest.bad_pcrs_sha256
            };
            assert_eq!(golden[&pcr.to_string()], hex::encode(quoted.as_bytes()));
        }

        // The clock advances; partial=1 leaves the pubkey out; no PCR 0, no event log; an
        // older API version says rsa.
        let c2 = checked_quote(
            &client,
            &manifest,
            i,
            "/v2.4/quotes/integrity?nonce=n2&mask=0x400&partial=1&ima_ml_entry=0",
            "n2",
        )
        .await;
        assert!(c2.clock > c.clock, "{} then {}", c.clock, c2.clock);
        assert!(c2.results.get("pubkey").is_none());
        assert!(c2.results.get("mb_measurement_list").is_none());
        assert_eq!(c2.results["enc_alg"], "rsa");

        // Identity quote: PCR 16 only, pubkey included.
        let c3 = checked_quote(
            &client,
            &manifest,
            i,
            "/v2.6/quotes/identity?nonce=id0",
            "id0",
        )
        .await;
        assert!(c3.results["pubkey"].is_string());
        assert!(c3.clock > c2.clock);
        assert!(c3.pcrs.pcr(HashAlg::Sha256, 0).is_none());

        // Errors are the real agent's.
        let (code, v) = client
            .get("/v3.0/quotes/integrity?nonce=a&mask=1")
            .await
            .unwrap();
        assert_eq!(code, 400);
        assert!(v["status"]
            .as_str()
            .unwrap()
            .contains("API version not supported"));
    }

    // A client certificate from another CA is refused.
    let (_, other_cert, other_key) = client_pki("stranger");
    let stranger = AgentClient::new(
        &fleet.addr(0).unwrap().to_string(),
        fleet.server_cert_pem(),
        &other_cert,
        &other_key,
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(stranger.get("/version").await.is_err());

    // Same seed, same manifest (apart from ports).
    let again = Fleet::start(3, 0, opts).await.unwrap();
    let mut m2 = again.manifest().clone();
    for (a, b) in m2.hosts.iter_mut().zip(&manifest.hosts) {
        a.port = b.port;
    }
    assert_eq!(m2, manifest);
    let s = fleet.stats();
    assert!(s.quotes >= 9, "{s:?}");
}

/// Quotes per second to one client over 32 kept-alive mTLS connections (and, for
/// comparison, with a new connection per request as `AgentClient` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_to_one_client() {
    let (ca, cert, key) = client_pki("verifier");
    let fleet = Fleet::start(
        1,
        0,
        FleetOptions {
            client_ca_pem: Some(ca),
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let addr = fleet.addr(0).unwrap();
    let config = Arc::new(pinned_client_config(fleet.server_cert_pem(), &cert, &key).unwrap());
    let connector = tokio_rustls::TlsConnector::from(config);
    let run_for = Duration::from_secs(2);
    let path =
        "/v2.6/quotes/integrity?nonce=AbCdEf0123456789wxyz&mask=0x80ff&partial=1&ima_ml_entry=0";

    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let connector = connector.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let name = pki_types::ServerName::try_from("agent").unwrap();
            let tls = connector.connect(name, tcp).await.unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            while t0.elapsed() < run_for {
                let req = hyper::Request::get(path)
                    .header(hyper::header::HOST, "agent")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = sender.send_request(req).await.unwrap();
                assert_eq!(resp.status(), 200);
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert!(body.len() > 1000);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let kept = done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();

    let client = AgentClient::new(
        &addr.to_string(),
        fleet.server_cert_pem(),
        &cert,
        &key,
        Duration::from_secs(10),
    )
    .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let client = client.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while t0.elapsed() < run_for {
                let (code, _) = client.get(path).await.unwrap();
                assert_eq!(code, 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let fresh = done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "fleet throughput to one client, 32 concurrent: {kept:.0} quotes/s on kept-alive mTLS \
         connections, {fresh:.0} quotes/s with a new mTLS connection per request (client and \
         fleet share the cores; {} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert_eq!(fleet.stats().errors, 0);
}

/// With `ima`, the IMA log replays to the quoted PCR 10 and its boot_aggregate matches the
/// quoted PCRs 0-9; `ima_ml_entry` slices the log. Plain HTTP here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ima_log_matches_pcr_10() {
    use trustpool_core::ima::replay::{check_boot_aggregate, BankMode, Replay as ImaReplay};
    use trustpool_core::ima::AsciiLog;

    let fleet = Fleet::start(
        2,
        0,
        FleetOptions {
            insecure_http: true,
            ima: true,
            bad_fraction: 0.5,
            bad_pcr: 4,
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let manifest = fleet.manifest().clone();
    assert!(!manifest.tls);
    for (i, mh) in manifest.hosts.iter().enumerate() {
        let client =
            AgentClient::insecure(&fleet.addr(i).unwrap().to_string(), Duration::from_secs(10));
        let c = checked_quote(
            &client,
            &manifest,
            i,
            "/v2.6/quotes/integrity?nonce=ima1&mask=0x7ff&partial=0&ima_ml_entry=0",
            "ima1",
        )
        .await;
        assert_eq!(c.results["ima_measurement_list_entry"], 0);
        let text = c.results["ima_measurement_list"].as_str().unwrap();
        assert_eq!(text.lines().count(), 5);
        let mut replay = ImaReplay::with_banks(
            HashAlg::Sha1,
            10,
            &[(HashAlg::Sha256, BankMode::TemplateHash)],
        )
        .unwrap();
        let bank = c.pcrs.bank(HashAlg::Sha256).unwrap();
        for (n, e) in AsciiLog::new(text.as_bytes()).enumerate() {
            let e = e.unwrap();
            if n == 0 {
                check_boot_aggregate(&e, bank).unwrap();
            }
            let step = replay.feed(&e).unwrap();
            assert_ne!(step.template_hash_ok, Some(false));
        }
        assert_eq!(replay.matches(&c.pcrs), Some(true), "host {i}");
        // A bad host's PCR 4 is not what the event log says.
        let log = B64
            .decode(c.results["mb_measurement_list"].as_str().unwrap())
            .unwrap();
        let boot = Replay::log(&EventLog::parse(&log).unwrap(), ALL_PCRS);
        assert_eq!(
            boot.pcr(HashAlg::Sha256, 4) == c.pcrs.pcr(HashAlg::Sha256, 4),
            mh.expected == "good"
        );
        let (code, v) = client
            .get("/v2.6/quotes/integrity?nonce=ima2&mask=0x400&partial=1&ima_ml_entry=3")
            .await
            .unwrap();
        assert_eq!(code, 200);
        assert_eq!(v["results"]["ima_measurement_list_entry"], 3);
        assert_eq!(
            v["results"]["ima_measurement_list"]
                .as_str()
                .unwrap()
                .lines()
                .count(),
            2
        );
    }
}
