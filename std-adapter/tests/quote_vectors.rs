//! Every case of `test-vectors/swtpm/MANIFEST.tsv` (quotes made by a real swtpm) gives the
//! verdict expected by construction, with both signature backends; and the real Windows quote
//! from go-attestation verifies end to end.

use std::path::{Path, PathBuf};

use trustpool::files::{self, AkFile, KeylimeQuote};
use trustpool::quote_cmd::{verify_quote, QuoteEvidence};
use trustpool_core::{HashAlg, RustCrypto, SignatureVerifier};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/swtpm")
}

/// `../shared/test-vectors` beside the repository, or `None` (skip) outside CI.
pub fn shared() -> Option<PathBuf> {
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

struct Row {
    case: String,
    ak: String,
    attest: String,
    signature: String,
    pcrs: String,
    nonce: String,
    expected: String,
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(vectors().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("case\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 8, "bad manifest line {l}");
            Row {
                case: f[0].into(),
                ak: f[1].into(),
                attest: f[2].into(),
                signature: f[3].into(),
                pcrs: f[4].into(),
                nonce: f[5].into(),
                expected: f[6].into(),
            }
        })
        .collect()
}

fn run(backend: &dyn SignatureVerifier, row: &Row) -> Result<(), String> {
    let dir = vectors();
    let ak = AkFile::load(dir.join(format!("{}.pub", row.ak))).unwrap();
    let ev = QuoteEvidence {
        attest: std::fs::read(dir.join(&row.attest)).unwrap(),
        signature: std::fs::read(dir.join(&row.signature)).unwrap(),
        pcrs: Some(std::fs::read(dir.join(&row.pcrs)).unwrap()),
    };
    let nonce = hex::decode(&row.nonce).unwrap();
    verify_quote(backend, &ak, &ev, &nonce, None)
        .map(|_| ())
        .map_err(|e| e.code().to_string())
}

#[test]
fn manifest_verdicts_both_backends() {
    let rows = manifest();
    assert!(rows.len() >= 37, "manifest has {} rows", rows.len());
    let mut positives = 0;
    for row in &rows {
        for (name, backend) in [
            ("ring", &trustpool::Ring as &dyn SignatureVerifier),
            ("rustcrypto", &RustCrypto),
        ] {
            let got = run(backend, row);
            let want = if row.expected == "ok" {
                Ok(())
            } else {
                Err(row.expected.clone())
            };
            assert_eq!(got, want, "case {} with {name}", row.case);
        }
        positives += usize::from(row.expected == "ok");
    }
    assert_eq!(positives, 10);
}

#[test]
fn pem_keys_verify_too() {
    for row in manifest()
        .iter()
        .filter(|r| r.expected == "ok" && !r.case.starts_with("eventlog"))
    {
        let dir = vectors();
        let ak = AkFile::load(dir.join(format!("{}.pem", row.ak))).unwrap();
        assert_eq!(ak.format, files::AkFormat::SpkiPem);
        let ev = QuoteEvidence {
            attest: std::fs::read(dir.join(&row.attest)).unwrap(),
            signature: std::fs::read(dir.join(&row.signature)).unwrap(),
            pcrs: Some(std::fs::read(dir.join(&row.pcrs)).unwrap()),
        };
        let (report, _) = verify_quote(
            &trustpool::Ring,
            &ak,
            &ev,
            &hex::decode(&row.nonce).unwrap(),
            None,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", row.case));
        assert!(report.ak_name.is_none());
    }
}

#[test]
fn ak_names_match_tpm2_readpublic() {
    for ak in [
        "rsa-rsassa",
        "rsa-rsapss",
        "ecc-p256",
        "ecc-p384",
        "rsa-rsassa-other",
    ] {
        let f = AkFile::load(vectors().join(format!("{ak}.pub"))).unwrap();
        let name = f.public().unwrap().name().unwrap().to_string();
        let want = hex::encode(std::fs::read(vectors().join(format!("{ak}.name"))).unwrap());
        assert_eq!(name, want, "{ak}");
        assert_eq!(f.public().unwrap().attributes.0, 0x0005_0072);
    }
}

#[test]
fn plain_signatures() {
    let dir = vectors();
    for (ak, case, nonce) in [
        (
            "ecc-p256",
            "ecc-p256.sha256",
            "07addd49399f1a88dbeaa90e735b35a86a268e59",
        ),
        (
            "rsa-rsassa",
            "rsa-rsassa.sha256",
            "26c554c2f0deca4a3f53693e5e5dda39b80d8656",
        ),
    ] {
        let ak_file = AkFile::load(dir.join(format!("{ak}.pub"))).unwrap();
        let ev = QuoteEvidence {
            attest: std::fs::read(dir.join(format!("{case}.attest"))).unwrap(),
            signature: std::fs::read(dir.join(format!("{case}.sig.plain"))).unwrap(),
            pcrs: Some(std::fs::read(dir.join(format!("{case}.pcrs"))).unwrap()),
        };
        // The scheme comes from the AK's public area.
        verify_quote(
            &trustpool::Ring,
            &ak_file,
            &ev,
            &hex::decode(nonce).unwrap(),
            None,
        )
        .unwrap();
    }
}

#[test]
fn keylime_quote_string() {
    let dir = vectors();
    let k = KeylimeQuote {
        attest: std::fs::read(dir.join("rsa-rsassa.sha256.attest")).unwrap(),
        signature: std::fs::read(dir.join("rsa-rsassa.sha256.sig")).unwrap(),
        pcrs: std::fs::read(dir.join("rsa-rsassa.sha256.pcrs")).unwrap(),
    };
    let s = k.to_string();
    assert!(s.starts_with("r/1RDR4AY"));
    let back = KeylimeQuote::parse(&s).unwrap();
    assert_eq!(back, k);
    let ak = AkFile::load(dir.join("rsa-rsassa.pub")).unwrap();
    let nonce = hex::decode("26c554c2f0deca4a3f53693e5e5dda39b80d8656").unwrap();
    verify_quote(
        &trustpool::Ring,
        &ak,
        &QuoteEvidence::from(back),
        &nonce,
        None,
    )
    .unwrap();
    assert!(KeylimeQuote::parse("x1:2:3").is_err());
    assert!(KeylimeQuote::parse("rAA==:AA==").is_err());
}

#[test]
fn two_bank_pcr_file() {
    let bytes = std::fs::read(vectors().join("ecc-p256.sha1+sha256.pcrs")).unwrap();
    assert_eq!(bytes.len(), 668);
    let set = files::parse_pcrs(&bytes, "pcrs").unwrap();
    // sha1:0,1,7+sha256:0,1,7; PCR 0 holds sha256("trustpool pcr 0") extended once.
    use trustpool_core::PcrValues;
    assert!(set.pcr(HashAlg::Sha1, 2).is_none());
    let mut want1 = trustpool_core::Digest::zero(HashAlg::Sha1);
    want1.extend(HashAlg::Sha1.hash(b"trustpool pcr 7").unwrap().as_bytes());
    assert_eq!(set.pcr(HashAlg::Sha1, 7).unwrap(), &want1);
    let mut want = trustpool_core::Digest::zero(HashAlg::Sha256);
    want.extend(HashAlg::Sha256.hash(b"trustpool pcr 0").unwrap().as_bytes());
    assert_eq!(set.pcr(HashAlg::Sha256, 0).unwrap(), &want);
    assert_eq!(set.bank(HashAlg::Sha256).unwrap().present(), 0b1000_0011);
}

/// go-attestation's Windows (GCE Shielded VM) bundle: RSA-2048 AK as TPMT_PUBLIC, RSASSA-SHA1
/// quote, empty nonce, 24 SHA-1 PCRs.
#[test]
fn go_attestation_windows_quote() {
    use base64::Engine as _;
    let Some(shared) = shared() else { return };
    let j: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared.join("go-attestation/windows_gcp_shielded_vm.json")).unwrap(),
    )
    .unwrap();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let ak = AkFile::from_bytes(b64(&j["AK"]["Public"]), "AK").unwrap();
    assert_eq!(ak.format, files::AkFormat::TpmtPublic);
    let public = ak.public().unwrap();
    assert_eq!(public.name_alg, 0x000b);
    let ev = QuoteEvidence {
        attest: b64(&j["Quote"]["Quote"]),
        signature: b64(&j["Quote"]["Signature"]),
        pcrs: None,
    };
    assert_eq!(j["Quote"]["Nonce"], "");
    for backend in [&trustpool::Ring as &dyn SignatureVerifier, &RustCrypto] {
        let (report, _) = verify_quote(backend, &ak, &ev, &[], None).unwrap();
        assert_eq!(report.signature_scheme, "rsassa-sha1");
        assert_eq!(report.key_bits, 2048);
    }
    let mut set = trustpool_core::PcrSet::new();
    for p in j["Log"]["PCRs"].as_array().unwrap() {
        assert_eq!(p["DigestAlg"], 3, "crypto.SHA1");
        assert!(set.set(
            HashAlg::Sha1,
            p["Index"].as_u64().unwrap() as u8,
            &b64(&p["Digest"])
        ));
    }
    assert_eq!(set.bank(HashAlg::Sha1).unwrap().present(), 0x00ff_ffff);
    let ak_view = ak.ak().unwrap();
    let sig = trustpool_core::Signature::parse(&ev.signature).unwrap();
    let q = trustpool_core::Quote::verify_with(&trustpool::Ring, &ev.attest, &sig, &ak_view, &[])
        .unwrap();
    q.check_pcrs(&set).unwrap();
    assert_eq!(q.info.pcr_select.len(), 24);
    // One flipped PCR bit breaks it.
    let mut bad = set.clone();
    let mut v = set
        .bank(HashAlg::Sha1)
        .unwrap()
        .get(7)
        .unwrap()
        .as_bytes()
        .to_vec();
    v[0] ^= 1;
    bad.set(HashAlg::Sha1, 7, &v);
    assert_eq!(
        q.check_pcrs(&bad),
        Err(trustpool_core::QuoteError::PcrDigestMismatch)
    );
    // A wrong nonce is caught.
    assert_eq!(
        trustpool_core::Quote::verify_with(&trustpool::Ring, &ev.attest, &sig, &ak_view, &[0])
            .unwrap_err(),
        trustpool_core::QuoteError::NonceMismatch
    );
}
