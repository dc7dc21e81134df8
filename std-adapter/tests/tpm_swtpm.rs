//! trustpool talking to a real software TPM (swtpm on loopback): AKs of both templates, PCR
//! reads over many rounds and two banks, quotes verified by trustpool and by tpm2-tools'
//! `tpm2_checkquote`, a real firmware log replayed into the TPM and appraised end to end,
//! the mssim protocol through a bridge, the device transport over a stream, and errors.
//!
//! Skipped with a message when `swtpm` is not installed, except in CI (`CI` set), where a
//! missing tool fails the test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use trustpool::evidence::Evidence;
use trustpool::files::{self, AkFile};
use trustpool::policy::Policy;
use trustpool::tpm::{
    self, tpm_info, tpm_pcrs, tpm_quote, Device, LogSource, TpmError, TpmSession, TpmUri,
};
use trustpool::verify_cmd::{learn, verify};
use trustpool_core::eventlog::{EventLog, Workarounds};
use trustpool_core::tpm::{AkTemplate, Hierarchy, Tpm};
use trustpool_core::{Digest, HashAlg, PcrValues, Quote, QuoteError};
mod swtpm;
use swtpm::*;

#[test]
fn selectors_parse() {
    let p = |s: &str| s.parse::<TpmUri>();
    assert_eq!(
        p("device:/dev/tpm0").unwrap(),
        TpmUri::Device("/dev/tpm0".into())
    );
    assert_eq!(p("device").unwrap(), TpmUri::Device("/dev/tpmrm0".into()));
    assert_eq!(
        p("/dev/tpmrm0").unwrap(),
        TpmUri::Device("/dev/tpmrm0".into())
    );
    assert_eq!(
        p("swtpm:127.0.0.1:2321").unwrap(),
        TpmUri::Swtpm {
            host: "127.0.0.1".into(),
            port: 2321,
            ctrl_port: 2322
        }
    );
    assert_eq!(p("swtpm:").unwrap(), p("swtpm:127.0.0.1:2321").unwrap());
    assert_eq!(
        p("swtpm:host=localhost,port=4000").unwrap(),
        TpmUri::Swtpm {
            host: "localhost".into(),
            port: 4000,
            ctrl_port: 4001
        }
    );
    assert_eq!(
        p("mssim:[::1]:2321").unwrap(),
        TpmUri::Mssim {
            host: "::1".into(),
            port: 2321,
            platform_port: 2322
        }
    );
    assert_eq!(
        p("mssim:[::1]:2321").unwrap().to_string(),
        "mssim:[::1]:2321"
    );
    assert_eq!(
        p("mssim:localhost").unwrap().to_string(),
        "mssim:localhost:2321"
    );
    for bad in [
        "tcp:1.2.3.4",
        "swtpm:h:99999",
        "swtpm:h:65535",
        "mssim:[::1",
        "swtpm:h:x",
    ] {
        let e = p(bad).unwrap_err();
        assert!(matches!(e, TpmError::Selector { .. }), "{bad}: {e}");
    }
    assert_eq!(
        tpm::parse_selection("sha256:0-7,10+sha1:0").unwrap(),
        vec![(HashAlg::Sha256, 0x4ff), (HashAlg::Sha1, 1)]
    );
    assert_eq!(
        tpm::parse_selection("sha1:all+sha1:0").unwrap(),
        vec![(HashAlg::Sha1, 0xff_ffff)]
    );
    assert!(tpm::parse_selection("").is_err());
    assert!(tpm::parse_selection("md5:0").is_err());
    assert!(tpm::parse_selection("sha256:24").is_err());
    assert_eq!(tpm::mask_text(0x4ff), "0-7,10");
    assert_eq!(
        tpm::selection_text(&[(HashAlg::Sha256, 0x4ff), (HashAlg::Sha1, 0)]),
        "sha256:0-7,10+sha1:none"
    );
}

