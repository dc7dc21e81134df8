//! tpm2-tools PCR values file: errors, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::pcr::{parse_tpm2_tools_pcrs, PcrSet};

fuzz_target!(|data: &[u8]| {
    let mut set = PcrSet::new();
    let _ = parse_tpm2_tools_pcrs(data, &mut set);
});
