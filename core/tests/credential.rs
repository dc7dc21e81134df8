#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
#![cfg(all(feature = "credential", feature = "rsa"))]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use trustpool_core::alg::id;
use trustpool_core::credential::{
    kdfa, make_credential_rsa, open, protect, write_blob, CredentialBlob, CredentialError,
    IdObjectRef, SymDef, BLOB_MAGIC, MAX_BLOB_SIZE, MAX_CREDENTIAL_SIZE,
};
use trustpool_core::{HashAlg, Public};

// libtpms / TCG reference implementation KDFa self-test (KdfTestData.h): 160 bits out.
const KDF_KEY: &str = "271fa08bbdc5060ec3dfa928ff9b73123a12da0c";
const KDF_LABEL: &[u8] = b"KDFSELFTESTLABEL";
const KDF_CONTEXT_U: &str = "ce244f395dca7391";
const KDF_CONTEXT_V: &str = "da504031ddf12e83";

fn kdf_vector(alg: HashAlg) -> Vec<u8> {
    let mut out = [0u8; 20];
    kdfa(
        alg,
        &hex::decode(KDF_KEY).unwrap(),
        KDF_LABEL,
        &hex::decode(KDF_CONTEXT_U).unwrap(),
        &hex::decode(KDF_CONTEXT_V).unwrap(),
        &mut out,
    )
    .unwrap();
    out.to_vec()
}

#[test]
fn kdfa_reference_vectors() {
    assert_eq!(
        hex::encode(kdf_vector(HashAlg::Sha256)),
        "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"
    );
    assert_eq!(
        hex::encode(kdf_vector(HashAlg::Sha384)),
        "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"
    );
    assert_eq!(
        hex::encode(kdf_vector(HashAlg::Sha512)),
        "8be2c1b85b78569b9fa759f5857c56d684810fd3"
    );
    #[cfg(feature = "sha1")]
    assert_eq!(
        hex::encode(kdf_vector(HashAlg::Sha1)),
        "55b5a7184aa07423c47dae766c26a2377d7cf851"
    );
}

#[test]
fn kdfa_counter_blocks_and_lengths() {
    // Longer than one block: block i is HMAC over [i]₃₂; the output depends on the length.
    let mut long = [0u8; 80];
    kdfa(HashAlg::Sha256, b"key", b"LABEL", b"u", b"v", &mut long).unwrap();
    let mut short = [0u8; 32];
    kdfa(HashAlg::Sha256, b"key", b"LABEL", b"u", b"v", &mut short).unwrap();
    assert_ne!(long[..32], short[..]);
    assert_ne!(long[..32], long[32..64]);
    assert_eq!(
        kdfa(HashAlg::Sha256, b"k", b"L", b"", b"", &mut []),
        Err(CredentialError::KdfLength { bytes: 0 })
    );
    assert_eq!(
        kdfa(HashAlg::Sm3_256, b"k", b"L", b"", b"", &mut [0u8; 16]),
        Err(CredentialError::UnsupportedHash { alg: id::SM3_256 })
    );
}

fn name_of(byte: u8) -> Vec<u8> {
    let mut n = vec![0x00, 0x0b];
    n.extend_from_slice(&[byte; 32]);
    n
}

