#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
//! IMA runtime policies: Keylime's formats compiled into the compact whitelist, and the
//! verdicts `ima check` gives on Keylime's logs, synthetic logs and the real ima-verify log.

use std::path::PathBuf;

use trustpool::ima_policy::{
    compile_ima_whitelist, ima_check, ima_replay, ima_rules_from_allowlist,
    ima_rules_from_exclude_list, ima_rules_from_keylime_policy, ima_rules_from_log, ima_show,
    synthetic_log, Exclude, ImaRules, LogFormat,
};
use trustpool_core::alg::HashAlg;
use trustpool_core::ima::{BankMode, FindingKind};
use trustpool_core::pcr::PcrBank;
use trustpool_core::whitelist::{flag, section, Whitelist};

fn vector(rel: &str) -> Option<Vec<u8>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/test-vectors")
        .join(rel);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) if std::env::var_os("CI").is_some() => panic!("{}: {e}", p.display()),
        Err(_) => {
            eprintln!("skipping: {} not found", p.display());
            None
        }
    }
}

fn text(rel: &str) -> Option<String> {
    vector(rel).map(|b| String::from_utf8(b).unwrap())
}

fn kinds(r: &trustpool::ima_policy::CheckReport) -> Vec<(String, FindingKind)> {
    r.findings
        .iter()
        .filter(|f| f.fatal)
        .map(|f| (f.name.clone(), f.kind))
        .collect()
}

/// One ASCII line with a correct SHA-1 template hash.
fn line(template: &str, digest: &str, name: &str, extra: Option<&[u8]>) -> String {
    let (algo, hexd) = digest.split_once(':').unwrap();
    let d = hex::decode(hexd).unwrap();
    let mut data = vec![];
    let mut dng = format!("{algo}:").into_bytes();
    dng.push(0);
    dng.extend(&d);
    data.extend((dng.len() as u32).to_le_bytes());
    data.extend(dng);
    data.extend((name.len() as u32 + 1).to_le_bytes());
    data.extend(name.as_bytes());
    data.push(0);
    if let Some(x) = extra {
        data.extend((x.len() as u32).to_le_bytes());
        data.extend(x);
    }
    let th = HashAlg::Sha1.hash(&data).unwrap();
    let mut s = format!(
        "10 {} {template} {digest} {name}",
        hex::encode(th.as_bytes())
    );
    if let Some(x) = extra {
        s += &format!(" {}", hex::encode(x));
    }
    s + "\n"
}

