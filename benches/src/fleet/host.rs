//! One simulated host: its keys (derived from the fleet's seed and the host's index), its
//! TPM-like clock, and quotes made in software in the exact TPM wire formats.

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Result};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use trustpool::files::KeylimeQuote;
use trustpool_core::eventlog::{EventLog, Replay, ALL_PCRS};
use trustpool_core::pcr::write_tpm2_tools_pcrs;
use trustpool_core::tpm::{AkTemplate, EkTemplate};
use trustpool_core::{HashAlg, PcrBank};

/// Keylime's data PCR (the transport key's PEM is bound to every quote through it).
pub const DATA_PCR: u8 = 16;

/// `TPM_RH_ENDORSEMENT`: the AK is a primary key of the endorsement hierarchy, as the real
/// agent makes it, so its qualified name is H(handle ‖ Name).
const TPM_RH_ENDORSEMENT: u32 = 0x4000_000b;

/// `TPMS_ATTEST.firmwareVersion` every simulated TPM reports.
pub const FIRMWARE_VERSION: u64 = 0x2023_0531_0017_0000;

/// `SHA-256("trustpool-fleet\0" ‖ seed ‖ 0 ‖ label ‖ 0 ‖ index ‖ counter)`: every per-host
/// secret and identifier comes from this, so a fleet can be regenerated from its seed.
pub fn derive(seed: &str, label: &str, index: u32, counter: u32) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"trustpool-fleet\0");
    ctx.update(seed.as_bytes());
    ctx.update(&[0]);
    ctx.update(label.as_bytes());
    ctx.update(&[0]);
    ctx.update(&index.to_be_bytes());
    ctx.update(&counter.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A P-256 private scalar derived from the seed: (PKCS#8 v1 DER with the public key, as ring
/// writes it; the uncompressed public point, 65 bytes; the p256 signing key).
pub fn derive_p256(
    seed: &str,
    label: &str,
    index: u32,
) -> Result<(Vec<u8>, [u8; 65], p256::ecdsa::SigningKey)> {
    for counter in 0..16 {
        let scalar = derive(seed, label, index, counter);
        let Ok(sk) = p256::ecdsa::SigningKey::from_slice(&scalar) else {
            continue;
        };
        let point = sk.verifying_key().to_sec1_point(false);
        let mut public = [0u8; 65];
        public.copy_from_slice(point.as_bytes());
        return Ok((p256_pkcs8(&scalar, &public), public, sk));
    }
    bail!("no valid P-256 scalar for {label} {index}")
}

/// PKCS#8 v1 (RFC 5208) of a P-256 key with its public key: ring's own layout.
fn p256_pkcs8(scalar: &[u8; 32], public: &[u8; 65]) -> Vec<u8> {
    let mut der = vec![
        0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30,
        0x6b, 0x02, 0x01, 0x01, 0x04, 0x20,
    ];
    der.extend_from_slice(scalar);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
    der.extend_from_slice(public);
    der
}

/// `TPM2B_PUBLIC` of a P-256 restricted signing key (the core's ECC AK template, ECDSA-SHA256,
/// nameAlg SHA-256) with `unique` = the point.
pub fn ak_public(point: &[u8; 65]) -> Vec<u8> {
    let template = AkTemplate::EccP256.public();
    // The template ends with two empty TPM2B_ECC_PARAMETERs (unique.x, unique.y).
    let mut t = template[..template.len() - 4].to_vec();
    t.extend_from_slice(&[0x00, 0x20]);
    t.extend_from_slice(&point[1..33]);
    t.extend_from_slice(&[0x00, 0x20]);
    t.extend_from_slice(&point[33..65]);
    tpm2b(&t)
}

/// `TPM2B_PUBLIC` of an RSA-2048 EK (TCG default template L-1) whose modulus is made up from
/// the seed: it parses as an EK and MakeCredential can encrypt to it, but no private key
/// exists (the simulated hosts never activate credentials).
pub fn fake_ek_public(seed: &str, index: u32) -> Vec<u8> {
    let template = EkTemplate::Rsa2048.public();
    let mut t = template[..template.len() - 256].to_vec();
    let mut modulus = Vec::with_capacity(256);
    for counter in 0..8 {
        modulus.extend_from_slice(&derive(seed, "ek", index, counter));
    }
    modulus[0] |= 0x80;
    modulus[255] |= 1;
    t.extend_from_slice(&modulus);
    tpm2b(&t)
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A UUID (version 4 layout) from the seed.
pub fn derive_uuid(seed: &str, index: u32) -> String {
    let mut b = derive(seed, "uuid", index, 0);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(&b[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The SHA-256 PCRs after booting with `eventlog` (replayed; PCRs the log does not touch keep
/// their reset values), before PCR 16 is set.
pub fn boot_pcrs(eventlog: &[u8]) -> Result<PcrBank> {
    let log = EventLog::parse(eventlog).map_err(|e| anyhow!("event log: {e}"))?;
    let replay = Replay::log(&log, ALL_PCRS);
    let bank = replay
        .bank(HashAlg::Sha256)
        .ok_or_else(|| anyhow!("event log has no SHA-256 digests"))?;
    let missing = replay.missing(HashAlg::Sha256);
    if missing != 0 {
        bail!("event log lacks SHA-256 digests for PCRs {missing:#x}");
    }
    Ok(bank.clone())
}

/// PCR 16 as the agent leaves it before every quote: reset, then extended once with
/// `H(pem)`: `H(0^32 ‖ H(pem))`.
pub fn data_pcr_value(transport_pem: &str) -> Result<trustpool_core::Digest> {
    let h = HashAlg::Sha256
        .hash(transport_pem.as_bytes())
        .ok_or_else(|| anyhow!("sha256 unavailable"))?;
    let mut v = trustpool_core::Digest::zero(HashAlg::Sha256);
    v.extend(h.as_bytes());
    Ok(v)
}

/// One simulated host.
pub struct Host {
    pub index: u32,
    /// `host-00001` (1-based).
    pub name: String,
    pub uuid: String,
    /// Whether its PCRs are those of the event log.
    pub good: bool,
    /// `TPM2B_PUBLIC` of its AK.
    pub aik_tpm: Vec<u8>,
    /// `TPM2B_PUBLIC` of its (fake) RSA EK.
    pub ek_tpm: Vec<u8>,
    qualified_name: Vec<u8>,
    key: EcdsaKeyPair,
    clock: AtomicU64,
    clock_base: u64,
    pub reset_count: u32,
    pub restart_count: u32,
}

impl Host {
    /// Make host `index` of the fleet of `seed`.
    pub fn new(seed: &str, index: u32, good: bool) -> Result<Host> {
        let (pkcs8, point, _) = derive_p256(seed, "ak", index)?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|e| anyhow!("AK of host {index}: {e}"))?;
        debug_assert_eq!(key.public_key().as_ref(), &point[..]);
        let aik_tpm = ak_public(&point);
        let name_digest = HashAlg::Sha256
            .hash(&aik_tpm[2..])
            .ok_or_else(|| anyhow!("sha256 unavailable"))?;
        let mut name = vec![0x00, 0x0b];
        name.extend_from_slice(name_digest.as_bytes());
        let mut qn_input = TPM_RH_ENDORSEMENT.to_be_bytes().to_vec();
        qn_input.extend_from_slice(&name);
        let qn = HashAlg::Sha256
            .hash(&qn_input)
            .ok_or_else(|| anyhow!("sha256 unavailable"))?;
        let mut qualified_name = vec![0x00, 0x0b];
        qualified_name.extend_from_slice(qn.as_bytes());
        let r = derive(seed, "tpm", index, 0);
        Ok(Host {
            index,
            name: format!("host-{:05}", index + 1),
            uuid: derive_uuid(seed, index),
            good,
            aik_tpm,
            ek_tpm: fake_ek_public(seed, index),
            qualified_name,
            key,
            clock: AtomicU64::new(0),
            // Powered on for some hours already, differently on each host.
            clock_base: 3_600_000 + u64::from(u32::from_be_bytes([r[0], r[1], r[2], 0]) >> 8),
            reset_count: 1 + u32::from(r[4] % 16),
            restart_count: u32::from(r[5] % 4),
        })
    }

    /// The next TPM clock value (ms): the boot-time base plus `elapsed_ms`, and always more
    /// than the last one given.
    pub fn next_clock(&self, elapsed_ms: u64) -> u64 {
        let target = self.clock_base.saturating_add(elapsed_ms);
        let mut prev = self.clock.load(Ordering::Relaxed);
        loop {
            let next = target.max(prev.saturating_add(1));
            match self
                .clock
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(p) => prev = p,
            }
        }
    }

    /// A Keylime quote string `r<attest>:<signature>:<pcrs>`: a TPMS_ATTEST of `mask | PCR 16`
    /// in the SHA-256 bank with `nonce` as extraData, signed with the AK (TPMT_SIGNATURE,
    /// ECDSA-SHA256), and the PCR values in tpm2-tools' layout.
    pub fn quote(
        &self,
        rng: &SystemRandom,
        pcrs: &PcrBank,
        nonce: &[u8],
        mask: u32,
        elapsed_ms: u64,
    ) -> Result<String> {
        let (attest, signature) = self.attest(rng, pcrs, nonce, mask, elapsed_ms)?;
        let mask = mask | (1 << DATA_PCR);
        let selection = [(HashAlg::Sha256, mask)];
        let mut buf = vec![0u8; 4 + 16 * 8 + 4 + 4 * (4 + 8 * (2 + 64))];
        let n = write_tpm2_tools_pcrs(&selection, pcrs, &mut buf)
            .map_err(|e| anyhow!("PCR values: {e}"))?;
        buf.truncate(n);
        Ok(KeylimeQuote {
            attest,
            signature,
            pcrs: buf,
        }
        .to_string())
    }

    /// The TPMS_ATTEST and TPMT_SIGNATURE of a quote of `mask | PCR 16`.
    pub fn attest(
        &self,
        rng: &SystemRandom,
        pcrs: &PcrBank,
        nonce: &[u8],
        mask: u32,
        elapsed_ms: u64,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let mask = (mask | (1 << DATA_PCR)) & ALL_PCRS;
        if nonce.len() > 64 {
            bail!("nonce longer than 64 bytes");
        }
        let mut h = ring::digest::Context::new(&ring::digest::SHA256);
        for i in 0..24u8 {
            if mask & (1 << i) != 0 {
                let v = pcrs.get(i).ok_or_else(|| anyhow!("no value for PCR {i}"))?;
                h.update(v.as_bytes());
            }
        }
        let pcr_digest = h.finish();
        let mut a = Vec::with_capacity(200);
        a.extend_from_slice(&trustpool_core::attest::TPM_GENERATED_VALUE.to_be_bytes());
        a.extend_from_slice(&trustpool_core::attest::st::ATTEST_QUOTE.to_be_bytes());
        a.extend_from_slice(&(self.qualified_name.len() as u16).to_be_bytes());
        a.extend_from_slice(&self.qualified_name);
        a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
        a.extend_from_slice(nonce);
        // TPMS_CLOCK_INFO
        a.extend_from_slice(&self.next_clock(elapsed_ms).to_be_bytes());
        a.extend_from_slice(&self.reset_count.to_be_bytes());
        a.extend_from_slice(&self.restart_count.to_be_bytes());
        a.push(1); // safe
        a.extend_from_slice(&FIRMWARE_VERSION.to_be_bytes());
        // TPMS_QUOTE_INFO: one bank, three select bytes.
        a.extend_from_slice(&1u32.to_be_bytes());
        a.extend_from_slice(&HashAlg::Sha256.id().to_be_bytes());
        a.push(3);
        a.extend_from_slice(&mask.to_le_bytes()[..3]);
        a.extend_from_slice(&32u16.to_be_bytes());
        a.extend_from_slice(pcr_digest.as_ref());
        let sig = self
            .key
            .sign(rng, &a)
            .map_err(|_| anyhow!("ECDSA signing failed"))?;
        let rs = sig.as_ref();
        if rs.len() != 64 {
            bail!("unexpected ECDSA signature length {}", rs.len());
        }
        // TPMT_SIGNATURE: ECDSA, SHA-256, r and s as TPM2B_ECC_PARAMETERs.
        let mut s = Vec::with_capacity(72);
        s.extend_from_slice(&[0x00, 0x18, 0x00, 0x0b, 0x00, 0x20]);
        s.extend_from_slice(&rs[..32]);
        s.extend_from_slice(&[0x00, 0x20]);
        s.extend_from_slice(&rs[32..]);
        Ok((a, s))
    }
}

/// Files a simulated host's IMA log measures after `boot_aggregate`.
const IMA_FILES: [&str; 4] = [
    "/usr/lib/systemd/systemd",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/sbin/sshd",
    "/usr/bin/bash",
];

/// A small `ima-ng` ASCII log (SHA-1 template hashes, as `ascii_runtime_measurements`):
/// `boot_aggregate` over SHA-256 PCRs 0–9 of `boot`, then a few files; and the SHA-256
/// PCR 10 it leaves (Linux ≥ 5.8: the bank is extended with SHA-256 of the template data).
pub fn small_ima_log(boot: &PcrBank) -> Result<(String, trustpool_core::Digest)> {
    let mut aggregate = ring::digest::Context::new(&ring::digest::SHA256);
    for i in 0..10u8 {
        let v = boot.get(i).ok_or_else(|| anyhow!("no value for PCR {i}"))?;
        aggregate.update(v.as_bytes());
    }
    let mut entries = vec![("boot_aggregate".to_string(), aggregate.finish())];
    for f in IMA_FILES {
        let content = format!("trustpool-fleet simulated contents of {f}");
        entries.push((
            f.to_string(),
            ring::digest::digest(&ring::digest::SHA256, content.as_bytes()),
        ));
    }
    let mut pcr10 = trustpool_core::Digest::zero(HashAlg::Sha256);
    let mut log = String::new();
    for (name, digest) in entries {
        // ima-ng template data: d-ng ("sha256:\0" ‖ digest) and n-ng (name ‖ \0), each
        // preceded by its u32 length.
        let mut data = Vec::new();
        let mut dng = b"sha256:\0".to_vec();
        dng.extend_from_slice(digest.as_ref());
        data.extend_from_slice(&(dng.len() as u32).to_le_bytes());
        data.extend_from_slice(&dng);
        data.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        data.extend_from_slice(name.as_bytes());
        data.push(0);
        let template_sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &data);
        pcr10.extend(ring::digest::digest(&ring::digest::SHA256, &data).as_ref());
        log.push_str(&format!(
            "10 {} ima-ng sha256:{} {}\n",
            hex::encode(template_sha1),
            hex::encode(digest),
            name
        ));
    }
    Ok((log, pcr10))
}