#[test]
fn protect_and_open_round_trip() {
    let seed = [7u8; 32];
    let name = name_of(1);
    for len in [0usize, 1, 15, 16, 17, 32] {
        let cred: Vec<u8> = (0..len as u8).collect();
        let id = protect(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &name, &cred).unwrap();
        // u16 size ‖ u16 32 ‖ HMAC ‖ encIdentity (u16 + credential).
        assert_eq!(id.as_bytes().len(), 2 + 2 + 32 + 2 + len);
        let r = IdObjectRef::parse(id.as_bytes()).unwrap();
        assert_eq!(r.integrity_hmac.len(), 32);
        let got = open(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &name, &r).unwrap();
        assert_eq!(got.as_bytes(), &cred[..]);
        // Another AK Name, another seed or a flipped bit fail the integrity check.
        let other = name_of(2);
        assert_eq!(
            open(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &other, &r),
            Err(CredentialError::Integrity)
        );
        assert_eq!(
            open(HashAlg::Sha256, SymDef::AES_128_CFB, &[8u8; 32], &name, &r),
            Err(CredentialError::Integrity)
        );
        let mut bad = id.as_bytes().to_vec();
        *bad.last_mut().unwrap() ^= 1;
        let r = IdObjectRef::parse(&bad).unwrap();
        assert_eq!(
            open(HashAlg::Sha256, SymDef::AES_128_CFB, &seed, &name, &r),
            Err(CredentialError::Integrity)
        );
    }
    let aes256 = SymDef {
        algorithm: id::AES,
        key_bits: 256,
        mode: id::CFB,
    };
    let id = protect(HashAlg::Sha384, aes256, &[1u8; 48], &name, &[2u8; 48]).unwrap();
    let r = IdObjectRef::parse(id.as_bytes()).unwrap();
    let got = open(HashAlg::Sha384, aes256, &[1u8; 48], &name, &r).unwrap();
    assert_eq!(got.as_bytes(), &[2u8; 48]);
}

#[test]
fn protect_rejects_bad_input() {
    let name = name_of(1);
    assert_eq!(
        protect(
            HashAlg::Sha256,
            SymDef::AES_128_CFB,
            &[0; 32],
            &name,
            &[0; 33]
        ),
        Err(CredentialError::CredentialTooLarge { size: 33, max: 32 })
    );
    // A SHA-512 protector takes a credential as large as a TPM2B_DIGEST holds.
    let big = [0x11u8; MAX_CREDENTIAL_SIZE];
    let id = protect(HashAlg::Sha512, SymDef::AES_128_CFB, &[0; 64], &name, &big).unwrap();
    let r = IdObjectRef::parse(id.as_bytes()).unwrap();
    let got = open(HashAlg::Sha512, SymDef::AES_128_CFB, &[0; 64], &name, &r).unwrap();
    assert_eq!(got.as_bytes(), &big[..]);
    for bad in [
        &[][..],
        &[0x00, 0x0b],
        &name[..33],
        &[0x40, 0x00, 0x00, 0x01],
    ] {
        assert_eq!(
            protect(HashAlg::Sha256, SymDef::AES_128_CFB, &[0; 32], bad, b"x"),
            Err(CredentialError::BadName),
            "{bad:02x?}"
        );
    }
    let tdes = SymDef {
        algorithm: id::TDES,
        key_bits: 128,
        mode: id::CFB,
    };
    assert_eq!(
        protect(HashAlg::Sha256, tdes, &[0; 32], &name, b"x"),
        Err(CredentialError::UnsupportedSymmetric {
            alg: id::TDES,
            key_bits: 128
        })
    );
}

#[test]
fn id_object_parser_bounds() {
    // Empty, truncated, trailing, oversized encIdentity.
    assert!(IdObjectRef::parse(&[]).is_err());
    assert!(IdObjectRef::parse(&[0, 4, 0, 0]).is_err());
    assert!(IdObjectRef::parse(&[0, 4, 0, 0, 0, 0, 9]).is_err());
    assert!(IdObjectRef::parse(&[0, 2, 0, 0]).is_err());
    let mut big = vec![0u8, 70, 0, 0];
    big.extend_from_slice(&[0; 68]);
    assert!(IdObjectRef::parse(&big).is_err());
    assert_eq!(
        IdObjectRef::parse(&[0, 4, 0, 0, 0xaa, 0xbb]).unwrap(),
        IdObjectRef {
            integrity_hmac: &[],
            enc_identity: &[0xaa, 0xbb]
        }
    );
}