#[test]
fn keylime_runtime_policy_and_legacy_allowlist_agree() {
    let (Some(json), Some(list)) = (
        text("keylime/runtime-policy-test.json"),
        text("keylime/ima-allowlist-short.txt"),
    ) else {
        return;
    };
    let p = ima_rules_from_keylime_policy(&json).unwrap();
    assert_eq!(p.digests.len(), 21);
    assert_eq!(
        p.digests["boot_aggregate"],
        ["sha256:4309217e9709def327c3409407f4d52907aeba46ef1b4f46529fd095f2ef9fb2"]
    );
    assert_eq!(
        p.accept_keyrings[".ima"],
        ["a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a"]
    );
    assert_eq!(p.log_alg().unwrap(), HashAlg::Sha1);
    let a = ima_rules_from_allowlist(&list).unwrap();
    assert_eq!(a.digests, p.digests);
    assert_eq!(a.accept_keyrings, p.accept_keyrings);

    let wl_bytes = compile_ima_whitelist(&p, "keylime").unwrap();
    let wl = Whitelist::parse(&wl_bytes).unwrap();
    assert!(wl.settings().has(flag::IMA_ENFORCED));
    // 20 SHA-1 file digests; boot_aggregate's SHA-256; the keyring key's bare 64-hex digest
    // counts for every 32-byte algorithm (SHA-256, SM3-256, SHA3-256), as Keylime compares hex.
    assert_eq!(
        wl.section(section::IMA_DIGEST | HashAlg::Sha1.id())
            .unwrap()
            .len(),
        20
    );
    assert_eq!(
        wl.section(section::IMA_DIGEST | HashAlg::Sha256.id())
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        wl.section(section::IMA_DIGEST | HashAlg::Sm3_256.id())
            .unwrap()
            .len(),
        1
    );

    // The grub modules of the policy pass; a changed digest and an unknown path do not.
    let mut log = line(
        "ima-ng",
        "sha256:4309217e9709def327c3409407f4d52907aeba46ef1b4f46529fd095f2ef9fb2",
        "boot_aggregate",
        None,
    );
    log += &line(
        "ima-ng",
        "sha1:4860656c6855b6db0c7a2ccc6227a395928986a7",
        "/boot/grub2/i386-pc/terminfo.mod",
        None,
    );
    log += &line(
        "ima-ng",
        "sha1:5860656c6855b6db0c7a2ccc6227a395928986a7",
        "/boot/grub2/i386-pc/tr.mod",
        None,
    );
    log += &line(
        "ima-ng",
        "sha1:4860656c6855b6db0c7a2ccc6227a395928986a7",
        "/etc/shadow",
        None,
    );
    let r = ima_check(
        log.as_bytes(),
        None,
        HashAlg::Sha1,
        &wl_bytes,
        Some(&p),
        None,
    )
    .unwrap();
    assert!(!r.passed);
    assert_eq!(r.stats.allowed, 1);
    assert_eq!(
        kinds(&r),
        [
            (
                "/boot/grub2/i386-pc/tr.mod".to_string(),
                FindingKind::DigestNotAllowed
            ),
            ("/etc/shadow".to_string(), FindingKind::NotInAllowlist)
        ]
    );
    assert_eq!(r.findings[0].index, 2);
}

/// Keylime's create-runtime-policy data: `policy-<alg>` is a *base* policy (it lists
/// `/base_policy_data` or `/rootfs_data`), which Keylime's test passes with `--base-policy`
/// alongside `ima-log-<alg>` and `allowlist-<alg>`; it does not list the log's `/data`.
#[test]
fn keylime_create_runtime_policy_verdicts() {
    for alg in ["sha1", "sha256", "sha384", "sha512"] {
        let (Some(policy), Some(log), Some(allow)) = (
            text(&format!("keylime/create-runtime-policy/policy-{alg}")),
            vector(&format!("keylime/create-runtime-policy/ima-log-{alg}")),
            text(&format!("keylime/create-runtime-policy/allowlist-{alg}")),
        ) else {
            return;
        };
        let base = ima_rules_from_keylime_policy(&policy).unwrap();
        let wl = compile_ima_whitelist(&base, alg).unwrap();
        let r = ima_check(
            &log,
            Some(LogFormat::Ascii),
            HashAlg::Sha1,
            &wl,
            Some(&base),
            None,
        )
        .unwrap();
        assert_eq!(r.replay.template_mismatches, 0, "{alg}: {}", r.text());
        assert_eq!(
            kinds(&r),
            [("/data".to_string(), FindingKind::NotInAllowlist)],
            "{alg}"
        );

        // What `keylime_create_policy --base-policy policy-<alg> --allowlist allowlist-<alg>
        // --ima-measurement-list ima-log-<alg>` merges: every entry of the log is allowed.
        let mut merged = base.clone();
        merged.merge(ima_rules_from_allowlist(&allow).unwrap());
        merged.merge(ima_rules_from_log(&log, None, HashAlg::Sha1).unwrap());
        assert!(
            merged.digests.contains_key("/base_policy_data") && merged.digests.contains_key("data")
        );
        let wl = compile_ima_whitelist(&merged, alg).unwrap();
        let r = ima_check(&log, None, HashAlg::Sha1, &wl, Some(&merged), None).unwrap();
        assert!(r.passed, "{alg}: {}", r.text());
        // The made-up boot_aggregate lines have zero template hashes: violations (not fatal),
        // except sha256's, which is a real one.
        assert_eq!(
            (r.stats.allowed, r.stats.boot_aggregate + r.stats.violations),
            (1, 1),
            "{alg}"
        );
        assert_eq!(r.stats.boot_aggregate, u64::from(alg == "sha256"), "{alg}");

        // A changed digest for /data is a finding.
        let mut changed = merged.clone();
        for d in changed.digests.get_mut("/data").unwrap() {
            let last = d.pop().unwrap();
            d.push(if last == '0' { '1' } else { '0' });
        }
        let wl = compile_ima_whitelist(&changed, alg).unwrap();
        let r = ima_check(&log, None, HashAlg::Sha1, &wl, Some(&changed), None).unwrap();
        assert_eq!(
            kinds(&r),
            [("/data".to_string(), FindingKind::DigestNotAllowed)],
            "{alg}"
        );
        // Excluding /data by a Keylime regex passes it again.
        changed.exclude = vec!["^/da".into()];
        let wl = compile_ima_whitelist(&changed, alg).unwrap();
        let r = ima_check(&log, None, HashAlg::Sha1, &wl, Some(&changed), None).unwrap();
        assert!(r.passed && r.stats.excluded == 1, "{alg}");
    }
    // The sm3_256 and "unknown" policies parse; their logs are not IMA SHA-1 logs.
    for alg in ["sm3_256", "unknown"] {
        let Some(policy) = text(&format!("keylime/create-runtime-policy/policy-{alg}")) else {
            return;
        };
        let p = ima_rules_from_keylime_policy(&policy).unwrap();
        assert!(p.digests.contains_key("/rootfs_data"));
        let compiled = compile_ima_whitelist(&p, alg);
        assert_eq!(compiled.is_ok(), alg == "sm3_256", "{alg}: {compiled:?}");
    }
}

