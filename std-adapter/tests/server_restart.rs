//! `trustpool server --config FILE` as a process, killed with SIGKILL and started again on the
//! same SQLite database: a trustpool agent on swtpm enrolls through the registrar and is
//! polled, another host gets a verdict written straight into the database, the policy goes to
//! version 2; after the kill and restart every host, the policy's version, every verdict (by id
//! and content) and the audit trail are still there, PollHosts answers from them at once, the
//! restarted server polls the enrolled agent again with the stored enrollment (new verdicts
//! under policy version 2), and the next policy is version 3.
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
use trustpool::server::store::{self, NewVerdict, PollUpdate, Store, TrustLevel};

mod swtpm;
use swtpm::*;

const NOVA: &str = "/OpenAttestationWebServices/V1.0/PollHosts";
const GOOD: (&str, &str) = ("compute-good", "cccccccc-0000-4000-8000-000000000001");
const MANUAL: (&str, &str) = ("compute-manual", "cccccccc-0000-4000-8000-000000000002");

struct Api {
    rt: tokio::runtime::Runtime,
    addr: String,
    cert: String,
    token: String,
}

impl Api {
    fn mgmt(&self) -> AgentClient {
        AgentClient::management(&self.addr, &self.cert, &self.token, Duration::from_secs(30))
            .unwrap()
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.rt
            .block_on(self.mgmt().request(method, path, body.as_ref()))
            .unwrap()
    }

    fn put_policy(&self, text: &str) -> i64 {
        let (c, v) = self
            .rt
            .block_on(self.mgmt().request_raw(
                "PUT",
                "/v1/groups/default/policy",
                text.to_string().into(),
            ))
            .unwrap();
        assert_eq!(c, 200, "{v}");
        v["version"].as_i64().unwrap()
    }

    fn levels(&self) -> Vec<String> {
        let c = AgentClient::management(&self.addr, &self.cert, "-", Duration::from_secs(30))
            .unwrap()
            .with_header("x-auth-blob", Some("blob".into()));
        let body = format!(
            r#"{{"count": 3, "hosts": ["{}", "{}", "compute-none"]}}"#,
            GOOD.0, MANUAL.0
        );
        let (code, v) = self
            .rt
            .block_on(c.request_raw("POST", NOVA, body.into()))
            .unwrap();
        assert_eq!(code, 200, "{v}");
        v["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["trust_lvl"].as_str().unwrap().to_string())
            .collect()
    }

    fn history(&self, name: &str, n: usize) -> Vec<Value> {
        let (c, v) = self.call(
            "GET",
            &format!("/v1/hosts/{name}/results?history={n}"),
            None,
        );
        assert_eq!(c, 200, "{v}");
        v["verdicts"].as_array().unwrap().clone()
    }
}

#[test]
fn server_survives_sigkill_and_restart() {
    if !have(&["swtpm"]) {
        return;
    }
    let dir = TempDir::new("server-restart");
    let (port, reg_port, agent_port) = (free_port(), free_port(), free_port());
    let sdir = dir.path().join("server");
    let cfg = ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        registrar_listen: format!("127.0.0.1:{reg_port}"),
        state_dir: sdir.clone(),
        poll_interval_secs: 1,
        agent_timeout_ms: 3000,
        max_backoff_secs: 2,
        lease_secs: 3,
        accept_unsigned_eks: true,
        auth_blobs: vec!["blob".into()],
        replica: Some("restart-test".into()),
        ..ServerConfig::default()
    };
    let db = cfg.database_url();
    assert!(db.starts_with("sqlite://"), "{db}");
    let cfg_file = dir.path().join("server.toml");
    std::fs::write(&cfg_file, toml::to_string(&cfg).unwrap()).unwrap();
    let log = dir.path().join("server.log");

    let mut server = start_server(&cfg_file, &log, port);
    let api = Api {
        rt: tokio::runtime::Runtime::new().unwrap(),
        addr: format!("127.0.0.1:{port}"),
        cert: std::fs::read_to_string(sdir.join("server-cert.pem")).unwrap(),
        token: std::fs::read_to_string(sdir.join("api-token"))
            .unwrap()
            .trim()
            .to_string(),
    };

