//! The agent's configuration: `/etc/trustpool/agent.toml` (or `--config FILE`), every key
//! optional with the default documented here and in `docs/agent.toml`; flags override.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the agent looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/trustpool/agent.toml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The TPM: `device:/dev/tpmrm0` (default), `swtpm:HOST:PORT`, `mssim:HOST:PORT`.
    pub tpm: String,
    /// Address and port to serve the Keylime agent API on. Default `0.0.0.0:9002`.
    pub listen: String,
    /// The address the registrar gives verifiers to reach this agent. Default: the listen
    /// address, or 127.0.0.1 when listening on all addresses.
    pub contact_ip: Option<String>,
    /// The port given to the registrar. Default: the listen port.
    pub contact_port: Option<u16>,
    /// The agent's UUID. Default: generated once and kept in `state_dir/uuid`.
    pub uuid: Option<String>,
    /// The Keylime registrar, e.g. `http://127.0.0.1:8890`. Empty: do not register.
    pub registrar: String,
    /// Keys, certificate and UUID live here. Default `/var/lib/trustpool/agent`.
    pub state_dir: PathBuf,
    /// The agent's TLS certificate (PEM). Default: self-signed, made once in `state_dir`.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM, PKCS#8). Given together with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that clients' certificates must chain to (mutual TLS); the
    /// Keylime verifier's is `$KEYLIME_DIR/cv_ca/cacert.crt`. Required unless `insecure_http`.
    pub client_ca: Option<PathBuf>,
    /// PCR bank quoted: `sha256` (default), `sha1`, `sha384`.
    pub hash_alg: String,
    /// Attestation key: `rsa` (RSA 2048, RSASSA-SHA256, as Keylime expects; default) or `ecc`
    /// (P-256, ECDSA-SHA256).
    pub ak: String,
    /// Endorsement key used for enrollment: `rsa` (TCG template L-1; default) or `ecc` (L-2).
    pub ek: String,
    /// The binary firmware event log served when PCR 0 is asked for; empty: none.
    pub eventlog: String,
    /// The ASCII IMA measurement list; empty: none.
    pub ima_log: String,
    /// Quote requests waiting for the TPM beyond the one it is doing; more get 503.
    pub queue: usize,
    /// Longest wait for one TPM operation, in milliseconds.
    pub tpm_timeout_ms: u64,
    /// Connections served at once.
    pub max_connections: usize,
    /// Serve plain HTTP without client certificates. For tests only.
    pub insecure_http: bool,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            tpm: crate::tpm::DEFAULT_TPM.to_string(),
            listen: "0.0.0.0:9002".to_string(),
            contact_ip: None,
            contact_port: None,
            uuid: None,
            registrar: String::new(),
            state_dir: PathBuf::from("/var/lib/trustpool/agent"),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            hash_alg: "sha256".to_string(),
            ak: "rsa".to_string(),
            ek: "rsa".to_string(),
            eventlog: crate::eventlog_cmd::SYSFS_LOG.to_string(),
            ima_log: crate::tpm::SYSFS_IMA_ASCII.to_string(),
            queue: 4,
            tpm_timeout_ms: 10_000,
            max_connections: 64,
            insecure_http: false,
        }
    }
}

impl AgentConfig {
    /// Read a configuration file (TOML). Unknown keys are errors, so a typo is not ignored.
    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<AgentConfig> {
        Ok(toml::from_str(text)?)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        self.listen
            .parse()
            .map_err(|e| anyhow::anyhow!("listen address '{}': {e}", self.listen))
    }

    /// The address and port the registrar gives verifiers.
    pub fn contact(&self) -> anyhow::Result<(String, u16)> {
        let listen = self.listen_addr()?;
        let ip = match &self.contact_ip {
            Some(ip) => ip.clone(),
            None if listen.ip().is_unspecified() => "127.0.0.1".to_string(),
            None => listen.ip().to_string(),
        };
        Ok((ip, self.contact_port.unwrap_or(listen.port())))
    }

    /// A log path, or none when empty.
    pub fn log_path(s: &str) -> Option<PathBuf> {
        (!s.trim().is_empty()).then(|| PathBuf::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_the_default() {
        let text = include_str!("../../../docs/agent.toml");
        let parsed = AgentConfig::parse(text).unwrap();
        assert_eq!(parsed, AgentConfig::default());
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = AgentConfig::parse("lisen = \"1.2.3.4:5\"").unwrap_err();
        assert!(e.to_string().contains("unknown field `lisen`"), "{e}");
    }

    #[test]
    fn contact_defaults() {
        let c = AgentConfig::default();
        assert_eq!(c.contact().unwrap(), ("127.0.0.1".to_string(), 9002));
        let c = AgentConfig {
            listen: "10.0.0.5:9100".into(),
            ..AgentConfig::default()
        };
        assert_eq!(c.contact().unwrap(), ("10.0.0.5".to_string(), 9100));
    }
}