#[test]
fn exclude_regexes() {
    let cases = [
        ("^/tmp/", Some("/tmp/")),
        ("/var/log/.*", Some("/var/log/")),
        ("boot_aggregate", Some("boot_aggregate")),
        ("^/usr/lib/python3\\.11/.*", Some("/usr/lib/python3.11/")),
        ("foobar.so(.*)?", None),
        ("/home/.*/\\.cache/", None),
        ("boot.aggreg*$", None),
        ("/usr/lib/python3\\.\\d+/", None),
    ];
    for (re, prefix) in cases {
        let e = Exclude::parse(re);
        match (prefix, &e) {
            (Some(p), Exclude::Prefix(q)) => assert_eq!(p, q),
            (None, Exclude::Pattern(_) | Exclude::Unsupported { .. }) => {}
            _ => panic!("{re}: {e:?}"),
        }
    }
    // Python re.match semantics: anchored at the start only, `$` anchors the end.
    let p = Exclude::parse("foobar.so(.*)?");
    assert!(p.is_match("foobar.so") && p.is_match("foobarXso.1") && !p.is_match("/foobar.so"));
    let p = Exclude::parse("/home/.*/\\.cache/");
    assert!(
        p.is_match("/home/u/.cache/x")
            && p.is_match("/home/a/b/.cache/")
            && !p.is_match("/home/u/xcache/")
    );
    let p = Exclude::parse("/opt/app/.*\\.log$");
    assert!(matches!(p, Exclude::Pattern(_)));
    assert!(p.is_match("/opt/app/x.log") && !p.is_match("/opt/app/x.log.1"));
    assert!(matches!(
        Exclude::parse("boot.aggreg*$"),
        Exclude::Unsupported { .. }
    ));
    assert!(!Exclude::parse("(a|b)").is_match("a"));
    assert!(matches!(Exclude::parse(""), Exclude::Unsupported { .. }));
    // Pathological input stays fast (no backtracking blow-up).
    let p = Exclude::parse(".*a.*a.*a.*a.*a.*a.*a.*b$");
    let s = "a".repeat(5000);
    let t = std::time::Instant::now();
    assert!(!p.is_match(&s));
    assert!(t.elapsed().as_secs() < 5);

    let r = ima_rules_from_exclude_list("# comment\n\n/tmp/.*\n/home/.*/\\.cache/\n");
    assert_eq!(r.exclude.len(), 2);
    let wl = compile_ima_whitelist(&r, "x").unwrap();
    assert_eq!(
        Whitelist::parse(&wl)
            .unwrap()
            .section(section::IMA_EXCLUDE)
            .unwrap()
            .len(),
        1
    );
    let log = line(
        "ima-ng",
        "sha256:00000000000000000000000000000000000000000000000000000000000000aa",
        "/tmp/x",
        None,
    ) + &line(
        "ima-ng",
        "sha256:00000000000000000000000000000000000000000000000000000000000000aa",
        "/home/u/.cache/y",
        None,
    ) + &line(
        "ima-ng",
        "sha256:00000000000000000000000000000000000000000000000000000000000000aa",
        "/home/u/z",
        None,
    );
    let c = ima_check(log.as_bytes(), None, HashAlg::Sha1, &wl, Some(&r), None).unwrap();
    assert_eq!((c.stats.excluded, c.excluded_by_pattern), (1, 1));
    assert_eq!(
        kinds(&c),
        [("/home/u/z".to_string(), FindingKind::NotInAllowlist)]
    );
}

