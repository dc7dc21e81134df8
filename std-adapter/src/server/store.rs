//! The server's storage: groups and their policies, enrolled hosts, per-host poll state,
//! verdicts and an audit log, on embedded SQLite or on PostgreSQL.
//!
//! [`Store::open`] takes a URL: `postgres://…` (or `postgresql://…`) opens PostgreSQL,
//! `sqlite:///path/file.db`, `sqlite:path` or a plain path opens (and creates) an SQLite file.
//! Opening applies the pending schema migrations (recorded in `schema_migrations`), so it is
//! idempotent and safe from several processes at once.
//!
//! Times are UTC Unix milliseconds (`i64`). Every SQL value is bound as a parameter. A verdict
//! and the host's latest-verdict pointer and poll state are written in one transaction that is
//! committed (on SQLite with `synchronous=FULL`) before [`Store::record_verdict`] returns.
//!
//! Several server replicas share the polling through leases: [`Store::lease_due`] hands each
//! due host to one owner until the lease expires (PostgreSQL: `FOR UPDATE SKIP LOCKED`;
//! SQLite: `BEGIN IMMEDIATE`), so a dead replica's hosts are taken over after `lease_for`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use crate::oat::TrustLevel;

mod postgres;
mod sqlite;

pub use self::postgres::PgStore;
pub use self::sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("store URL {0:?}: {1}")]
    Url(String, String),
    #[error("database schema version {found} is newer than this trustpool ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("no group {0:?}")]
    NoSuchGroup(String),
    #[error("no host {0:?}")]
    NoSuchHost(String),
    #[error("no host with agent UUID {0:?}")]
    NoSuchAgent(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error(
        "agent {uuid} is activated with other keys: re-registration with a different EK/AK refused"
    )]
    RegistrationRefused { uuid: String },
    #[error("agent {0} has not registered its keys")]
    NotRegistered(String),
    #[error("value out of range for the store: {0}")]
    Range(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("store worker: {0}")]
    Worker(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The current UTC time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating.
pub fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A group of hosts sharing a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub created: i64,
}

/// One version of a group's policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub group: String,
    /// 1, 2, … per group.
    pub version: i64,
    /// Hex SHA-256 of the compiled whitelist.
    pub digest: String,
    /// The policy source (TOML).
    pub source: String,
    /// The compiled whitelist.
    pub compiled: Vec<u8>,
    pub created: i64,
}

/// A host to enroll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewHost {
    /// The scheduler's name for the host, stored and compared byte for byte.
    pub name: String,
    pub group: String,
    /// The agent's address and port.
    pub ip: String,
    pub port: u16,
    /// The agent's UUID.
    pub uuid: String,
}

/// Where a host is in enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegState {
    /// Added by the operator; the agent has not registered its keys.
    Added,
    /// The agent registered its EK and AK; the AK is not yet proven (credential activation).
    Registered,
    /// The AK was proven to be resident with the EK.
    Activated,
}

impl RegState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegState::Added => "added",
            RegState::Registered => "registered",
            RegState::Activated => "activated",
        }
    }

    pub fn parse(s: &str) -> Result<RegState> {
        match s {
            "added" => Ok(RegState::Added),
            "registered" => Ok(RegState::Registered),
            "activated" => Ok(RegState::Activated),
            _ => Err(StoreError::Corrupt(format!("registration state {s:?}"))),
        }
    }
}

/// An enrolled host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub group: String,
    pub ip: String,
    pub port: u16,
    pub uuid: String,
    pub created: i64,
    /// The EK public area (TPM2B_PUBLIC), once registered.
    pub ek_tpm: Option<Vec<u8>>,
    /// The AK public area (TPM2B_PUBLIC), once registered.
    pub aik_tpm: Option<Vec<u8>>,
    pub ek_cert: Option<Vec<u8>>,
    /// The agent's mTLS certificate (PEM), once registered.
    pub mtls_cert: Option<String>,
    pub activated: bool,
    pub state: RegState,
}

