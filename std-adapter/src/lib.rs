//! trustpool: the std adapter around `trustpool-core` — file formats, a fast signature
//! backend, and the command line.

pub mod agent;
pub mod backend;
pub mod ekcert;
pub mod eventlog_cmd;
pub mod evidence;
pub mod files;
pub mod ima_policy;
pub mod oat;
pub mod policy;
pub mod quote_cmd;
pub mod server;
pub mod testing;
pub mod tpm;
pub mod verify_cmd;

pub use backend::Ring;
