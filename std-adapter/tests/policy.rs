//! The whitelist: TOML model, layering, compile to the compact form and read it back in the
//! core.

use proptest::prelude::*;
use trustpool::policy::{parse_digest, EventRule, GoldenPcr, Policy};
use trustpool_core::whitelist::{flag, section, Whitelist};
use trustpool_core::HashAlg;

fn example() -> Policy {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/policy-example.toml"
    ))
    .unwrap();
    Policy::from_toml(&text, "policy-example.toml").unwrap()
}

#[test]
fn example_compiles_and_reads_back() {
    let bin = example().compile(None).unwrap();
    let wl = Whitelist::parse(&bin).unwrap();
    let s = wl.settings();
    assert_eq!(s.name(), "pool-a base");
    assert!(
        s.has(flag::SECURE_BOOT_REQUIRED)
            && s.has(flag::EVENTLOG_REQUIRED)
            && s.has(flag::AK_RESTRICTED)
    );
    assert_eq!(s.event_pcrs, 0xff);
    assert_eq!(s.unknown_events_allowed, (1 << 1) | (1 << 6));
    assert_eq!(s.required_pcrs[0], (0x000b, 0xff));
    let (_, v) =
        parse_digest("sha256:3dcaf4e5a2cca5b3d4fd3e3e3a0a8c4db0c8c6c3e4cd4c9e94b0b5b9f5c0e0a1")
            .unwrap();
    assert_eq!(wl.pcr_value_allowed(HashAlg::Sha256, 0, &v), Some(true));
    assert_eq!(
        wl.pcr_value_allowed(HashAlg::Sha256, 0, &[0; 32]),
        Some(false)
    );
    assert_eq!(wl.pcr_value_allowed(HashAlg::Sha256, 1, &[0; 32]), None);
    assert_eq!(wl.golden_pcr(HashAlg::Sha256, 0).unwrap().count(), 2);
    let (_, crtm) =
        parse_digest("sha256:96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
            .unwrap();
    assert_eq!(
        wl.event_digest_allowed(HashAlg::Sha256, 0, 0x8, &crtm),
        Some(true)
    );
    assert_eq!(
        wl.event_digest_allowed(HashAlg::Sha256, 0, 0x8, &[1; 32]),
        Some(false)
    );
    assert_eq!(
        wl.event_digest_allowed(HashAlg::Sha256, 0, 0x4, &crtm),
        None
    );
    let forbid: Vec<_> = wl
        .cmdline_rules()
        .filter(|(k, _)| *k == 2)
        .map(|(_, t)| t)
        .collect();
    assert_eq!(forbid, ["enforcing=0", "module.sig_enforce=0", "selinux=0"]);
    assert!(wl.section(section::AK_NAME | 0x0b).unwrap().len() == 1);
    // Bytes per reference digest: digest size + 5 for event rules, + 1 for golden PCRs.
    assert_eq!(wl.section(section::EVENT_DIGEST | 0x0b).unwrap().width, 37);
}

#[test]
fn groups_layer_on_the_base() {
    let p = example();
    let base = Whitelist::parse(&p.compile(None).unwrap())
        .unwrap()
        .section(section::EVENT_DIGEST | 0x0b)
        .unwrap()
        .len();
    let bin = p.compile(Some("gpu-hosts")).unwrap();
    let wl = Whitelist::parse(&bin).unwrap();
    assert_eq!(wl.settings().name(), "pool-a gpu hosts");
    assert_eq!(
        wl.section(section::EVENT_DIGEST | 0x0b).unwrap().len(),
        base + 1
    );
    assert!(wl.settings().has(flag::SECURE_BOOT_REQUIRED));
    assert!(p
        .compile(Some("nope"))
        .unwrap_err()
        .to_string()
        .contains("no such group"));
}

#[test]
fn unknown_keys_name_file_and_line() {
    let e = Policy::from_toml("name = \"x\"\n\n[secure_boot]\nenable = true\n", "p.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("p.toml:4:1: unknown field `enable`"), "{e}");
    assert!(e.contains("expected one of `enabled`"), "{e}");
    let e = Policy::from_toml("[[pcr]]\nindex = 0\nvalues = [\"sha256:00\"]\n", "p.toml")
        .unwrap()
        .compile(None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("pcr[0].values[0]") && e.contains("1 bytes, sha256 digests have 32"),
        "{e}"
    );
}

#[test]
fn tampered_whitelist_is_rejected() {
    let mut bin = example().compile(None).unwrap();
    for n in 0..bin.len() {
        assert!(Whitelist::parse(&bin[..n]).is_err());
    }
    let last = bin.len() - 1;
    bin[last] ^= 1;
    let e = Whitelist::parse(&bin).unwrap_err();
    assert_eq!((e.field, e.offset), ("digest", 16));
}

fn hex32() -> impl Strategy<Value = String> {
    any::<[u8; 32]>().prop_map(|b| format!("sha256:{}", hex::encode(b)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Compile then read gives back the same rules.
    #[test]
    fn compile_then_read(
        golden in proptest::collection::vec((0u8..24, proptest::collection::vec(hex32(), 1..4)), 0..8),
        events in proptest::collection::vec((0u8..24, prop_oneof![Just("any".to_string()), Just("EV_SEPARATOR".to_string()), Just("0x80000003".to_string())], proptest::collection::vec(hex32(), 1..5)), 0..8),
        forbid in proptest::collection::vec("[a-z.]{1,20}=[0-9]", 0..4),
    ) {
        let mut p = Policy {
            pcrs: golden.iter().map(|(i, v)| GoldenPcr { index: *i, values: v.clone() }).collect(),
            ..Default::default()
        };
        p.events.rules = events.iter().map(|(pcr, t, d)| EventRule { pcr: *pcr, event_type: t.clone(), digests: d.clone() }).collect();
        p.kernel_cmdline.forbid = forbid.clone();
        let bin = p.compile(None).unwrap();
        let wl = Whitelist::parse(&bin).unwrap();
        for (i, vals) in &golden {
            for v in vals {
                let (_, b) = parse_digest(v).unwrap();
                prop_assert_eq!(wl.pcr_value_allowed(HashAlg::Sha256, *i, &b), Some(true));
            }
        }
        for (pcr, t, ds) in &events {
            let ty = trustpool::policy::parse_event_type(t).unwrap();
            for d in ds {
                let (_, b) = parse_digest(d).unwrap();
                prop_assert_eq!(wl.event_digest_allowed(HashAlg::Sha256, *pcr, ty, &b), Some(true));
            }
        }
        let n_events: std::collections::BTreeSet<_> = events.iter().flat_map(|(pcr, t, ds)| ds.iter().map(move |d| (*pcr, t.clone(), d.clone()))).collect();
        let got = wl.section(section::EVENT_DIGEST | 0x0b).map_or(0, |s| s.len());
        prop_assert!(got <= n_events.len());
        let mut f: Vec<_> = forbid.clone(); f.sort(); f.dedup();
        let back: Vec<String> = wl.cmdline_rules().map(|(_, t)| t.to_string()).collect();
        prop_assert_eq!(back, f);
    }
}
