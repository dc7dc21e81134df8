//! The SQLite backend: one connection in WAL mode with `synchronous=FULL` (a committed
//! transaction survives the process being killed, and power loss), used from
//! `spawn_blocking`. Writers take the database lock up front (`BEGIN IMMEDIATE`), so
//! concurrent processes queue on `busy_timeout` instead of failing on lock upgrades.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::*;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA_V1: &str = "
CREATE TABLE host_groups (
    name    TEXT PRIMARY KEY,
    created INTEGER NOT NULL
);
CREATE TABLE policies (
    grp      TEXT NOT NULL REFERENCES host_groups(name) ON DELETE CASCADE,
    version  INTEGER NOT NULL,
    digest   TEXT NOT NULL,
    source   TEXT NOT NULL,
    compiled BLOB NOT NULL,
    created  INTEGER NOT NULL,
    PRIMARY KEY (grp, version)
);
CREATE TABLE hosts (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    name      TEXT NOT NULL UNIQUE,
    grp       TEXT NOT NULL REFERENCES host_groups(name),
    ip        TEXT NOT NULL,
    port      INTEGER NOT NULL,
    uuid      TEXT NOT NULL UNIQUE,
    created   INTEGER NOT NULL,
    ek_tpm    BLOB,
    aik_tpm   BLOB,
    ek_cert   BLOB,
    mtls_cert TEXT,
    activated INTEGER NOT NULL DEFAULT 0,
    reg_state TEXT NOT NULL DEFAULT 'added'
        CHECK (reg_state IN ('added', 'registered', 'activated'))
);
CREATE INDEX hosts_grp ON hosts(grp);
CREATE TABLE poll_state (
    host_id        INTEGER PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
    next_due       INTEGER NOT NULL,
    failures       INTEGER NOT NULL DEFAULT 0,
    clock          INTEGER,
    reset_count    INTEGER,
    restart_count  INTEGER,
    boot_id        TEXT,
    boottime       INTEGER,
    ima_next       INTEGER NOT NULL DEFAULT 0,
    ima_pcr10      BLOB,
    lease_owner    TEXT,
    lease_until    INTEGER,
    latest_verdict INTEGER
);
CREATE INDEX poll_state_due ON poll_state(next_due);
CREATE TABLE verdicts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id        INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    time           INTEGER NOT NULL,
    trust          TEXT NOT NULL CHECK (trust IN ('trusted', 'untrusted', 'unknown', 'timeout')),
    findings       TEXT NOT NULL,
    digest         TEXT NOT NULL,
    policy_version INTEGER,
    nonce          TEXT NOT NULL,
    clock          INTEGER,
    reset_count    INTEGER,
    restart_count  INTEGER
);
CREATE INDEX verdicts_host ON verdicts(host_id, id);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    time   INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    host   TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_host ON audit(host, id);
CREATE INDEX audit_kind ON audit(kind, id);
";

/// The migrations, in order; a released one is never edited, only followed by another.
/// Migration 2: named data keys (issue 11's key provider).
const SCHEMA_V2: &str = "CREATE TABLE keys (\
    name TEXT PRIMARY KEY, sealed BLOB NOT NULL, groups TEXT NOT NULL, \
    max_age_secs INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL);";

const MIGRATIONS: &[(i64, &str)] = &[(1, SCHEMA_V1), (2, SCHEMA_V2)];

impl Cols for Row<'_> {
    fn i64_(&self, i: usize) -> Result<i64> {
        Ok(self.get(i)?)
    }
    fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        Ok(self.get(i)?)
    }
    fn text(&self, i: usize) -> Result<String> {
        Ok(self.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        Ok(self.get(i)?)
    }
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        Ok(self.get(i)?)
    }
    fn boolean(&self, i: usize) -> Result<bool> {
        Ok(self.get(i)?)
    }
}

