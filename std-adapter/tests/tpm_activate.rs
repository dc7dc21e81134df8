//! Enrollment by credential activation (the Keylime registrar protocol) against a real
//! software TPM (swtpm on loopback): the TCG default EKs trustpool creates are the ones
//! `tpm2_createek` creates, a credential made in software by
//! `trustpool_core::credential::make_credential_rsa` for the AK's Name is recovered by
//! TPM2_ActivateCredential, and one made for another Name is refused by the TPM. The same for
//! ECC P-256 EKs (`make_credential_ecc_p256`), and with tpm2-tools on either side:
//! `tpm2_makecredential` blobs activate in trustpool, trustpool blobs in
//! `tpm2_activatecredential`.
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

use trustpool::tpm::{activate_credential, TpmError, TpmSession};
use trustpool_core::credential::{make_credential_ecc_p256, make_credential_rsa};
use trustpool_core::public::Public;
use trustpool_core::tpm::rc::code;
use trustpool_core::tpm::{AkTemplate, EkTemplate, Hierarchy};

mod swtpm;
use swtpm::*;

/// The EK of `template` as trustpool creates it: its TPM2B_PUBLIC and Name (flushed after).
fn ek_public(t: &Swtpm, template: EkTemplate) -> (Vec<u8>, Vec<u8>) {
    let mut s = t.session();
    let ek = s.create_ek(template).unwrap();
    s.flush(ek.handle).unwrap();
    (ek.public, ek.name)
}

/// The Name of the AK `activate_credential` uses for `template` (endorsement hierarchy).
fn ak_name(t: &Swtpm, template: AkTemplate) -> Vec<u8> {
    let mut s = t.session();
    let ak = s.create_ak(template, Hierarchy::Endorsement).unwrap();
    let name = s.name(ak.handle).unwrap();
    s.flush(ak.handle).unwrap();
    name
}

/// A credential blob for `name` under the EK `ek` (TPM2B_PUBLIC), with fixed randomness.
fn blob_for(ek: &[u8], name: &[u8], secret: &[u8], fill: u8) -> Vec<u8> {
    let public = Public::parse_tpm2b(ek).unwrap();
    make_credential_rsa(&public, name, secret, &[fill; 32], &[fill ^ 0x55; 32])
        .unwrap()
        .to_blob()
}

/// Transient objects plus loaded sessions in the TPM (TPM_CAP_HANDLES).
fn loaded_handles(s: &mut TpmSession) -> usize {
    use trustpool_core::tpm::response::CapabilityData;
    let mut n = 0usize;
    // Transient objects (0x80…), and loaded sessions (listed from TPM_HT_LOADED_SESSION with
    // HMAC 0x02… and policy 0x03… handles).
    for (first, types) in [
        (0x8000_0000u32, &[0x80u8][..]),
        (0x0200_0000, &[0x02, 0x03][..]),
    ] {
        let r = s
            .tpm()
            .get_capability(trustpool_core::tpm::cap::HANDLES, first, 64)
            .unwrap();
        if let CapabilityData::Other { data, .. } = r.data {
            let count = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            n += data[4..4 + 4 * count]
                .chunks(4)
                .filter(|h| types.contains(&h[0]))
                .count();
        }
    }
    n
}