#[test]
fn open_errors_are_clear() {
    let port = free_port_pair();
    let e = TpmSession::open(&format!("swtpm:127.0.0.1:{port}"))
        .err()
        .unwrap();
    assert!(matches!(e, TpmError::Open { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("swtpm:127.0.0.1:{port}")),
        "{e}"
    );
    let e = TpmSession::open("device:/nonexistent/tpm0").err().unwrap();
    assert!(e.to_string().contains("/nonexistent/tpm0"), "{e}");
}

#[test]
fn info_reports_the_tpm() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let info = tpm_info(&t.uri()).unwrap();
    assert_eq!(info.manufacturer, "IBM");
    assert_eq!(info.manufacturer_name.as_deref(), Some("IBM"));
    assert_eq!(info.vendor, "SW   TPM");
    assert_eq!(info.family, "2.0");
    assert!(info.firmware_version.as_ref().unwrap().starts_with("0x"));
    let banks: Vec<(String, String)> = info
        .pcr_banks
        .iter()
        .map(|b| (b.bank.clone(), b.pcrs.clone()))
        .collect();
    assert!(banks.contains(&("sha1".into(), "0-23".into())), "{banks:?}");
    assert!(
        banks.contains(&("sha256".into(), "0-23".into())),
        "{banks:?}"
    );
    assert!(
        banks.contains(&("sha384".into(), "none".into())),
        "{banks:?}"
    );
    let text = tpm::tpm_info_text(&info);
    assert!(
        text.contains("manufacturer:      IBM (IBM) [0x49424d00]"),
        "{text}"
    );
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["vendor"], "SW   TPM");
    if template_state().1 {
        let rsa = info
            .ek_certificates
            .iter()
            .find(|c| c.index == "0x01c00002")
            .expect("RSA EK certificate");
        assert_eq!(rsa.der[0], 0x30, "DER SEQUENCE");
        assert_eq!(rsa.size, rsa.der.len());
        assert!(info.ek_certificates.iter().any(|c| c.key == "ecc-p384"));
        assert!(
            text.contains("EK certificate:    0x01c00002 rsa2048"),
            "{text}"
        );
        // tpm2-tools reads the same bytes.
        if have(&["tpm2_nvread"]) {
            let dir = TempDir::new("nvread");
            let out_file = dir.path().join("ek.der");
            let out = run_tool(
                "tpm2_nvread",
                &[
                    "-T",
                    &t.tcti(),
                    "-C",
                    "o",
                    "-o",
                    out_file.to_str().unwrap(),
                    "0x01c00002",
                ],
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read(&out_file).unwrap(), rsa.der);
        }
    }
}

#[test]
fn pcrs_in_many_rounds_and_two_banks_match_tpm2_pcrread() {
    if !have(&["swtpm", "swtpm_setup", "tpm2_pcrread"]) {
        return;
    }
    let t = Swtpm::start();
    {
        let mut s = t.session();
        extend_random(&mut s, &[0, 1, 7, 8, 9, 10, 15, 16, 23]);
    }
    // Every allocated PCR of both banks: 48 values, six rounds of eight.
    let set = tpm_pcrs(&t.uri(), &[]).unwrap();
    assert_eq!(set.bank(HashAlg::Sha1).unwrap().present(), 0xff_ffff);
    assert_eq!(set.bank(HashAlg::Sha256).unwrap().present(), 0xff_ffff);
    let text = tpm::pcrs_text(&set);
    assert_eq!(text.lines().count(), 2 + 48);
    assert_eq!(
        tpm::pcrs_json(&set)["sha256"].as_object().unwrap().len(),
        24
    );
    // One bank only.
    let only = tpm_pcrs(&t.uri(), &[HashAlg::Sha256]).unwrap();
    assert_eq!(only.banks().len(), 1);
    // A bank the TPM does not have.
    let e = tpm_pcrs(&t.uri(), &[HashAlg::Sha384]).unwrap_err();
    assert!(e.to_string().contains("sha384"), "{e}");
    // The same values as tpm2_pcrread (read once the session is closed: swtpm serves one
    // client at a time).
    let dir = TempDir::new("pcrread");
    let f = dir.path().join("pcrs.bin");
    let out = run_tool(
        "tpm2_pcrread",
        &[
            "-T",
            &t.tcti(),
            "sha1:all+sha256:all",
            "-F",
            "serialized",
            "-o",
            f.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = files::parse_pcrs(&std::fs::read(&f).unwrap(), "tpm2_pcrread").unwrap();
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        for i in 0..24u8 {
            assert_eq!(set.pcr(alg, i), theirs.pcr(alg, i), "{alg}:{i}");
        }
    }
    // Sparse selections across the 8-per-round boundary, directly through a session.
    let mut s = t.session();
    let sel = tpm::parse_selection("sha1:0,3-5,9-23+sha256:1,2,17-23").unwrap();
    let got = s.read_pcrs(&sel).unwrap();
    assert_eq!(got.bank(HashAlg::Sha1).unwrap().present(), 0xff_fe39);
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        for (i, d) in got.bank(alg).unwrap().iter() {
            assert_eq!(Some(d), set.pcr(alg, i));
        }
    }
}