/// What an agent presents when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub uuid: String,
    pub ek_tpm: Vec<u8>,
    pub aik_tpm: Vec<u8>,
    pub ek_cert: Option<Vec<u8>>,
    pub mtls_cert: String,
    pub ip: String,
    pub port: u16,
}

/// A quote's clock info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
}

/// How far a host's IMA log has been appraised.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImaProgress {
    /// The index of the next entry to appraise.
    pub next_index: u64,
    /// PCR 10 as replayed up to `next_index` (`None` before the first entry).
    pub pcr10: Option<Vec<u8>>,
}

/// A host's polling state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollState {
    pub next_due: i64,
    pub failures: u32,
    /// The counters of the last quote.
    pub counters: Option<Counters>,
    pub boot_id: Option<String>,
    pub boottime: Option<i64>,
    pub ima: ImaProgress,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    /// The id of the host's latest verdict.
    pub latest_verdict: Option<i64>,
}

/// A leased host: what the poller needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostToPoll {
    pub host: Host,
    pub poll: PollState,
}

/// A verdict to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewVerdict {
    pub host: String,
    /// UTC Unix milliseconds.
    pub time: i64,
    pub trust: TrustLevel,
    pub findings: serde_json::Value,
    /// Hex SHA-256 of the whitelist appraised against.
    pub whitelist_digest: String,
    pub policy_version: Option<i64>,
    /// The quote's nonce, hex.
    pub nonce: String,
    pub counters: Option<Counters>,
}

/// A stored verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub id: i64,
    pub host: String,
    pub time: i64,
    pub trust: TrustLevel,
    pub findings: serde_json::Value,
    pub whitelist_digest: String,
    pub policy_version: Option<i64>,
    pub nonce: String,
    pub counters: Option<Counters>,
}

/// The poll state written together with a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PollUpdate {
    pub next_due: i64,
    /// Consecutive failures after this poll (0 after a successful one).
    pub failures: u32,
    /// `None` keeps the stored value.
    pub boot_id: Option<String>,
    /// `None` keeps the stored value.
    pub boottime: Option<i64>,
    /// `None` keeps the stored progress.
    pub ima: Option<ImaProgress>,
    /// The lease to clear if this owner still holds it.
    pub owner: Option<String>,
}

/// The kinds of audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuditKind {
    Registration,
    RegistrationRefused,
    Activation,
    Policy,
    VerdictChange,
    HostAdded,
    HostRemoved,
    KeyRelease,
    KeyRefused,
    KeyAdmin,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Registration => "registration",
            AuditKind::RegistrationRefused => "registration-refused",
            AuditKind::Activation => "activation",
            AuditKind::Policy => "policy",
            AuditKind::VerdictChange => "verdict-change",
            AuditKind::HostAdded => "host-added",
            AuditKind::HostRemoved => "host-removed",
            AuditKind::KeyRelease => "key-release",
            AuditKind::KeyRefused => "key-refused",
            AuditKind::KeyAdmin => "key-admin",
        }
    }

    pub fn parse(s: &str) -> Result<AuditKind> {
        Ok(match s {
            "registration" => AuditKind::Registration,
            "registration-refused" => AuditKind::RegistrationRefused,
            "activation" => AuditKind::Activation,
            "policy" => AuditKind::Policy,
            "verdict-change" => AuditKind::VerdictChange,
            "host-added" => AuditKind::HostAdded,
            "host-removed" => AuditKind::HostRemoved,
            "key-release" => AuditKind::KeyRelease,
            "key-refused" => AuditKind::KeyRefused,
            "key-admin" => AuditKind::KeyAdmin,
            _ => return Err(StoreError::Corrupt(format!("audit kind {s:?}"))),
        })
    }
}

