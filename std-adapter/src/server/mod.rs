//! The attestation server (`trustpool server`): enrolls hosts (the Keylime registrar
//! protocol), polls them with fresh nonces over mutual TLS (the Keylime agent API), keeps
//! verdicts in a database and answers OpenAttestation `PollHosts` from the stored verdicts.
//!
//! - [`store`]: the storage layer, one schema on embedded SQLite (WAL, `synchronous=FULL`) or
//!   PostgreSQL, with versioned migrations, transactional verdict recording and leasing of
//!   due hosts for several server replicas.
//! - [`config`]: the TOML configuration.
//! - [`registrar`]: enrollment by credential activation; [`ekchain`]: EK certificate chains.
//! - [`check`]: one poll's appraisal (no I/O).
//! - [`ear`]: signed attestation results (EAT Attestation Results, ES256 JWT) and their JWKS.
//! - [`run`]: the HTTPS API, the registrar listener and the poller.

pub mod check;
pub mod config;
pub mod ear;
pub mod ekchain;
pub mod keys;
pub mod registrar;
pub mod run;
pub mod store;
pub mod wire;
