//! PollHosts as its real clients call it: `pollhosts_clients.py` (Python 3 standard library
//! only, run with /usr/bin/python3) speaks as OpenStack Nova's TrustedFilter and as oVirt
//! against a `trustpool server` on loopback, verifying the server's certificate by name
//! (`localhost`). Hosts are added through the management API; their verdicts are written
//! straight into the server's SQLite database (a trusted one, an untrusted one; a third host
//! has none, a fourth is unknown to the server). Also: a wrong or missing x-auth-blob is
//! refused with 401, malformed JSON answers `{"hosts": []}`, a body over 1 MiB gets 413, and
//! the server keeps answering afterwards.
//!
//! Skipped with a message when /usr/bin/python3 is missing, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use trustpool::agent::client::AgentClient;
use trustpool::server::config::ServerConfig;
use trustpool::server::store::{self, NewVerdict, PollUpdate, Store, TrustLevel};

mod swtpm;
use swtpm::*;

const PYTHON: &str = "/usr/bin/python3";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn nova_and_ovirt_clients_poll_hosts() {
    if !Path::new(PYTHON).exists() {
        assert!(!ci(), "{PYTHON} is missing and CI is set");
        eprintln!("skipping: {PYTHON} not installed");
        return;
    }
    let dir = TempDir::new("pollhosts-clients");
    let port = free_port();
    let sdir = dir.path().join("server");
    let cfg = ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        registrar_listen: String::new(),
        state_dir: sdir.clone(),
        auth_blobs: vec!["blob".into()],
        replica: Some("test".into()),
        ..ServerConfig::default()
    };
    let db = cfg.database_url();
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
    let cert = std::fs::read_to_string(sdir.join("server-cert.pem")).unwrap();
    let token = std::fs::read_to_string(sdir.join("api-token")).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let api = AgentClient::management(&addr, &cert, token.trim(), Duration::from_secs(30)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let hosts = [
        ("compute-1", "bbbbbbbb-0000-4000-8000-000000000001"),
        ("compute-2", "bbbbbbbb-0000-4000-8000-000000000002"),
        ("compute-3", "bbbbbbbb-0000-4000-8000-000000000003"),
    ];
    rt.block_on(async {
        for (i, (name, uuid)) in hosts.iter().enumerate() {
            let (c, v) = api
                .request(
                    "POST",
                    "/v1/hosts",
                    Some(&json!({"name": name, "uuid": uuid, "ip": "127.0.0.1", "port": 9000 + i})),
                )
                .await
                .unwrap();
            assert_eq!(c, 201, "{v}");
        }
        // The verdicts, as the poller would record them (these hosts never enroll, so the
        // poller leaves them alone).
        let store = Store::open(&db).await.unwrap();
        for (name, trust) in [
            ("compute-1", TrustLevel::Trusted),
            ("compute-2", TrustLevel::Untrusted),
        ] {
            let now = store::now_ms();
            store
                .record_verdict(
                    &NewVerdict {
                        host: name.into(),
                        time: now,
                        trust,
                        findings: json!([]),
                        whitelist_digest: "00".repeat(32),
                        policy_version: Some(1),
                        nonce: "11".repeat(20),
                        counters: None,
                    },
                    &PollUpdate {
                        next_due: now + 3_600_000,
                        ..PollUpdate::default()
                    },
                )
                .await
                .unwrap();
        }
    });

    let started = Instant::now();
    let out = Command::new(PYTHON)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/pollhosts_clients.py"
        ))
        .arg(port.to_string())
        .arg(sdir.join("server-cert.pem"))
        .arg("blob")
        .args([
            "compute-1=trusted",
            "compute-2=untrusted",
            "compute-3=unknown",
            "compute-elsewhere=unknown",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}python took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "the Python clients failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "ok   nova compute-1 trust_lvl=trusted passes=True",
        "ok   nova compute-2 trust_lvl=untrusted passes=False",
        "ok   nova compute-3 trust_lvl=unknown passes=False",
        "ok   nova wrong x-auth-blob -> 401",
        "ok   ovirt compute-1 trust_lvl=trusted trusted=True",
        "ok   ovirt empty list -> 200 []",
        "ok   oversized body -> 413",
        "all checks passed",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");

    // Still serving, also to the management API.
    rt.block_on(async {
        let (c, v) = api.get("/v1/hosts/compute-1/results").await.unwrap();
        assert_eq!(c, 200);
        assert_eq!(v["verdicts"][0]["trust"], "trusted", "{v}");
    });
}