/// An SQLite store. Clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl SqliteStore {
    /// Open or create the database file (and its directory) and apply pending migrations.
    pub async fn open(path: PathBuf) -> Result<SqliteStore> {
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || open_blocking(&p))
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    pub(super) async fn schema_version(&self) -> Result<i64> {
        self.run(|c| {
            Ok(c.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    pub(super) async fn add_group(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO host_groups (name, created) VALUES (?1, ?2)",
                params![name, now_ms()],
            )
            .map_err(|e| unique_to(e, || format!("group {name:?}")))?;
            Ok(())
        })
        .await
    }

    pub(super) async fn list_groups(&self) -> Result<Vec<Group>> {
        self.run(|c| {
            let mut st = c.prepare_cached("SELECT name, created FROM host_groups ORDER BY name")?;
            let mut rows = st.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(Group {
                    name: r.text(0)?,
                    created: r.i64_(1)?,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn set_policy(
        &self,
        group: &str,
        toml: &str,
        compiled: &[u8],
        digest: &str,
    ) -> Result<i64> {
        let (group, toml, compiled, digest) = (
            group.to_owned(),
            toml.to_owned(),
            compiled.to_vec(),
            digest.to_owned(),
        );
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !group_exists(&tx, &group)? {
                return Err(StoreError::NoSuchGroup(group));
            }
            let version: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM policies WHERE grp = ?1",
                params![group],
                |r| r.get(0),
            )?;
            tx.execute(
                "INSERT INTO policies (grp, version, digest, source, compiled, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![group, version, digest, toml, compiled, now_ms()],
            )?;
            audit_in(
                &tx,
                AuditKind::Policy,
                None,
                &serde_json::json!({ "group": group, "version": version, "digest": digest }),
            )?;
            tx.commit()?;
            Ok(version)
        })
        .await
    }

    pub(super) async fn current_policy(&self, group: &str) -> Result<Option<Policy>> {
        let group = group.to_owned();
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {POLICY_COLS} FROM policies WHERE grp = ?1 ORDER BY version DESC LIMIT 1"
            ))?;
            let mut rows = st.query(params![group])?;
            rows.next()?.map(policy_from).transpose()
        })
        .await
    }

    pub(super) async fn add_host(&self, host: &NewHost) -> Result<()> {
        let h = host.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !group_exists(&tx, &h.group)? {
                return Err(StoreError::NoSuchGroup(h.group));
            }
            if host_where(&tx, "h.name = ?1", &h.name)?.is_some() {
                return Err(StoreError::Exists(format!("host {:?}", h.name)));
            }
            if host_where(&tx, "h.uuid = ?1", &h.uuid)?.is_some() {
                return Err(StoreError::Exists(format!("agent UUID {:?}", h.uuid)));
            }
            let now = now_ms();
            tx.execute(
                "INSERT INTO hosts (name, grp, ip, port, uuid, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![h.name, h.group, h.ip, h.port, h.uuid, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO poll_state (host_id, next_due) VALUES (?1, ?2)",
                params![id, now],
            )?;
            audit_in(
                &tx,
                AuditKind::HostAdded,
                Some(&h.name),
                &serde_json::json!({ "group": h.group, "ip": h.ip, "port": h.port, "uuid": h.uuid }),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn remove_host(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(h) = host_where(&tx, "h.name = ?1", &name)? else {
                return Err(StoreError::NoSuchHost(name));
            };
            let id: i64 =
                tx.query_row("SELECT id FROM hosts WHERE name = ?1", params![name], |r| {
                    r.get(0)
                })?;
            tx.execute("DELETE FROM verdicts WHERE host_id = ?1", params![id])?;
            tx.execute("DELETE FROM poll_state WHERE host_id = ?1", params![id])?;
            tx.execute("DELETE FROM hosts WHERE id = ?1", params![id])?;
            audit_in(
                &tx,
                AuditKind::HostRemoved,
                Some(&name),
                &serde_json::json!({ "group": h.group, "uuid": h.uuid }),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn list_hosts(&self, group: Option<&str>) -> Result<Vec<Host>> {
        let group = group.map(str::to_owned);
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {HOST_COLS} FROM hosts h WHERE (?1 IS NULL OR h.grp = ?1) ORDER BY h.name"
            ))?;
            let mut rows = st.query(params![group])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(host_from(r, 0)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn get_host(&self, name: &str) -> Result<Option<Host>> {
        let name = name.to_owned();
        self.run(move |c| host_where(c, "h.name = ?1", &name)).await
    }

    pub(super) async fn host_by_uuid(&self, uuid: &str) -> Result<Option<Host>> {
        let uuid = uuid.to_owned();
        self.run(move |c| host_where(c, "h.uuid = ?1", &uuid)).await
    }

    pub(super) async fn register(&self, reg: &Registration) -> Result<()> {
        let reg = reg.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(stored) = host_where(&tx, "h.uuid = ?1", &reg.uuid)? else {
                return Err(StoreError::NoSuchAgent(reg.uuid));
            };
            if !registration_allowed(&stored, &reg) {
                audit_in(
                    &tx,
                    AuditKind::RegistrationRefused,
                    Some(&stored.name),
                    &refused_detail(&stored, &reg),
                )?;
                tx.commit()?;
                return Err(StoreError::RegistrationRefused { uuid: reg.uuid });
            }
            let state = if stored.activated {
                RegState::Activated
            } else {
                RegState::Registered
            };
            tx.execute(
                "UPDATE hosts SET ek_tpm = ?2, aik_tpm = ?3, ek_cert = ?4, mtls_cert = ?5, \
                 ip = ?6, port = ?7, reg_state = ?8 WHERE uuid = ?1",
                params![
                    reg.uuid,
                    reg.ek_tpm,
                    reg.aik_tpm,
                    reg.ek_cert,
                    reg.mtls_cert,
                    reg.ip,
                    reg.port,
                    state.as_str()
                ],
            )?;
            audit_in(
                &tx,
                AuditKind::Registration,
                Some(&stored.name),
                &serde_json::json!({
                    "uuid": reg.uuid, "ip": reg.ip, "port": reg.port,
                    "previous_state": stored.state.as_str(), "activated": stored.activated,
                }),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn activate(&self, uuid: &str) -> Result<()> {
        let uuid = uuid.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(stored) = host_where(&tx, "h.uuid = ?1", &uuid)? else {
                return Err(StoreError::NoSuchAgent(uuid));
            };
            if stored.state == RegState::Added {
                return Err(StoreError::NotRegistered(uuid));
            }
            tx.execute(
                "UPDATE hosts SET activated = 1, reg_state = 'activated' WHERE uuid = ?1",
                params![uuid],
            )?;
            audit_in(
                &tx,
                AuditKind::Activation,
                Some(&stored.name),
                &serde_json::json!({ "uuid": uuid }),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn poll_state(&self, host: &str) -> Result<Option<PollState>> {
        let host = host.to_owned();
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {POLL_COLS} FROM poll_state p JOIN hosts h ON h.id = p.host_id \
                 WHERE h.name = ?1"
            ))?;
            let mut rows = st.query(params![host])?;
            rows.next()?.map(|r| poll_from(r, 0)).transpose()
        })
        .await
    }

    pub(super) async fn record_verdict(&self, v: &NewVerdict, poll: &PollUpdate) -> Result<i64> {
        let (v, poll) = (v.clone(), poll.clone());
        self.run(move |c| {
            let findings = v.findings.to_string();
            let (clock, reset, restart) = counter_params(v.counters)?;
            let ima_next = poll
                .ima
                .as_ref()
                .map(|i| to_i64(i.next_index, "IMA index"))
                .transpose()?;
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let found: Option<(i64, Option<String>)> = tx
                .query_row(
                    "SELECT h.id, v.trust FROM hosts h JOIN poll_state p ON p.host_id = h.id \
                     LEFT JOIN verdicts v ON v.id = p.latest_verdict WHERE h.name = ?1",
                    params![v.host],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((host_id, previous)) = found else {
                return Err(StoreError::NoSuchHost(v.host));
            };
            tx.execute(
                "INSERT INTO verdicts (host_id, time, trust, findings, digest, policy_version, \
                 nonce, clock, reset_count, restart_count) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    host_id,
                    v.time,
                    trust_str(v.trust),
                    findings,
                    v.whitelist_digest,
                    v.policy_version,
                    v.nonce,
                    clock,
                    reset,
                    restart
                ],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE poll_state SET latest_verdict = ?2, next_due = ?3, failures = ?4, \
                 clock = COALESCE(?5, clock), reset_count = COALESCE(?6, reset_count), \
                 restart_count = COALESCE(?7, restart_count), \
                 boot_id = COALESCE(?8, boot_id), boottime = COALESCE(?9, boottime), \
                 ima_next = CASE WHEN ?10 THEN ?11 ELSE ima_next END, \
                 ima_pcr10 = CASE WHEN ?10 THEN ?12 ELSE ima_pcr10 END, \
                 lease_owner = CASE WHEN lease_owner = ?13 THEN NULL ELSE lease_owner END, \
                 lease_until = CASE WHEN lease_owner = ?13 THEN NULL ELSE lease_until END \
                 WHERE host_id = ?1",
                params![
                    host_id,
                    id,
                    poll.next_due,
                    poll.failures,
                    clock,
                    reset,
                    restart,
                    poll.boot_id,
                    poll.boottime,
                    poll.ima.is_some(),
                    ima_next,
                    poll.ima.as_ref().and_then(|i| i.pcr10.clone()),
                    poll.owner
                ],
            )?;
            let now = trust_str(v.trust);
            if previous.as_deref() != Some(now) {
                audit_in(
                    &tx,
                    AuditKind::VerdictChange,
                    Some(&v.host),
                    &serde_json::json!({ "from": previous, "to": now, "verdict": id }),
                )?;
            }
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    pub(super) async fn latest_verdicts(
        &self,
        names: &[String],
    ) -> Result<HashMap<String, Verdict>> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let names = serde_json::to_string(names)
            .map_err(|e| StoreError::Range(format!("host names: {e}")))?;
        self.run(move |c| {
            // One parameter, the names as a JSON array, unnested by json_each; each name is
            // then an index lookup on hosts.name. CROSS JOIN keeps json_each the outer loop
            // (SQLite's planner otherwise scans every host against every requested name:
            // 48 ms instead of a few for 1,000 of 10,000 hosts).
            let mut st = c.prepare_cached(&format!(
                "SELECT {VERDICT_COLS} FROM json_each(?1) j \
                 CROSS JOIN hosts h ON h.name = j.value \
                 JOIN poll_state p ON p.host_id = h.id \
                 JOIN verdicts v ON v.id = p.latest_verdict"
            ))?;
            let mut rows = st.query(params![names])?;
            let mut out = HashMap::new();
            while let Some(r) = rows.next()? {
                let v = verdict_from(r)?;
                out.insert(v.host.clone(), v);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn history(&self, host: &str, limit: usize) -> Result<Vec<Verdict>> {
        let host = host.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {VERDICT_COLS} FROM verdicts v JOIN hosts h ON h.id = v.host_id \
                 WHERE h.name = ?1 ORDER BY v.id DESC LIMIT ?2"
            ))?;
            let mut rows = st.query(params![host, limit])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(verdict_from(r)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn audit(
        &self,
        kind: AuditKind,
        host: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        let (host, detail) = (host.map(str::to_owned), detail.clone());
        self.run(move |c| audit_in(c, kind, host.as_deref(), &detail))
            .await
    }

    pub(super) async fn audit_log(
        &self,
        filter: &AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditEntry>> {
        let f = filter.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {AUDIT_COLS} FROM audit WHERE (?1 IS NULL OR kind = ?1) \
                 AND (?2 IS NULL OR host = ?2) AND (?3 IS NULL OR time >= ?3) \
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let mut rows = st.query(params![
                f.kind.map(AuditKind::as_str),
                f.host,
                f.since,
                limit
            ])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(audit_from(r)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn lease_due(
        &self,
        owner: &str,
        now: i64,
        batch: usize,
        lease_for: Duration,
    ) -> Result<Vec<HostToPoll>> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        let owner = owner.to_owned();
        let until = now.saturating_add(duration_ms(lease_for));
        let batch = i64::try_from(batch).unwrap_or(i64::MAX);
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids: Vec<i64> = {
                let mut st = tx.prepare_cached(
                    "UPDATE poll_state SET lease_owner = ?1, lease_until = ?2 \
                     WHERE host_id IN (SELECT host_id FROM poll_state \
                         WHERE next_due <= ?3 AND (lease_owner IS NULL OR lease_until <= ?3) \
                         ORDER BY next_due LIMIT ?4) \
                     RETURNING host_id",
                )?;
                let mut rows = st.query(params![owner, until, now, batch])?;
                let mut ids = Vec::new();
                while let Some(r) = rows.next()? {
                    ids.push(r.i64_(0)?);
                }
                ids
            };
            let out = {
                let ids = serde_json::Value::from(ids).to_string();
                let mut st = tx.prepare_cached(&format!(
                    "SELECT {HOST_COLS}, {POLL_COLS} FROM poll_state p \
                     JOIN hosts h ON h.id = p.host_id \
                     WHERE p.host_id IN (SELECT value FROM json_each(?1)) \
                     ORDER BY p.next_due, h.name"
                ))?;
                let mut rows = st.query(params![ids])?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(host_to_poll_from(r)?);
                }
                out
            };
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    pub(super) async fn create_key(&self, k: &StoredKey) -> Result<()> {
        let k = k.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT INTO keys (name, sealed, groups, max_age_secs, revoked, created) \
                 VALUES (?1, ?2, ?3, ?4, 0, ?5)",
                params![k.name, k.sealed, groups_json(&k.groups), k.max_age_secs, now_ms()],
            )
            .map_err(|e| unique_to(e, || format!("key {:?}", k.name)))?;
            audit_in(&tx, AuditKind::KeyAdmin, None, &serde_json::json!({"key": k.name, "action": "create", "groups": k.groups, "max_age_secs": k.max_age_secs}))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn get_key(&self, name: &str) -> Result<Option<StoredKey>> {
        let name = name.to_owned();
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT name, sealed, groups, max_age_secs, revoked, created FROM keys WHERE name = ?1",
            )?;
            let mut rows = st.query(params![name])?;
            match rows.next()? {
                Some(r) => Ok(Some(key_row(r)?)),
                None => Ok(None),
            }
        })
        .await
    }

    pub(super) async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT name, sealed, groups, max_age_secs, revoked, created FROM keys ORDER BY name",
            )?;
            let mut rows = st.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                out.push(key_row(r)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn set_key_policy(
        &self,
        name: &str,
        groups: &[String],
        max_age_secs: i64,
    ) -> Result<()> {
        let (name, groups) = (name.to_owned(), groups.to_vec());
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute(
                "UPDATE keys SET groups = ?2, max_age_secs = ?3 WHERE name = ?1",
                params![name, groups_json(&groups), max_age_secs],
            )?;
            if n == 0 {
                return Err(StoreError::Range(format!("no such key: {name}")));
            }
            audit_in(&tx, AuditKind::KeyAdmin, None, &serde_json::json!({"key": name, "action": "policy", "groups": groups, "max_age_secs": max_age_secs}))?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn revoke_key(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n = tx.execute("UPDATE keys SET revoked = 1 WHERE name = ?1", params![name])?;
            if n == 0 {
                return Err(StoreError::Range(format!("no such key: {name}")));
            }
            audit_in(
                &tx,
                AuditKind::KeyAdmin,
                None,
                &serde_json::json!({"key": name, "action": "revoke"}),
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn release(&self, owner: &str, host: &str, next_due: i64) -> Result<bool> {
        let (owner, host) = (owner.to_owned(), host.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE poll_state SET lease_owner = NULL, lease_until = NULL, next_due = ?3 \
                 WHERE lease_owner = ?1 AND host_id = (SELECT id FROM hosts WHERE name = ?2)",
                params![owner, host, next_due],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

fn groups_json(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".to_string())
}

fn key_row(r: &Row<'_>) -> Result<StoredKey> {
    let groups: String = r.get(2)?;
    Ok(StoredKey {
        name: r.get(0)?,
        sealed: r.get(1)?,
        groups: serde_json::from_str(&groups)
            .map_err(|e| StoreError::Corrupt(format!("key groups: {e}")))?,
        max_age_secs: r.get(3)?,
        revoked: r.get::<_, i64>(4)? != 0,
        created: r.get(5)?,
    })
}

fn open_blocking(path: &Path) -> Result<Connection> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let mut c = Connection::open(path)?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "{}: journal_mode is {mode}, WAL could not be enabled",
            path.display()
        )));
    }
    // FULL: a committed verdict survives a power loss, not only a killed process. The
    // environment may relax it to NORMAL (WAL: survives a killed process, may lose the last
    // transactions on an OS crash), e.g. for load measurements.
    let sync = match std::env::var("TRUSTPOOL_SQLITE_SYNCHRONOUS").as_deref() {
        Ok("NORMAL") | Ok("normal") => "NORMAL",
        _ => "FULL",
    };
    c.pragma_update(None, "synchronous", sync)?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut c)?;
    Ok(c)
}

fn migrate(c: &mut Connection) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?1, ?2)",
            params![version, now_ms()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn group_exists(c: &Connection, name: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM host_groups WHERE name = ?1",
        params![name],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

fn host_where(c: &Connection, cond: &str, value: &str) -> Result<Option<Host>> {
    let mut st = c.prepare_cached(&format!("SELECT {HOST_COLS} FROM hosts h WHERE {cond}"))?;
    let mut rows = st.query(params![value])?;
    rows.next()?.map(|r| host_from(r, 0)).transpose()
}

fn audit_in(
    c: &Connection,
    kind: AuditKind,
    host: Option<&str>,
    detail: &serde_json::Value,
) -> Result<i64> {
    c.execute(
        "INSERT INTO audit (time, kind, host, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now_ms(), kind.as_str(), host, detail.to_string()],
    )?;
    Ok(c.last_insert_rowid())
}

/// A unique-constraint failure as `Exists(what)`, anything else unchanged.
fn unique_to(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Exists(what())
        }
        _ => StoreError::Sqlite(e),
    }
}
