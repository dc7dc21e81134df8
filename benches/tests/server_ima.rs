//! The server's incremental IMA appraisal (`server::check::check_answer`) against a simulated
//! host of the fleet serving an ima-ng list and a quote whose SHA-256 PCR 10 it produced:
//! the first poll replays the whole list from zero and keeps PCR 10; the next asks from the
//! entry after it and replays from the kept value; a kept value that is not the TPM's, or a
//! list that does not start where the last poll ended, is a finding and resets the progress;
//! a file the whitelist does not allow is a finding naming the entry.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use trustpool::agent::client::AgentClient;
use trustpool::oat::TrustLevel;
use trustpool::server::check::{check_answer, ImaProgress};
use trustpool_benches::fleet::{Fleet, FleetOptions};

const FILES: [&str; 4] = [
    "/usr/lib/systemd/systemd",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/sbin/sshd",
    "/usr/bin/bash",
];

fn policy(m: &trustpool_benches::fleet::Manifest, allow: &[&str]) -> Vec<u8> {
    let mut t = String::from("name = \"fleet\"\nrequire_eventlog = true\n");
    for i in 0..8 {
        t.push_str(&format!(
            "[[pcr]]\nindex = {i}\nvalues = [\"sha256:{}\"]\n",
            m.good_pcrs_sha256[&i.to_string()]
        ));
    }
    t.push_str("[ima.digests]\n");
    for f in allow {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            format!("trustpool-fleet simulated contents of {f}").as_bytes(),
        );
        t.push_str(&format!("\"{f}\" = [\"sha256:{}\"]\n", hex::encode(d)));
    }
    trustpool::policy::Policy::from_toml(&t, "policy")
        .unwrap()
        .compile(None)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ima_is_appraised_incrementally() {
    let fleet = Fleet::start(
        1,
        0,
        FleetOptions {
            insecure_http: true,
            ima: true,
            ..FleetOptions::default()
        },
    )
    .await
    .unwrap();
    let m = fleet.manifest().clone();
    let aik = base64::engine::general_purpose::STANDARD
        .decode(&m.hosts[0].aik_tpm)
        .unwrap();
    let client =
        AgentClient::insecure(&fleet.addr(0).unwrap().to_string(), Duration::from_secs(10));
    let ask = |nonce: &'static str, first: u64| {
        let client = client.clone();
        async move {
            let (code, v): (u16, Value) = client
                .get(&format!(
                    "/v2.6/quotes/integrity?nonce={nonce}&mask=0x4ff&partial=0&ima_ml_entry={first}"
                ))
                .await
                .unwrap();
            assert_eq!(code, 200, "{v}");
            v
        }
    };
    let good = policy(&m, &FILES);

    // First poll: the whole list (5 entries: boot_aggregate and four files).
    let a1 = ask("first1", 0).await;
    let o1 = check_answer(
        &a1,
        "first1",
        &aik,
        &good,
        None,
        None,
        &ImaProgress::default(),
    );
    assert_eq!(o1.level, TrustLevel::Trusted, "{:?}", o1.findings);
    let p1 = o1.ima.clone().unwrap();
    assert_eq!(p1.next_index, 5);
    assert_eq!(p1.pcr10.as_ref().unwrap().len(), 32);

    // Next poll: from entry 5 (nothing new), replayed from the kept PCR 10.
    let a2 = ask("second2", p1.next_index).await;
    assert_eq!(a2["results"]["ima_measurement_list_entry"], 5);
    assert_eq!(a2["results"]["ima_measurement_list"], "");
    let o2 = check_answer(
        &a2,
        "second2",
        &aik,
        &good,
        o1.counters,
        Some(o1.boottime),
        &p1,
    );
    assert_eq!(o2.level, TrustLevel::Trusted, "{:?}", o2.findings);
    assert_eq!(o2.ima, Some(p1.clone()));

    // A kept PCR 10 that is not what the TPM has: the replay does not reach the quote.
    let forged = ImaProgress {
        next_index: 5,
        pcr10: Some(vec![0x11; 32]),
    };
    let a3 = ask("third3", 5).await;
    let o3 = check_answer(&a3, "third3", &aik, &good, o2.counters, None, &forged);
    assert_eq!(o3.level, TrustLevel::Untrusted);
    assert_eq!(o3.findings[0].rule, "ima-replay", "{:?}", o3.findings);
    assert_eq!(
        o3.ima,
        Some(ImaProgress::default()),
        "progress reset: next poll asks for all"
    );

    // A list that does not start where the last poll ended.
    let a4 = ask("fourth4", 3).await;
    let o4 = check_answer(&a4, "fourth4", &aik, &good, o3.counters, None, &p1);
    assert_eq!(o4.findings[0].rule, "ima-progress", "{:?}", o4.findings);

    // A whitelist without sshd: the entry is named.
    let strict = policy(&m, &FILES[..2]);
    let a5 = ask("fifth5", 0).await;
    let o5 = check_answer(
        &a5,
        "fifth5",
        &aik,
        &strict,
        o4.counters,
        None,
        &ImaProgress::default(),
    );
    assert_eq!(o5.level, TrustLevel::Untrusted);
    let f = o5.findings.iter().find(|f| f.rule == "ima").unwrap();
    assert_eq!(f.event_index, Some(3));
    assert_eq!(f.event.as_deref(), Some("/usr/sbin/sshd"));
}