#[test]
fn blob_file_round_trip() {
    let id = protect(
        HashAlg::Sha256,
        SymDef::AES_128_CFB,
        &[3; 32],
        &name_of(9),
        b"secret",
    )
    .unwrap();
    let enc = [0x5au8; 256];
    let mut buf = [0u8; MAX_BLOB_SIZE];
    let n = write_blob(id.as_bytes(), &enc, &mut buf).unwrap();
    let blob = &buf[..n];
    assert_eq!(&blob[..8], &[0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]);
    let parsed = CredentialBlob::parse(blob).unwrap();
    assert_eq!(parsed.id_object_bytes, id.as_bytes());
    assert_eq!(parsed.encrypted_secret, &enc[..]);
    assert_eq!(parsed.id_object, IdObjectRef::parse(id.as_bytes()).unwrap());
    // Bad magic, bad version, truncation, trailing bytes, small buffer.
    let mut bad = blob.to_vec();
    bad[0] = 0;
    assert!(CredentialBlob::parse(&bad).is_err());
    let mut bad = blob.to_vec();
    bad[7] = 2;
    assert!(CredentialBlob::parse(&bad).is_err());
    for cut in 0..blob.len() {
        assert!(CredentialBlob::parse(&blob[..cut]).is_err(), "{cut}");
    }
    let mut long = blob.to_vec();
    long.push(0);
    assert!(CredentialBlob::parse(&long).is_err());
    assert!(write_blob(id.as_bytes(), &enc, &mut [0u8; 100]).is_err());
    assert_eq!(BLOB_MAGIC, 0xbadc_c0de);
}

// The public area of an RSA-2048 EK from the TCG default template, made by swtpm
// (`tpm2_createek -G rsa -u ek.pub`), and of the AK made under it, are created live below;
// these checks need only a key shape, so they build one.
fn rsa_public(attributes: u32, sym: Option<(u16, u16)>, modulus: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id::RSA.to_be_bytes());
    v.extend_from_slice(&id::SHA256.to_be_bytes());
    v.extend_from_slice(&attributes.to_be_bytes());
    v.extend_from_slice(&[0, 0]); // authPolicy
    match sym {
        Some((alg, bits)) => {
            v.extend_from_slice(&alg.to_be_bytes());
            v.extend_from_slice(&bits.to_be_bytes());
            v.extend_from_slice(&id::CFB.to_be_bytes());
        }
        None => v.extend_from_slice(&id::NULL.to_be_bytes()),
    }
    v.extend_from_slice(&id::NULL.to_be_bytes()); // scheme
    v.extend_from_slice(&((modulus.len() * 8) as u16).to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
    v.extend_from_slice(modulus);
    v
}

/// A 2048-bit odd modulus (not a real key; OAEP only needs the public operation).
fn fake_modulus() -> Vec<u8> {
    let mut m: Vec<u8> = (0..256u32).map(|i| (i * 37 + 11) as u8).collect();
    m[0] |= 0x80;
    m[255] |= 1;
    m
}

const STORAGE: u32 = 0x0003_00b2; // fixedTPM|fixedParent|sensitiveDataOrigin|adminWithPolicy|restricted|decrypt

#[test]
fn make_credential_checks_the_ek() {
    let m = fake_modulus();
    let ek = rsa_public(STORAGE, Some((id::AES, 128)), &m);
    let ek = Public::parse(&ek).unwrap();
    assert_eq!(SymDef::of(&ek).unwrap(), SymDef::AES_128_CFB);
    let name = name_of(4);
    let made = make_credential_rsa(&ek, &name, b"cred", &[1; 32], &[2; 32]).unwrap();
    assert_eq!(made.encrypted_secret.len(), 256);
    // Deterministic given the caller's randomness.
    let again = make_credential_rsa(&ek, &name, b"cred", &[1; 32], &[2; 32]).unwrap();
    assert_eq!(made, again);
    let blob = made.to_blob();
    let parsed = CredentialBlob::parse(&blob).unwrap();
    assert_eq!(parsed.id_object_bytes, made.id_object.as_bytes());
    assert_eq!(parsed.encrypted_secret, &made.encrypted_secret[..]);

    assert_eq!(
        make_credential_rsa(&ek, &name, b"cred", &[1; 16], &[2; 32]),
        Err(CredentialError::RandomnessSize {
            what: "seed",
            size: 16,
            expected: 32
        })
    );
    assert_eq!(
        make_credential_rsa(&ek, &name, b"cred", &[1; 32], &[2; 31]),
        Err(CredentialError::RandomnessSize {
            what: "OAEP randomness",
            size: 31,
            expected: 32
        })
    );
    let signing = rsa_public(0x0005_0072, None, &m);
    let signing = Public::parse(&signing).unwrap();
    assert_eq!(
        make_credential_rsa(&signing, &name, b"cred", &[1; 32], &[2; 32]),
        Err(CredentialError::NotStorageKey)
    );
    let null_sym = rsa_public(STORAGE, None, &m);
    let null_sym = Public::parse(&null_sym).unwrap();
    assert_eq!(
        make_credential_rsa(&null_sym, &name, b"cred", &[1; 32], &[2; 32]),
        Err(CredentialError::UnsupportedSymmetric {
            alg: id::NULL,
            key_bits: 0
        })
    );
}

