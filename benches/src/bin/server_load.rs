//! Load run of `trustpool server` against a simulated fleet (all on 127.0.0.1): N hosts with
//! their own P-256 AKs and a real firmware log are enrolled directly in a fresh SQLite (or
//! `--database postgres://…`) store, the server polls each once, and the run reports the time
//! for the full cycle, verdict counts, PollHosts latency for a 1,000-host request, and RSS.
//!
//!     cargo run --release -p trustpool-benches --bin server_load -- --hosts 10000 --base-port 20000

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use base64::Engine;
use trustpool::agent::client::AgentClient;
use trustpool::server::config::ServerConfig;
use trustpool::server::store::{NewHost, Registration, Store};
use trustpool_benches::fleet::{Fleet, FleetOptions};

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let n: usize = arg("--hosts", "1000").parse()?;
    let base: u16 = arg("--base-port", "20000").parse()?;
    let concurrency: usize = arg("--concurrency", "128").parse()?;
    let dir = std::env::temp_dir().join(format!("tp-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (port, reg) = (free_port()?, free_port()?);
    let db = arg(
        "--database",
        &format!("sqlite://{}", dir.join("load.db").display()),
    );
    let cfg = ServerConfig {
        listen: format!("127.0.0.1:{port}"),
        registrar_listen: format!("127.0.0.1:{reg}"),
        state_dir: dir.clone(),
        database: Some(db.clone()),
        poll_interval_secs: 3600,
        concurrency,
        agent_timeout_ms: 20_000,
        accept_unsigned_eks: true,
        replica: Some("load".into()),
        ..ServerConfig::default()
    };
    let id = trustpool::server::run::identity(&cfg)?;
    let fleet = Fleet::start(
        n,
        base,
        FleetOptions {
            client_ca_pem: Some(id.agent_ca_pem.clone()),
            bad_fraction: 0.05,
            ..FleetOptions::default()
        },
    )
    .await?;
    let m = fleet.manifest();
    let store = Store::open(&db).await?;
    store.add_group("default").await?;
    let mut policy = String::from("name = \"fleet\"\nrequire_eventlog = true\n");
    for i in 0..8 {
        let v = m
            .good_pcrs_sha256
            .get(&i.to_string())
            .ok_or_else(|| anyhow!("no PCR {i}"))?;
        policy.push_str(&format!(
            "[[pcr]]\nindex = {i}\nvalues = [\"sha256:{v}\"]\n"
        ));
    }
    let compiled = trustpool::policy::Policy::from_toml(&policy, "load")?.compile(None)?;
    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &compiled).as_ref());
    store
        .set_policy("default", &policy, &compiled, &digest)
        .await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let t = Instant::now();
    for h in &m.hosts {
        store
            .add_host(&NewHost {
                name: h.name.clone(),
                group: "default".into(),
                ip: h.ip.clone(),
                port: h.port,
                uuid: h.uuid.clone(),
            })
            .await?;
        store
            .register(&Registration {
                uuid: h.uuid.clone(),
                ek_tpm: b64.decode(&h.ek_tpm)?,
                aik_tpm: b64.decode(&h.aik_tpm)?,
                ek_cert: None,
                mtls_cert: h.mtls_cert.clone(),
                ip: h.ip.clone(),
                port: h.port,
            })
            .await?;
        store.activate(&h.uuid).await?;
    }
    eprintln!("enrolled {n} hosts in {:.1} s", t.elapsed().as_secs_f64());
    let cpu0 = cpu_secs();
    let start = Instant::now();
    tokio::spawn(async move {
        if let Err(e) = trustpool::server::run::serve(cfg).await {
            eprintln!("server: {e:#}");
        }
    });
    let names: Vec<String> = m.hosts.iter().map(|h| h.name.clone()).collect();
    let (trusted, untrusted, other) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let v = store.latest_verdicts(&names).await?;
        if v.len() == n {
            let c = |l: &str| {
                v.values()
                    .filter(|x| trustpool::server::store::trust_str(x.trust) == l)
                    .count()
            };
            break (
                c("trusted"),
                c("untrusted"),
                n - c("trusted") - c("untrusted"),
            );
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(anyhow!("only {} of {n} verdicts after 600 s", v.len()));
        }
    };
    let cycle = start.elapsed();
    let cpu = cpu_secs() - cpu0;
    println!(
        "full cycle: {n} hosts in {:.2} s ({:.0} hosts/s); trusted {trusted}, untrusted {untrusted}, other {other}; RSS {:.0} MB (server + fleet in one process); CPU {:.2} s = {:.0} µs per host (both sides)",
        cycle.as_secs_f64(),
        n as f64 / cycle.as_secs_f64(),
        rss_mb(),
        cpu,
        cpu / n as f64 * 1e6
    );
    // PollHosts for up to 1,000 hosts.
    let cert = std::fs::read_to_string(dir.join("server-cert.pem"))?;
    let client = AgentClient::management(
        &format!("127.0.0.1:{port}"),
        &cert,
        "-",
        Duration::from_secs(30),
    )?;
    let k = n.min(1000);
    let body = serde_json::json!({"count": k, "hosts": names.iter().step_by((n / k).max(1)).take(k).collect::<Vec<_>>()}).to_string();
    let mut times = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let (code, v) = client
            .request_raw(
                "POST",
                "/OpenAttestationWebServices/V1.0/PollHosts",
                body.clone().into(),
            )
            .await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if code != 200 || v["hosts"].as_array().map_or(0, Vec::len) != k {
            return Err(anyhow!("PollHosts answered {code}"));
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "PollHosts {k} hosts: p50 {:.1} ms, p99 {:.1} ms (100 requests, each a new TLS connection)",
        times[49], times[98]
    );
    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// User + system CPU seconds of this process so far.
fn cpu_secs() -> f64 {
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let ru = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr());
        ru.assume_init()
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