#[test]
fn quotes_verify_for_both_key_types_and_several_selections() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let mut s = t.session();
    extend_random(&mut s, &[0, 4, 7, 10, 16, 23]);
    drop(s);
    let mut aks = Vec::new();
    for template in [AkTemplate::Rsa2048, AkTemplate::EccP256] {
        for sel in [
            "sha256:0-7",
            "sha1:0-23+sha256:0-23",
            "sha256:16,23",
            "sha1:10+sha256:0,4,7,10",
        ] {
            let nonce = {
                let mut s = t.session();
                s.random(32).unwrap()
            };
            let ev = tpm_quote(&t.uri(), &nonce, sel, &no_logs(template)).unwrap();
            assert_eq!(ev.version, 1);
            assert_eq!(ev.tpm.manufacturer, "IBM");
            assert_eq!(ev.nonce, nonce);
            assert!(ev.eventlog.is_none() && ev.ima_log.is_none());
            core_verify(&ev, &nonce).unwrap_or_else(|e| panic!("{template:?} {sel}: {e}"));
            // The selection in the quote is the one asked for.
            let want = tpm::parse_selection(sel).unwrap();
            assert_eq!(ev.quote_selection().unwrap(), want);
            // Through the std verifier (ring) too.
            let r = ev.verify_quote(&trustpool::Ring, &nonce).unwrap();
            assert!(r.verified && r.pcrs_checked);
            assert_eq!(
                r.key_type,
                if template == AkTemplate::Rsa2048 {
                    "rsa"
                } else {
                    "ecc"
                }
            );
            // Wrong nonce, changed PCR value: rejected.
            let mut other = nonce.clone();
            other[0] ^= 1;
            assert_eq!(core_verify(&ev, &other), Err(QuoteError::NonceMismatch));
            let mut bad = ev.clone();
            let bank = bad.pcrs.values_mut().next().unwrap();
            bank.values_mut().next().unwrap()[0] ^= 1;
            assert_eq!(
                core_verify(&bad, &nonce),
                Err(QuoteError::PcrDigestMismatch)
            );
            // JSON round trip.
            let back = Evidence::from_json(&ev.to_json(), "evidence").unwrap();
            assert_eq!(back, ev);
            aks.push((template, ev.ak.tpm2b_public.clone()));
        }
    }
    // A primary AK in the endorsement hierarchy is the same key every time.
    for t_ in [AkTemplate::Rsa2048, AkTemplate::EccP256] {
        let keys: Vec<_> = aks
            .iter()
            .filter(|(t, _)| *t == t_)
            .map(|(_, k)| k)
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
    // In the owner hierarchy, a different key.
    let mut opts = no_logs(AkTemplate::EccP256);
    opts.hierarchy = Hierarchy::Owner;
    let ev = tpm_quote(&t.uri(), b"owner", "sha256:0", &opts).unwrap();
    core_verify(&ev, b"owner").unwrap();
    assert_ne!(
        &ev.ak.tpm2b_public,
        &aks.iter()
            .find(|(t, _)| *t == AkTemplate::EccP256)
            .unwrap()
            .1
    );
    // Nothing is left loaded: swtpm holds 3 transient objects, and we made 9 keys.
    let mut s = t.session();
    let ak = s
        .create_ak(AkTemplate::EccP256, Hierarchy::Endorsement)
        .unwrap();
    s.flush(ak.handle).unwrap();
}