/// A named data key, sealed under the server's master key, with its release policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub name: String,
    /// The data key sealed under the master key (nonce ‖ AES-256-GCM ciphertext ‖ tag).
    #[serde(skip)]
    pub sealed: Vec<u8>,
    /// Host groups that may receive it.
    pub groups: Vec<String>,
    /// The newest a host's trusted verdict must be, in seconds.
    pub max_age_secs: i64,
    pub revoked: bool,
    pub created: i64,
}

/// An audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub time: i64,
    pub kind: AuditKind,
    pub host: Option<String>,
    pub detail: serde_json::Value,
}

/// Which audit records [`Store::audit_log`] returns (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub kind: Option<AuditKind>,
    pub host: Option<String>,
    /// Records at or after this time.
    pub since: Option<i64>,
}

pub fn trust_str(t: TrustLevel) -> &'static str {
    match t {
        TrustLevel::Trusted => "trusted",
        TrustLevel::Untrusted => "untrusted",
        TrustLevel::Unknown => "unknown",
        TrustLevel::Timeout => "timeout",
    }
}

pub fn parse_trust(s: &str) -> Result<TrustLevel> {
    match s {
        "trusted" => Ok(TrustLevel::Trusted),
        "untrusted" => Ok(TrustLevel::Untrusted),
        "unknown" => Ok(TrustLevel::Unknown),
        "timeout" => Ok(TrustLevel::Timeout),
        _ => Err(StoreError::Corrupt(format!("trust level {s:?}"))),
    }
}

/// Where a store lives, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(url: &str) -> Result<StoreUrl> {
        let bad = |why: &str| StoreError::Url(url.to_owned(), why.to_owned());
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        let path = if let Some(rest) = url.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            rest
        } else if url.contains("://") {
            return Err(bad("unknown scheme: use sqlite:// or postgres://"));
        } else {
            url
        };
        if path.is_empty() {
            return Err(bad("no path"));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    }
}

// --- shared row decoding --------------------------------------------------------------------

/// Column access common to rusqlite and tokio-postgres rows (integers are 64-bit in both
/// schemas).
pub(crate) trait Cols {
    fn i64_(&self, i: usize) -> Result<i64>;
    fn opt_i64(&self, i: usize) -> Result<Option<i64>>;
    fn text(&self, i: usize) -> Result<String>;
    fn opt_text(&self, i: usize) -> Result<Option<String>>;
    fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>>;
    fn boolean(&self, i: usize) -> Result<bool>;

    fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_blob(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Range(format!("{what} {v}")))
}

fn from_i64<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T> {
    T::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what} {v}")))
}

/// Host columns, aliased `h`.
pub(crate) const HOST_COLS: &str = "h.name, h.grp, h.ip, h.port, h.uuid, h.created, h.ek_tpm, \
     h.aik_tpm, h.ek_cert, h.mtls_cert, h.activated, h.reg_state";
pub(crate) const N_HOST_COLS: usize = 12;

/// Poll state columns, aliased `p`.
pub(crate) const POLL_COLS: &str = "p.next_due, p.failures, p.clock, p.reset_count, \
     p.restart_count, p.boot_id, p.boottime, p.ima_next, p.ima_pcr10, p.lease_owner, \
     p.lease_until, p.latest_verdict";

/// Verdict columns, aliased `v`, with the host's name from `h`.
pub(crate) const VERDICT_COLS: &str = "v.id, h.name, v.time, v.trust, v.findings, v.digest, \
     v.policy_version, v.nonce, v.clock, v.reset_count, v.restart_count";

pub(crate) const POLICY_COLS: &str = "grp, version, digest, source, compiled, created";

pub(crate) const AUDIT_COLS: &str = "id, time, kind, host, detail";

