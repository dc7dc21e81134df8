//! IMA binary measurement lists on arbitrary bytes: parsing (both byte orders, SHA-1 and
//! SHA-256 template digests), template hashing, replay of two banks, and appraisal against a
//! small whitelist: errors and findings, never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::alg::HashAlg;
use trustpool_core::ima::appraise::appraise_log;
use trustpool_core::ima::{Appraiser, BankMode, BinaryLog, Endian, Replay};
use trustpool_core::whitelist::{self, flag, section, Settings, Whitelist};

/// A whitelist with IMA_ENFORCED, one SHA-256 allowlist record and one excluded prefix.
fn tiny_whitelist() -> Vec<u8> {
    let mut settings = [0u8; whitelist::SETTINGS_LEN];
    Settings {
        flags: flag::IMA_ENFORCED | flag::SELINUX_ENFORCING_REQUIRED,
        min_firmware_version: 0,
        required_pcrs: [(0, 0); 4],
        event_pcrs: 0,
        unknown_events_allowed: 0,
        name: [0; 32],
    }
    .write(&mut settings);
    let mut allow = trustpool_core::ima::appraise::path_hash(b"", b"/bin/sh").to_vec();
    allow.extend([0x11; 32]);
    let mut exclude = vec![0u8; whitelist::PREFIX_RECORD];
    exclude[..5].copy_from_slice(b"/tmp/");
    exclude[whitelist::PREFIX_RECORD - 1] = 5;
    let sections: [(u16, &[u8]); 3] = [
        (section::SETTINGS, &settings),
        (section::IMA_DIGEST | HashAlg::Sha256.id(), &allow),
        (section::IMA_EXCLUDE, &exclude),
    ];
    let mut out = vec![0u8; whitelist::HEADER_LEN + sections.len() * whitelist::SECTION_ENTRY_LEN];
    let mut data = vec![];
    let mut offset = out.len();
    for (i, (id, rec)) in sections.iter().enumerate() {
        let t = whitelist::HEADER_LEN + i * whitelist::SECTION_ENTRY_LEN;
        out[t..t + 2].copy_from_slice(&id.to_be_bytes());
        out[t + 2..t + 4].copy_from_slice(&(rec.len() as u16).to_be_bytes());
        out[t + 4..t + 8].copy_from_slice(&1u32.to_be_bytes());
        out[t + 8..t + 12].copy_from_slice(&(offset as u32).to_be_bytes());
        data.extend_from_slice(rec);
        offset += rec.len();
    }
    out.extend(data);
    let total = out.len() as u32;
    out[0..4].copy_from_slice(&whitelist::MAGIC);
    out[4..6].copy_from_slice(&whitelist::VERSION.to_be_bytes());
    out[6..8].copy_from_slice(&(whitelist::HEADER_LEN as u16).to_be_bytes());
    out[8..12].copy_from_slice(&total.to_be_bytes());
    out[12..14].copy_from_slice(&(sections.len() as u16).to_be_bytes());
    let d = whitelist::compute_digest(&out).expect("sha256");
    out[16..48].copy_from_slice(d.as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let wl_bytes = tiny_whitelist();
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