#[test]
fn keyrings_buffers_and_selinux() {
    let cert = {
        let mut c = vec![0x30, 0x82, 0x01, 0x00];
        c.extend([0x55; 256]);
        c
    };
    let cert_digest = format!(
        "sha256:{}",
        hex::encode(HashAlg::Sha256.hash(&cert).unwrap().as_bytes())
    );
    let enforcing = |on: bool| {
        format!(
            "initialized=1;enabled=1;enforcing={};checkreqprot=0;",
            u8::from(on)
        )
        .into_bytes()
    };
    let digest_of = |b: &[u8]| {
        format!(
            "sha256:{}",
            hex::encode(HashAlg::Sha256.hash(b).unwrap().as_bytes())
        )
    };
    let cmdline = b"root=/dev/vda1 ro".to_vec();
    let log = line("ima-buf", &cert_digest, ".ima", Some(&cert))
        + &line(
            "ima-buf",
            &cert_digest,
            ".builtin_trusted_keys",
            Some(&cert),
        )
        + &line(
            "ima-buf",
            &digest_of(&enforcing(false)),
            "selinux-state",
            Some(&enforcing(false)),
        )
        + &line(
            "ima-buf",
            &digest_of(&enforcing(true)),
            "selinux-state",
            Some(&enforcing(true)),
        )
        + &line(
            "ima-buf",
            &digest_of(&cmdline),
            "kexec-cmdline",
            Some(&cmdline),
        );
    let mut rules = ImaRules {
        require_selinux_enforcing: Some(true),
        ..ImaRules::default()
    };
    rules
        .accept_keyrings
        .insert(".ima".into(), vec![cert_digest.clone()]);
    rules.ignored_keyrings.push(".builtin_trusted_keys".into());
    rules.ima_buf.insert(
        "selinux-state".into(),
        vec![digest_of(&enforcing(true)), digest_of(&enforcing(false))],
    );
    let wl = compile_ima_whitelist(&rules, "bufs").unwrap();
    assert!(Whitelist::parse(&wl)
        .unwrap()
        .settings()
        .has(flag::SELINUX_ENFORCING_REQUIRED));
    let r = ima_check(log.as_bytes(), None, HashAlg::Sha1, &wl, Some(&rules), None).unwrap();
    // kexec-cmdline is not in the ima-buf rules (Keylime fails it too).
    assert_eq!(
        kinds(&r),
        [("kexec-cmdline".to_string(), FindingKind::BufNotAllowed)],
        "{}",
        r.text()
    );
    assert_eq!((r.stats.allowed, r.stats.excluded), (3, 1));
    assert_eq!(r.facts.selinux_enforcing, Some(true));
    assert_eq!(r.facts.kexec_cmdline.as_deref(), Some("root=/dev/vda1 ro"));
    assert_eq!(r.facts.keys_measured, 2);

    // The last selinux-state wins: permissive at the end is a finding.
    let log2 = log.clone()
        + &line(
            "ima-buf",
            &digest_of(&enforcing(false)),
            "selinux-state",
            Some(&enforcing(false)),
        );
    rules
        .ima_buf
        .insert("kexec-cmdline".into(), vec![digest_of(&cmdline)]);
    let wl = compile_ima_whitelist(&rules, "bufs").unwrap();
    let r = ima_check(
        log2.as_bytes(),
        None,
        HashAlg::Sha1,
        &wl,
        Some(&rules),
        None,
    )
    .unwrap();
    assert_eq!(
        kinds(&r),
        [(
            "selinux-state".to_string(),
            FindingKind::SelinuxNotEnforcing
        )]
    );
    // An unknown key in an accepted keyring.
    rules
        .accept_keyrings
        .insert(".ima".into(), vec![digest_of(b"other")]);
    let wl = compile_ima_whitelist(&rules, "bufs").unwrap();
    let r = ima_check(log.as_bytes(), None, HashAlg::Sha1, &wl, Some(&rules), None).unwrap();
    assert_eq!(
        kinds(&r),
        [(".ima".to_string(), FindingKind::KeyringNotAllowed)]
    );
}

