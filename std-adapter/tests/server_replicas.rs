//! Two `trustpool server` replicas (processes) on one PostgreSQL database poll three trustpool
//! agents on swtpm: both answer PollHosts the same; the leases keep any host from being polled
//! by both at once (consecutive verdicts of a host are never closer than most of the poll
//! interval). A replica caught holding a lease (mid-poll) is killed (SIGKILL): the survivor
//! leaves that host alone until the stranded lease runs out, then polls it and every other
//! host on its own, and answers `trusted`. Which replicas held leases is printed.
//!
//! PostgreSQL is a throwaway cluster (`initdb` + `pg_ctl` on a free loopback port, as in
//! tests/store.rs; as root it runs as `postgres` via `runuser`). Skipped with a message when
//! `swtpm` or PostgreSQL is not installed, except in CI (`CI` set).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trustpool::agent::client::AgentClient;
use trustpool::server::config::ServerConfig;

mod swtpm;
use swtpm::*;

// --- a throwaway PostgreSQL cluster (from tests/store.rs) -----------------------------------

fn pg_bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("PG_BIN") {
        let d = PathBuf::from(d);
        if has(&d) {
            return Some(d);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has(d))
}

/// A directory under the system temp dir (reachable by the `postgres` user, unlike a target
/// dir that may sit under a private home), removed on drop.
struct PgDir(PathBuf);

impl PgDir {
    fn new() -> PgDir {
        let p = std::env::temp_dir().join(format!("trustpool-replicas-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        PgDir(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PgDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Cluster {
    dir: PgDir,
    bin: PathBuf,
    port: u16,
    run_as: Option<&'static str>,
}

impl Cluster {
    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn start(bin: PathBuf) -> Cluster {
        let root = std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0);
        let run_as = root.then_some("postgres");
        let dir = PgDir::new();
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .arg(user)
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "could not chown the cluster directory to {user:?}");
        }
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            run_as,
        };
        let data = cluster.dir.path().join("data");
        let out = cluster
            .cmd("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "trustpool", "--auth=trust", "-N", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for _ in 0..5 {
            let port = free_port();
            let out = cluster
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(format!(
                    "-k {} -h 127.0.0.1 -p {port} -c fsync=off",
                    cluster.dir.path().display()
                ))
                .arg("-l")
                .arg(cluster.dir.path().join("log"))
                .args(["-w", "start"])
                .stdout(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                cluster.port = port;
                return cluster;
            }
        }
        let log = std::fs::read_to_string(cluster.dir.path().join("log")).unwrap_or_default();
        panic!("pg_ctl start failed: {log}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// --- processes -------------------------------------------------------------------------------

fn start_replica(dir: &Path, cfg: &ServerConfig, port: u16) -> Proc {
    let name = cfg.replica.clone().unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, toml::to_string(cfg).unwrap()).unwrap();
    start_server(&file, &dir.join(format!("{name}.log")), port)
}

const POLL_INTERVAL_SECS: u64 = 2;
const LEASE_SECS: u64 = 3;

struct Replica {
    addr: String,
}

struct Ctx {
    rt: tokio::runtime::Runtime,
    cert: String,
    token: String,
}

impl Ctx {
    fn client(&self, r: &Replica) -> AgentClient {
        AgentClient::management(&r.addr, &self.cert, &self.token, Duration::from_secs(30)).unwrap()
    }

    fn poll_hosts(&self, r: &Replica, names: &[&str]) -> Value {
        let c = AgentClient::management(&r.addr, &self.cert, "-", Duration::from_secs(30))
            .unwrap()
            .with_header("x-auth-blob", Some("blob".into()));
        let body = json!({"count": names.len(), "hosts": names}).to_string();
        let (code, v) = self
            .rt
            .block_on(c.request_raw(
                "POST",
                "/OpenAttestationWebServices/V1.0/PollHosts",
                body.into(),
            ))
            .unwrap();
        assert_eq!(code, 200, "{v}");
        v
    }

