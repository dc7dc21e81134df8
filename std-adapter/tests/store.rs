//! The server's store, the same scenarios on SQLite (a temp file) and PostgreSQL (a throwaway
//! cluster: `initdb` + `pg_ctl` on a free loopback port, `fsync=off`, stopped and deleted when
//! the last test using it ends).
//!
//! PostgreSQL tests are skipped with a message when `initdb`/`pg_ctl` are missing (looked for
//! in `$PG_BIN`, `/usr/lib/postgresql/*/bin`, then `PATH`), except in CI (`CI` set), where
//! that fails them. As root (initdb refuses root) the cluster runs as the `postgres` user via
//! `runuser`.
//!
//! `cargo test --release -p trustpool --test store -- --ignored --nocapture --test-threads=1
//! measure` times `latest_verdicts` for 1,000 of 10,000 hosts on both backends. On a shared
//! 2-core VM (release, 50 runs): SQLite p50 2.6 ms, p99 4.2 ms; PostgreSQL 15 over loopback
//! p50 10.5 ms, p99 25 ms (about 6 ms of it server execution: hash joins over the three
//! tables). Filling (20,000 committed transactions) took 13 s on each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::json;
use trustpool::server::store::*;

// --- harness -------------------------------------------------------------------------------

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("trustpool-{}", unique(tag)));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// A throwaway PostgreSQL cluster.
struct Cluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// Set when running as root: the user the server runs as.
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

    fn start() -> Cluster {
        let bin = pg_bin_dir().expect("checked");
        let root = std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0);
        let run_as = root.then_some("postgres");
        let dir = TempDir::new("pg");
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .arg(user)
                .arg(&dir.0)
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "running as root: could not chown the cluster directory to {user:?}"
            );
        }
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            run_as,
        };
        let data = cluster.dir.0.join("data");
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
        // A free port may be taken between the probe and the start: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let out = cluster
                .cmd("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(format!(
                    "-k {} -h 127.0.0.1 -p {port} -c fsync=off -c max_connections=200",
                    cluster.dir.0.display()
                ))
                .arg("-l")
                .arg(cluster.dir.0.join("log"))
                .args(["-w", "start"])
                .stdout(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                cluster.port = port;
                return cluster;
            }
        }
        let log = std::fs::read_to_string(cluster.dir.0.join("log")).unwrap_or_default();
        panic!("pg_ctl start failed: {log}");
    }

    /// A fresh database's URL.
    async fn database(&self) -> String {
        let name = unique("tp").replace('-', "_");
        let admin = format!("postgres://trustpool@127.0.0.1:{}/postgres", self.port);
        let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        format!("postgres://trustpool@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(self.dir.0.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The cluster shared by the tests running at the same time; it stops when the last drops it.
static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

fn cluster() -> Option<Arc<Cluster>> {
    if pg_bin_dir().is_none() {
        if ci() {
            panic!("PostgreSQL (initdb, pg_ctl) not installed, and CI is set: apt-get install postgresql");
        }
        eprintln!(
            "skipping: PostgreSQL (initdb, pg_ctl) not installed (apt-get install postgresql)"
        );
        return None;
    }
    let mut shared = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = shared.upgrade() {
        return Some(c);
    }
    let c = Arc::new(Cluster::start());
    *shared = Arc::downgrade(&c);
    Some(c)
}

/// Where a scenario's store lives.
enum Db {
    Sqlite(TempDir),
    Postgres {
        /// Keeps the cluster running.
        _cluster: Arc<Cluster>,
        url: String,
    },
}

impl Db {
    fn sqlite() -> Db {
        Db::Sqlite(TempDir::new("sqlite"))
    }

    async fn postgres() -> Option<Db> {
        let c = cluster()?;
        let url = c.database().await;
        Some(Db::Postgres { _cluster: c, url })
    }

    fn url(&self) -> String {
        match self {
            // A directory that does not exist yet: open creates it.
            Db::Sqlite(d) => format!("sqlite://{}/state/trustpool.db", d.0.display()),
            Db::Postgres { url, .. } => url.clone(),
        }
    }

    async fn open(&self) -> Store {
        Store::open(&self.url()).await.unwrap()
    }

    fn is_sqlite(&self) -> bool {
        matches!(self, Db::Sqlite(_))
    }
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Db::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::Db::postgres().await {
                        super::$name(&db).await;
                    }
                }
            )*
        }
    };
}