const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPc3olF5gqv6qXZuz1bY7y39ySjTR
Q1xVP9RyLDBFRht9nr5Z0HhDhCr9aVFCiI4L6hZL2y4OnpVBqUR2/dHr/A==
-----END PUBLIC KEY-----";
const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAuyneU0oEYXSNvfiu4LqD
lBISnyfE2oL2BuZn1xgD3teV+GppCTr+khTDcvBTUcbaNPALLgTsuKV8rMHuSLiP
Al732IOK23BdKTvR0m9H+v4gyrL3m8i8KJcgY5xg5GQmppII4wYxVsH2SZ4rfoyX
mupZlZRODd5XmiWXn+qFwZn+wTWf0XHwUqd8/bY3I0egOxuNrFeiKPdL7V8Eu5Wc
JqaKplEBkaJG0qq0faoZ6nmqLbOTDMEz2uVQBCfcys5qdFMyn47W+WJJCaILURVF
tcVM+Nq9Fgln15GZ1uaq3oonlOlCaWI+kWCMoH2bHejTsGmGxcsFEcODLZuu2+AP
QwIDAQAB
-----END PUBLIC KEY-----";
/// SHA-256 of "hello ima", signed with `openssl pkeyutl -sign` (ECDSA P-256, and RSA PKCS#1
/// v1.5 with `digest:sha256`) by the keys above; their key ids are the last 4 bytes of the
/// subject key identifiers OpenSSL put in self-signed certificates of them.
const FILE_DIGEST: &str = "69ed66dd1b61f4678aa6ece30c7e92243a99313efe08c3798f775caf9233999e";
const EC_SIG: &str = "3044022022aac8d94d3b3514d23e3368e8ff884c01aa364e6e79f8cd20dc89d7230ac31c0220169fed4a0b774ec981a5f5687d10636ffdc6872999876ec53a2d480da17c7a10";
const RSA_SIG: &str = "95c0da85132deb0f663da6f8b04c957ca182cfbd1263b6576c2ef57dc44c0bf04d09faef409f0b10b035d0017eca52f87be172614b32596ede21695a686a042c8f242c195f1e1875dfa618a6f0d8b1c0f41c04059675555d1f5424810142ba079e1a3f6c189cd61e1af21bff20ca45be50805b6878d3dfebc10580236c109cb7f20bb7f9030c95e7763e8b984e4b786eff8b77b5c456cd3b492c687c3b2126fbe756dd3302c181ba7ea07d3bbd5f504fbda2a65913a3a6e3c5087b8c4bf6985a4e63f87cefa59083b4070a4ffbf21c9e98c55ce43e0cfe79742c5eb3f1b0c015b1f8daeb70048487e2ee6e04af8ef4ff75253aeb359ebf989a0d1fdab1b1cc56";