pub(crate) fn host_from(r: &impl Cols, o: usize) -> Result<Host> {
    Ok(Host {
        name: r.text(o)?,
        group: r.text(o + 1)?,
        ip: r.text(o + 2)?,
        port: from_i64(r.i64_(o + 3)?, "port")?,
        uuid: r.text(o + 4)?,
        created: r.i64_(o + 5)?,
        ek_tpm: r.opt_blob(o + 6)?,
        aik_tpm: r.opt_blob(o + 7)?,
        ek_cert: r.opt_blob(o + 8)?,
        mtls_cert: r.opt_text(o + 9)?,
        activated: r.boolean(o + 10)?,
        state: RegState::parse(&r.text(o + 11)?)?,
    })
}

fn counters_from(
    clock: Option<i64>,
    reset: Option<i64>,
    restart: Option<i64>,
) -> Result<Option<Counters>> {
    match (clock, reset, restart) {
        (Some(c), Some(r), Some(s)) => Ok(Some(Counters {
            clock: from_i64(c, "clock")?,
            reset_count: from_i64(r, "reset count")?,
            restart_count: from_i64(s, "restart count")?,
        })),
        _ => Ok(None),
    }
}

pub(crate) fn poll_from(r: &impl Cols, o: usize) -> Result<PollState> {
    Ok(PollState {
        next_due: r.i64_(o)?,
        failures: from_i64(r.i64_(o + 1)?, "failures")?,
        counters: counters_from(r.opt_i64(o + 2)?, r.opt_i64(o + 3)?, r.opt_i64(o + 4)?)?,
        boot_id: r.opt_text(o + 5)?,
        boottime: r.opt_i64(o + 6)?,
        ima: ImaProgress {
            next_index: from_i64(r.i64_(o + 7)?, "IMA index")?,
            pcr10: r.opt_blob(o + 8)?,
        },
        lease_owner: r.opt_text(o + 9)?,
        lease_until: r.opt_i64(o + 10)?,
        latest_verdict: r.opt_i64(o + 11)?,
    })
}

pub(crate) fn host_to_poll_from(r: &impl Cols) -> Result<HostToPoll> {
    Ok(HostToPoll {
        host: host_from(r, 0)?,
        poll: poll_from(r, N_HOST_COLS)?,
    })
}

fn json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn verdict_from(r: &impl Cols) -> Result<Verdict> {
    Ok(Verdict {
        id: r.i64_(0)?,
        host: r.text(1)?,
        time: r.i64_(2)?,
        trust: parse_trust(&r.text(3)?)?,
        findings: json(&r.text(4)?, "findings")?,
        whitelist_digest: r.text(5)?,
        policy_version: r.opt_i64(6)?,
        nonce: r.text(7)?,
        counters: counters_from(r.opt_i64(8)?, r.opt_i64(9)?, r.opt_i64(10)?)?,
    })
}

pub(crate) fn policy_from(r: &impl Cols) -> Result<Policy> {
    Ok(Policy {
        group: r.text(0)?,
        version: r.i64_(1)?,
        digest: r.text(2)?,
        source: r.text(3)?,
        compiled: r.blob(4)?,
        created: r.i64_(5)?,
    })
}

pub(crate) fn audit_from(r: &impl Cols) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.i64_(0)?,
        time: r.i64_(1)?,
        kind: AuditKind::parse(&r.text(2)?)?,
        host: r.opt_text(3)?,
        detail: json(&r.text(4)?, "audit detail")?,
    })
}

/// The verdict's counters as three nullable integers.
pub(crate) fn counter_params(
    c: Option<Counters>,
) -> Result<(Option<i64>, Option<i64>, Option<i64>)> {
    Ok(match c {
        Some(c) => (
            Some(to_i64(c.clock, "clock")?),
            Some(i64::from(c.reset_count)),
            Some(i64::from(c.restart_count)),
        ),
        None => (None, None, None),
    })
}

/// The audit detail of a refused re-registration (no key material, only what differs).
pub(crate) fn refused_detail(stored: &Host, reg: &Registration) -> serde_json::Value {
    serde_json::json!({
        "uuid": reg.uuid,
        "ek_changed": stored.ek_tpm.as_deref() != Some(reg.ek_tpm.as_slice()),
        "ak_changed": stored.aik_tpm.as_deref() != Some(reg.aik_tpm.as_slice()),
        "ip": reg.ip,
        "port": reg.port,
    })
}