on_both!(
    enrollment_and_registration,
    policies,
    verdicts,
    leasing,
    survives_reopening,
    keys_are_kept_with_their_policy
);

// --- helpers -----------------------------------------------------------------------------

fn new_host(name: &str, group: &str, n: u32) -> NewHost {
    NewHost {
        name: name.to_owned(),
        group: group.to_owned(),
        ip: format!("10.0.{}.{}", n / 256, n % 256),
        port: 9002,
        uuid: format!("00000000-0000-4000-8000-{n:012}"),
    }
}

fn registration(n: u32, ak: u8) -> Registration {
    Registration {
        uuid: format!("00000000-0000-4000-8000-{n:012}"),
        ek_tpm: vec![0xe0, 0x01, n as u8],
        aik_tpm: vec![0xa0, ak, n as u8],
        ek_cert: Some(vec![0x30, 0x82, 0x01]),
        mtls_cert: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        ip: "192.0.2.7".into(),
        port: 9002,
    }
}

fn verdict(host: &str, time: i64, trust: TrustLevel) -> NewVerdict {
    NewVerdict {
        host: host.to_owned(),
        time,
        trust,
        findings: json!([{ "pcr": 7, "problem": "mismatch" }]),
        whitelist_digest: "ab".repeat(32),
        policy_version: Some(2),
        nonce: "0123456789abcdef0123456789abcdef".into(),
        counters: Some(Counters {
            clock: u64::from(u32::MAX) + 5,
            reset_count: 3,
            restart_count: u32::MAX,
        }),
    }
}

async fn audit_of(store: &Store, kind: AuditKind, host: Option<&str>) -> Vec<AuditEntry> {
    store
        .audit_log(
            &AuditFilter {
                kind: Some(kind),
                host: host.map(str::to_owned),
                since: None,
            },
            100,
        )
        .await
        .unwrap()
}

// --- scenarios ---------------------------------------------------------------------------

