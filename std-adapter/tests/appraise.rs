//! Appraisal end to end: learn → compile → verify on the project's swtpm case and on every
//! real log, and each kind of deviation gives its own finding.

use std::path::{Path, PathBuf};

use trustpool::files::AkFile;
use trustpool::policy::Policy;
use trustpool::verify_cmd::{learn, verify, VerdictReport, VerifyInput};
use trustpool_core::eventlog::{EventLog, Replay, Workarounds, ALL_PCRS};
use trustpool_core::HashAlg;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/test-vectors");
    if p.is_dir() {
        Some(p)
    } else if std::env::var_os("CI").is_some() {
        panic!("{} is missing in CI", p.display());
    } else {
        eprintln!("skipping: {} not present", p.display());
        None
    }
}

fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn compile(toml: &str) -> Vec<u8> {
    Policy::from_toml(toml, "learned.toml")
        .unwrap()
        .compile(None)
        .unwrap()
}

fn rules(r: &VerdictReport) -> Vec<&str> {
    r.findings
        .iter()
        .filter(|f| f.severity == trustpool_core::appraise::Severity::Fail)
        .map(|f| f.rule)
        .collect()
}

/// The swtpm case: a synthetic log extended into a real software TPM and quoted.
struct Swtpm {
    ak: Vec<u8>,
    attest: Vec<u8>,
    sig: Vec<u8>,
    pcrs: Vec<u8>,
    nonce: Vec<u8>,
    log: Vec<u8>,
}

fn swtpm() -> Swtpm {
    let d = repo("test-vectors/swtpm/eventlog");
    Swtpm {
        ak: read(d.join("ak.pub")),
        attest: read(d.join("quote.attest")),
        sig: read(d.join("quote.sig")),
        pcrs: read(d.join("quote.pcrs")),
        nonce: hex::decode(String::from_utf8(read(d.join("nonce.hex"))).unwrap().trim()).unwrap(),
        log: read(d.join("synthetic.bin")),
    }
}

fn run(s: &Swtpm, policy: &[u8], with_pcrs: bool) -> VerdictReport {
    let input = VerifyInput {
        ak: AkFile::from_bytes(s.ak.clone(), "ak").unwrap(),
        attest: s.attest.clone(),
        signature: s.sig.clone(),
        pcrs: with_pcrs.then(|| s.pcrs.clone()),
        nonce: s.nonce.clone(),
        event_log: Some(s.log.clone()),
        policy: policy.to_vec(),
        workarounds: Workarounds::default(),
        plain_scheme: None,
    };
    verify(&trustpool::Ring, &input).unwrap()
}

fn learned(s: &Swtpm) -> String {
    let ak = AkFile::from_bytes(s.ak.clone(), "ak").unwrap();
    learn(&s.log, "synthetic.bin", None, Some(&ak), "synthetic").unwrap()
}

#[test]
fn swtpm_learned_whitelist_is_trusted() {
    let s = swtpm();
    let policy = compile(&learned(&s));
    for with_pcrs in [true, false] {
        let r = run(&s, &policy, with_pcrs);
        assert!(r.trusted, "{:?}", r.findings);
        assert_eq!(r.events_checked, 21);
        assert!(r.findings.is_empty());
    }
}

