//! Shared by the IMA fuzz targets: a tiny compact whitelist (IMA enforced, SELinux enforcing
//! required, one allowlist record for `/bin/sh` in bank `alg`, and optionally `/tmp/` excluded),
//! written in the format `trustpool_core::whitelist` documents.

use trustpool_core::alg::HashAlg;
use trustpool_core::whitelist::{self, flag, section, Settings};

pub fn tiny_ima_whitelist(alg: HashAlg, exclude_tmp: bool) -> Vec<u8> {
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
    allow.extend(vec![0x11; alg.size()]);
    let mut exclude = vec![0u8; whitelist::PREFIX_RECORD];
    exclude[..5].copy_from_slice(b"/tmp/");
    exclude[whitelist::PREFIX_RECORD - 1] = 5;
    let mut sections: Vec<(u16, &[u8])> =
        vec![(section::SETTINGS, &settings), (section::IMA_DIGEST | alg.id(), &allow)];
    if exclude_tmp {
        sections.push((section::IMA_EXCLUDE, &exclude));
    }
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
