//! `fleet`: run a simulated fleet of Keylime agents until killed.
//!
//! ```text
//! fleet --hosts N --base-port P --client-ca FILE --manifest OUT [--bad-fraction F]
//!       [--bad-pcr 7] [--seed S] [--eventlog FILE] [--threads T] [--stats-every SECS]
//!       [--ima] [--insecure-http]
//! ```
//!
//! Prints `ready` on stdout once the manifest is written and every host listens; on SIGINT
//! or SIGTERM prints what was served (requests per second) and exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use trustpool_benches::fleet::{Fleet, FleetOptions, Stats};

const USAGE: &str =
    "usage: fleet --hosts N --base-port P (--client-ca FILE | --insecure-http) --manifest OUT
             [--bad-fraction F] [--bad-pcr 7] [--seed S] [--eventlog FILE]
             [--threads T] [--stats-every SECS] [--ima]

  Simulated Keylime agents on 127.0.0.1, ports P..P+N-1 (one listener per host), mutual
  TLS with client certificates chained to the CA in FILE. Writes the manifest (JSON) to OUT,
  prints 'ready', serves until SIGINT/SIGTERM, then prints requests served per second.
  --bad-fraction F: that fraction of hosts (spread evenly) quote a wrong --bad-pcr (7 or 4).
  --ima: hosts also send a small ima-ng log, and PCR 10 matches it.";

struct Args {
    hosts: usize,
    base_port: u16,
    client_ca: Option<PathBuf>,
    manifest: PathBuf,
    threads: usize,
    stats_every: u64,
    opts: FleetOptions,
}

fn parse_args() -> Result<Args> {
    let mut hosts = None;
    let mut base_port = None;
    let mut client_ca = None;
    let mut manifest = None;
    let mut threads = 0usize;
    let mut stats_every = 0u64;
    let mut opts = FleetOptions::default();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--hosts" => hosts = Some(value()?.parse().context("--hosts")?),
            "--base-port" => base_port = Some(value()?.parse().context("--base-port")?),
            "--client-ca" => client_ca = Some(PathBuf::from(value()?)),
            "--manifest" => manifest = Some(PathBuf::from(value()?)),
            "--bad-fraction" => {
                let f: f64 = value()?.parse().context("--bad-fraction")?;
                if !(0.0..=1.0).contains(&f) {
                    bail!("--bad-fraction must be between 0 and 1");
                }
                opts.bad_fraction = f;
            }
            "--bad-pcr" => opts.bad_pcr = value()?.parse().context("--bad-pcr")?,
            "--seed" => opts.seed = value()?,
            "--eventlog" => {
                let p = value()?;
                opts.eventlog = Some(std::fs::read(&p).with_context(|| format!("reading {p}"))?);
            }
            "--threads" => threads = value()?.parse().context("--threads")?,
            "--stats-every" => stats_every = value()?.parse().context("--stats-every")?,
            "--insecure-http" => opts.insecure_http = true,
            "--ima" => opts.ima = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument '{other}'\n{USAGE}"),
        }
    }
    let hosts = hosts.ok_or_else(|| anyhow!("--hosts is required\n{USAGE}"))?;
    let base_port = base_port.ok_or_else(|| anyhow!("--base-port is required\n{USAGE}"))?;
    let manifest = manifest.ok_or_else(|| anyhow!("--manifest is required\n{USAGE}"))?;
    if client_ca.is_none() && !opts.insecure_http {
        bail!("--client-ca is required (or --insecure-http)\n{USAGE}");
    }
    if let Some(ca) = &client_ca {
        opts.client_ca_pem = Some(
            std::fs::read_to_string(ca)
                .with_context(|| format!("reading client CA {}", ca.display()))?,
        );
    }
    Ok(Args {
        hosts,
        base_port,
        client_ca,
        manifest,
        threads,
        stats_every,
        opts,
    })
}

/// Warn when the fleet's ports overlap the kernel's ephemeral range: outgoing connections
/// (the server's own) may take them first.
fn check_port_range(base: u16, n: usize) {
    let Ok(s) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range") else {
        return;
    };
    let v: Vec<usize> = s
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if let [lo, hi] = v[..] {
        let (b, e) = (usize::from(base), usize::from(base) + n - 1);
        if b <= hi && e >= lo {
            eprintln!(
                "fleet: warning: ports {b}-{e} overlap the ephemeral port range {lo}-{hi}; \
                 binding may fail or collide with outgoing connections"
            );
        }
    }
}

fn report(s: &Stats) {
    let secs = s.uptime.as_secs_f64().max(1e-9);
    let active = s.active.as_secs_f64().max(1e-3);
    println!(
        "fleet: served {} requests ({} quotes, {} errors) on {} connections ({} TLS failures) in {:.1} s: \
         {:.0} requests/s, {:.0} quotes/s overall; {:.0} requests/s over the {:.1} s from first to last request",
        s.requests,
        s.quotes,
        s.errors,
        s.connections,
        s.tls_failures,
        secs,
        s.requests as f64 / secs,
        s.quotes as f64 / secs,
        s.requests as f64 / active,
        active
    );
}

fn main() {
    if let Err(e) = run() {
        eprintln!("fleet: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if args.base_port != 0 {
        check_port_range(args.base_port, args.hosts);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        rt.worker_threads(args.threads);
    }
    let rt = rt.enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let t0 = std::time::Instant::now();
        let fleet = Fleet::start(args.hosts, args.base_port, args.opts.clone()).await?;
        fleet.write_manifest(&args.manifest)?;
        let bad = fleet
            .manifest()
            .hosts
            .iter()
            .filter(|h| h.expected == "bad")
            .count();
        eprintln!(
            "fleet: {} hosts ({bad} bad) on 127.0.0.1:{}-{}, {}, manifest {}, started in {:.2} s",
            fleet.len(),
            fleet.addr(0).map(|a| a.port()).unwrap_or(0),
            fleet.addr(fleet.len() - 1).map(|a| a.port()).unwrap_or(0),
            match &args.client_ca {
                Some(ca) => format!("mTLS (client CA {})", ca.display()),
                None => "plain HTTP".to_string(),
            },
            args.manifest.display(),
            t0.elapsed().as_secs_f64()
        );
        println!("ready");
        use std::io::Write;
        let _ = std::io::stdout().flush();

        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("SIGTERM handler")?;
        let mut last = fleet.stats();
        loop {
            let tick = async {
                if args.stats_every > 0 {
                    tokio::time::sleep(Duration::from_secs(args.stats_every)).await
                } else {
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = tick => {
                    let s = fleet.stats();
                    let dt = (s.uptime - last.uptime).as_secs_f64().max(1e-9);
                    eprintln!(
                        "fleet: {:.0} requests/s, {:.0} quotes/s (total {} requests, {} errors, {} TLS failures)",
                        (s.requests - last.requests) as f64 / dt,
                        (s.quotes - last.quotes) as f64 / dt,
                        s.requests, s.errors, s.tls_failures
                    );
                    last = s;
                }
            }
        }
        report(&fleet.stats());
        Ok::<_, anyhow::Error>(())
    })?;
    // Connections still open die with the runtime.
    rt.shutdown_timeout(Duration::from_millis(100));
    Ok(())
}