fn sigv2(key_id: u32, sig_hex: &str) -> Vec<u8> {
    let sig = hex::decode(sig_hex).unwrap();
    let mut v = vec![3, 2, 4];
    v.extend(key_id.to_be_bytes());
    v.extend((sig.len() as u16).to_be_bytes());
    v.extend(sig);
    v
}

#[test]
fn ima_sig_signatures_rsa_and_ecdsa() {
    use trustpool::ima_policy::decode_key;
    use trustpool_core::ima::sig::key_id_v2;
    assert_eq!(key_id_v2(&decode_key(EC_PUB).unwrap()), Some(0x769a_da94));
    assert_eq!(key_id_v2(&decode_key(RSA_PUB).unwrap()), Some(0x912e_f2fc));
    let d = format!("sha256:{FILE_DIGEST}");
    let log = line(
        "ima-sig",
        &d,
        "/usr/bin/ec-signed",
        Some(&sigv2(0x769a_da94, EC_SIG)),
    ) + &line(
        "ima-sig",
        &d,
        "/usr/bin/rsa-signed",
        Some(&sigv2(0x912e_f2fc, RSA_SIG)),
    ) + &line(
        "ima-sig",
        &d,
        "/usr/bin/bad",
        Some(&sigv2(0x912e_f2fc, EC_SIG)),
    ) + &line(
        "ima-sig",
        &d,
        "/usr/bin/unknown-key",
        Some(&sigv2(0x1234_5678, EC_SIG)),
    ) + &line("ima-sig", &d, "/usr/bin/unsigned", Some(&[]));
    let mut rules = ImaRules {
        verification_keys: vec![EC_PUB.into(), RSA_PUB.into()],
        ..ImaRules::default()
    };
    rules
        .digests
        .insert("/usr/bin/unsigned".into(), vec![d.clone()]);
    let wl = compile_ima_whitelist(&rules, "sig").unwrap();
    let r = ima_check(log.as_bytes(), None, HashAlg::Sha1, &wl, Some(&rules), None).unwrap();
    assert_eq!(r.replay.template_mismatches, 0);
    assert_eq!((r.stats.signed, r.stats.allowed), (2, 1), "{}", r.text());
    let k = kinds(&r);
    assert_eq!(k.len(), 2, "{k:?}");
    assert!(
        matches!(k[0], (ref n, FindingKind::Signature(trustpool_core::ima::sig::SigCheck::Bad(_))) if n == "/usr/bin/bad")
    );
    assert!(matches!(
        k[1].1,
        FindingKind::Signature(trustpool_core::ima::sig::SigCheck::UnknownKey {
            key_id: 0x1234_5678
        })
    ));
    // Without keys, signatures are not looked at and the allowlist decides.
    rules.verification_keys.clear();
    let r = ima_check(log.as_bytes(), None, HashAlg::Sha1, &wl, Some(&rules), None).unwrap();
    assert_eq!(r.fatal_findings, 4);
}

#[test]
fn synthetic_logs_at_scale() {
    let s = synthetic_log(20_000, 7);
    let wl = compile_ima_whitelist(&s.rules, "synthetic").unwrap();
    for (log, fmt) in [
        (&s.binary[..], LogFormat::Binary),
        (s.ascii.as_bytes(), LogFormat::Ascii),
    ] {
        let mut q = PcrBank::new(HashAlg::Sha1);
        q.set(10, s.pcr10.as_bytes());
        let r = ima_check(log, None, HashAlg::Sha1, &wl, Some(&s.rules), Some(&q)).unwrap();
        assert_eq!(r.replay.format, fmt);
        assert!(r.passed, "{}", r.text());
        assert_eq!(r.stats.allowed, 19_999);
        assert_eq!(r.replay.quote_matched_after, Some(20_000));
    }
    // One changed digest, one path missing.
    let mut rules = s.rules.clone();
    let (k1, _) = rules
        .digests
        .iter()
        .nth(100)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    rules
        .digests
        .insert(k1.clone(), vec![format!("sha256:{}", "00".repeat(32))]);
    let k2 = rules.digests.keys().nth(5000).unwrap().clone();
    rules.digests.remove(&k2);
    let wl = compile_ima_whitelist(&rules, "synthetic").unwrap();
    let r = ima_check(&s.binary, None, HashAlg::Sha1, &wl, None, None).unwrap();
    let mut k = kinds(&r);
    k.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (k1, FindingKind::DigestNotAllowed),
        (k2, FindingKind::NotInAllowlist),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(k, want);
}

