//! The key provider end to end on loopback: `trustpool server` with a master key, three
//! trustpool agents on their own swtpm (a trusted host in the key's group, an untrusted host
//! in it, a trusted host in another group). `trustpool agent fetch-key` gets the data key on
//! the trusted host only — wrapped to a binding key in its TPM, certified by its AK, and
//! unwrapped there; every other case is a 403 with its reason: untrusted, group outside the
//! policy, stale verdict, revoked key, a certification by another AK. The binding key does
//! not load in another TPM. Without a master key the key service refuses with a clear error
//! while PollHosts keeps working.
//!
//! Skipped with a message when `swtpm` is not installed, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use trustpool::agent::client::AgentClient;
use trustpool::server::config::ServerConfig;
use trustpool_core::tpm::{AkTemplate, Hierarchy};
use trustpool_core::{Digest, HashAlg};

mod swtpm;
use swtpm::*;

/// `trustpool agent fetch-key`: (exit code, key bytes, stderr).
fn fetch_key(cfg: &Path, addr: &str, cert: &Path, name: &str) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trustpool"))
        .args([
            "agent",
            "fetch-key",
            name,
            "--server",
            addr,
            "--server-cert",
        ])
        .arg(cert)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn server(dir: &Path, master: bool) -> (u16, u16) {
    let (port, reg) = (free_port(), free_port());
    std::fs::create_dir_all(dir).unwrap();
    let key_file = dir.join("master.key");
    std::fs::write(
        &key_file,
        "4242424242424242424242424242424242424242424242424242424242424242\n",
    )
    .unwrap();
    let cfg = ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        registrar_listen: format!("127.0.0.1:{reg}"),
        state_dir: dir.to_path_buf(),
        poll_interval_secs: 3600,
        agent_timeout_ms: 5000,
        accept_unsigned_eks: true,
        replica: Some("keys".into()),
        master_key_file: master.then_some(key_file),
        ..ServerConfig::default()
    };
    std::thread::spawn(move || {
        if let Err(e) = trustpool::server::run::run(cfg) {
            eprintln!("server stopped: {e:#}");
        }
    });
    wait_listening(port);
    (port, reg)
}

