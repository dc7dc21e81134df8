//! The server's request parsers on arbitrary input: OpenAttestation PollHosts bodies (Nova,
//! oVirt), and the agents' registrar and key-release bodies — an error, never a panic. The
//! modules are compiled here from the std adapter's source (no networking stack).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../std-adapter/src/agent/api.rs"]
pub mod agent_api;
#[allow(dead_code)]
#[path = "../../std-adapter/src/server/wire.rs"]
pub mod server_wire;

// The paths those files use (`crate::agent::api`).
mod agent {
    pub use super::agent_api as api;
}
mod server {
    pub use super::server_wire as wire;
}

#[allow(dead_code)]
#[path = "../../std-adapter/src/oat.rs"]
mod oat;

fuzz_target!(|data: &[u8]| {
    if let Ok(hosts) = oat::parse_request(data) {
        assert!(hosts.len() <= oat::MAX_HOSTS);
    }
    let answer = oat::answer(data, |_| Some((oat::TrustLevel::Trusted, 0)), 0);
    assert!(serde_json::from_slice::<serde_json::Value>(&answer).is_ok());
    let _ = server::wire::parse_registration(data);
    let _ = server::wire::parse_activation(data);
    let _ = server::wire::parse_release(data);
});