async fn enrollment_and_registration(db: &Db) {
    let store = db.open().await;
    assert!(matches!(
        store.add_host(&new_host("h", "nope", 1)).await,
        Err(StoreError::NoSuchGroup(g)) if g == "nope"
    ));
    store.add_group("compute").await.unwrap();
    assert!(matches!(
        store.add_group("compute").await,
        Err(StoreError::Exists(_))
    ));
    store.add_group("edge").await.unwrap();
    let groups: Vec<String> = store
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, ["compute", "edge"]);

    // Names are compared byte for byte: case, trailing space and Unicode forms differ.
    let names = [
        "compute-1.example",
        "Compute-1.example",
        "compute-1.example ",
        "h\u{f4}te",
        "ho\u{302}te",
    ];
    for (i, name) in names.iter().enumerate() {
        store
            .add_host(&new_host(name, "compute", i as u32))
            .await
            .unwrap();
    }
    store
        .add_host(&new_host("edge-1", "edge", 99))
        .await
        .unwrap();
    assert!(matches!(
        store.add_host(&new_host("compute-1.example", "compute", 50)).await,
        Err(StoreError::Exists(w)) if w.contains("host")
    ));
    assert!(matches!(
        store.add_host(&new_host("other", "compute", 0)).await,
        Err(StoreError::Exists(w)) if w.contains("UUID")
    ));
    let listed: Vec<String> = store
        .list_hosts(Some("compute"))
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.list_hosts(None).await.unwrap().len(), 6);
    assert!(store.get_host("compute-1.EXAMPLE").await.unwrap().is_none());

    let h = store.get_host("h\u{f4}te").await.unwrap().unwrap();
    assert_eq!(
        (h.group.as_str(), h.ip.as_str(), h.port, h.uuid.as_str()),
        (
            "compute",
            "10.0.0.3",
            9002,
            "00000000-0000-4000-8000-000000000003"
        )
    );
    assert_eq!(h.state, RegState::Added);
    assert!(!h.activated && h.ek_tpm.is_none() && h.aik_tpm.is_none());

    // Registration.
    assert!(matches!(
        store.register(&registration(77, 1)).await,
        Err(StoreError::NoSuchAgent(_))
    ));
    let uuid = registration(0, 1).uuid;
    assert!(matches!(
        store.activate(&uuid).await,
        Err(StoreError::NotRegistered(u)) if u == uuid
    ));
    store.register(&registration(0, 1)).await.unwrap();
    // Before activation the keys may change.
    store.register(&registration(0, 2)).await.unwrap();
    let h = store.host_by_uuid(&uuid).await.unwrap().unwrap();
    assert_eq!(h.name, "compute-1.example");
    assert_eq!(h.state, RegState::Registered);
    assert!(!h.activated);
    assert_eq!(h.aik_tpm.as_deref(), Some(&[0xa0, 2, 0][..]));
    assert_eq!(h.ek_tpm.as_deref(), Some(&[0xe0, 1, 0][..]));
    assert_eq!(h.ek_cert.as_deref(), Some(&[0x30, 0x82, 0x01][..]));
    assert_eq!((h.ip.as_str(), h.port), ("192.0.2.7", 9002));
    assert!(h
        .mtls_cert
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));

    store.activate(&uuid).await.unwrap();
    let h = store.host_by_uuid(&uuid).await.unwrap().unwrap();
    assert!(h.activated);
    assert_eq!(h.state, RegState::Activated);

    // Once activated, another AK (or EK) is refused, audited, and changes nothing.
    let refused = store.register(&registration(0, 3)).await;
    assert!(matches!(
        refused,
        Err(StoreError::RegistrationRefused { uuid: ref u }) if *u == uuid
    ));
    let mut other_ek = registration(0, 2);
    other_ek.ek_tpm = vec![0xee];
    assert!(matches!(
        store.register(&other_ek).await,
        Err(StoreError::RegistrationRefused { .. })
    ));
    let after = store.host_by_uuid(&uuid).await.unwrap().unwrap();
    assert_eq!(after.aik_tpm.as_deref(), Some(&[0xa0, 2, 0][..]));
    assert_eq!(after.ek_tpm.as_deref(), Some(&[0xe0, 1, 0][..]));
    assert!(after.activated);
    let log = audit_of(&store, AuditKind::RegistrationRefused, None).await;
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].host.as_deref(), Some("compute-1.example"));
    assert_eq!(log[0].detail["ek_changed"], json!(true));
    assert_eq!(log[0].detail["ak_changed"], json!(false));
    assert_eq!(log[1].detail["ek_changed"], json!(false));
    assert_eq!(log[1].detail["ak_changed"], json!(true));
    assert_eq!(log[1].detail["uuid"], json!(uuid));
    assert!(log[0].id > log[1].id && log[0].time >= log[1].time);

    // The same keys may re-register (new address), staying activated.
    let mut moved = registration(0, 2);
    moved.ip = "192.0.2.8".into();
    moved.port = 9003;
    store.register(&moved).await.unwrap();
    let h = store.host_by_uuid(&uuid).await.unwrap().unwrap();
    assert!(h.activated);
    assert_eq!((h.ip.as_str(), h.port), ("192.0.2.8", 9003));
    assert_eq!(
        audit_of(&store, AuditKind::Registration, Some("compute-1.example"))
            .await
            .len(),
        3
    );
    assert_eq!(audit_of(&store, AuditKind::Activation, None).await.len(), 1);

    // Removal.
    store.remove_host("edge-1").await.unwrap();
    assert!(store.get_host("edge-1").await.unwrap().is_none());
    assert!(matches!(
        store.remove_host("edge-1").await,
        Err(StoreError::NoSuchHost(_))
    ));
    let removed = audit_of(&store, AuditKind::HostRemoved, None).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].host.as_deref(), Some("edge-1"));
    assert_eq!(audit_of(&store, AuditKind::HostAdded, None).await.len(), 6);
    // The removed host's UUID can be enrolled again.
    store
        .add_host(&new_host("edge-2", "edge", 99))
        .await
        .unwrap();

    // Free-form audit records and the filters.
    let id = store
        .audit(
            AuditKind::KeyRelease,
            Some("edge-2"),
            &json!({ "key": "disk" }),
        )
        .await
        .unwrap();
    let all = store.audit_log(&AuditFilter::default(), 1).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].id, id);
    assert_eq!(all[0].kind, AuditKind::KeyRelease);
    assert_eq!(all[0].detail, json!({ "key": "disk" }));
    let future = AuditFilter {
        since: Some(now_ms() + 60_000),
        ..AuditFilter::default()
    };
    assert!(store.audit_log(&future, 100).await.unwrap().is_empty());
}

