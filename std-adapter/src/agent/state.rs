//! What the agent keeps between runs, in its state directory: its UUID, its TLS key and
//! self-signed certificate (sent to the registrar as `mtls_cert`), and its RSA transport key
//! (Keylime's "NK": the verifier and tenant encrypt key halves to it, and its PEM is bound to
//! every quote through PCR 16). Each is made once and reused, so that restarts keep them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::PrivateKey as RsaPrivateKey;

/// The agent's persistent identity.
pub struct AgentState {
    pub uuid: String,
    /// TLS certificate chain and key, PEM.
    pub tls_cert_pem: String,
    pub tls_key_pem: String,
    pub transport_key: RsaPrivateKey,
    /// PEM (`PUBLIC KEY`, SubjectPublicKeyInfo) of the transport key: the `pubkey` answered
    /// and the bytes hashed into PCR 16.
    pub transport_pub_pem: String,
}

impl AgentState {
    /// Load or make the state in `dir`. `uuid` (from the configuration) wins over the stored
    /// one; `tls` gives certificate and key files to use instead of the self-signed pair;
    /// `san_ip` goes into a new certificate's subject alternative names.
    pub fn load_or_create(
        dir: &Path,
        uuid: Option<&str>,
        tls: Option<(&Path, &Path)>,
        san_ip: &str,
    ) -> Result<AgentState> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let uuid = match uuid {
            Some(u) => {
                let parsed = uuid::Uuid::parse_str(u)
                    .map_err(|e| anyhow!("configured uuid '{u}' is not a UUID: {e}"))?;
                parsed.hyphenated().to_string()
            }
            None => {
                let path = dir.join("uuid");
                match fs::read_to_string(&path) {
                    Ok(s) => {
                        let s = s.trim();
                        uuid::Uuid::parse_str(s)
                            .map_err(|e| anyhow!("{}: not a UUID: {e}", path.display()))?;
                        s.to_string()
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let u = uuid::Uuid::new_v4().hyphenated().to_string();
                        write_private(&path, format!("{u}\n").as_bytes())?;
                        u
                    }
                    Err(e) => return Err(anyhow!("reading {}: {e}", path.display())),
                }
            }
        };

        let (tls_cert_pem, tls_key_pem) = match tls {
            Some((cert, key)) => (
                fs::read_to_string(cert)
                    .with_context(|| format!("reading TLS certificate {}", cert.display()))?,
                fs::read_to_string(key)
                    .with_context(|| format!("reading TLS key {}", key.display()))?,
            ),
            None => {
                let cert_path = dir.join("tls-cert.pem");
                let key_path = dir.join("tls-key.pem");
                if cert_path.is_file() && key_path.is_file() {
                    (
                        fs::read_to_string(&cert_path)?,
                        fs::read_to_string(&key_path)?,
                    )
                } else {
                    let (cert, key) = self_signed(&uuid, san_ip)?;
                    write_private(&key_path, key.as_bytes())?;
                    write_private(&cert_path, cert.as_bytes())?;
                    (cert, key)
                }
            }
        };

        let nk_path = dir.join("transport-key.pem");
        let transport_key = match fs::read_to_string(&nk_path) {
            Ok(pem) => RsaPrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| anyhow!("{}: not a PKCS#8 RSA key: {e}", nk_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = RsaPrivateKey::new(&mut getrandom::SysRng, 2048)
                    .map_err(|e| anyhow!("generating the RSA transport key: {e}"))?;
                let pem = key
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| anyhow!("encoding the transport key: {e}"))?;
                write_private(&nk_path, pem.as_bytes())?;
                key
            }
            Err(e) => return Err(anyhow!("reading {}: {e}", nk_path.display())),
        };
        let transport_pub_pem = transport_key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| anyhow!("encoding the transport public key: {e}"))?;
        Ok(AgentState {
            uuid,
            tls_cert_pem,
            tls_key_pem,
            transport_key,
            transport_pub_pem,
        })
    }
}

/// A self-signed ECDSA P-256 certificate for `uuid` (its common name), valid for ten years,
/// with `san_ip` and `localhost` as subject alternative names. Verifiers pin it (Keylime uses
/// the registered certificate as the trust anchor and checks no host name).
pub fn self_signed(uuid: &str, san_ip: &str) -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate().map_err(|e| anyhow!("generating the TLS key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| anyhow!("certificate parameters: {e}"))?;
    if let Ok(ip) = san_ip.parse::<std::net::IpAddr>() {
        params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, uuid.to_string());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "trustpool agent");
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 24 * 3600)).into();
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(|e| anyhow!("signing the TLS certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Write a file readable by its owner only.
pub fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("tp-agent-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let a = AgentState::load_or_create(&dir, None, None, "127.0.0.1").unwrap();
        let b = AgentState::load_or_create(&dir, None, None, "127.0.0.1").unwrap();
        assert_eq!(a.uuid, b.uuid);
        assert_eq!(a.tls_cert_pem, b.tls_cert_pem);
        assert_eq!(a.transport_pub_pem, b.transport_pub_pem);
        assert!(a
            .transport_pub_pem
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let c = AgentState::load_or_create(
            &dir,
            Some("D432FBB3-D2F1-4A97-9EF7-75BD81C00000"),
            None,
            "127.0.0.1",
        )
        .unwrap();
        assert_eq!(c.uuid, "d432fbb3-d2f1-4a97-9ef7-75bd81c00000");
        assert!(AgentState::load_or_create(&dir, Some("nope"), None, "")
            .err()
            .unwrap()
            .to_string()
            .contains("is not a UUID"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