#[test]
fn cli_functions_on_the_ima_verify_log() {
    let (Some(log), Some(pcrs)) = (
        vector("ima-verify/binary_runtime_measurements_sha1"),
        text("ima-verify/pcrs_sha1"),
    ) else {
        return;
    };
    let mut bank = PcrBank::new(HashAlg::Sha1);
    for l in pcrs.lines() {
        if let Some((i, v)) = l.trim().split_once(':') {
            if let (Ok(i), Some(v)) = (i.trim().parse::<u8>(), v.trim().strip_prefix("0x")) {
                bank.set(i, &hex::decode(v).unwrap());
            }
        }
    }
    let shown = ima_show(&log, None, HashAlg::Sha1, Some(2)).unwrap();
    assert!(
        shown.starts_with("3506 entries (Binary log, sha1 template digests)"),
        "{shown}"
    );
    assert!(shown.contains("boot_aggregate") && shown.contains("/usr/bin/kmod"));
    let r = ima_replay(&log, None, HashAlg::Sha1, &[], Some(&bank)).unwrap();
    assert!(r.ok(), "{}", r.text());
    assert_eq!(r.pcr10, ["sha1:18852fd355074758c0391b4389c17efb08d7bbd3"]);
    assert_eq!(r.quote_matched_after, Some(3506));
    assert_eq!(r.boot_aggregate.as_deref(), Some("pcrs_0_to_7"));
    // The same log replays the SHA-256 bank a 5.8+ kernel would have (values only: this
    // VM's SHA-256 PCRs are not in the vectors).
    let r2 = ima_replay(
        &log,
        None,
        HashAlg::Sha1,
        &[
            (HashAlg::Sha1, BankMode::TemplateHash),
            (HashAlg::Sha256, BankMode::TemplateHash),
            (HashAlg::Sha256, BankMode::PaddedSha1),
        ],
        None,
    );
    assert!(r2.is_ok());
    // Rules derived from the log itself allow every entry.
    let rules = ima_rules_from_log(&log, None, HashAlg::Sha1).unwrap();
    let wl = compile_ima_whitelist(&rules, "self").unwrap();
    let c = ima_check(&log, None, HashAlg::Sha1, &wl, Some(&rules), Some(&bank)).unwrap();
    assert!(c.passed, "{}", c.text());
    assert_eq!(
        c.stats.allowed + c.stats.boot_aggregate + c.stats.violations,
        3506
    );
    assert_eq!(
        c.facts.boot_aggregate.as_deref(),
        Some("sha1:970e3771003fdebc12616b07bfb9958190b2012e")
    );
}