#[test]
fn tpm2_checkquote_accepts_trustpool_evidence() {
    if !have(&["swtpm", "swtpm_setup", "tpm2_checkquote"]) {
        return;
    }
    let t = Swtpm::start();
    {
        let mut s = t.session();
        extend_random(&mut s, &[0, 1, 2, 9, 14]);
    }
    for (template, sel) in [
        (AkTemplate::EccP256, "sha256:0-9,14"),
        (AkTemplate::Rsa2048, "sha256:0-9,14"),
        (AkTemplate::EccP256, "sha1:0-2+sha256:9,14"),
        (AkTemplate::Rsa2048, "sha1:0-23+sha256:0-23"),
    ] {
        let nonce = t.session().random(20).unwrap();
        let ev = tpm_quote(&t.uri(), &nonce, sel, &no_logs(template)).unwrap();
        let dir = TempDir::new("checkquote");
        let w = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p.to_str().unwrap().to_string()
        };
        let ak = w("ak.pub", &ev.ak.tpm2b_public);
        let attest = w("quote.attest", &ev.quote.attest);
        let sig = w("quote.sig", &ev.quote.signature);
        let pcrs = w("quote.pcrs", &ev.tpm2_tools_pcrs().unwrap());
        let check = |nonce_hex: &str| {
            run_tool(
                "tpm2_checkquote",
                &[
                    "-u", &ak, "-m", &attest, "-s", &sig, "-f", &pcrs, "-g", "sha256", "-q",
                    nonce_hex,
                ],
            )
        };
        let out = check(&hex::encode(&nonce));
        assert!(
            out.status.success(),
            "{template:?} {sel}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut wrong = nonce.clone();
        wrong[3] ^= 0x40;
        assert!(!check(&hex::encode(&wrong)).status.success());
    }
}