/// Whether a registration may replace what is stored: anything before activation, only the
/// same EK and AK after it.
pub(crate) fn registration_allowed(stored: &Host, reg: &Registration) -> bool {
    !stored.activated
        || (stored.ek_tpm.as_deref() == Some(reg.ek_tpm.as_slice())
            && stored.aik_tpm.as_deref() == Some(reg.aik_tpm.as_slice()))
}

// --- the store --------------------------------------------------------------------------------

/// The server's database: SQLite or PostgreSQL. Cheap to clone (shared connections).
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

macro_rules! dispatch {
    ($self:ident . $f:ident ( $($arg:expr),* )) => {
        match $self {
            Store::Sqlite(s) => s.$f($($arg),*).await,
            Store::Postgres(p) => p.$f($($arg),*).await,
        }
    };
}

impl Store {
    /// Open (creating and migrating as needed) the store at `url`.
    pub async fn open(url: &str) -> Result<Store> {
        match StoreUrl::parse(url)? {
            StoreUrl::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path).await?)),
            StoreUrl::Postgres(url) => Ok(Store::Postgres(PgStore::connect(&url).await?)),
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The applied schema version.
    pub async fn schema_version(&self) -> Result<i64> {
        dispatch!(self.schema_version())
    }

    /// Create a group (`Exists` if it does).
    pub async fn add_group(&self, name: &str) -> Result<()> {
        dispatch!(self.add_group(name))
    }

    pub async fn list_groups(&self) -> Result<Vec<Group>> {
        dispatch!(self.list_groups())
    }

    /// Store a new policy version for `group` (1, 2, …) and audit it; returns the version.
    pub async fn set_policy(
        &self,
        group: &str,
        toml: &str,
        compiled: &[u8],
        digest: &str,
    ) -> Result<i64> {
        dispatch!(self.set_policy(group, toml, compiled, digest))
    }

    /// The group's newest policy.
    pub async fn current_policy(&self, group: &str) -> Result<Option<Policy>> {
        dispatch!(self.current_policy(group))
    }

    /// Enroll a host (due for polling now) and audit it.
    pub async fn add_host(&self, host: &NewHost) -> Result<()> {
        dispatch!(self.add_host(host))
    }

    /// Remove a host with its poll state and verdicts (the audit log keeps its name).
    pub async fn remove_host(&self, name: &str) -> Result<()> {
        dispatch!(self.remove_host(name))
    }

    /// All hosts, or a group's, by name.
    pub async fn list_hosts(&self, group: Option<&str>) -> Result<Vec<Host>> {
        dispatch!(self.list_hosts(group))
    }

    pub async fn get_host(&self, name: &str) -> Result<Option<Host>> {
        dispatch!(self.get_host(name))
    }

    pub async fn host_by_uuid(&self, uuid: &str) -> Result<Option<Host>> {
        dispatch!(self.host_by_uuid(uuid))
    }

    /// Store an agent's keys and addresses. Once activated, a registration with another EK or
    /// AK is refused with [`StoreError::RegistrationRefused`] (and audited); the same keys
    /// may re-register (new address, certificate).
    pub async fn register(&self, reg: &Registration) -> Result<()> {
        dispatch!(self.register(reg))
    }

    /// Mark a registered agent's AK as proven.
    pub async fn activate(&self, uuid: &str) -> Result<()> {
        dispatch!(self.activate(uuid))
    }

    pub async fn poll_state(&self, host: &str) -> Result<Option<PollState>> {
        dispatch!(self.poll_state(host))
    }

    /// Insert a verdict and, in the same transaction, point the host's latest verdict at it,
    /// update its poll state (and clear `poll.owner`'s lease), and audit a change of trust
    /// level. Returns the verdict's id once committed.
    pub async fn record_verdict(&self, v: &NewVerdict, poll: &PollUpdate) -> Result<i64> {
        dispatch!(self.record_verdict(v, poll))
    }

    /// The latest verdicts of the named hosts that have one, by name.
    pub async fn latest_verdicts(&self, names: &[String]) -> Result<HashMap<String, Verdict>> {
        dispatch!(self.latest_verdicts(names))
    }

    /// A host's newest verdicts, newest first.
    pub async fn history(&self, host: &str, limit: usize) -> Result<Vec<Verdict>> {
        dispatch!(self.history(host, limit))
    }

    /// Append an audit record; returns its id.
    pub async fn audit(
        &self,
        kind: AuditKind,
        host: Option<&str>,
        detail: &serde_json::Value,
    ) -> Result<i64> {
        dispatch!(self.audit(kind, host, detail))
    }

    /// Audit records matching `filter`, newest first.
    pub async fn audit_log(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>> {
        dispatch!(self.audit_log(filter, limit))
    }

    /// Store a new named key (audited as `key-admin`).
    pub async fn create_key(&self, k: &StoredKey) -> Result<()> {
        dispatch!(self.create_key(k))
    }

    pub async fn get_key(&self, name: &str) -> Result<Option<StoredKey>> {
        dispatch!(self.get_key(name))
    }

    pub async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        dispatch!(self.list_keys())
    }

    /// Change a key's groups and maximum verdict age (audited).
    pub async fn set_key_policy(
        &self,
        name: &str,
        groups: &[String],
        max_age_secs: i64,
    ) -> Result<()> {
        dispatch!(self.set_key_policy(name, groups, max_age_secs))
    }

    /// Revoke a key: it is never released again (audited).
    pub async fn revoke_key(&self, name: &str) -> Result<()> {
        dispatch!(self.revoke_key(name))
    }

    /// Lease up to `batch` hosts due at `now` whose lease is free or expired to `owner` until
    /// `now + lease_for`.
    pub async fn lease_due(
        &self,
        owner: &str,
        now: i64,
        batch: usize,
        lease_for: Duration,
    ) -> Result<Vec<HostToPoll>> {
        dispatch!(self.lease_due(owner, now, batch, lease_for))
    }

    /// Clear `owner`'s lease on `host` and set when it is next due. False if `owner` did not
    /// hold the lease (nothing changed).
    pub async fn release(&self, owner: &str, host: &str, next_due: i64) -> Result<bool> {
        dispatch!(self.release(owner, host, next_due))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse("sqlite:///var/lib/tp/s.db").ok(),
            Some(StoreUrl::Sqlite("/var/lib/tp/s.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:rel.db").ok(),
            Some(StoreUrl::Sqlite("rel.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("/x/y.db").ok(),
            Some(StoreUrl::Sqlite("/x/y.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("postgres://u@h/db").ok(),
            Some(StoreUrl::Postgres("postgres://u@h/db".into()))
        );
        assert!(StoreUrl::parse("mysql://h/db").is_err());
        assert!(StoreUrl::parse("sqlite://").is_err());
    }

    #[test]
    fn names_round_trip() {
        for t in [
            TrustLevel::Trusted,
            TrustLevel::Untrusted,
            TrustLevel::Unknown,
            TrustLevel::Timeout,
        ] {
            assert_eq!(parse_trust(trust_str(t)).ok(), Some(t));
        }
        for k in [
            AuditKind::Registration,
            AuditKind::RegistrationRefused,
            AuditKind::Activation,
            AuditKind::Policy,
            AuditKind::VerdictChange,
            AuditKind::HostAdded,
            AuditKind::HostRemoved,
            AuditKind::KeyRelease,
        ] {
            assert_eq!(AuditKind::parse(k.as_str()).ok(), Some(k));
            assert_eq!(
                serde_json::to_value(k).ok(),
                Some(serde_json::Value::from(k.as_str()))
            );
        }
    }
}