    fn levels(&self, r: &Replica, names: &[&str]) -> Vec<String> {
        self.poll_hosts(r, names)["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["trust_lvl"].as_str().unwrap().to_string())
            .collect()
    }

    /// Verdict times of `name`, oldest first.
    fn times(&self, r: &Replica, name: &str) -> Vec<i64> {
        let (c, v) = self
            .rt
            .block_on(
                self.client(r)
                    .get(&format!("/v1/hosts/{name}/results?history=1000")),
            )
            .unwrap();
        assert_eq!(c, 200, "{v}");
        let mut t: Vec<i64> = v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["time"].as_i64().unwrap())
            .collect();
        t.reverse();
        t
    }
}

/// No two verdicts of a host closer than most of the poll interval (next_due is the poll's
/// end plus the interval ± 10 %): two replicas never polled it at once.
fn assert_not_polled_twice(name: &str, times: &[i64]) {
    let min_gap = i64::try_from(POLL_INTERVAL_SECS * 1000).unwrap() * 3 / 4;
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= min_gap,
            "{name}: verdicts {} ms apart (< {min_gap}): polled twice? {times:?}",
            w[1] - w[0]
        );
    }
}

#[test]
fn two_replicas_share_hosts_and_take_over() {
    if !have(&["swtpm"]) {
        return;
    }
    let Some(bin) = pg_bin_dir() else {
        assert!(
            !ci(),
            "PostgreSQL (initdb, pg_ctl) not installed, and CI is set"
        );
        eprintln!("skipping: PostgreSQL (initdb, pg_ctl) not installed");
        return;
    };
    let cluster = Cluster::start(bin);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(async {
        let admin = format!("postgres://trustpool@127.0.0.1:{}/postgres", cluster.port);
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE DATABASE replicas")
            .await
            .unwrap();
        format!("postgres://trustpool@127.0.0.1:{}/replicas", cluster.port)
    });
    let db_url = db.clone();

    let dir = TempDir::new("server-replicas");
    let sdir = dir.path().join("server");
    let (p1, p2, reg) = (free_port(), free_port(), free_port());
    let base = ServerConfig {
        database: Some(db_url),
        // Shared: the same server certificate, API token and agent client certificate.
        state_dir: sdir.clone(),
        poll_interval_secs: POLL_INTERVAL_SECS,
        agent_timeout_ms: 5000,
        max_backoff_secs: 2,
        lease_secs: LEASE_SECS,
        accept_unsigned_eks: true,
        auth_blobs: vec!["blob".into()],
        ..ServerConfig::default()
    };
    let cfg1 = ServerConfig {
        listen: format!("127.0.0.1:{p1}"),
        registrar_listen: format!("127.0.0.1:{reg}"),
        replica: Some("replica-1".into()),
        ..base.clone()
    };
    let cfg2 = ServerConfig {
        listen: format!("127.0.0.1:{p2}"),
        registrar_listen: String::new(),
        replica: Some("replica-2".into()),
        ..base
    };
    // One after the other: the first makes the shared keys and certificates.
    let s1 = start_replica(dir.path(), &cfg1, p1);
    let s2 = start_replica(dir.path(), &cfg2, p2);
    let r1 = Replica {
        addr: format!("127.0.0.1:{p1}"),
    };
    let r2 = Replica {
        addr: format!("127.0.0.1:{p2}"),
    };
    let ctx = Ctx {
        rt,
        cert: std::fs::read_to_string(sdir.join("server-cert.pem")).unwrap(),
        token: std::fs::read_to_string(sdir.join("api-token"))
            .unwrap()
            .trim()
            .to_string(),
    };

    let names = ["compute-a", "compute-b", "compute-c"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    ctx.rt.block_on(async {
        let (c, v) = ctx
            .client(&r1)
            .request_raw(
                "PUT",
                "/v1/groups/default/policy",
                FRESH_SWTPM_POLICY.into(),
            )
            .await
            .unwrap();
        assert_eq!(c, 200, "{v}");
        for (i, (name, p)) in names.iter().zip(&ports).enumerate() {
            // Added through either replica.
            let r = if i % 2 == 0 { &r1 } else { &r2 };
            let uuid = format!("dddddddd-0000-4000-8000-00000000000{i}");
            let (c, v) = ctx
                .client(r)
                .request(
                    "POST",
                    "/v1/hosts",
                    Some(&json!({"name": name, "uuid": uuid, "ip": "127.0.0.1", "port": p})),
                )
                .await
                .unwrap();
            assert_eq!(c, 201, "{v}");
        }
    });
    let ca = sdir.join("agent-ca.pem");
    let tpms: Vec<Swtpm> = names.iter().map(|_| Swtpm::start()).collect();
    let _agents: Vec<Proc> = (0..names.len())
        .map(|i| {
            let uuid = format!("dddddddd-0000-4000-8000-00000000000{i}");
            start_agent(dir.path(), &tpms[i], &uuid, ports[i], reg, &ca)
        })
        .collect();

    let all_trusted = vec!["trusted".to_string(); names.len()];
    let deadline = Instant::now() + Duration::from_secs(90);
    while ctx.levels(&r1, &names) != all_trusted || ctx.levels(&r2, &names) != all_trusted {
        assert!(
            Instant::now() < deadline,
            "not all trusted: {:?} {:?}\n{}",
            ctx.levels(&r1, &names),
            ctx.levels(&r2, &names),
            std::fs::read_to_string(dir.path().join("replica-1.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Let both replicas poll for a while (several rounds), watching who holds the leases.
    let owners = ctx.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut owners = std::collections::BTreeSet::new();
        let end = Instant::now() + Duration::from_secs(5 * POLL_INTERVAL_SECS);
        while Instant::now() < end {
            for row in client
                .query(
                    "SELECT lease_owner FROM poll_state WHERE lease_owner IS NOT NULL",
                    &[],
                )
                .await
                .unwrap()
            {
                owners.insert(row.get::<_, String>(0));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        owners
    });
    // Which replica wins a due host depends on the phase of their 200 ms lease scans, so
    // one replica may take every poll for a while: reported, not asserted.
    eprintln!(
        "lease owners seen in {}s: {owners:?}",
        5 * POLL_INTERVAL_SECS
    );

    // Both answer the same (a new verdict may land between the two requests: retry).
    let mut same = false;
    for _ in 0..20 {
        let (a, b) = (ctx.poll_hosts(&r1, &names), ctx.poll_hosts(&r2, &names));
        if a == b {
            same = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(same, "the replicas answer differently");

    for name in names {
        let t = ctx.times(&r2, name);
        assert!(t.len() >= 3, "{name}: {t:?}");
        assert_not_polled_twice(name, &t);
    }

    // Catch a replica holding a lease (in the middle of a poll) and kill it (SIGKILL) there:
    // the survivor must leave that host alone until the lease runs out, then poll it and the
    // others on its own.
    let (victim, stranded, lease_until) = ctx.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = client
                .query(
                    "SELECT p.lease_owner, h.name, p.lease_until FROM poll_state p \
                     JOIN hosts h ON h.id = p.host_id WHERE p.lease_owner IS NOT NULL",
                    &[],
                )
                .await
                .unwrap();
            if let Some(r) = rows.first() {
                break (
                    r.get::<_, String>(0),
                    r.get::<_, String>(1),
                    r.get::<_, i64>(2),
                );
            }
            assert!(Instant::now() < deadline, "no lease ever seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let (mut dead, survivor, _alive) = if victim == "replica-1" {
        (s1, &r2, s2)
    } else {
        (s2, &r1, s1)
    };
    dead.0.kill().unwrap();
    dead.0.wait().unwrap();
    let killed = trustpool::server::store::now_ms();
    // Still the dead replica's lease (it died before recording the verdict)?
    let still_held = ctx.rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let r = client
            .query_one(
                "SELECT p.lease_owner FROM poll_state p JOIN hosts h ON h.id = p.host_id \
                 WHERE h.name = $1",
                &[&stranded],
            )
            .await
            .unwrap();
        r.get::<_, Option<String>>(0).as_deref() == Some(victim.as_str())
    });
    eprintln!("killed {victim} polling {stranded} (lease stranded: {still_held})");

    let deadline = Instant::now() + Duration::from_secs(60);
    for name in names {
        loop {
            let t = ctx.times(survivor, name);
            let new: Vec<i64> = t.iter().copied().filter(|&x| x > killed).collect();
            if new.len() >= 2 {
                assert_not_polled_twice(name, &t);
                if name == stranded && still_held {
                    assert!(
                        new[0] >= lease_until,
                        "{name} polled at {} while {victim}'s lease ran to {lease_until}",
                        new[0]
                    );
                }
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not polled after {victim} died: {t:?}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(ctx.levels(survivor, &names), all_trusted);
}
