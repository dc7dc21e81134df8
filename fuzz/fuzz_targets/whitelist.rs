//! Compact whitelist reader on arbitrary bytes: errors, never panics; lookups on whatever
//! validates never panic either.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::whitelist::Whitelist;
use trustpool_core::HashAlg;

fuzz_target!(|data: &[u8]| {
    // The digest check makes random input fail early; also try with a fixed-up digest so the
    // section validation is exercised.
    let mut fixed = data.to_vec();
    if fixed.len() >= 48 {
        let total = (fixed.len() as u32).to_be_bytes();
        fixed[8..12].copy_from_slice(&total);
        if let Some(d) = trustpool_core::whitelist::compute_digest(&fixed) {
            fixed[16..48].copy_from_slice(d.as_bytes());
        }
    }
    for bytes in [data, &fixed[..]] {
        if let Ok(wl) = Whitelist::parse(bytes) {
            let _ = wl.pcr_value_allowed(HashAlg::Sha256, 0, &[0; 32]);
            let _ = wl.event_digest_allowed(HashAlg::Sha256, 4, 0x8000_0003, &[0; 32]);
            let _ = wl.golden_pcr(HashAlg::Sha1, 7).map(|i| i.count());
            let _ = wl.cmdline_rules().count();
            for s in wl.sections() {
                let _ = s.records().count();
            }
        }
    }
});