#[test]
fn ek_templates_match_tpm2_createek() {
    if !have(&["swtpm", "swtpm_setup", "tpm2_createek", "tpm2_flushcontext"]) {
        return;
    }
    let t = Swtpm::start();
    for (template, alg) in [(EkTemplate::Rsa2048, "rsa"), (EkTemplate::EccP256, "ecc")] {
        let (public, name) = ek_public(&t, template);
        let dir = TempDir::new("createek");
        let ctx = dir.path().join("ek.ctx");
        let pubf = dir.path().join("ek.pub");
        let out = run_tool(
            "tpm2_createek",
            &[
                "-T",
                &t.tcti(),
                "-G",
                alg,
                "-c",
                ctx.to_str().unwrap(),
                "-u",
                pubf.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "tpm2_createek -G {alg}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = std::fs::read(&pubf).unwrap();
        assert_eq!(
            hex::encode(&public),
            hex::encode(&theirs),
            "{template:?}: EK public differs from tpm2_createek -G {alg}"
        );
        // The Name both sides agree on: nameAlg SHA-256 ‖ SHA-256(TPMT_PUBLIC).
        let mut their_name = vec![0x00, 0x0b];
        their_name
            .extend_from_slice(ring::digest::digest(&ring::digest::SHA256, &theirs[2..]).as_ref());
        assert_eq!(
            hex::encode(&name),
            hex::encode(&their_name),
            "{template:?}: EK Name differs from tpm2_createek -G {alg}"
        );
        // Without a resource manager, tpm2_createek leaves its objects loaded.
        let out = run_tool("tpm2_flushcontext", &["-T", &t.tcti(), "-t"]);
        assert!(out.status.success());
    }
}

#[test]
fn activate_credential_recovers_the_secret() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let (ek, _) = ek_public(&t, EkTemplate::Rsa2048);
    // The EK policy session on its own, counted while loaded, then flushed.
    {
        let mut s = t.session();
        let session = s.tpm().ek_policy_session(&[7u8; 32]).unwrap();
        assert_eq!(session >> 24, 0x03, "{session:#x}: not a policy session");
        assert_eq!(loaded_handles(&mut s), 1);
        s.flush(session).unwrap();
        assert_eq!(loaded_handles(&mut s), 0);
    }
    for template in [AkTemplate::EccP256, AkTemplate::Rsa2048] {
        let name = ak_name(&t, template);
        for secret in [b"keylime registrar secret 32 byte".as_slice(), b"k"] {
            let blob = blob_for(&ek, &name, secret, 0x11);
            let got = activate_credential(&t.uri(), template, &blob).unwrap();
            assert_eq!(got, secret, "{template:?}");
        }
    }
    assert_eq!(
        loaded_handles(&mut t.session()),
        0,
        "objects or sessions left loaded"
    );
}

#[test]
fn activate_credential_for_another_name_is_a_tpm_error() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let (ek, ek_name) = ek_public(&t, EkTemplate::Rsa2048);
    let ecc = ak_name(&t, AkTemplate::EccP256);
    let rsa = ak_name(&t, AkTemplate::Rsa2048);
    let mut flipped = ecc.clone();
    *flipped.last_mut().unwrap() ^= 1;
    for (what, name) in [
        ("the RSA AK's", rsa),
        ("a flipped", flipped),
        ("the EK's", ek_name),
    ] {
        let blob = blob_for(&ek, &name, b"secret", 0x22);
        let err = activate_credential(&t.uri(), AkTemplate::EccP256, &blob).unwrap_err();
        let rc = err
            .response_code()
            .unwrap_or_else(|| panic!("{what} Name: not a TPM error: {err}"));
        assert_eq!(rc.base(), code::INTEGRITY, "{what} Name: {err}");
        assert!(matches!(err, TpmError::Command { .. }));
    }
    // A seed encrypted for another EK (a corrupted secret) fails in the TPM as well.
    let name = ak_name(&t, AkTemplate::EccP256);
    let mut blob = blob_for(&ek, &name, b"secret", 0x33);
    let n = blob.len();
    blob[n - 7] ^= 0x80;
    let err = activate_credential(&t.uri(), AkTemplate::EccP256, &blob).unwrap_err();
    assert!(err.response_code().is_some(), "{err}");
    // A malformed blob is an input error, no TPM command sent.
    let err = activate_credential(&t.uri(), AkTemplate::EccP256, &blob[..20]).unwrap_err();
    assert!(matches!(err, TpmError::Input(_)), "{err}");
    assert_eq!(
        loaded_handles(&mut t.session()),
        0,
        "objects or sessions left loaded"
    );
}

// --- ECC EKs, and tpm2-tools on either side -------------------------------------------------

/// An ephemeral ECC private key (any scalar in [1, n-1]; fixed here for reproducibility).
const EPHEMERAL: [u8; 32] = [0x5a; 32];

