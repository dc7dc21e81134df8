//! The server's per-poll appraisal (`server::check::check_answer`) on real answers of a
//! trustpool agent on swtpm: consecutive quotes are trusted and their counters advance; an old
//! answer replayed for a new nonce is refused (nonce), the same quote seen twice is refused
//! (the TPM clock did not increase); after an orderly power cycle of the TPM (a reboot: resetCount
//! increases) the host is recognised as rebooted and stays trusted.
//!
//! Skipped with a message when `swtpm` is not installed, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::time::Duration;

use serde_json::Value;
use trustpool::agent::client::AgentClient;
use trustpool::oat::TrustLevel;
use trustpool::server::check::check_answer;
use trustpool::tpm::AnyTransport;
use trustpool_core::tpm::{AkTemplate, Hierarchy, StartupType};

mod swtpm;
use swtpm::*;

fn agent(dir: &std::path::Path, tpm: &Swtpm, port: u16) -> Proc {
    let (uri, listen, state) = (tpm.uri(), format!("127.0.0.1:{port}"), dir.join("state"));
    let flags = [
        "agent",
        "--insecure-http",
        "--registrar",
        "",
        "--eventlog",
        "",
        "--ima-log",
        "",
        "--tpm",
        &uri,
        "--listen",
        &listen,
        "--state-dir",
    ];
    let args: Vec<&std::ffi::OsStr> = flags
        .iter()
        .map(std::ffi::OsStr::new)
        .chain([state.as_os_str()])
        .collect();
    start_trustpool(&args, &dir.join("agent.log"), port, "agent")
}

fn quote(rt: &tokio::runtime::Runtime, port: u16, nonce: &str) -> Value {
    let c = AgentClient::insecure(&format!("127.0.0.1:{port}"), Duration::from_secs(30));
    let (code, v) = rt
        .block_on(c.get(&format!(
            "/v2.6/quotes/integrity?nonce={nonce}&mask=0xff&partial=0"
        )))
        .unwrap();
    assert_eq!(code, 200, "{v}");
    v
}

#[test]
fn replays_are_refused_and_reboots_recognised() {
    if !have(&["swtpm"]) {
        return;
    }
    let tpm = Swtpm::start();
    let aik = {
        let mut s = tpm.session();
        let ak = s
            .create_ak(AkTemplate::Rsa2048, Hierarchy::Endorsement)
            .unwrap();
        s.flush(ak.handle).unwrap();
        ak.public
    };
    let policy = trustpool::policy::Policy::from_toml(FRESH_SWTPM_POLICY, "policy")
        .unwrap()
        .compile(None)
        .unwrap();
    let dir = TempDir::new("check");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let a = agent(dir.path(), &tpm, port);

    let a1 = quote(&rt, port, "nonceOne");
    let o1 = check_answer(
        &a1,
        "nonceOne",
        &aik,
        &policy,
        None,
        None,
        &Default::default(),
    );
    assert_eq!(o1.level, TrustLevel::Trusted, "{:?}", o1.findings);
    let c1 = o1.counters.unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let a2 = quote(&rt, port, "nonceTwo");
    let o2 = check_answer(
        &a2,
        "nonceTwo",
        &aik,
        &policy,
        Some(c1),
        Some(o1.boottime),
        &Default::default(),
    );
    assert_eq!(o2.level, TrustLevel::Trusted, "{:?}", o2.findings);
    let c2 = o2.counters.unwrap();
    assert!(c2.clock > c1.clock);
    assert_eq!(
        (c2.reset_count, c2.restart_count),
        (c1.reset_count, c1.restart_count)
    );
    assert!(!o2.rebooted);

    // An old answer for a new nonce: the quote's extraData is not the nonce sent.
    let o = check_answer(
        &a1,
        "nonceThree",
        &aik,
        &policy,
        Some(c2),
        None,
        &Default::default(),
    );
    assert_eq!(o.level, TrustLevel::Untrusted);
    assert_eq!(o.findings[0].rule, "quote", "{:?}", o.findings);
    assert!(o.findings[0].message.contains("nonce"), "{:?}", o.findings);
    assert_eq!(
        o.counters,
        Some(c2),
        "a refused quote must not move the counters"
    );
    // The same quote twice (its nonce replayed too): the TPM clock did not move.
    let o = check_answer(
        &a2,
        "nonceTwo",
        &aik,
        &policy,
        Some(c2),
        None,
        &Default::default(),
    );
    assert_eq!(o.level, TrustLevel::Untrusted);
    assert!(
        o.findings.iter().any(|f| f.rule == "clock-not-increasing"),
        "{:?}",
        o.findings
    );

    // Reboot: the agent stops, the OS shuts the TPM down orderly (as a reboot does; without
    // it the TPM's clock may go back and is not `safe`, which is refused), the TPM is powered
    // off and on (a TPM Reset), the agent starts.
    drop(a);
    {
        let mut s = tpm.session();
        s.tpm().shutdown(StartupType::Clear).unwrap();
        if let AnyTransport::Swtpm(t) = s.tpm().transport_mut() {
            t.init().unwrap();
        }
        s.tpm().startup(StartupType::Clear).unwrap();
    }
    let _a = agent(dir.path(), &tpm, port);
    let a3 = quote(&rt, port, "nonceFour");
    let o3 = check_answer(
        &a3,
        "nonceFour",
        &aik,
        &policy,
        Some(c2),
        Some(o2.boottime),
        &Default::default(),
    );
    assert_eq!(o3.level, TrustLevel::Trusted, "{:?}", o3.findings);
    assert!(o3.rebooted);
    let c3 = o3.counters.unwrap();
    assert_eq!(c3.reset_count, c2.reset_count + 1);
    // An answer from before the reboot is now a rollback.
    let o = check_answer(
        &a2,
        "nonceTwo",
        &aik,
        &policy,
        Some(c3),
        None,
        &Default::default(),
    );
    assert!(
        o.findings.iter().any(|f| f.rule == "counters-decreased"),
        "{:?}",
        o.findings
    );
}
