//! The `trustpool` binary as a user runs it: the README's main command, exit codes, JSON.

use std::process::Command;

fn trustpool(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_trustpool"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

const E: &str = "test-vectors/swtpm/eventlog";

fn nonce() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../test-vectors/swtpm/eventlog/nonce.hex"
    ))
    .unwrap()
    .trim()
    .to_string()
}

fn verify_args(policy: &str, nonce: &str, json: bool) -> Vec<String> {
    let mut v: Vec<String> = [
        "verify",
        "--ak",
        &format!("{E}/ak.pub"),
        "--quote",
        &format!("{E}/quote.attest"),
        "--signature",
        &format!("{E}/quote.sig"),
        "--pcrs",
        &format!("{E}/quote.pcrs"),
        "--nonce",
        nonce,
        "--eventlog",
        &format!("{E}/synthetic.bin"),
        "--policy",
        policy,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if json {
        v.push("--json".into());
    }
    v
}

#[test]
fn readme_main_command_is_trusted() {
    let args = verify_args(&format!("{E}/policy.toml"), &nonce(), false);
    let (code, out, err) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("TRUSTED (whitelist \"swtpm-synthetic\" sha256:"),
        "{out}"
    );
    let args = verify_args(&format!("{E}/policy.toml"), &nonce(), true);
    let (code, out, _) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["trusted"], true);
    assert_eq!(j["events_checked"], 21);
}

#[test]
fn exit_codes() {
    // Untrusted: wrong nonce → 1, with the reason.
    let args = verify_args(&format!("{E}/policy.toml"), "00", true);
    let (code, out, _) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 1, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["trusted"], false);
    assert_eq!(j["findings"][0]["rule"], "quote");
    // Unusable input → 2.
    let args = verify_args("no/such/policy.toml", &nonce(), false);
    let (code, _, err) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2);
    assert!(err.contains("no/such/policy.toml"), "{err}");
    let (code, _, err) = trustpool(&[
        "quote",
        "verify",
        "--ak",
        "README.md",
        "--quote",
        "README.md",
        "--signature",
        "README.md",
        "--nonce",
        "00",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn eventlog_replay_matches_expected_json() {
    let (code, out, err) = trustpool(&[
        "eventlog",
        "replay",
        &format!("{E}/synthetic.bin"),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: serde_json::Value = serde_json::from_str(&out).unwrap();
    let want: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../test-vectors/swtpm/eventlog/expected-pcrs.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for bank in ["sha1", "sha256"] {
        for pcr in 0..=8 {
            let w = want[bank][pcr.to_string()].as_str().unwrap();
            let g = got["pcrs"][bank][pcr.to_string()].as_str().unwrap();
            assert_eq!(g, w, "{bank}:{pcr}");
        }
    }
}

#[test]
fn eventlog_check_against_the_quote() {
    let n = nonce();
    let base = |log: &str, pcrs: bool| {
        let mut v = vec![
            "eventlog".to_string(),
            "check".into(),
            log.into(),
            "--ak".into(),
            format!("{E}/ak.pub"),
            "--quote".into(),
            format!("{E}/quote.attest"),
            "--signature".into(),
            format!("{E}/quote.sig"),
            "--nonce".into(),
            n.clone(),
            "--json".into(),
        ];
        if pcrs {
            v.extend(["--pcrs".into(), format!("{E}/quote.pcrs")]);
        }
        v
    };
    // With the quoted values: every PCR matches; without: the replay gives the quote's digest.
    for pcrs in [true, false] {
        let args = base(&format!("{E}/synthetic.bin"), pcrs);
        let (code, out, err) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 0, "{out}{err}");
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["all_match"], true);
        assert_eq!(
            j["replay_matches_digest"],
            if pcrs {
                serde_json::Value::Null
            } else {
                true.into()
            }
        );
    }
    // A log with one digest changed: exit 1, and without quoted values the digest check says so.
    let mut log = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../test-vectors/swtpm/eventlog/synthetic.bin"
    ))
    .unwrap();
    let last = log.len() - 45; // last byte of the last event's SHA-256 digest
    log[last] ^= 1;
    let path =
        std::env::temp_dir().join(format!("trustpool-cli-tampered-{}.bin", std::process::id()));
    std::fs::write(&path, &log).unwrap();
    let args = base(path.to_str().unwrap(), false);
    let (code, out, _) = trustpool(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["replay_matches_digest"], false);
}