#[test]
fn each_deviation_has_its_own_finding() {
    let s = swtpm();
    let text = learned(&s);

    // A changed boot application digest.
    let boot = "type = \"EV_EFI_BOOT_SERVICES_APPLICATION\"\ndigests = [\"sha256:";
    let at = text.find(boot).unwrap() + boot.len();
    let mut t = text.clone();
    t.replace_range(
        at..at + 2,
        if &text[at..at + 2] == "00" {
            "11"
        } else {
            "00"
        },
    );
    let r = run(&s, &compile(&t), true);
    assert!(!r.trusted);
    assert_eq!(rules(&r), ["event-digest"]);
    let f = &r.findings[0];
    assert_eq!((f.pcr, f.event_index), (Some(4), Some(17)));
    assert!(
        f.message
            .starts_with("PCR 4, event #17 EV_EFI_BOOT_SERVICES_APPLICATION HD(1,GPT,"),
        "{}",
        f.message
    );
    assert!(
        f.message
            .contains("\\EFI\\BOOT\\BOOTX64.EFI sha256:da6324fd"),
        "{}",
        f.message
    );
    assert!(f.message.ends_with("is not in the whitelist"));

    // A forbidden kernel token.
    let t = text.replace("forbid = [", "forbid = [\"root=/dev/sda1\", ");
    let r = run(&s, &compile(&t), true);
    assert_eq!(rules(&r), ["kernel-cmdline-forbidden"]);
    assert!(r.findings[0].message.contains("\"root=/dev/sda1\""));
    // A required token that is absent.
    let t = text.replace("forbid = [", "require = [\"lockdown=\"]\nforbid = [");
    assert_eq!(
        rules(&run(&s, &compile(&t), true)),
        ["kernel-cmdline-required"]
    );

    // An unknown attestation key.
    let other = AkFile::load(repo("test-vectors/swtpm/ecc-p256.pub")).unwrap();
    let t = learn(&s.log, "synthetic.bin", None, Some(&other), "synthetic").unwrap();
    assert_eq!(rules(&run(&s, &compile(&t), true)), ["attestation-key"]);

    // A golden PCR value that differs (several allowed values: one must match).
    let t = text.replacen("[[pcr]] # replayed from the log\nindex = 0\nvalues = [", "[[pcr]]\nindex = 0\nvalues = [\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"]\n[[pcr]] # replayed from the log\nindex = 0\nvalues = [", 1);
    assert!(run(&s, &compile(&t), true).trusted);
    let t = {
        let i = text.find("index = 0\nvalues = [\"sha256:").unwrap()
            + "index = 0\nvalues = [\"sha256:".len();
        let mut t = text.clone();
        t.replace_range(i..i + 1, if &text[i..i + 1] == "0" { "1" } else { "0" });
        t
    };
    let r = run(&s, &compile(&t), true);
    assert_eq!(rules(&r), ["golden-pcr"]);
    assert_eq!(r.findings[0].pcr, Some(0));

    // A replay mismatch: one event digest in the log changed (PCR 4's boot application).
    let mut bad = swtpm();
    let log = EventLog::parse(&bad.log).unwrap();
    let ev = log.event(17).unwrap();
    let d = ev.digest(HashAlg::Sha256).unwrap();
    let pos = bad.log.windows(32).position(|w| w == d).unwrap();
    bad.log[pos] ^= 1;
    let r = run(&bad, &compile(&text), true);
    assert!(!r.trusted);
    let fails = rules(&r);
    assert!(fails.contains(&"log-replay"), "{fails:?}");
    let replay = r.findings.iter().find(|f| f.rule == "log-replay").unwrap();
    assert_eq!(replay.pcr, Some(4));
    // Without supplied PCR values, the replay must hash to the quote's digest on its own.
    // Then nothing in the log is confirmed, so the rules that need it fail too.
    let r = run(&bad, &compile(&text), false);
    let fails = rules(&r);
    assert_eq!(fails[..2], ["log-replay", "pcr-values-unavailable"]);
    assert!(
        fails[2..].iter().all(|f| f.starts_with("secure-boot")),
        "{fails:?}"
    );

    // A wrong nonce stops everything at the quote.
    let mut wrong = swtpm();
    wrong.nonce[0] ^= 1;
    let r = run(&wrong, &compile(&text), true);
    assert_eq!(rules(&r), ["quote"]);
    assert!(r.findings[0].message.contains("nonce"));
}

