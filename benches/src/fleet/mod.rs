//! A simulated fleet of Keylime agents for load tests of an attestation server.
//!
//! Each host has its own listener on 127.0.0.1 (one port per host: a verifier tells agents
//! apart by address and port only, as Keylime does, so hosts cannot share a listener), its
//! own software attestation key (ECC P-256, derived from the fleet's seed and the host's
//! index), a TPM-like clock, and PCR values from replaying a firmware event log; a fraction of
//! hosts is "bad" (one PCR extended once more with an unexpected digest). Hosts answer the
//! Keylime agent pull API as `trustpool agent` does (`trustpool::agent::api` routes and shapes
//! the answers), over mutual TLS with one shared, deterministic, self-signed server
//! certificate, or over plain HTTP for debugging.
//!
//! A [`Manifest`] lists what a server needs to enroll every host directly (no registrar).

pub mod host;
pub mod serve;
pub mod tls;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde::{Deserialize, Serialize};
use trustpool::agent::api::Algorithms;
use trustpool_core::{HashAlg, PcrBank};

use host::Host;
use serve::{Counters, Shared};

/// The firmware event log every host booted with (crypto-agile, SHA-1 and SHA-256 banks).
pub const DEFAULT_EVENTLOG: &[u8] =
    include_bytes!("../../../test-vectors/swtpm/eventlog/synthetic.bin");

/// The transport key ("NK") PEM all hosts send as `pubkey` and bind into PCR 16: an RSA-2048
/// SubjectPublicKeyInfo whose private key was thrown away (the fleet takes no key halves).
pub const DEFAULT_TRANSPORT_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvOL6PqEhkwce6qR3Dhk+
08hM/fdsONONUUDKpdWkpdlyJqLYGCfcueA2YjQ9Ii4coeIwJ8b8YVGvJdCWJ7Pk
WorQdfsSHL7bTJdv1ao/5Ji/Jo6tXJGsLiH3ZU6iWg8ygVoRblzeUVkgqng09Hm6
GMgiF6fzGvsL3rZ0guyejcI1WDnbgrti2yUoQPEoIgvBYHxm8nV2P1PRvYMo2Xr6
NvsmICbJMwOp6UwCck/3bwDCX4Q6kPiYOXvzsvIIgf4EnWc5OjX9tQWuvehSuwb/
MpL2hCMCIQoTYFWUKM1BkjT4kXaBYizoRgrOPzoESl3fistxkjiNnNJurTgcZvHZ
BwIDAQAB
-----END PUBLIC KEY-----
";

/// The digest a bad host's PCR was extended with: `SHA-256("trustpool-fleet: unexpected
/// measurement")`.
pub const UNEXPECTED_MEASUREMENT: &[u8] = b"trustpool-fleet: unexpected measurement";

/// How a fleet is made.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Everything per host (keys, UUIDs, clocks, the TLS certificate) derives from it.
    pub seed: String,
    /// PEM of the CA client certificates must chain to (the server's agent-CA). Required
    /// unless `insecure_http`.
    pub client_ca_pem: Option<String>,
    /// Plain HTTP, no client certificates (debugging only).
    pub insecure_http: bool,
    /// Fraction of hosts, 0.0–1.0, spread evenly over the fleet, whose `bad_pcr` differs
    /// from the event log's replay.
    pub bad_fraction: f64,
    /// The PCR bad hosts have wrong (7: Secure Boot state, 4: boot manager code), 0–15.
    pub bad_pcr: u8,
    /// The firmware event log (default [`DEFAULT_EVENTLOG`]).
    pub eventlog: Option<Vec<u8>>,
    /// The transport key PEM (default [`DEFAULT_TRANSPORT_PEM`]).
    pub transport_pem: Option<String>,
    /// TLS session cache entries shared by all hosts.
    pub session_cache: usize,
    /// Serve a small `ima-ng` log (`ima_measurement_list`) and quote PCR 10 accordingly;
    /// without it PCR 10 stays zero and no IMA list is sent, as for an agent with no IMA log.
    pub ima: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            seed: "trustpool-fleet".into(),
            client_ca_pem: None,
            insecure_http: false,
            bad_fraction: 0.0,
            bad_pcr: 7,
            eventlog: None,
            transport_pem: None,
            session_cache: 16384,
            ima: false,
        }
    }
}