/// Extend every event of a real firmware log into the TPM, quote the PCRs it touches, learn
/// a whitelist from the log and the quoted values, and appraise: trusted; then a stray
/// extend of one PCR: untrusted.
#[test]
fn replayed_firmware_logs_verify_end_to_end() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    for rel in [
        "tpm2-tools/event.bin",
        "go-attestation/sb_cert_eventlog",
        "tpm2-tools/event-arch-linux.bin",
    ] {
        let Some(path) = shared(rel) else { return };
        let bytes = std::fs::read(&path).unwrap();
        let log = EventLog::parse(&bytes).unwrap();
        let t = Swtpm::start();
        let mut mask = 0u32;
        {
            let mut s = t.session();
            for ev in log.events().filter(|e| e.extends() && e.pcr < 24) {
                let digests: Vec<Digest> = [HashAlg::Sha1, HashAlg::Sha256]
                    .into_iter()
                    .filter_map(|alg| Digest::from_slice(alg, ev.digest(alg)?))
                    .collect();
                assert!(
                    !digests.is_empty(),
                    "{rel}: event {} has no digest",
                    ev.index
                );
                s.extend(ev.pcr, &digests).unwrap();
                mask |= 1 << ev.pcr;
            }
        }
        let sel = format!("sha256:{}", tpm::mask_text(mask));
        let mut opts = no_logs(AkTemplate::EccP256);
        opts.eventlog = LogSource::File(path.clone());
        let nonce = t.session().random(32).unwrap();
        let ev = tpm_quote(&t.uri(), &nonce, &sel, &opts).unwrap();
        assert_eq!(ev.eventlog.as_deref(), Some(bytes.as_slice()));
        core_verify(&ev, &nonce).unwrap();

        let ak = ev.ak_file("evidence").unwrap();
        let toml = learn(
            &bytes,
            rel,
            Some(&ev.pcr_set().unwrap()),
            Some(&ak),
            "swtpm",
        )
        .unwrap();
        let policy = Policy::from_toml(&toml, "learned.toml")
            .unwrap()
            .compile(None)
            .unwrap();
        let input = ev
            .to_verify_input(policy.clone(), Workarounds::default())
            .unwrap();
        let r = verify(&trustpool::Ring, &input).unwrap();
        assert!(r.trusted, "{rel}: {:#?}", r.findings);
        assert!(r.events_checked > 0);

        // The same in one step, with a fresh nonce: `attest`.
        let report = tpm::attest(
            &t.uri(),
            &policy,
            &sel,
            &opts,
            Workarounds::default(),
            &trustpool::Ring,
        )
        .unwrap();
        assert!(
            report.verdict.trusted,
            "{rel}: {:#?}",
            report.verdict.findings
        );
        assert_eq!(report.evidence.nonce.len(), 32);
        assert_ne!(report.evidence.nonce, nonce);

        // Evidence from a file, as `trustpool verify --evidence` reads it.
        let dir = TempDir::new("evidence");
        let f = dir.path().join("evidence.json");
        std::fs::write(&f, ev.to_json()).unwrap();
        let loaded = Evidence::load(&f).unwrap();
        let r = verify(
            &trustpool::Ring,
            &loaded
                .to_verify_input(policy.clone(), Workarounds::default())
                .unwrap(),
        )
        .unwrap();
        assert!(r.trusted);

        // Something the log does not record: untrusted.
        let first = mask.trailing_zeros();
        {
            let mut s = t.session();
            s.extend(first, &[Digest::zero(HashAlg::Sha256)]).unwrap();
        }
        let report = tpm::attest(
            &t.uri(),
            &policy,
            &sel,
            &opts,
            Workarounds::default(),
            &trustpool::Ring,
        )
        .unwrap();
        assert!(
            !report.verdict.trusted,
            "{rel}: tampered PCR {first} trusted"
        );
        assert!(
            report
                .verdict
                .findings
                .iter()
                .any(|f| f.pcr == Some(first as u8)),
            "{rel}: {:#?}",
            report.verdict.findings
        );
    }
}

#[test]
fn evidence_errors() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let nonce = [7u8; 16];
    let ev = tpm_quote(
        &t.uri(),
        &nonce,
        "sha256:0-3",
        &no_logs(AkTemplate::EccP256),
    )
    .unwrap();
    // A quoted PCR without a value.
    let mut missing = ev.clone();
    missing.pcrs.get_mut(&HashAlg::Sha256).unwrap().remove(&2);
    let e = missing
        .to_verify_input(vec![], Workarounds::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("sha256:2"), "{e}");
    // Versions, unknown fields, bad encodings.
    let json = ev.to_json();
    let v2 = json.replace("\"version\": 1", "\"version\": 2");
    assert!(Evidence::from_json(&v2, "e")
        .unwrap_err()
        .to_string()
        .contains("version 2"));
    let extra = json.replacen('{', "{\"extra\": 1,", 1);
    assert!(Evidence::from_json(&extra, "e").is_err());
    let bad_hex = json.replace(&hex::encode(nonce), "zz");
    assert!(Evidence::from_json(&bad_hex, "e")
        .unwrap_err()
        .to_string()
        .contains("hex"));
    let bad_bank = json.replace("\"sha256\": {", "\"md5\": {");
    assert!(Evidence::from_json(&bad_bank, "e")
        .unwrap_err()
        .to_string()
        .contains("md5"));
    // Too long a nonce is refused before the TPM sees it; the TPM's own errors are named.
    assert!(tpm_quote(
        &t.uri(),
        &[0; 65],
        "sha256:0",
        &no_logs(AkTemplate::EccP256)
    )
    .is_err());
    let mut s = t.session();
    let e = s
        .quote(
            &tpm::Ak {
                handle: 0x80ff_ffff,
                public: vec![],
                template: AkTemplate::EccP256,
            },
            b"",
            &[(HashAlg::Sha256, 1)],
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("TPM2_Quote: TPM returned TPM_RC_"),
        "{e}"
    );
    assert!(e.response_code().is_some());
}

