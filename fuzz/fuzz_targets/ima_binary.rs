//! IMA binary measurement lists on arbitrary bytes: parsing (both byte orders, SHA-1 and
//! SHA-256 template digests), template hashing, replay of two banks, and appraisal against a
//! small whitelist: errors and findings, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::alg::HashAlg;
use trustpool_core::ima::appraise::appraise_log;
use trustpool_core::ima::{Appraiser, BankMode, BinaryLog, Endian, Replay};
use trustpool_core::whitelist::Whitelist;

#[path = "common/whitelist.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let wl_bytes = common::tiny_ima_whitelist(HashAlg::Sha256, true);
    let wl = Whitelist::parse(&wl_bytes).expect("valid whitelist");
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        for endian in [Endian::Little, Endian::Big] {
            let banks = [
                (HashAlg::Sha1, BankMode::TemplateHash),
                (HashAlg::Sha256, BankMode::PaddedSha1),
            ];
            let mut r = Replay::with_banks(alg, 10, &banks).expect("banks");
            let mut last_end = 0;
            for e in BinaryLog::with_endian(data, alg, endian) {
                let Ok(e) = e else { break };
                assert!(e.offset >= last_end && e.end <= data.len() && e.end > e.offset);
                last_end = e.end;
                let _ = e.template_hash(HashAlg::Sha384);
                let _ = r.feed(&e);
                let _ = e.file_digest.map(|d| d.to_string());
            }
            let mut a = Appraiser::new(&wl);
            let _ = appraise_log(
                BinaryLog::with_endian(data, alg, endian),
                &mut a,
                &mut |f| {
                    let _ = f.kind.is_fatal();
                },
            );
        }
    }
});