/// Whether host `index` of `n` is bad, for a fraction `f` spread evenly (exactly
/// `floor(n * f)` bad hosts).
pub fn is_bad(index: usize, f: f64) -> bool {
    let f = f.clamp(0.0, 1.0);
    ((index + 1) as f64 * f).floor() > (index as f64 * f).floor()
}

/// What a server needs to enroll the fleet (written as JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// Format version, 1.
    pub version: u32,
    pub seed: String,
    /// `false` with `--insecure-http`.
    pub tls: bool,
    /// The certificate every host serves (also in each host's `mtls_cert`).
    pub server_cert_pem: String,
    /// The `pubkey` hosts send and bind into PCR 16.
    pub transport_pubkey_pem: String,
    /// `sha256`.
    pub hash_alg: String,
    /// `ecdsa`.
    pub sign_alg: String,
    /// `rsa2048` (API 2.5+; `rsa` before).
    pub enc_alg: String,
    /// The PCR bad hosts have wrong.
    pub bad_pcr: u8,
    /// SHA-256 of the event log served as `mb_measurement_list`.
    pub eventlog_sha256: String,
    /// Every SHA-256 PCR (`"0"`…`"23"`, lower-case hex) as a good host quotes it, PCR 16
    /// included.
    pub good_pcrs_sha256: std::collections::BTreeMap<String, String>,
    /// The same for bad hosts.
    pub bad_pcrs_sha256: std::collections::BTreeMap<String, String>,
    pub hosts: Vec<ManifestHost>,
}

/// One host of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestHost {
    /// `host-00001`, `host-00002`, …
    pub name: String,
    pub uuid: String,
    /// `127.0.0.1`.
    pub ip: String,
    pub port: u16,
    /// base64 of the AK's TPM2B_PUBLIC (ECC P-256, restricted signing, ECDSA-SHA256).
    pub aik_tpm: String,
    /// base64 of a TPM2B_PUBLIC of an RSA-2048 EK (TCG template L-1, made-up modulus).
    pub ek_tpm: String,
    /// PEM of the host's TLS server certificate (the shared one), to pin.
    pub mtls_cert: String,
    /// `good` or `bad`: what an appraisal against the event log's values should conclude.
    pub expected: String,
    /// For bad hosts, the PCR that is wrong.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bad_pcr: Option<u8>,
}

/// A snapshot of the fleet's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub quotes: u64,
    /// Answers other than 200.
    pub errors: u64,
    pub connections: u64,
    pub tls_failures: u64,
    pub accept_errors: u64,
    pub uptime: Duration,
    /// From the first request to the last.
    pub active: Duration,
}

/// A running fleet. Dropping it stops the listeners (connections already open finish with
/// their runtime).
pub struct Fleet {
    shared: Arc<Shared>,
    hosts: Vec<Arc<Host>>,
    addrs: Vec<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    manifest: Manifest,
}