/// A credential blob for `name` under the EK `ek` (TPM2B_PUBLIC, RSA or ECC P-256).
fn any_blob_for(ek: &[u8], name: &[u8], secret: &[u8]) -> Vec<u8> {
    let public = Public::parse_tpm2b(ek).unwrap();
    match public.type_alg {
        trustpool_core::alg::id::ECC => make_credential_ecc_p256(&public, name, secret, &EPHEMERAL)
            .unwrap()
            .to_blob(),
        _ => blob_for(ek, name, secret, 0x44),
    }
}

/// Run a tpm2-tools command against `t`; panics with its output if it fails.
fn tool(t: &Swtpm, bin: &str, args: &[&str]) {
    let tcti = t.tcti();
    let mut all = vec!["-T", tcti.as_str()];
    all.extend_from_slice(args);
    let out = run_tool(bin, &all);
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

const SECRET32: &[u8] = b"keylime registrar secret 32 byte";

#[test]
fn ecc_ek_activates_a_core_made_credential() {
    if !have(&["swtpm", "swtpm_setup"]) {
        return;
    }
    let t = Swtpm::start();
    let mut s = t.session();
    let ek = s.create_ek(EkTemplate::EccP256).unwrap();
    for template in [AkTemplate::EccP256, AkTemplate::Rsa2048] {
        let ak = s.create_ak(template, Hierarchy::Endorsement).unwrap();
        let name = s.name(ak.handle).unwrap();
        for secret in [SECRET32, b"k".as_slice(), b""] {
            let blob = any_blob_for(&ek.public, &name, secret);
            let got = s.activate(&ak, &ek, &blob).unwrap();
            assert_eq!(got, secret, "{template:?}");
        }
        // For another Name the TPM refuses it.
        let mut other = name.clone();
        *other.last_mut().unwrap() ^= 1;
        let blob = any_blob_for(&ek.public, &other, SECRET32);
        let err = s.activate(&ak, &ek, &blob).unwrap_err();
        assert_eq!(
            err.response_code().unwrap().base(),
            code::INTEGRITY,
            "{err}"
        );
        // Another ephemeral point (still on the curve) is another seed: refused as well.
        let public = Public::parse_tpm2b(&ek.public).unwrap();
        let made = make_credential_ecc_p256(&public, &name, SECRET32, &[0x5b; 32]).unwrap();
        let mut buf = [0u8; trustpool_core::credential::MAX_BLOB_SIZE];
        let n = made.write_blob(&mut buf).unwrap();
        let mut mixed = blob_head(&any_blob_for(&ek.public, &name, SECRET32));
        mixed.extend_from_slice(&buf[n - 2 - made.encrypted_secret().len()..n]);
        let err = s.activate(&ak, &ek, &mixed).unwrap_err();
        assert!(err.response_code().is_some(), "{err}");
        s.flush(ak.handle).unwrap();
    }
    s.flush(ek.handle).unwrap();
    assert_eq!(loaded_handles(&mut s), 0, "objects or sessions left loaded");
}

/// The magic, version and TPM2B_ID_OBJECT of a blob file (without the encrypted secret).
fn blob_head(blob: &[u8]) -> Vec<u8> {
    let parsed = trustpool_core::credential::CredentialBlob::parse(blob).unwrap();
    let mut v = blob[..8].to_vec();
    v.extend_from_slice(parsed.id_object_bytes);
    v
}

#[test]
fn tpm2_makecredential_blobs_activate_in_trustpool() {
    if !have(&["swtpm", "swtpm_setup", "tpm2_makecredential"]) {
        return;
    }
    let t = Swtpm::start();
    let dir = TempDir::new("makecred");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET32).unwrap();
    let mut s = t.session();
    for template in [EkTemplate::Rsa2048, EkTemplate::EccP256] {
        let ek = s.create_ek(template).unwrap();
        let ak = s
            .create_ak(AkTemplate::EccP256, Hierarchy::Endorsement)
            .unwrap();
        let name = s.name(ak.handle).unwrap();
        let ek_pub = dir.path().join("ek.pub");
        std::fs::write(&ek_pub, &ek.public).unwrap();
        let blob_file = dir.path().join("blob");
        let out = run_tool(
            "tpm2_makecredential",
            &[
                "-T",
                "none",
                "-e",
                p(&ek_pub),
                "-s",
                p(&secret_file),
                "-n",
                &hex::encode(&name),
                "-o",
                p(&blob_file),
            ],
        );
        assert!(
            out.status.success(),
            "tpm2_makecredential ({template:?} EK): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let blob = std::fs::read(&blob_file).unwrap();
        let parsed = trustpool_core::credential::CredentialBlob::parse(&blob).unwrap();
        if template == EkTemplate::EccP256 {
            // TPMS_ECC_POINT of the ephemeral key: two 32-byte coordinates.
            assert_eq!(parsed.encrypted_secret.len(), 68, "{template:?}");
        } else {
            assert_eq!(parsed.encrypted_secret.len(), 256, "{template:?}");
        }
        let got = s.activate(&ak, &ek, &blob).unwrap();
        assert_eq!(got, SECRET32, "{template:?}");
        s.flush(ak.handle).unwrap();
        s.flush(ek.handle).unwrap();
    }
    assert_eq!(loaded_handles(&mut s), 0, "objects or sessions left loaded");
}

#[test]
fn trustpool_blobs_activate_with_tpm2_activatecredential() {
    if !have(&[
        "swtpm",
        "swtpm_setup",
        "tpm2_createek",
        "tpm2_createak",
        "tpm2_startauthsession",
        "tpm2_policysecret",
        "tpm2_activatecredential",
        "tpm2_flushcontext",
    ]) {
        return;
    }
    let t = Swtpm::start();
    for (alg, ak_alg, sig) in [("rsa", "rsa", "rsassa"), ("ecc", "ecc", "ecdsa")] {
        let dir = TempDir::new("activatecred");
        let f = |n: &str| dir.path().join(n);
        let (ek_ctx, ek_pub, ak_ctx, ak_pub, ak_name) = (
            f("ek.ctx"),
            f("ek.pub"),
            f("ak.ctx"),
            f("ak.pub"),
            f("ak.name"),
        );
        tool(
            &t,
            "tpm2_createek",
            &["-G", alg, "-c", p(&ek_ctx), "-u", p(&ek_pub)],
        );
        tool(
            &t,
            "tpm2_createak",
            &[
                "-C",
                p(&ek_ctx),
                "-c",
                p(&ak_ctx),
                "-G",
                ak_alg,
                "-g",
                "sha256",
                "-s",
                sig,
                "-u",
                p(&ak_pub),
                "-n",
                p(&ak_name),
            ],
        );
        // No resource manager: the tools leave their objects loaded.
        tool(&t, "tpm2_flushcontext", &["-t"]);
        let ek = std::fs::read(&ek_pub).unwrap();
        let name = std::fs::read(&ak_name).unwrap();
        assert_eq!(name.len(), 34, "{alg}: AK Name {}", hex::encode(&name));
        let blob = any_blob_for(&ek, &name, SECRET32);
        std::fs::write(f("blob"), &blob).unwrap();
        let session = f("session.ctx");
        tool(
            &t,
            "tpm2_startauthsession",
            &["--policy-session", "-S", p(&session)],
        );
        tool(&t, "tpm2_policysecret", &["-S", p(&session), "-c", "e"]);
        let auth = format!("session:{}", p(&session));
        tool(
            &t,
            "tpm2_activatecredential",
            &[
                "-c",
                p(&ak_ctx),
                "-C",
                p(&ek_ctx),
                "-i",
                p(&f("blob")),
                "-o",
                p(&f("secret.out")),
                "-P",
                &auth,
            ],
        );
        assert_eq!(
            std::fs::read(f("secret.out")).unwrap(),
            SECRET32,
            "{alg} EK"
        );
        let _ = run_tool("tpm2_flushcontext", &["-T", &t.tcti(), p(&session)]);
        tool(&t, "tpm2_flushcontext", &["-t"]);
    }
}