async fn policies(db: &Db) {
    let store = db.open().await;
    assert!(matches!(
        store.set_policy("g", "a = 1", b"x", "00").await,
        Err(StoreError::NoSuchGroup(_))
    ));
    store.add_group("g").await.unwrap();
    store.add_group("h").await.unwrap();
    assert!(store.current_policy("g").await.unwrap().is_none());
    let d1 = "11".repeat(32);
    let d2 = "22".repeat(32);
    assert_eq!(
        store
            .set_policy("g", "[pcrs]\n0 = 'x'\n", &[0, 1, 2], &d1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .set_policy("g", "[pcrs]\n0 = 'y'\n", &[3, 0, 255], &d2)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.set_policy("h", "", &[], &d1).await.unwrap(), 1);
    let p = store.current_policy("g").await.unwrap().unwrap();
    assert_eq!(p.group, "g");
    assert_eq!(p.version, 2);
    assert_eq!(p.digest, d2);
    assert_eq!(p.source, "[pcrs]\n0 = 'y'\n");
    assert_eq!(p.compiled, [3, 0, 255]);
    assert!(p.created > 0);
    let h = store.current_policy("h").await.unwrap().unwrap();
    assert_eq!((h.version, h.compiled.len()), (1, 0));
    let log = audit_of(&store, AuditKind::Policy, None).await;
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[1].detail,
        json!({ "group": "g", "version": 2, "digest": d2 })
    );

    // Concurrent updates get distinct consecutive versions.
    let mut tasks = Vec::new();
    for i in 0u8..6 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.set_policy("g", &format!("# {i}"), &[i], "33")
                .await
                .unwrap()
        }));
    }
    let mut versions = BTreeSet::new();
    for t in tasks {
        versions.insert(t.await.unwrap());
    }
    assert_eq!(versions, (3..=8).collect());
}

