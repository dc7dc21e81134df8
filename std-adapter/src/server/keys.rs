//! The key provider: named AES-256 data keys kept in the database sealed under the server's
//! master key (envelope encryption, AES-256-GCM with the key's name as associated data), and
//! released only to a trusted host, wrapped to a key inside that host's TPM.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

/// Where the master key comes from when no file is configured.
pub const MASTER_KEY_ENV: &str = "TRUSTPOOL_MASTER_KEY";

/// The master key: 32 bytes, from a file (raw, hex or base64) or `TRUSTPOOL_MASTER_KEY`.
pub struct MasterKey {
    key: LessSafeKey,
}

impl MasterKey {
    /// The configured master key: the file when given, else the environment. `Ok(None)` when
    /// neither is set (the key service is then off; the rest of the server runs).
    pub fn load(file: Option<&Path>) -> Result<Option<MasterKey>> {
        let material = match file {
            Some(p) => Some(
                std::fs::read(p).with_context(|| format!("reading master key {}", p.display()))?,
            ),
            None => std::env::var(MASTER_KEY_ENV).ok().map(String::into_bytes),
        };
        let Some(m) = material else { return Ok(None) };
        Ok(Some(MasterKey::from_material(&m)?))
    }

    /// 32 raw bytes, or 64 hex digits, or base64 of 32 bytes (surrounding whitespace ignored).
    pub fn from_material(m: &[u8]) -> Result<MasterKey> {
        let raw = if m.len() == 32 {
            m.to_vec()
        } else {
            let text = std::str::from_utf8(m)
                .map_err(|_| anyhow!("master key: not 32 raw bytes, hex or base64"))?
                .trim();
            if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(text)?
            } else {
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|_| anyhow!("master key: not 32 raw bytes, 64 hex digits or base64"))?
            }
        };
        if raw.len() != 32 {
            bail!("master key must be 32 bytes (AES-256), not {}", raw.len());
        }
        let key =
            UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| anyhow!("master key rejected"))?;
        Ok(MasterKey {
            key: LessSafeKey::new(key),
        })
    }

    /// Seal `data` for the key `name`: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, name: &str, data: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| anyhow!("OS RNG: {e}"))?;
        let mut out = data.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut out,
            )
            .map_err(|_| anyhow!("sealing failed"))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// Open what [`seal`](Self::seal) made for `name`; fails for another name, another master
    /// key, or any changed byte.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed key too short");
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| anyhow!("bad nonce"))?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
            .map_err(|_| anyhow!("key {name}: does not open with this master key"))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open() {
        let m = MasterKey::from_material(&[7u8; 32]).unwrap();
        let s = m
            .seal("disk-1", b"0123456789abcdef0123456789abcdef")
            .unwrap();
        assert_eq!(s.len(), 12 + 32 + 16);
        assert_eq!(
            m.open("disk-1", &s).unwrap(),
            b"0123456789abcdef0123456789abcdef"
        );
        assert!(m.open("disk-2", &s).is_err());
        let mut t = s.clone();
        t[20] ^= 1;
        assert!(m.open("disk-1", &t).is_err());
        let other = MasterKey::from_material(hex::encode([8u8; 32]).as_bytes()).unwrap();
        assert!(other.open("disk-1", &s).is_err());
        assert!(MasterKey::from_material(b"short").is_err());
    }
}

/// Client certificates on the server's HTTPS port: optional (Nova and oVirt present none);
/// when one is presented, the handshake proves possession of its key, and the key service
/// then accepts it only if it is byte for byte the certificate an agent registered.
#[derive(Debug)]
pub struct RegisteredAgentCert {
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
}

impl RegisteredAgentCert {
    pub fn new() -> RegisteredAgentCert {
        RegisteredAgentCert {
            provider: std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl Default for RegisteredAgentCert {
    fn default() -> Self {
        Self::new()
    }
}

impl rustls::server::danger::ClientCertVerifier for RegisteredAgentCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &pki_types::CertificateDer<'_>,
        _intermediates: &[pki_types::CertificateDer<'_>],
        _now: pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // Identity is decided per request against the registered certificates.
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A refusal: HTTP code and reason.
pub type Refusal = (u16, String);

/// Check a certification and wrap `data_key` to the certified key: the TPM2_Certify was
/// signed by `aik_tpm` (the host's enrolled AK) over `nonce`, it certifies exactly
/// `key_public`, a binding key (fixedTPM, fixedParent, decrypt, not sign); the data key is
/// then RSA-OAEP(SHA-256) encrypted to it.
pub fn check_and_wrap(
    aik_tpm: &[u8],
    nonce: &str,
    key_public: &[u8],
    attest: &[u8],
    signature: &[u8],
    data_key: &[u8],
) -> Result<Vec<u8>, Refusal> {
    use trustpool_core::public::Public;
    let ak_pub = Public::parse_tpm2b(aik_tpm).map_err(|e| (500, format!("enrolled AK: {e}")))?;
    let ak = trustpool_core::AttestationKey::from_public(ak_pub)
        .map_err(|e| (500, format!("enrolled AK: {e}")))?;
    let key = Public::parse_tpm2b(key_public)
        .map_err(|e| (400, format!("key_public is not a TPM2B_PUBLIC: {e}")))?;
    trustpool_core::certify::verify_certification(
        &crate::Ring,
        attest,
        signature,
        &ak,
        nonce.as_bytes(),
        &key,
    )
    .map_err(|e| (403, format!("certification refused: {e}")))?;
    let mut seed = [0u8; trustpool_core::certify::OAEP_SEED_SIZE];
    getrandom::fill(&mut seed).map_err(|e| (500, format!("OS RNG: {e}")))?;
    trustpool_core::certify::wrap_rsa_oaep(&key, data_key, &seed)
        .map_err(|e| (403, format!("cannot wrap to that key: {e}")))
}