    assert_eq!(api.put_policy(FRESH_SWTPM_POLICY), 1);
    assert_eq!(
        api.put_policy(&FRESH_SWTPM_POLICY.replace("swtpm fresh", "swtpm fresh v2")),
        2
    );
    for ((name, uuid), p) in [(GOOD, agent_port), (MANUAL, 9)] {
        let (c, v) = api.call(
            "POST",
            "/v1/hosts",
            Some(json!({"name": name, "uuid": uuid, "ip": "127.0.0.1", "port": p})),
        );
        assert_eq!(c, 201, "{v}");
    }
    // compute-manual never enrolls: its verdict goes straight into the database.
    api.rt.block_on(async {
        let store = Store::open(&db).await.unwrap();
        let now = store::now_ms();
        store
            .record_verdict(
                &NewVerdict {
                    host: MANUAL.0.into(),
                    time: now,
                    trust: TrustLevel::Untrusted,
                    findings: json!([{"pcr": 7, "why": "written by the test"}]),
                    whitelist_digest: "00".repeat(32),
                    policy_version: Some(2),
                    nonce: "22".repeat(20),
                    counters: None,
                },
                &PollUpdate {
                    next_due: now + 3_600_000,
                    ..PollUpdate::default()
                },
            )
            .await
            .unwrap();
    });

    let tpm = Swtpm::start();
    let _agent = start_agent(
        dir.path(),
        &tpm,
        GOOD.1,
        agent_port,
        reg_port,
        &sdir.join("agent-ca.pem"),
    );
    // At least two polls of the agent before the kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(api.levels() == ["trusted", "untrusted", "unknown"]
        && api.history(GOOD.0, 10).len() >= 2)
    {
        assert!(
            Instant::now() < deadline,
            "no verdicts before the kill: {:?}\n{}\n{}",
            api.levels(),
            serde_json::to_string_pretty(&api.history(GOOD.0, 3)).unwrap_or_default(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let (c, hosts_before) = api.call("GET", "/v1/hosts", None);
    assert_eq!(c, 200);
    let good_before = api.history(GOOD.0, 10);
    let manual_before = api.history(MANUAL.0, 10);
    assert_eq!(manual_before.len(), 1);
    assert!(good_before
        .iter()
        .all(|v| v["trust"] == "trusted" && v["policy_version"] == 2));
    let (_, audit_before) = api.call("GET", "/v1/audit", None);

    // SIGKILL: no shutdown of any kind.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    let t = Instant::now();
    let _server = start_server(&cfg_file, &log, port);
    eprintln!("restarted in {:?}", t.elapsed());

    // PollHosts answers from the stored verdicts at once.
    assert_eq!(api.levels(), ["trusted", "untrusted", "unknown"]);
    let (c, hosts_after) = api.call("GET", "/v1/hosts", None);
    assert_eq!(c, 200);
    assert_eq!(hosts_after, hosts_before);
    let good_after = api.history(GOOD.0, 1000);
    for v in &good_before {
        assert!(good_after.contains(v), "verdict {v} lost:\n{good_after:?}");
    }
    assert_eq!(api.history(MANUAL.0, 10), manual_before);
    let (_, audit_after) = api.call("GET", "/v1/audit", None);
    for a in audit_before["audit"].as_array().unwrap() {
        assert!(
            audit_after["audit"].as_array().unwrap().contains(a),
            "audit record {a} lost"
        );
    }

    // The restarted server polls the agent again with the stored enrollment (after the killed
    // replica's lease runs out), under policy version 2.
    let newest = good_before[0]["id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = api.history(GOOD.0, 1);
        if h[0]["id"].as_i64().unwrap() > newest {
            assert_eq!(h[0]["trust"], "trusted", "{h:?}");
            assert_eq!(h[0]["policy_version"], 2, "{h:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new poll after the restart\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(api.put_policy(FRESH_SWTPM_POLICY), 3);
}
