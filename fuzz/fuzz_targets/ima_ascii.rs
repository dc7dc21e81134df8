//! IMA ASCII measurement lists on arbitrary bytes: parsing, template-hash re-serialization,
//! replay, appraisal and the SELinux facts: errors and findings, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::alg::HashAlg;
use trustpool_core::ima::appraise::{appraise_log, selinux_enforcing};
use trustpool_core::ima::{Appraiser, AsciiLog, Blob, Replay};
use trustpool_core::whitelist::Whitelist;

#[path = "common/whitelist.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let wl_bytes = common::tiny_ima_whitelist(HashAlg::Sha1, false);
    let wl = Whitelist::parse(&wl_bytes).expect("valid whitelist");
    let mut r = Replay::new(HashAlg::Sha1).expect("sha1");
    for e in AsciiLog::new(data) {
        let Ok(e) = e else { break };
        assert!(e.end <= data.len());
        let _ = e.template_hash(HashAlg::Sha256);
        let _ = r.feed(&e);
        if let Some(b) = e.buf {
            let _ = selinux_enforcing(&b);
        }
    }
    let _ = selinux_enforcing(&Blob::Raw(data));
    let mut a = Appraiser::new(&wl);
    let _ = appraise_log(AsciiLog::new(data), &mut a, &mut |f| {
        let _ = f.kind.is_fatal();
    });
});
