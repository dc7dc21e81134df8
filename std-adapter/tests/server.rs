//! `trustpool server` end to end on loopback: three trustpool agents on their own swtpm — a
//! good host, a host whose PCR 7 was extended after enrollment, a host whose agent was
//! stopped — enroll with the server's registrar (credential activation), are polled over
//! mutual TLS, and PollHosts answers `trusted`, `untrusted` (with a finding naming PCR 7)
//! and `timeout`, and `unknown` for a host it does not know, in request order, as Nova and
//! oVirt send it. The management API and the SQLite database are the real ones.
//!
//! Skipped with a message when `swtpm` is not installed, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trustpool::agent::client::AgentClient;
use trustpool::server::config::ServerConfig;
use trustpool_core::{Digest, HashAlg};

mod swtpm;
use swtpm::*;

#[test]
fn server_polls_agents_and_answers_poll_hosts() {
    if !have(&["swtpm"]) {
        return;
    }
    let dir = TempDir::new("server");
    let (port, reg_port) = (free_port(), free_port());
    let cfg = ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        registrar_listen: format!("127.0.0.1:{reg_port}"),
        state_dir: dir.path().join("server"),
        poll_interval_secs: 1,
        agent_timeout_ms: 3000,
        max_backoff_secs: 2,
        accept_unsigned_eks: true,
        auth_blobs: vec!["nova-blob".into()],
        replica: Some("test".into()),
        ..ServerConfig::default()
    };
    std::thread::spawn(move || {
        if let Err(e) = trustpool::server::run::run(cfg) {
            eprintln!("server stopped: {e:#}");
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sdir = dir.path().join("server");
    let cert = std::fs::read_to_string(sdir.join("server-cert.pem")).unwrap();
    let token = std::fs::read_to_string(sdir.join("api-token")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let api = AgentClient::management(&addr, &cert, token.trim(), Duration::from_secs(30)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let hosts = [
        ("compute-good", "aaaaaaaa-0000-4000-8000-000000000001"),
        ("compute-bad", "aaaaaaaa-0000-4000-8000-000000000002"),
        ("compute-down", "aaaaaaaa-0000-4000-8000-000000000003"),
    ];
    let ports: Vec<u16> = hosts.iter().map(|_| free_port()).collect();
    rt.block_on(async {
        let (c, v) = api
            .request_raw(
                "PUT",
                "/v1/groups/default/policy",
                FRESH_SWTPM_POLICY.into(),
            )
            .await
            .unwrap();
        assert_eq!(c, 200, "{v}");
        assert_eq!(v["version"], 1);
        for ((name, uuid), p) in hosts.iter().zip(&ports) {
            let (c, v) = api
                .request(
                    "POST",
                    "/v1/hosts",
                    Some(&json!({"name": name, "uuid": uuid, "ip": "127.0.0.1", "port": p})),
                )
                .await
                .unwrap();
            assert_eq!(c, 201, "{v}");
        }
        // Without the token: refused.
        let anon = AgentClient::management(&addr, &cert, "wrong", Duration::from_secs(5)).unwrap();
        assert_eq!(anon.get("/v1/hosts").await.unwrap().0, 401);
    });

    let ca = sdir.join("agent-ca.pem");
    let tpms: Vec<Swtpm> = hosts.iter().map(|_| Swtpm::start()).collect();
    let _good = start_agent(dir.path(), &tpms[0], hosts[0].1, ports[0], reg_port, &ca);
    // The bad host enrolls, then PCR 7 changes (its agent restarted, same keys).
    let first = start_agent(dir.path(), &tpms[1], hosts[1].1, ports[1], reg_port, &ca);
    drop(first);
    {
        let mut s = tpms[1].session();
        s.extend(
            7,
            &[Digest::from_slice(HashAlg::Sha256, &[0x5a; 32]).unwrap()],
        )
        .unwrap();
    }
    let _bad = start_agent(dir.path(), &tpms[1], hosts[1].1, ports[1], reg_port, &ca);
    let down = start_agent(dir.path(), &tpms[2], hosts[2].1, ports[2], reg_port, &ca);

    let poll = |body: &str, blob: Option<&str>, path: &str| -> (u16, Value) {
        rt.block_on(post(
            &addr,
            &cert,
            path,
            body.to_string(),
            blob.map(str::to_string),
        ))
    };
    // Wait until all three have verdicts: good trusted, bad untrusted; then stop the third.
    let nova =
        r#"{"count": 4, "hosts": ["compute-good", "compute-bad", "compute-down", "compute-new"]}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (c, v) = poll(
            nova,
            Some("nova-blob"),
            "/OpenAttestationWebServices/V1.0/PollHosts",
        );
        assert_eq!(c, 200);
        let lv: Vec<&str> = v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["trust_lvl"].as_str().unwrap())
            .collect();
        if lv == ["trusted", "untrusted", "trusted", "unknown"] {
            break;
        }
        assert!(Instant::now() < deadline, "levels stayed {lv:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(down);
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let (c, v) = poll(
            r#"{"hosts": ["compute-down", "compute-good", "compute-bad"]}"#,
            None,
            "//AttestationService/resources/PollHosts",
        );
        assert_eq!(c, 200);
        if v["hosts"][0]["trust_lvl"] == "timeout" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the stopped agent never timed out: {v}"
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let names: Vec<&str> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["compute-down", "compute-good", "compute-bad"]);
    assert_eq!(v["hosts"][1]["trust_lvl"], "trusted");
    assert!(v["hosts"][1]["vtime"].as_str().unwrap().ends_with('Z'));

    // Nova's path without the auth blob: 401; oVirt's empty list.
    assert_eq!(
        poll(nova, None, "/OpenAttestationWebServices/V1.0/PollHosts").0,
        401
    );
    assert_eq!(
        poll(
            r#"{"hosts":]}"#,
            None,
            "/AttestationService/resources/PollHosts"
        )
        .1,
        json!({"hosts": []})
    );

    // The bad host's verdict names PCR 7.
    rt.block_on(async {
        let (c, v) = api.get("/v1/hosts/compute-bad/results").await.unwrap();
        assert_eq!(c, 200);
        let findings = &v["verdicts"][0]["findings"];
        assert!(
            findings.as_array().unwrap().iter().any(|f| f["pcr"] == 7),
            "{findings}"
        );
        // Signed results (EAR) for relying parties, checked with the server's JWKS.
        let anon = AgentClient::management(&addr, &cert, "-", Duration::from_secs(30)).unwrap();
        let (c, jwks) = anon.get("/v1/jwks").await.unwrap();
        assert_eq!(c, 200);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        for (host, status) in [
            ("compute-good", "affirming"),
            ("compute-bad", "contraindicated"),
            ("compute-down", "none"),
        ] {
            let (c, v) = anon
                .get(&format!("/v1/hosts/{host}/result?nonce=rp0123456789"))
                .await
                .unwrap();
            assert_eq!(c, 200, "{v}");
            let claims =
                trustpool::server::ear::verify(v["token"].as_str().unwrap(), &jwks, now).unwrap();
            assert_eq!(claims["submods"][host]["ear.status"], status, "{claims}");
            assert_eq!(claims["eat_nonce"], "rp0123456789");
        }
        assert_eq!(anon.get("/v1/hosts/nobody/result").await.unwrap().0, 404);
        // Prometheus text: hosts per level (the stopped one is `timeout`), polls, failures.
        let (c, m) = anon.get_raw("/metrics").await.unwrap();
        assert_eq!(c, 200);
        let m = String::from_utf8(m.to_vec()).unwrap();
        for line in [
            "trustpool_hosts{trust_lvl=\"trusted\"} 1",
            "trustpool_hosts{trust_lvl=\"untrusted\"} 1",
            "trustpool_hosts{trust_lvl=\"timeout\"} 1",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} not in:\n{m}");
        }
        assert!(
            m.lines().any(
                |l| l.starts_with("trustpool_poll_failures_total{kind=\"connect\"} ")
                    && !l.ends_with(" 0")
            ),
            "{m}"
        );
        assert_eq!(
            anon.get_raw("/healthz").await.unwrap(),
            (200, bytes::Bytes::from_static(b"ok\n"))
        );
        let (_, m) = api.get("/v1/audit").await.unwrap();
        let kinds: Vec<&str> = m["audit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert!(
            kinds.contains(&"registration") && kinds.contains(&"verdict-change"),
            "{kinds:?}"
        );
    });
}

/// A PollHosts POST over HTTPS with the server's certificate pinned.
async fn post(
    addr: &str,
    cert: &str,
    path: &str,
    body: String,
    blob: Option<String>,
) -> (u16, Value) {
    let c = AgentClient::management(addr, cert, "-", Duration::from_secs(30))
        .unwrap()
        .with_header("x-auth-blob", blob);
    c.request_raw("POST", path, body.into()).await.unwrap()
}