/// swtpm started without `not-need-init`: opening it initialises it over the control
/// channel and starts it.
#[test]
fn uninitialised_swtpm_is_powered_up() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start_with(false);
    let mut s = t.session();
    let set = s.read_pcrs(&[(HashAlg::Sha256, 0xff)]).unwrap();
    assert_eq!(set.bank(HashAlg::Sha256).unwrap().present(), 0xff);
    drop(s);
    // Opening again does not reset it: an extend survives.
    let mut s = t.session();
    extend_random(&mut s, &[5]);
    let before = s.read_pcrs(&[(HashAlg::Sha256, 1 << 5)]).unwrap();
    drop(s);
    let after = t.session().read_pcrs(&[(HashAlg::Sha256, 1 << 5)]).unwrap();
    assert_eq!(before, after);
    assert_ne!(
        after.pcr(HashAlg::Sha256, 5),
        Some(&Digest::zero(HashAlg::Sha256))
    );
}

/// The device transport (write the command, read the response) over a stream to swtpm's
/// data port, which frames exactly as `/dev/tpm0` does.
#[test]
fn device_transport_over_a_stream() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let stream = TcpStream::connect(("127.0.0.1", t.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut tpm = Tpm::new(Device::from_io(stream), vec![0u8; 8192]);
    let props = tpm.properties().unwrap();
    assert_eq!(props.manufacturer_text().as_str(), "IBM");
    let ak = tpm
        .create_primary(Hierarchy::Endorsement, AkTemplate::Rsa2048.public())
        .unwrap();
    let (handle, public) = (ak.handle, ak.public.to_vec());
    let q = tpm.quote(handle, b"dev", &[(HashAlg::Sha1, 0xff)]).unwrap();
    let (attest, sig) = (q.attest.to_vec(), q.signature.to_vec());
    let mut set = trustpool_core::PcrSet::new();
    tpm.read_pcrs(&[(HashAlg::Sha1, 0xff)], &mut set).unwrap();
    tpm.flush_context(handle).unwrap();
    let ak = AkFile::from_bytes(public, "ak").unwrap();
    Quote::verify(&attest, &sig, &ak.ak().unwrap(), b"dev")
        .unwrap()
        .check_pcrs(&set)
        .unwrap();
}

/// What the mssim bridge saw on its platform port.
#[derive(Default)]
struct BridgeLog {
    signals: Vec<u32>,
    commands: usize,
    session_ends: usize,
}

/// A Microsoft-simulator front for swtpm: mssim framing on `port` (commands) and `port + 1`
/// (platform signals), raw commands to swtpm's data port behind it. Serves one client.
fn mssim_bridge(swtpm_port: u16) -> (u16, Arc<Mutex<BridgeLog>>, std::thread::JoinHandle<()>) {
    let port = free_port_pair();
    let cmd_l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let plat_l = TcpListener::bind(("127.0.0.1", port + 1)).unwrap();
    let log = Arc::new(Mutex::new(BridgeLog::default()));
    let log2 = log.clone();
    let h = std::thread::spawn(move || {
        let timeout = Some(Duration::from_secs(30));
        let (mut c, _) = cmd_l.accept().unwrap();
        let (mut p, _) = plat_l.accept().unwrap();
        c.set_read_timeout(timeout).unwrap();
        p.set_read_timeout(timeout).unwrap();
        let mut tpm = TcpStream::connect(("127.0.0.1", swtpm_port)).unwrap();
        tpm.set_read_timeout(timeout).unwrap();
        let u32_of = |s: &mut TcpStream| -> Option<u32> {
            let mut b = [0u8; 4];
            s.read_exact(&mut b).ok()?;
            Some(u32::from_be_bytes(b))
        };
        // Platform signals until the client ends the session.
        let log_p = log2.clone();
        let plat = std::thread::spawn(move || {
            while let Some(sig) = u32_of(&mut p) {
                if sig == 20 {
                    log_p.lock().unwrap().session_ends += 1;
                    break;
                }
                log_p.lock().unwrap().signals.push(sig);
                p.write_all(&0u32.to_be_bytes()).unwrap();
            }
        });
        while let Some(op) = u32_of(&mut c) {
            match op {
                8 => {
                    let mut loc = [0u8; 1];
                    c.read_exact(&mut loc).unwrap();
                    let n = u32_of(&mut c).unwrap() as usize;
                    let mut cmd = vec![0u8; n];
                    c.read_exact(&mut cmd).unwrap();
                    tpm.write_all(&cmd).unwrap();
                    let mut head = [0u8; 10];
                    tpm.read_exact(&mut head).unwrap();
                    let size = u32::from_be_bytes(head[2..6].try_into().unwrap()) as usize;
                    let mut rsp = head.to_vec();
                    rsp.resize(size, 0);
                    tpm.read_exact(&mut rsp[10..]).unwrap();
                    let mut out = (size as u32).to_be_bytes().to_vec();
                    out.extend_from_slice(&rsp);
                    out.extend_from_slice(&0u32.to_be_bytes());
                    c.write_all(&out).unwrap();
                    log2.lock().unwrap().commands += 1;
                }
                20 => {
                    log2.lock().unwrap().session_ends += 1;
                    break;
                }
                other => panic!("unexpected mssim command {other}"),
            }
        }
        plat.join().unwrap();
    });
    (port, log, h)
}

#[test]
fn mssim_transport_through_a_bridge() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let (port, log, bridge) = mssim_bridge(t.port);
    let uri = format!("mssim:127.0.0.1:{port}");
    {
        let mut s = TpmSession::open(&uri).unwrap();
        assert_eq!(s.uri().to_string(), uri);
        let set = s
            .read_pcrs(&tpm::parse_selection("sha1:all+sha256:all").unwrap())
            .unwrap();
        assert_eq!(set.banks().len(), 2);
        let ak = s
            .create_ak(AkTemplate::EccP256, Hierarchy::Endorsement)
            .unwrap();
        let ev = s
            .collect(
                &ak,
                b"mssim",
                &[(HashAlg::Sha256, 0xff)],
                &LogSource::Skip,
                &LogSource::Skip,
            )
            .unwrap();
        s.flush(ak.handle).unwrap();
        core_verify(&ev, b"mssim").unwrap();
    }
    bridge.join().unwrap();
    let log = log.lock().unwrap();
    // Power on, NV on; Startup, PCR reads, …; both sockets ended.
    assert_eq!(log.signals, vec![1, 11]);
    assert!(log.commands > 8);
    assert_eq!(log.session_ends, 2);
}

