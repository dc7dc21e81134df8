//! `trustpool server` configuration: `/etc/trustpool/server.toml` (or `--config FILE`), every
//! key optional with the default documented here and in `docs/server.toml`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG: &str = "/etc/trustpool/server.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// HTTPS for PollHosts, the management API, results and metrics. Default `0.0.0.0:8443`.
    pub listen: String,
    /// The server's TLS certificate chain and key (PEM). The certificate must name the server
    /// in its subject alternative names (Nova checks it). Default: made once in state_dir for
    /// `localhost` and 127.0.0.1 (tests; give a real one in production).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP instead of HTTPS (tests only).
    pub insecure_http: bool,
    /// `x-auth-blob` values accepted on PollHosts; empty: no authentication (oVirt sends none).
    pub auth_blobs: Vec<String>,
    /// Accept PollHosts without `x-auth-blob` on the `/AttestationService/…` path even when
    /// auth_blobs is set (oVirt's path; Nova's default path stays authenticated).
    pub ovirt_path_without_auth: bool,
    /// Bearer token of the management API; default: made once in state_dir/api-token.
    pub api_token: Option<String>,
    /// Database: `sqlite:///path/file.db` (default: state_dir/trustpool.db) or `postgres://…`.
    pub database: Option<String>,
    /// Keys, certificates, CA and the SQLite database live here.
    pub state_dir: PathBuf,
    /// Seconds between two polls of a host. Must be shorter than the clients' cache time
    /// (Nova's `attestation_auth_timeout`, 60 s by default, counted from `vtime`).
    pub poll_interval_secs: u64,
    /// Hosts polled at once.
    pub concurrency: usize,
    /// Longest wait for one agent's answer, in milliseconds.
    pub agent_timeout_ms: u64,
    /// A verdict older than this is reported as `unknown` (seconds).
    pub verdict_lifetime_secs: u64,
    /// Longest backoff after failed polls (seconds); jittered.
    pub max_backoff_secs: u64,
    /// How long a replica holds the hosts it leased (seconds); another replica takes them
    /// over after that.
    pub lease_secs: u64,
    /// The Keylime registrar protocol (agents enroll here); empty: no registrar.
    pub registrar_listen: String,
    /// PEM files of EK certificate roots (manufacturer CAs) accepted at registration.
    pub ek_ca_roots: Vec<PathBuf>,
    /// Accept EKs without a certificate (software TPMs, tests): an explicit choice.
    pub accept_unsigned_eks: bool,
    /// The CA agents trust for the server's client certificate (mutual TLS); made on first
    /// start (state_dir/agent-ca.pem, agent-client.pem) when not given.
    pub agent_ca: Option<PathBuf>,
    pub agent_client_cert: Option<PathBuf>,
    pub agent_client_key: Option<PathBuf>,
    /// Replica name for leases (default: host name and process id).
    pub replica: Option<String>,
    /// The key provider's master key (32 bytes raw, hex or base64); default: the
    /// `TRUSTPOOL_MASTER_KEY` environment variable. Without one the key service is off.
    pub master_key_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8443".into(),
            tls_cert: None,
            tls_key: None,
            insecure_http: false,
            auth_blobs: Vec::new(),
            ovirt_path_without_auth: true,
            api_token: None,
            database: None,
            state_dir: PathBuf::from("/var/lib/trustpool/server"),
            poll_interval_secs: 30,
            concurrency: 64,
            agent_timeout_ms: 10_000,
            verdict_lifetime_secs: 300,
            max_backoff_secs: 300,
            lease_secs: 60,
            registrar_listen: "0.0.0.0:8890".into(),
            ek_ca_roots: Vec::new(),
            accept_unsigned_eks: false,
            agent_ca: None,
            agent_client_cert: None,
            agent_client_key: None,
            replica: None,
            master_key_file: None,
        }
    }
}

impl ServerConfig {
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.state_dir.join("trustpool.db").display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_default() {
        let parsed: ServerConfig =
            toml::from_str(include_str!("../../../docs/server.toml")).unwrap();
        assert_eq!(parsed, ServerConfig::default());
    }
}
