//! The attestation server (`trustpool server`): enrolls hosts, polls them, keeps verdicts in a
//! database and answers OpenAttestation `PollHosts` from the stored verdicts.
//!
//! [`store`] is its storage layer: one schema on embedded SQLite (WAL, `synchronous=FULL`) or
//! PostgreSQL, with versioned migrations, transactional verdict recording and leasing of due
//! hosts for several server replicas.

pub mod store;
