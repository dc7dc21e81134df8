//! trustpool-core: parse and verify TPM 2.0 evidence with no heap and no I/O.
//!
//! Modules follow the formats they implement: [`codec`] (checked cursor), [`alg`]
//! (`TPM_ALG_ID`, hashing), [`attest`] (`TPMS_ATTEST`), [`signature`] (`TPMT_SIGNATURE` and
//! verification backends), [`public`] (`TPMT_PUBLIC`, SPKI), [`pcr`] (selections and values),
//! [`quote`] (quote verification), [`certify`] (TPM2_Certify of binding keys, wrapping data
//! keys to them), [`eventlog`] (TCG PC Client firmware event logs: parsing,
//! replay, comparison with quotes, decoding).
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod alg;
pub mod appraise;
pub mod attest;
pub mod certify;
pub mod codec;
pub mod credential;
pub mod eventlog;
pub mod ima;
pub mod pcr;
pub mod public;
pub mod quote;
mod rng;
pub mod signature;
pub mod tpm;
pub mod whitelist;

pub use alg::{Digest, EccCurve, HashAlg};
pub use attest::Attest;
pub use codec::{Error, ErrorKind, Reader};
pub use eventlog::{EventLog, EventLogError};
pub use pcr::{PcrBank, PcrSelection, PcrSet, PcrValues};
pub use public::{Public, PublicKey, SigScheme};
pub use quote::{AttestationKey, Quote, QuoteError, VerifiedQuote};
pub use signature::{RustCrypto, Signature, SignatureError, SignatureVerifier};