async fn verdicts(db: &Db) {
    let store = db.open().await;
    store.add_group("g").await.unwrap();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        store
            .add_host(&new_host(name, "g", i as u32))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .record_verdict(
                &verdict("zz", 1, TrustLevel::Trusted),
                &PollUpdate::default()
            )
            .await,
        Err(StoreError::NoSuchHost(_))
    ));
    // Not due during this test.
    let t0 = now_ms() + 86_400_000;
    let poll = PollUpdate {
        next_due: t0 + 30_000,
        failures: 0,
        boot_id: Some("boot-1".into()),
        boottime: Some(1_764_000_000),
        ima: Some(ImaProgress {
            next_index: 1234,
            pcr10: Some(vec![0x10; 32]),
        }),
        owner: None,
    };
    let a1 = store
        .record_verdict(&verdict("a", t0, TrustLevel::Trusted), &poll)
        .await
        .unwrap();
    let mut untrusted = verdict("a", t0 + 30_001, TrustLevel::Untrusted);
    untrusted.findings = json!({ "ima": ["/usr/bin/evil"] });
    untrusted.counters = Some(Counters {
        clock: 7,
        reset_count: 0,
        restart_count: 1,
    });
    let a2 = store
        .record_verdict(
            &untrusted,
            &PollUpdate {
                next_due: t0 + 60_000,
                failures: 2,
                ..PollUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(a2 > a1);
    let mut timeout = verdict("b", t0 + 5, TrustLevel::Timeout);
    timeout.counters = None;
    timeout.policy_version = None;
    let b1 = store
        .record_verdict(
            &timeout,
            &PollUpdate {
                next_due: t0,
                ..PollUpdate::default()
            },
        )
        .await
        .unwrap();
    let c1 = store
        .record_verdict(&verdict("c", t0, TrustLevel::Trusted), &poll)
        .await
        .unwrap();
    // Same level again: no verdict-change record.
    store
        .record_verdict(&verdict("c", t0 + 1, TrustLevel::Trusted), &poll)
        .await
        .unwrap();

    let asked: Vec<String> = ["a", "b", "unknown-host", "d", "A", "a"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let latest = store.latest_verdicts(&asked).await.unwrap();
    assert_eq!(
        latest.keys().cloned().collect::<BTreeSet<_>>(),
        ["a", "b"].iter().map(|s| s.to_string()).collect()
    );
    assert_eq!(
        latest["a"],
        Verdict {
            id: a2,
            host: "a".into(),
            time: t0 + 30_001,
            trust: TrustLevel::Untrusted,
            findings: json!({ "ima": ["/usr/bin/evil"] }),
            whitelist_digest: "ab".repeat(32),
            policy_version: Some(2),
            nonce: "0123456789abcdef0123456789abcdef".into(),
            counters: Some(Counters {
                clock: 7,
                reset_count: 0,
                restart_count: 1
            }),
        }
    );
    assert_eq!(latest["b"].id, b1);
    assert_eq!(latest["b"].trust, TrustLevel::Timeout);
    assert_eq!(latest["b"].counters, None);
    assert_eq!(latest["b"].policy_version, None);
    assert!(store.latest_verdicts(&[]).await.unwrap().is_empty());
    let c = store.latest_verdicts(&["c".into()]).await.unwrap();
    assert_ne!(c["c"].id, c1);

    let hist = store.history("a", 10).await.unwrap();
    assert_eq!(hist.iter().map(|v| v.id).collect::<Vec<_>>(), [a2, a1]);
    assert_eq!(hist[1].trust, TrustLevel::Trusted);
    assert_eq!(
        hist[1].counters,
        Some(Counters {
            clock: u64::from(u32::MAX) + 5,
            reset_count: 3,
            restart_count: u32::MAX
        })
    );
    assert_eq!(
        hist[1].findings,
        json!([{ "pcr": 7, "problem": "mismatch" }])
    );
    assert_eq!(store.history("a", 1).await.unwrap()[0].id, a2);
    assert!(store.history("d", 10).await.unwrap().is_empty());

    // Poll state: the second verdict kept boot and IMA progress (None = unchanged).
    let p = store.poll_state("a").await.unwrap().unwrap();
    assert_eq!(
        p,
        PollState {
            next_due: t0 + 60_000,
            failures: 2,
            counters: Some(Counters {
                clock: 7,
                reset_count: 0,
                restart_count: 1
            }),
            boot_id: Some("boot-1".into()),
            boottime: Some(1_764_000_000),
            ima: ImaProgress {
                next_index: 1234,
                pcr10: Some(vec![0x10; 32])
            },
            lease_owner: None,
            lease_until: None,
            latest_verdict: Some(a2),
        }
    );
    let b = store.poll_state("b").await.unwrap().unwrap();
    assert_eq!(b.counters, None);
    assert_eq!(b.ima, ImaProgress::default());
    assert_eq!(b.latest_verdict, Some(b1));

    let changes = audit_of(&store, AuditKind::VerdictChange, None).await;
    assert_eq!(changes.len(), 4); // a: none->trusted->untrusted, b: none->timeout, c: none->trusted
    assert_eq!(changes[0].host.as_deref(), Some("c"));
    let a_changes = audit_of(&store, AuditKind::VerdictChange, Some("a")).await;
    assert_eq!(
        a_changes[0].detail,
        json!({ "from": "trusted", "to": "untrusted", "verdict": a2 })
    );
    assert_eq!(
        a_changes[1].detail,
        json!({ "from": null, "to": "trusted", "verdict": a1 })
    );

    // record_verdict clears the lease of its owner only.
    let now = now_ms() + 1_000;
    let leased = store
        .lease_due("r1", now, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(leased.len(), 1);
    assert_eq!(leased[0].host.name, "d");
    store
        .record_verdict(
            &verdict("d", now, TrustLevel::Trusted),
            &PollUpdate {
                next_due: now + 10,
                owner: Some("r2".into()),
                ..PollUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .poll_state("d")
            .await
            .unwrap()
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("r1")
    );
    store
        .record_verdict(
            &verdict("d", now, TrustLevel::Trusted),
            &PollUpdate {
                next_due: now + 20,
                owner: Some("r1".into()),
                ..PollUpdate::default()
            },
        )
        .await
        .unwrap();
    let d = store.poll_state("d").await.unwrap().unwrap();
    assert_eq!(
        (d.lease_owner, d.lease_until, d.next_due),
        (None, None, now + 20)
    );

    // Removing a host removes its verdicts.
    store.remove_host("a").await.unwrap();
    assert!(store.history("a", 10).await.unwrap().is_empty());
    let latest = store.latest_verdicts(&asked).await.unwrap();
    assert_eq!(
        latest.keys().cloned().collect::<BTreeSet<_>>(),
        ["b", "d"].iter().map(|s| s.to_string()).collect()
    );
}

async fn leasing(db: &Db) {
    let store = db.open().await;
    // SQLite: a second connection (as a second process would have); PostgreSQL: the pool.
    let other = if db.is_sqlite() {
        db.open().await
    } else {
        store.clone()
    };
    store.add_group("g").await.unwrap();
    let n = 40;
    for i in 0..n {
        store
            .add_host(&new_host(&format!("host-{i:02}"), "g", i))
            .await
            .unwrap();
    }
    let all: BTreeSet<String> = (0..n).map(|i| format!("host-{i:02}")).collect();
    let now = now_ms() + 1_000;
    let lease_for = Duration::from_secs(60);

    let take = |s: Store, owner: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.lease_due(owner, now, 3, lease_for).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                for h in batch {
                    assert_eq!(h.poll.lease_owner.as_deref(), Some(owner));
                    assert_eq!(h.poll.lease_until, Some(now + 60_000));
                    assert!(h.poll.next_due <= now);
                    got.push(h.host.name);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let (a, b) = (take(store.clone(), "replica-a"), take(other, "replica-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (sa, sb): (BTreeSet<_>, BTreeSet<_>) =
        (a.iter().cloned().collect(), b.iter().cloned().collect());
    assert_eq!(sa.len(), a.len(), "replica-a leased a host twice");
    assert_eq!(sb.len(), b.len(), "replica-b leased a host twice");
    assert!(
        sa.is_disjoint(&sb),
        "both leased {:?}",
        sa.intersection(&sb)
    );
    assert_eq!(&sa | &sb, all);
    eprintln!(
        "leased concurrently: replica-a {}, replica-b {}",
        a.len(),
        b.len()
    );

    // Held leases are not handed out again before they expire.
    assert!(store
        .lease_due("replica-c", now + 59_999, 100, lease_for)
        .await
        .unwrap()
        .is_empty());
    // Only the holder releases.
    let first = a.first().or(b.first()).unwrap().clone();
    let holder = if sa.contains(&first) {
        "replica-a"
    } else {
        "replica-b"
    };
    assert!(!store
        .release("replica-c", &first, now + 500_000)
        .await
        .unwrap());
    assert!(store.release(holder, &first, now + 500_000).await.unwrap());
    let p = store.poll_state(&first).await.unwrap().unwrap();
    assert_eq!(
        (p.lease_owner, p.lease_until, p.next_due),
        (None, None, now + 500_000)
    );

    // A dead replica's leases are taken over once expired; the released host is not due.
    let later = now + 60_000;
    let taken = store
        .lease_due("replica-c", later, 100, Duration::from_secs(3600))
        .await
        .unwrap();
    let names: BTreeSet<String> = taken.iter().map(|h| h.host.name.clone()).collect();
    let mut expected = all.clone();
    expected.remove(&first);
    assert_eq!(names, expected);
    assert!(taken
        .iter()
        .all(|h| h.poll.lease_owner.as_deref() == Some("replica-c")
            && h.poll.lease_until == Some(later + 3_600_000)));
    assert_eq!(
        store.poll_state(&first).await.unwrap().unwrap().lease_owner,
        None
    );
    // Batches are bounded and due order is kept.
    assert!(store
        .lease_due("replica-d", now + 500_000, 0, lease_for)
        .await
        .unwrap()
        .is_empty());
    let one = store
        .lease_due("replica-d", now + 500_000, 1, lease_for)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].host.name, first);
}

async fn survives_reopening(db: &Db) {
    let id = {
        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), 2);
        store.add_group("g").await.unwrap();
        store.set_policy("g", "x", b"c", "dd").await.unwrap();
        store.add_host(&new_host("kept", "g", 1)).await.unwrap();
        store.register(&registration(1, 1)).await.unwrap();
        store
            .record_verdict(
                &verdict("kept", 42, TrustLevel::Trusted),
                &PollUpdate {
                    next_due: 43,
                    ..PollUpdate::default()
                },
            )
            .await
            .unwrap()
    };
    // Opening again (twice: migrations are idempotent) finds everything.
    for _ in 0..2 {
        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), 2);
        assert_eq!(store.current_policy("g").await.unwrap().unwrap().version, 1);
        let h = store.get_host("kept").await.unwrap().unwrap();
        assert_eq!(h.state, RegState::Registered);
        let v = store.latest_verdicts(&["kept".to_string()]).await.unwrap();
        assert_eq!(v["kept"].id, id);
        assert_eq!(v["kept"].time, 42);
        assert_eq!(
            store.poll_state("kept").await.unwrap().unwrap().next_due,
            43
        );
    }
    if let Db::Sqlite(d) = db {
        // The store created its directory and runs in WAL mode.
        let file = d.0.join("state/trustpool.db");
        let c = rusqlite::Connection::open(&file).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Plain paths and sqlite:path open the same file.
        let plain = Store::open(file.to_str().unwrap()).await.unwrap();
        assert!(plain.get_host("kept").await.unwrap().is_some());
        let short = Store::open(&format!("sqlite:{}", file.display()))
            .await
            .unwrap();
        assert_eq!(short.backend(), "sqlite");
        assert!(short.get_host("kept").await.unwrap().is_some());
    }
}

// --- SQLite: a verdict committed before the process is SIGKILLed is kept -------------------

const CHILD_ENV: &str = "TRUSTPOOL_STORE_TEST_CHILD";

/// The child half of `sqlite_verdict_survives_sigkill` (does nothing when run normally).
#[tokio::test]
async fn sqlite_sigkill_child() {
    let Some(url) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(url.to_str().unwrap()).await.unwrap();
    for i in 0.. {
        let id = store
            .record_verdict(
                &verdict("victim", i, TrustLevel::Untrusted),
                &PollUpdate {
                    next_due: i,
                    ..PollUpdate::default()
                },
            )
            .await
            .unwrap();
        println!("committed {id} {i}");
        if i == 20 {
            // Parked until killed.
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
    }
}

#[tokio::test]
async fn sqlite_verdict_survives_sigkill() {
    let dir = TempDir::new("sigkill");
    let url = format!("sqlite://{}/s.db", dir.0.display());
    {
        let store = Store::open(&url).await.unwrap();
        store.add_group("g").await.unwrap();
        store.add_host(&new_host("victim", "g", 1)).await.unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sqlite_sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut last = None;
    // Kill at the 5th commit, mid-stream (the child keeps writing).
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("committed ") {
            let (id, i) = rest.split_once(' ').unwrap();
            last = Some((id.parse::<i64>().unwrap(), i.parse::<i64>().unwrap()));
            if last.unwrap().1 == 5 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    let (id, i) = last.expect("child committed nothing");
    let store = Store::open(&url).await.unwrap();
    let hist = store.history("victim", 100).await.unwrap();
    // Everything reported committed is there (the child may have committed one more).
    let found = hist
        .iter()
        .find(|v| v.id == id)
        .expect("committed verdict lost");
    assert_eq!(found.time, i);
    assert!(hist.len() >= 6, "{} verdicts", hist.len());
    let times: Vec<i64> = hist.iter().map(|v| v.time).collect();
    let expected: Vec<i64> = (0..hist.len() as i64).rev().collect();
    assert_eq!(times, expected);
    let latest = &store.latest_verdicts(&["victim".into()]).await.unwrap()["victim"];
    assert_eq!(latest.id, hist[0].id);
    assert_eq!(
        store
            .poll_state("victim")
            .await
            .unwrap()
            .unwrap()
            .latest_verdict,
        Some(hist[0].id)
    );
}

// --- measurement ----------------------------------------------------------------------------

async fn measure(db: &Db) {
    let store = db.open().await;
    store.add_group("g").await.unwrap();
    let n = 10_000u32;
    let t = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = store.clone();
        let permit = Arc::clone(&sem).acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let name = format!("compute-{i:05}.dc1.example");
            s.add_host(&new_host(&name, "g", i)).await.unwrap();
            s.record_verdict(
                &verdict(&name, 1_764_079_200_000 + i64::from(i), TrustLevel::Trusted),
                &PollUpdate::default(),
            )
            .await
            .unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let fill = t.elapsed();
    // 50 runs, each 1,000 distinct pseudo-random names (a few unknown).
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut times = Vec::new();
    for _ in 0..50 {
        let mut names = BTreeSet::new();
        while names.len() < 1_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            names.insert(format!("compute-{:05}.dc1.example", x % 10_050));
        }
        let names: Vec<String> = names.into_iter().collect();
        let known = names
            .iter()
            .filter(|name| name[8..13].parse::<u32>().unwrap() < n)
            .count();
        let t = Instant::now();
        let got: HashMap<String, Verdict> = store.latest_verdicts(&names).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(got.len(), known);
    }
    let first = times[0];
    times.sort();
    eprintln!(
        "{}: filled 10,000 hosts + verdicts in {:.1?}; latest_verdicts(1,000 names) over 50 runs: \
         p50 {:.2?}, p99 {:.2?}, max {:.2?}, first {:.2?}",
        store.backend(),
        fill,
        times[times.len() / 2],
        times[(times.len() * 99).div_ceil(100) - 1],
        times[times.len() - 1],
        first
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn measure_latest_verdicts_sqlite() {
    measure(&Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn measure_latest_verdicts_postgres() {
    if let Some(db) = Db::postgres().await {
        measure(&db).await;
    }
}

async fn keys_are_kept_with_their_policy(db: &Db) {
    use trustpool::server::store::{AuditKind, StoredKey};
    let store = db.open().await;
    let k = StoredKey {
        name: "disk-1".into(),
        sealed: vec![1, 2, 3],
        groups: vec!["a".into(), "b".into()],
        max_age_secs: 60,
        revoked: false,
        created: 0,
    };
    store.create_key(&k).await.unwrap();
    assert!(store.create_key(&k).await.is_err(), "a name is unique");
    let got = store.get_key("disk-1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.sealed.as_slice(),
            got.groups.clone(),
            got.max_age_secs,
            got.revoked
        ),
        (
            &[1u8, 2, 3][..],
            vec!["a".to_string(), "b".to_string()],
            60,
            false
        )
    );
    store
        .set_key_policy("disk-1", &["c".to_string()], 5)
        .await
        .unwrap();
    store.revoke_key("disk-1").await.unwrap();
    let got = store.get_key("disk-1").await.unwrap().unwrap();
    assert_eq!(
        (got.groups, got.max_age_secs, got.revoked),
        (vec!["c".to_string()], 5, true)
    );
    assert!(store.revoke_key("nope").await.is_err());
    assert_eq!(store.list_keys().await.unwrap().len(), 1);
    assert!(store.get_key("nope").await.unwrap().is_none());
    let admin = store
        .audit_log(
            &trustpool::server::store::AuditFilter {
                kind: Some(AuditKind::KeyAdmin),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    let actions: Vec<&str> = admin
        .iter()
        .map(|a| a.detail["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revoke", "policy", "create"]);
}