/// Entries per second for replay + appraisal of a 100,000-entry log against a
/// 100,000-entry allowlist (run with `--release -- --ignored --nocapture`).
#[test]
#[ignore]
fn throughput_100k() {
    use trustpool_core::ima::{Appraiser, AsciiLog, BinaryLog, Replay};
    let s = synthetic_log(100_000, 1);
    let wl_bytes = compile_ima_whitelist(&s.rules, "bench").unwrap();
    let wl = Whitelist::parse(&wl_bytes).unwrap();
    // On-CPU time of this thread (ns), so that other load on the machine does not count.
    let cpu_ns = || -> f64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    for (name, ascii) in [("binary", false), ("ascii", true)] {
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        for _ in 0..5 {
            let c0 = cpu_ns();
            let t = std::time::Instant::now();
            let mut r = Replay::new(HashAlg::Sha1).unwrap();
            let mut a = Appraiser::new(&wl);
            let mut findings = 0;
            if ascii {
                for e in AsciiLog::new(s.ascii.as_bytes()) {
                    let e = e.unwrap();
                    r.feed(&e).unwrap();
                    a.appraise(&e, &mut |_| findings += 1);
                }
            } else {
                for e in BinaryLog::new(&s.binary, HashAlg::Sha1) {
                    let e = e.unwrap();
                    r.feed(&e).unwrap();
                    a.appraise(&e, &mut |_| findings += 1);
                }
            }
            assert_eq!((findings, r.value(HashAlg::Sha1).unwrap()), (0, &s.pcr10));
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min((cpu_ns() - c0) / 1e9);
        }
        println!(
            "{name}: {:.0} entries/s wall, {:.0} entries/s on-CPU (best of 5, 100k entries)",
            100_000.0 / best,
            100_000.0 / best_cpu
        );
    }
}

#[test]
#[ignore]
fn throughput_breakdown() {
    use trustpool_core::ima::{Appraiser, BinaryLog, Replay};
    let s = synthetic_log(100_000, 1);
    let wl_bytes = compile_ima_whitelist(&s.rules, "bench").unwrap();
    let wl = Whitelist::parse(&wl_bytes).unwrap();
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let mut best = f64::MAX;
        for _ in 0..7 {
            let t = std::time::Instant::now();
            std::hint::black_box(f());
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!("{name}: {:.0} ns/entry", best * 1e9 / 100_000.0);
    };
    time("parse", &|| {
        BinaryLog::new(&s.binary, HashAlg::Sha1)
            .map(|e| e.unwrap().pcr as usize)
            .sum()
    });
    time("parse+replay", &|| {
        let mut r = Replay::new(HashAlg::Sha1).unwrap();
        BinaryLog::new(&s.binary, HashAlg::Sha1).for_each(|e| {
            r.feed(&e.unwrap()).unwrap();
        });
        r.entries() as usize
    });
    time("parse+appraise", &|| {
        let mut a = Appraiser::new(&wl);
        BinaryLog::new(&s.binary, HashAlg::Sha1).for_each(|e| a.appraise(&e.unwrap(), &mut |_| {}));
        a.stats().allowed as usize
    });
    time("sha256 path hash only", &|| {
        (0..100_000)
            .map(|i| {
                trustpool_core::ima::appraise::path_hash(
                    b"",
                    format!("/usr/lib/synthetic/{:02x}/lib{i:07}-1.so", i % 251).as_bytes(),
                )[0] as usize
            })
            .sum()
    });
}

/// Write the 100k synthetic log, a Keylime runtime policy for it and its PCR 10 to
/// `$IMA_SYNTH_DIR` (for timing Keylime on the same input).
#[test]
#[ignore]
fn dump_synthetic_for_keylime() {
    let Some(dir) = std::env::var_os("IMA_SYNTH_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let s = synthetic_log(100_000, 1);
    std::fs::write(dir.join("ascii_runtime_measurements"), &s.ascii).unwrap();
    let mut digests = serde_json::Map::new();
    for (path, ds) in &s.rules.digests {
        let hexes: Vec<serde_json::Value> = ds
            .iter()
            .map(|d| d.split_once(':').unwrap().1.into())
            .collect();
        digests.insert(path.clone(), hexes.into());
    }
    let first = s.ascii.lines().next().unwrap();
    let agg = first.split(' ').nth(3).unwrap().split_once(':').unwrap().1;
    digests.insert(
        "boot_aggregate".into(),
        vec![serde_json::Value::from(agg)].into(),
    );
    let policy = serde_json::json!({
        "meta": {"version": 1}, "release": 0, "digests": digests, "excludes": [], "keyrings": {},
        "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""
    });
    std::fs::write(dir.join("policy.json"), policy.to_string()).unwrap();
    std::fs::write(dir.join("pcr10"), hex::encode(s.pcr10.as_bytes())).unwrap();
}