#[test]
fn keys_go_only_to_trusted_hosts_and_only_into_their_tpm() {
    if !have(&["swtpm"]) {
        return;
    }
    let dir = TempDir::new("keys");
    let sdir = dir.path().join("server");
    let (port, reg) = server(&sdir, true);
    let addr = format!("127.0.0.1:{port}");
    let cert_path = sdir.join("server-cert.pem");
    let cert = std::fs::read_to_string(&cert_path).unwrap();
    let token = std::fs::read_to_string(sdir.join("api-token")).unwrap();
    let api = AgentClient::management(&addr, &cert, token.trim(), Duration::from_secs(30)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let hosts = [
        (
            "vault-good",
            "bbbbbbbb-0000-4000-8000-000000000001",
            "secure",
        ),
        (
            "vault-bad",
            "bbbbbbbb-0000-4000-8000-000000000002",
            "secure",
        ),
        ("web-1", "bbbbbbbb-0000-4000-8000-000000000003", "other"),
    ];
    let ports: Vec<u16> = hosts.iter().map(|_| free_port()).collect();
    rt.block_on(async {
        for g in ["secure", "other"] {
            let (c, v) = api.request_raw("PUT", &format!("/v1/groups/{g}/policy"), FRESH_SWTPM_POLICY.into()).await.unwrap();
            assert_eq!(c, 200, "{v}");
        }
        for ((name, uuid, group), p) in hosts.iter().zip(&ports) {
            let (c, v) = api
                .request("POST", "/v1/hosts", Some(&json!({"name": name, "uuid": uuid, "ip": "127.0.0.1", "port": p, "group": group})))
                .await
                .unwrap();
            assert_eq!(c, 201, "{v}");
        }
        let (c, v) = api
            .request("POST", "/v1/keys", Some(&json!({"name": "disk-1", "groups": ["secure"], "max_age_secs": 3600})))
            .await
            .unwrap();
        assert_eq!(c, 201, "{v}");
    });

    let ca = sdir.join("agent-ca.pem");
    let tpms: Vec<Swtpm> = hosts.iter().map(|_| Swtpm::start()).collect();
    {
        // The bad host's PCR 7 holds something the whitelist does not know.
        let mut s = tpms[1].session();
        s.extend(
            7,
            &[Digest::from_slice(HashAlg::Sha256, &[0x5a; 32]).unwrap()],
        )
        .unwrap();
    }
    let cfgs: Vec<PathBuf> = hosts
        .iter()
        .zip(&ports)
        .zip(&tpms)
        .map(|(((_, uuid, _), p), t)| agent_config(dir.path(), t, uuid, *p, reg, &ca))
        .collect();
    let agents: Vec<Proc> = cfgs
        .iter()
        .zip(&ports)
        .map(|(c, p)| start_agent_config(c, &c.with_extension("log"), *p))
        .collect();
    // One poll each (the interval is an hour): trusted, untrusted, trusted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let levels: Vec<String> = rt.block_on(async {
            let mut out = vec![];
            for (name, _, _) in &hosts {
                let (_, v) = api.get(&format!("/v1/hosts/{name}")).await.unwrap();
                out.push(v["latest"]["trust"].as_str().unwrap_or("none").to_string());
            }
            out
        });
        if levels == ["trusted", "untrusted", "trusted"] {
            break;
        }
        assert!(Instant::now() < deadline, "levels stayed {levels:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The agents stop so that fetch-key has the (resource-manager-less) swtpm to itself.
    drop(agents);

    // The data key, as sealed in the database (for comparison only).
    let expected = rt.block_on(async {
        let store = trustpool::server::store::Store::open(&format!(
            "sqlite://{}",
            sdir.join("trustpool.db").display()
        ))
        .await
        .unwrap();
        let k = store.get_key("disk-1").await.unwrap().unwrap();
        let m = trustpool::server::keys::MasterKey::from_material(
            b"4242424242424242424242424242424242424242424242424242424242424242",
        )
        .unwrap();
        m.open("disk-1", &k.sealed).unwrap()
    });
    assert_eq!(expected.len(), 32);

    let (code, key, err) = fetch_key(&cfgs[0], &addr, &cert_path, "disk-1");
    assert_eq!(code, 0, "{err}");
    assert_eq!(key, expected, "the unwrapped key is the data key");
    // Again, with the binding key kept in the state directory.
    let (code, key2, err) = fetch_key(&cfgs[0], &addr, &cert_path, "disk-1");
    assert_eq!((code, key2), (0, expected.clone()), "{err}");

    let (code, _, err) = fetch_key(&cfgs[1], &addr, &cert_path, "disk-1");
    assert_eq!(code, 2);
    assert!(
        err.contains("403") && err.contains("latest verdict is untrusted"),
        "{err}"
    );
    let (code, _, err) = fetch_key(&cfgs[2], &addr, &cert_path, "disk-1");
    assert!(
        code == 2 && err.contains("host group other may not receive key disk-1"),
        "{err}"
    );
    let (code, _, err) = fetch_key(&cfgs[0], &addr, &cert_path, "disk-9");
    assert!(code == 2 && err.contains("no such key: disk-9"), "{err}");

    // The binding key cannot be loaded in another TPM: the wrapped key is useless elsewhere.
    // (A freshly made TPM: the harness's other swtpms share one template state, seeds included.)
    {
        let state = dir.path().join(hosts[0].1);
        let public = std::fs::read(state.join("binding-key.pub")).unwrap();
        let private = std::fs::read(state.join("binding-key.priv")).unwrap();
        let blank = Swtpm::start_blank();
        let mut other = blank.session();
        let e = other.load_binding_key(&public, &private).unwrap_err();
        assert!(e.to_string().contains("TPM_RC_INTEGRITY"), "{e}");
    }

    // A certification by another AK of the host's TPM (not the enrolled one): refused.
    {
        let state = dir.path().join(hosts[0].1);
        let agent_cert = std::fs::read_to_string(state.join("tls-cert.pem")).unwrap();
        let agent_key = std::fs::read_to_string(state.join("tls-key.pem")).unwrap();
        let c = AgentClient::new(
            &addr,
            &cert,
            &agent_cert,
            &agent_key,
            Duration::from_secs(30),
        )
        .unwrap();
        let (code, v) = rt
            .block_on(c.request("POST", "/v1/keys/disk-1/challenge", Some(&json!({}))))
            .unwrap();
        assert_eq!(code, 200, "{v}");
        let nonce = v["nonce"].as_str().unwrap().to_string();
        let mut s = tpms[0].session();
        s.flush_transient().unwrap();
        let other_ak = s
            .create_ak(AkTemplate::EccP256, Hierarchy::Endorsement)
            .unwrap();
        let bk = s.create_binding_key().unwrap();
        let (attest, sig) = s.certify(&bk, &other_ak, nonce.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = json!({"nonce": nonce, "key_public": b64.encode(&bk.public), "certify_attest": b64.encode(attest), "certify_signature": b64.encode(sig)});
        let (code, v) = rt
            .block_on(c.request("POST", "/v1/keys/disk-1/release", Some(&body)))
            .unwrap();
        assert_eq!(code, 403, "{v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with("certification refused"),
            "{v}"
        );
        s.flush(bk.handle).unwrap();
        s.flush(other_ak.handle).unwrap();
        // No client certificate at all: 401.
        let anon = AgentClient::management(&addr, &cert, "-", Duration::from_secs(10)).unwrap();
        let (code, _) = rt
            .block_on(anon.request("POST", "/v1/keys/disk-1/challenge", Some(&json!({}))))
            .unwrap();
        assert_eq!(code, 401);
    }

    // A stale verdict, then a revoked key.
    rt.block_on(async {
        let (c, _) = api
            .request(
                "PUT",
                "/v1/keys/disk-1/policy",
                Some(&json!({"groups": ["secure"], "max_age_secs": 0})),
            )
            .await
            .unwrap();
        assert_eq!(c, 200);
    });
    std::thread::sleep(Duration::from_millis(1100));
    let (code, _, err) = fetch_key(&cfgs[0], &addr, &cert_path, "disk-1");
    assert!(
        code == 2 && err.contains("s old, more than the key's 0 s"),
        "{err}"
    );
    rt.block_on(async {
        api.request(
            "PUT",
            "/v1/keys/disk-1/policy",
            Some(&json!({"groups": ["secure"], "max_age_secs": 3600})),
        )
        .await
        .unwrap();
        let (c, _) = api
            .request("POST", "/v1/keys/disk-1/revoke", None)
            .await
            .unwrap();
        assert_eq!(c, 200);
    });
    let (code, _, err) = fetch_key(&cfgs[0], &addr, &cert_path, "disk-1");
    assert!(code == 2 && err.contains("key disk-1 is revoked"), "{err}");

    // Every release and refusal is audited.
    rt.block_on(async {
        let (_, v) = api.get("/v1/audit").await.unwrap();
        let kinds: Vec<&str> = v["audit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "key-release").count(),
            2,
            "{kinds:?}"
        );
        assert!(
            kinds.iter().filter(|k| **k == "key-refused").count() >= 6,
            "{kinds:?}"
        );
    });
}

#[test]
fn without_a_master_key_the_key_service_refuses_and_the_rest_runs() {
    let dir = TempDir::new("nokeys");
    let (port, _) = server(dir.path(), false);
    let addr = format!("127.0.0.1:{port}");
    let cert = std::fs::read_to_string(dir.path().join("server-cert.pem")).unwrap();
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let api = AgentClient::management(&addr, &cert, token.trim(), Duration::from_secs(30)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (c, v): (u16, Value) = api
            .request(
                "POST",
                "/v1/keys",
                Some(&json!({"name": "k", "groups": ["g"]})),
            )
            .await
            .unwrap();
        assert_eq!(c, 503);
        assert_eq!(v["error"], "key service off: no master key");
        let (c, v) = api
            .request("POST", "/v1/keys/k/challenge", Some(&json!({})))
            .await
            .unwrap();
        assert_eq!(c, 503);
        assert!(v["error"]
            .as_str()
            .unwrap()
            .contains("the server has no master key"));
        let (c, v) = api
            .request_raw(
                "POST",
                "/AttestationService/resources/PollHosts",
                r#"{"hosts":["x"]}"#.into(),
            )
            .await
            .unwrap();
        assert_eq!(c, 200);
        assert_eq!(v["hosts"][0]["trust_lvl"], "unknown");
    });
}