/// `docs/evidence-example.json` is real swtpm evidence whose quote verifies (its nonce is
/// `trustpool-docs-example` in hex), and its eventlog replays to its PCRs under a learned
/// whitelist.
#[test]
fn docs_example_verifies() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence-example.json");
    let ev = Evidence::load(&path).unwrap();
    assert_eq!(ev.nonce, b"trustpool-docs-example");
    core_verify(&ev, b"trustpool-docs-example").unwrap();
    let log = ev.eventlog.clone().unwrap();
    let ak = ev.ak_file("example").unwrap();
    let toml = learn(
        &log,
        "example",
        Some(&ev.pcr_set().unwrap()),
        Some(&ak),
        "example",
    )
    .unwrap();
    let policy = Policy::from_toml(&toml, "learned.toml")
        .unwrap()
        .compile(None)
        .unwrap();
    let r = verify(
        &trustpool::Ring,
        &ev.to_verify_input(policy, Workarounds::default()).unwrap(),
    )
    .unwrap();
    assert!(r.trusted, "{:#?}", r.findings);
}

/// Writes `docs/evidence-example.json`: tpm2-tools' `event.bin` firmware log (PCR 0) replayed
/// into a fresh swtpm, both banks quoted with an ECC AK. Run by hand: `cargo test -p trustpool --test tpm_swtpm --
/// --ignored write_docs_example`.
#[test]
#[ignore]
fn write_docs_example() {
    assert!(have(&["swtpm", "swtpm_setup"]));
    let path = shared("tpm2-tools/event.bin").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let log = EventLog::parse(&bytes).unwrap();
    let t = Swtpm::start();
    let mut mask = 0u32;
    {
        let mut s = t.session();
        for ev in log.events().filter(|e| e.extends() && e.pcr < 24) {
            let digests: Vec<Digest> = [HashAlg::Sha1, HashAlg::Sha256]
                .into_iter()
                .filter_map(|alg| Digest::from_slice(alg, ev.digest(alg)?))
                .collect();
            s.extend(ev.pcr, &digests).unwrap();
            mask |= 1 << ev.pcr;
        }
    }
    let mut opts = no_logs(AkTemplate::EccP256);
    opts.eventlog = LogSource::File(path);
    let m = tpm::mask_text(mask);
    let sel = format!("sha1:{m}+sha256:{m}");
    let ev = tpm_quote(&t.uri(), b"trustpool-docs-example", &sel, &opts).unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/evidence-example.json");
    std::fs::write(&out, ev.to_json() + "\n").unwrap();
    eprintln!("wrote {}", out.display());
}