// ---- swtpm ----------------------------------------------------------------------------------

const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// Run a command to completion within [`STEP_TIMEOUT`].
fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > STEP_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: timed out");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout,
        stderr,
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Swtpm {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two adjacent free ports (server, control).
fn free_ports() -> u16 {
    for _ in 0..50 {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two adjacent free ports");
}

impl Swtpm {
    /// Start a fresh swtpm, or `None` (skip) when swtpm or tpm2-tools are missing outside CI.
    fn start(tag: &str) -> Option<Swtpm> {
        let tools = [
            "swtpm",
            "swtpm_setup",
            "tpm2_createek",
            "tpm2_createak",
            "tpm2_activatecredential",
            "tpm2_makecredential",
            "tpm2_flushcontext",
            "tpm2_startauthsession",
            "tpm2_policysecret",
        ];
        if let Some(missing) = tools.iter().find(|t| !have(t)) {
            if std::env::var_os("CI").is_some() {
                panic!("{missing} not found, and CI is set");
            }
            eprintln!("skipping: {missing} not found");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "trustpool-cred-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        run_ok(
            Command::new("swtpm_setup")
                .arg("--tpm2")
                .arg("--tpmstate")
                .arg(dir.join("state")),
        );
        for _attempt in 0..5 {
            let port = free_ports();
            let child = Command::new("swtpm")
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--tpmstate")
                .arg(format!("dir={}", dir.join("state").display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut tpm = Swtpm {
                child,
                dir: dir.clone(),
                port,
            };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if tpm.child.try_wait().unwrap().is_some() {
                    break; // port taken meanwhile: try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(tpm);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = tpm.child.kill();
            let _ = tpm.child.wait();
            // Keep the state directory for the next attempt.
            tpm.dir = PathBuf::new();
        }
        panic!("swtpm did not start");
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(name);
        c.current_dir(&self.dir).env(
            "TPM2TOOLS_TCTI",
            format!("swtpm:host=127.0.0.1,port={}", self.port),
        );
        c
    }

    /// Without a resource manager the tools leave objects and sessions loaded; swtpm has
    /// only a few slots.
    fn flush(&self) {
        run_ok(self.tool("tpm2_flushcontext").arg("-t"));
        run_ok(self.tool("tpm2_flushcontext").arg("-s"));
    }

    /// `tpm2_activatecredential` as the tpm2-tools manual runs it for an EK (adminWithPolicy,
    /// no userWithAuth): authorize the EK with a PolicySecret(endorsement) session. Returns
    /// the activation command, to be run; loaded objects and sessions are flushed first.
    fn activate(&self, blob: &str, out: &str) -> Command {
        self.flush();
        run_ok(
            self.tool("tpm2_startauthsession")
                .args(["--policy-session", "-S", "session.ctx"]),
        );
        run_ok(
            self.tool("tpm2_policysecret")
                .args(["-S", "session.ctx", "-c", "e"]),
        );
        let mut c = self.tool("tpm2_activatecredential");
        c.args([
            "-c",
            "ak.ctx",
            "-C",
            "ek.ctx",
            "-i",
            blob,
            "-o",
            out,
            "-P",
            "session:session.ctx",
        ]);
        c
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn swtpm_activates_our_credential() {
    let Some(tpm) = Swtpm::start("activate") else {
        return;
    };
    run_ok(
        tpm.tool("tpm2_createek")
            .args(["-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"]),
    );
    run_ok(tpm.tool("tpm2_createak").args([
        "-C", "ek.ctx", "-c", "ak.ctx", "-u", "ak.pub", "-n", "ak.name",
    ]));
    tpm.flush();
    let ek_bytes = read(&tpm.path("ek.pub"));
    let ek = Public::parse_tpm2b(&ek_bytes).unwrap();
    assert_eq!(SymDef::of(&ek).unwrap(), SymDef::AES_128_CFB);
    let ak_name = read(&tpm.path("ak.name"));
    assert_eq!(ak_name.len(), 34);
    // The Name tpm2-tools reports is the one trustpool computes from the AK's public area.
    let ak_pub = read(&tpm.path("ak.pub"));
    let mut computed = [0u8; 66];
    let n = Public::parse_tpm2b(&ak_pub)
        .unwrap()
        .name()
        .unwrap()
        .to_bytes(&mut computed);
    assert_eq!(&computed[..n], &ak_name[..]);

    // Deterministic "randomness" is fine for a test; a verifier must use fresh random bytes.
    let secrets: [&[u8]; 3] = [b"trustpool credential", &[0xa5; 32], &[0x42]];
    for (i, secret) in secrets.iter().enumerate() {
        let seed: Vec<u8> = (0..32u8)
            .map(|b| b.wrapping_mul(7).wrapping_add(i as u8))
            .collect();
        let oaep: Vec<u8> = (0..32u8).map(|b| b ^ 0x5c ^ i as u8).collect();
        let made = make_credential_rsa(&ek, &ak_name, secret, &seed, &oaep).unwrap();
        let blob = format!("blob{i}");
        let out = format!("out{i}.secret");
        std::fs::write(tpm.path(&blob), made.to_blob()).unwrap();
        run_ok(&mut tpm.activate(&blob, &out));
        assert_eq!(read(&tpm.path(&out)), *secret, "secret {i}");
    }

    // A credential made for another Name is refused by the TPM.
    let made = make_credential_rsa(&ek, &name_of(0x33), b"not yours", &[9; 32], &[8; 32]).unwrap();
    std::fs::write(tpm.path("blob-other"), made.to_blob()).unwrap();
    let out = run(&mut tpm.activate("blob-other", "other.secret"));
    assert!(!out.status.success());

    // tpm2_makecredential's blob (random seed) has the structure our parser expects.
    std::fs::write(tpm.path("secret.in"), b"from tpm2-tools").unwrap();
    run_ok(tpm.tool("tpm2_makecredential").args([
        "-T",
        "none",
        "-u",
        "ek.pub",
        "-s",
        "secret.in",
        "-n",
        &hex::encode(&ak_name),
        "-o",
        "blob2",
    ]));
    let theirs = read(&tpm.path("blob2"));
    let parsed = CredentialBlob::parse(&theirs).unwrap();
    assert_eq!(parsed.id_object.integrity_hmac.len(), 32);
    assert_eq!(parsed.id_object.enc_identity.len(), 2 + 15);
    assert_eq!(parsed.encrypted_secret.len(), 256);
    // Same layout as ours for a credential of the same length.
    let ours = make_credential_rsa(&ek, &ak_name, b"from tpm2-tools", &[1; 32], &[2; 32])
        .unwrap()
        .to_blob();
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(ours[..10], theirs[..10]);
    // And the TPM opens it too, which checks the tool setup itself.
    run_ok(&mut tpm.activate("blob2", "out2.secret"));
    assert_eq!(read(&tpm.path("out2.secret")), b"from tpm2-tools");
}