/// The real logs that parse and extend PCRs 0–7.
fn real_logs(shared: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shared.join("tpm2-tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    v.extend(
        std::fs::read_dir(shared.join("go-attestation"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("_eventlog")),
    );
    v.push(shared.join("keylime/create-mb-policy/binary_bios_measurements"));
    v.sort();
    v.into_iter()
        .filter(|p| {
            let b = read(p);
            EventLog::parse(&b).is_ok_and(|l| (0..8).all(|i| l.events_for_pcr(i).next().is_some()))
        })
        .collect()
}

fn appraise_log(log_bytes: &[u8], policy: &[u8]) -> VerdictReport {
    let log = EventLog::parse(log_bytes).unwrap();
    let replay = Replay::log(&log, ALL_PCRS);
    let bank = [HashAlg::Sha256, HashAlg::Sha1]
        .into_iter()
        .find(|a| replay.bank(*a).is_some() && replay.missing(*a) & 0xff == 0)
        .unwrap();
    let (ak, attest, sig) = trustpool::testing::software_quote(bank, 0xff, &replay, b"nonce");
    let input = VerifyInput {
        ak: AkFile::from_bytes(ak, "ak").unwrap(),
        attest,
        signature: sig,
        pcrs: None,
        nonce: b"nonce".to_vec(),
        event_log: Some(log_bytes.to_vec()),
        policy: policy.to_vec(),
        workarounds: Workarounds::default(),
        plain_scheme: None,
    };
    verify(&trustpool::Ring, &input).unwrap()
}

#[test]
fn every_real_log_is_trusted_by_its_learned_whitelist_and_not_by_another() {
    let Some(shared) = shared() else { return };
    let logs = real_logs(&shared);
    assert!(logs.len() >= 12, "{logs:?}");
    let policies: Vec<Vec<u8>> = logs
        .iter()
        .map(|p| {
            compile(&learn(&read(p), &p.display().to_string(), None, None, "learned").unwrap())
        })
        .collect();
    for (p, policy) in logs.iter().zip(&policies) {
        let r = appraise_log(&read(p), policy);
        assert!(r.trusted, "{}: {:#?}", p.display(), r.findings);
        assert!(r.events_checked > 5, "{}", p.display());
    }
    // Cross-application: a whitelist from one machine rejects another's log, naming events.
    let (a, b) = (
        logs.iter()
            .position(|p| p.ends_with("event-arch-linux.bin"))
            .unwrap(),
        logs.iter()
            .position(|p| p.ends_with("binary_bios_measurements"))
            .unwrap(),
    );
    let r = appraise_log(&read(&logs[b]), &policies[a]);
    assert!(!r.trusted);
    let ev = r
        .findings
        .iter()
        .filter(|f| f.rule == "event-digest" || f.rule == "unknown-event")
        .count();
    assert!(ev > 5, "{:#?}", r.findings);
    assert!(r
        .findings
        .iter()
        .all(|f| f.severity != trustpool_core::appraise::Severity::Fail
            || f.event_index.is_some()
            || f.rule == "golden-pcr"
            || f.rule == "kernel-cmdline-forbidden"
            || f.rule == "secure-boot"
            || f.rule == "secure-boot-variable"));
}

#[test]
fn disabled_secure_boot_is_a_finding() {
    let Some(shared) = shared() else { return };
    let p = shared.join("go-attestation/ubuntu_2104_shielded_vm_no_secure_boot_eventlog");
    let text = learn(&read(&p), "ubuntu", None, None, "u").unwrap();
    assert!(text.contains("enabled = false"));
    let r = appraise_log(&read(&p), &compile(&text));
    assert!(r.trusted, "{:#?}", r.findings);
    let r = appraise_log(
        &read(&p),
        &compile(&text.replace("enabled = false", "enabled = true")),
    );
    assert_eq!(rules(&r), ["secure-boot"]);
    assert_eq!(r.findings[0].message, "PCR 7, Secure Boot is disabled");
}

/// go-attestation's Windows bundle: a real quote (RSASSA-SHA1 AK), its 24 SHA-1 PCRs and its
/// SHA-1-format log, learned and appraised.
#[test]
fn windows_bundle_end_to_end() {
    use base64::Engine as _;
    let Some(shared) = shared() else { return };
    let j: serde_json::Value = serde_json::from_slice(&read(
        shared.join("go-attestation/windows_gcp_shielded_vm.json"),
    ))
    .unwrap();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let mut set = trustpool_core::PcrSet::new();
    for p in j["Log"]["PCRs"].as_array().unwrap() {
        set.set(
            HashAlg::Sha1,
            p["Index"].as_u64().unwrap() as u8,
            &b64(&p["Digest"]),
        );
    }
    let mut pcr_file = vec![0u8; 4096];
    let n = trustpool_core::pcr::write_tpm2_tools_pcrs(
        &[(HashAlg::Sha1, 0x00ff_ffff)],
        &set,
        &mut pcr_file,
    )
    .unwrap();
    pcr_file.truncate(n);
    let log = b64(&j["Log"]["Raw"]);
    let ak = AkFile::from_bytes(b64(&j["AK"]["Public"]), "ak").unwrap();
    let text = learn(&log, "windows", Some(&set), Some(&ak), "windows").unwrap();
    assert!(text.contains("enabled = true"));
    let input = VerifyInput {
        ak,
        attest: b64(&j["Quote"]["Quote"]),
        signature: b64(&j["Quote"]["Signature"]),
        pcrs: Some(pcr_file),
        nonce: vec![],
        event_log: Some(log),
        policy: compile(&text),
        workarounds: Workarounds::default(),
        plain_scheme: None,
    };
    let r = verify(&trustpool::Ring, &input).unwrap();
    assert!(r.trusted, "{:#?}", r.findings);
    assert!(r.events_checked > 20);
}

/// go-attestation's `ebs_event_missing_eventlog`: GCE firmware extended PCR 5 with the
/// ExitBootServices actions without logging them. With the opt-in workaround the verdict is
/// trusted and says so; without it PCR 5 is a replay mismatch.
#[test]
fn ebs_workaround_is_opt_in_and_reported() {
    let Some(shared) = shared() else { return };
    let log_bytes = read(shared.join("go-attestation/ebs_event_missing_eventlog"));
    let log = EventLog::parse(&log_bytes).unwrap();
    let replay = Replay::log(&log, ALL_PCRS);
    let mut set = trustpool_core::PcrSet::new();
    for i in 0..8u8 {
        set.set(
            HashAlg::Sha1,
            i,
            replay
                .bank(HashAlg::Sha1)
                .unwrap()
                .get(i)
                .unwrap()
                .as_bytes(),
        );
    }
    // PCR 5 as the source test states it.
    set.set(
        HashAlg::Sha1,
        5,
        &hex::decode("31245808d6d35849bc394f6343f2b3ff908ed5e3").unwrap(),
    );
    let (ak, attest, sig) = trustpool::testing::software_quote(HashAlg::Sha1, 0xff, &set, b"n");
    let mut pcr_file = vec![0u8; 2048];
    let n =
        trustpool_core::pcr::write_tpm2_tools_pcrs(&[(HashAlg::Sha1, 0xff)], &set, &mut pcr_file)
            .unwrap();
    pcr_file.truncate(n);
    // Learned with the quoted values as golden PCR values.
    let policy = compile(&learn(&log_bytes, "ebs", Some(&set), None, "ebs").unwrap());
    let mut input = VerifyInput {
        ak: AkFile::from_bytes(ak, "ak").unwrap(),
        attest,
        signature: sig,
        pcrs: Some(pcr_file),
        nonce: b"n".to_vec(),
        event_log: Some(log_bytes.clone()),
        policy,
        workarounds: Workarounds::default(),
        plain_scheme: None,
    };
    let r = verify(&trustpool::Ring, &input).unwrap();
    assert_eq!(rules(&r), ["log-replay"]);
    assert_eq!(r.findings[0].pcr, Some(5));
    input.workarounds = Workarounds {
        ebs_events_missing: true,
    };
    let r = verify(&trustpool::Ring, &input).unwrap();
    assert!(r.trusted, "{:#?}", r.findings);
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, "workaround-applied");
    assert_eq!(r.findings[0].pcr, Some(5));
    assert!(
        r.findings[0].message.contains("ebs_events_missing"),
        "{}",
        r.findings[0].message
    );
}