impl Fleet {
    /// Start `n_hosts` hosts listening on 127.0.0.1, ports `base_port`… (`base_port` 0: each
    /// host on a port the system picks). Must run inside a multi-threaded Tokio runtime.
    /// Raises `RLIMIT_NOFILE` to its hard limit, and fails if that is too low for the fleet.
    pub async fn start(n_hosts: usize, base_port: u16, opts: FleetOptions) -> Result<Fleet> {
        if n_hosts == 0 {
            bail!("a fleet needs at least one host");
        }
        if base_port != 0 && usize::from(base_port) + n_hosts - 1 > usize::from(u16::MAX) {
            bail!(
                "ports {base_port}..{} do not fit below 65536",
                usize::from(base_port) + n_hosts
            );
        }
        if opts.bad_pcr > 15 || opts.bad_pcr == 10 {
            bail!(
                "bad_pcr {} must be a firmware PCR, 0-15 except 10",
                opts.bad_pcr
            );
        }
        raise_nofile_limit(n_hosts as u64 + 1024)?;
        let started = Instant::now();

        let eventlog = opts
            .eventlog
            .clone()
            .unwrap_or_else(|| DEFAULT_EVENTLOG.to_vec());
        let transport_pem = opts
            .transport_pem
            .clone()
            .unwrap_or_else(|| DEFAULT_TRANSPORT_PEM.to_string());
        let mut good_pcrs = host::boot_pcrs(&eventlog)?;
        let pcr16 = host::data_pcr_value(&transport_pem)?;
        good_pcrs.set(host::DATA_PCR, pcr16.as_bytes());
        let mut bad_pcrs = good_pcrs.clone();
        let unexpected = HashAlg::Sha256
            .hash(UNEXPECTED_MEASUREMENT)
            .ok_or_else(|| anyhow!("sha256 unavailable"))?;
        bad_pcrs
            .get_mut(opts.bad_pcr)
            .ok_or_else(|| anyhow!("no PCR {}", opts.bad_pcr))?
            .extend(unexpected.as_bytes());
        // IMA: each kind of host measures its own boot_aggregate (over its own PCRs 0-9).
        let mut ima_logs = [None, None];
        if opts.ima {
            for (bank, slot) in [&mut good_pcrs, &mut bad_pcrs]
                .into_iter()
                .zip(&mut ima_logs)
            {
                let (log, pcr10) = host::small_ima_log(bank)?;
                bank.set(10, pcr10.as_bytes());
                *slot = Some(log);
            }
        }
        let [ima_good, ima_bad] = ima_logs;

        let tls = if opts.insecure_http {
            None
        } else {
            let ca = opts
                .client_ca_pem
                .as_deref()
                .ok_or_else(|| anyhow!("mutual TLS needs the client CA (or insecure_http)"))?;
            Some(ca.to_string())
        };
        let (cert_pem, key_pkcs8) = tls::server_certificate(&opts.seed)?;
        let acceptor = match &tls {
            Some(ca) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                tls::server_config(&cert_pem, &key_pkcs8, ca, opts.session_cache)?,
            ))),
            None => None,
        };

        // Keys: a P-256 public key computation per host, spread over the cores.
        let seed = opts.seed.clone();
        let bad_fraction = opts.bad_fraction;
        let hosts = tokio::task::spawn_blocking(move || make_hosts(&seed, n_hosts, bad_fraction))
            .await
            .context("key generation")??;

        let shared = Arc::new(Shared {
            good_pcrs,
            bad_pcrs,
            eventlog_b64: base64::engine::general_purpose::STANDARD.encode(&eventlog),
            ima_good,
            ima_bad,
            transport_pem: transport_pem.clone(),
            boottime: trustpool::agent::serve::boottime(),
            started,
            algs: Algorithms {
                hash: "sha256",
                ek_rsa: true,
                sign: "ecdsa",
            },
            rng: ring::rand::SystemRandom::new(),
            counters: Counters::default(),
        });

        let mut addrs = Vec::with_capacity(n_hosts);
        let mut tasks = Vec::with_capacity(n_hosts);
        for (i, h) in hosts.iter().enumerate() {
            let port = if base_port == 0 {
                0
            } else {
                base_port + i as u16
            };
            let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => l,
                Err(e) => {
                    tasks.iter().for_each(tokio::task::JoinHandle::abort);
                    bail!("{}: listening on 127.0.0.1:{port}: {e}", h.name);
                }
            };
            addrs.push(listener.local_addr()?);
            tasks.push(tokio::spawn(serve::accept_loop(
                h.clone(),
                shared.clone(),
                listener,
                acceptor.clone(),
            )));
        }

        let pcr_map = |bank: &PcrBank| {
            bank.iter()
                .map(|(i, d)| (i.to_string(), hex::encode(d.as_bytes())))
                .collect()
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let manifest = Manifest {
            version: 1,
            seed: opts.seed.clone(),
            tls: tls.is_some(),
            server_cert_pem: cert_pem.clone(),
            transport_pubkey_pem: transport_pem,
            hash_alg: "sha256".into(),
            sign_alg: "ecdsa".into(),
            enc_alg: "rsa2048".into(),
            bad_pcr: opts.bad_pcr,
            eventlog_sha256: hex::encode(ring::digest::digest(&ring::digest::SHA256, &eventlog)),
            good_pcrs_sha256: pcr_map(&shared.good_pcrs),
            bad_pcrs_sha256: pcr_map(&shared.bad_pcrs),
            hosts: hosts
                .iter()
                .zip(&addrs)
                .map(|(h, a)| ManifestHost {
                    name: h.name.clone(),
                    uuid: h.uuid.clone(),
                    ip: "127.0.0.1".into(),
                    port: a.port(),
                    aik_tpm: b64.encode(&h.aik_tpm),
                    ek_tpm: b64.encode(&h.ek_tpm),
                    mtls_cert: cert_pem.clone(),
                    expected: if h.good { "good" } else { "bad" }.into(),
                    bad_pcr: (!h.good).then_some(opts.bad_pcr),
                })
                .collect(),
        };
        Ok(Fleet {
            shared,
            hosts,
            addrs,
            tasks,
            manifest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Write the manifest as JSON (atomically: a temporary file renamed into place).
    pub fn write_manifest(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let json = serde_json::to_vec_pretty(&self.manifest)?;
        std::fs::write(&tmp, json).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// The shared server certificate (PEM), to pin.
    pub fn server_cert_pem(&self) -> &str {
        &self.manifest.server_cert_pem
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Host `i`'s address.
    pub fn addr(&self, i: usize) -> Option<SocketAddr> {
        self.addrs.get(i).copied()
    }

    pub fn host(&self, i: usize) -> Option<&Host> {
        self.hosts.get(i).map(|h| &**h)
    }

    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        Stats {
            requests: c.requests.load(Ordering::Relaxed),
            quotes: c.quotes.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
            tls_failures: c.tls_failures.load(Ordering::Relaxed),
            accept_errors: c.accept_errors.load(Ordering::Relaxed),
            uptime: self.shared.started.elapsed(),
            active: Duration::from_millis(
                c.last_ms
                    .load(Ordering::Relaxed)
                    .saturating_sub(c.first_ms.load(Ordering::Relaxed)),
            ),
        }
    }

    /// Stop listening.
    pub fn shutdown(&mut self) {
        self.tasks.iter().for_each(tokio::task::JoinHandle::abort);
        self.tasks.clear();
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn make_hosts(seed: &str, n: usize, bad_fraction: f64) -> Result<Vec<Arc<Host>>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let chunk = n.div_ceil(threads);
    let parts: Vec<Result<Vec<Arc<Host>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t * chunk..((t + 1) * chunk).min(n))
                        .map(|i| Host::new(seed, i as u32, !is_bad(i, bad_fraction)).map(Arc::new))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("key thread panicked")))
            })
            .collect()
    });
    let mut hosts = Vec::with_capacity(n);
    for p in parts {
        hosts.extend(p?);
    }
    Ok(hosts)
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; fail if even that is below `needed`.
/// Returns the new soft limit.
// `rlim_t` is u64 on Linux but not everywhere.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile_limit(needed: u64) -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a plain struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        bail!("getrlimit: {}", std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let new = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a plain struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    let have = lim.rlim_cur as u64;
    if have < needed {
        bail!(
            "the fleet needs about {needed} file descriptors (one listener per host, plus \
             connections) but RLIMIT_NOFILE is {have} (hard limit {}): raise the hard limit \
             (ulimit -Hn, LimitNOFILE=, docker --ulimit nofile=) or run fewer hosts",
            lim.rlim_max as u64
        );
    }
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_hosts_are_spread_evenly() {
        let bad: Vec<usize> = (0..10).filter(|&i| is_bad(i, 0.3)).collect();
        assert_eq!(bad, vec![3, 6, 9]);
        assert_eq!((0..1000).filter(|&i| is_bad(i, 0.05)).count(), 50);
        assert!((0..10).all(|i| !is_bad(i, 0.0)));
        assert!((0..10).all(|i| is_bad(i, 1.0)));
    }
}