/// Time per quote round trip against swtpm. Run by hand:
/// `cargo test --release -p trustpool --test tpm_swtpm -- --ignored --nocapture quote_timing`.
#[test]
#[ignore]
fn quote_timing() {
    assert!(have(&["swtpm", "swtpm_setup"]));
    let t = Swtpm::start();
    let n = std::env::var("TPM_TIMING_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100u32);
    let sel = tpm::parse_selection("sha256:0-7").unwrap();
    // Mean, median and minimum of n runs, after one warm-up.
    let mean = |f: &mut dyn FnMut()| {
        f();
        let mut times: Vec<Duration> = (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        times.sort();
        let mean = times.iter().sum::<Duration>() / n;
        format!(
            "mean {mean:.2?} median {:.2?} min {:.2?}",
            times[times.len() / 2],
            times[0]
        )
    };
    for template in [AkTemplate::EccP256, AkTemplate::Rsa2048] {
        let full = mean(&mut || {
            tpm_quote(&t.uri(), b"timing", "sha256:0-7", &no_logs(template)).unwrap();
        });
        let mut s = t.session();
        let ak = s.create_ak(template, Hierarchy::Endorsement).unwrap();
        let quote_only = mean(&mut || {
            s.quote(&ak, b"timing", &sel).unwrap();
        });
        let quote_and_pcrs = mean(&mut || {
            s.quote_with_pcrs(&ak, b"timing", &sel).unwrap();
        });
        s.flush(ak.handle).unwrap();
        eprintln!(
            "{template:?} ({n} runs)\n  tpm_quote (connect, Startup, GetCapability, CreatePrimary, \
             Quote, PCR_Read, FlushContext): {full}\n  Quote alone: {quote_only}\n  \
             Quote + PCR_Read: {quote_and_pcrs}"
        );
    }
}
