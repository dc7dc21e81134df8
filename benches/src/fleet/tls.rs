//! TLS for the fleet: one self-signed server certificate shared by every host (deterministic:
//! same seed, same certificate bytes), client certificates required and chained to the given
//! CA, as the real agent does (`trustpool::agent::serve::tls_config`).

use std::sync::Arc;

use anyhow::{anyhow, Result};
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::host::derive_p256;

/// An rcgen signer over a p256 key: RFC 6979 deterministic ECDSA, so that the certificate
/// does not change between runs.
struct DeterministicSigner {
    public: [u8; 65],
    sk: p256::ecdsa::SigningKey,
}

impl rcgen::PublicKeyData for DeterministicSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for DeterministicSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let digest = ring::digest::digest(&ring::digest::SHA256, msg);
        let sig: p256::ecdsa::Signature = self
            .sk
            .sign_prehash(digest.as_ref())
            .map_err(|_| rcgen::Error::RingUnspecified)?;
        let b = sig.to_bytes();
        Ok(ecdsa_der(&b[..32], &b[32..]))
    }
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn int(v: &[u8]) -> Vec<u8> {
        let v = match v.iter().position(|&b| b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let mut out = vec![0x02];
        if v[0] & 0x80 != 0 {
            out.push(v.len() as u8 + 1);
            out.push(0);
        } else {
            out.push(v.len() as u8);
        }
        out.extend_from_slice(v);
        out
    }
    let (r, s) = (int(r), int(s));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

/// The shared server certificate (PEM) and its PKCS#8 key (DER): ECDSA P-256, self-signed,
/// SAN `localhost` and `IP:127.0.0.1`, EKU serverAuth+clientAuth, valid 2025–2045.
pub fn server_certificate(seed: &str) -> Result<(String, Vec<u8>)> {
    let (pkcs8, public, sk) = derive_p256(seed, "tls", 0)?;
    let signer = DeterministicSigner { public, sk };
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| anyhow!("certificate parameters: {e}"))?;
    params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress(std::net::IpAddr::from([
            127, 0, 0, 1,
        ])));
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "trustpool simulated agent");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "trustpool fleet");
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    params.serial_number = Some(rcgen::SerialNumber::from(
        derive_serial(seed).to_be_bytes().to_vec(),
    ));
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params
        .self_signed(&signer)
        .map_err(|e| anyhow!("signing the fleet's TLS certificate: {e}"))?;
    Ok((cert.pem(), pkcs8))
}

fn derive_serial(seed: &str) -> u64 {
    let d = super::host::derive(seed, "serial", 0, 0);
    // Positive and non-zero.
    (u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]) >> 1) | 1
}

/// A rustls server configuration with the shared certificate; client certificates required
/// and checked against `client_ca_pem` (one or more PEM certificates).
pub fn server_config(
    cert_pem: &str,
    key_pkcs8: &[u8],
    client_ca_pem: &str,
    session_cache: usize,
) -> Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("fleet TLS certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8.to_vec()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| anyhow!("client CA: {e}"))?;
        roots.add(cert).map_err(|e| anyhow!("client CA: {e}"))?;
    }
    if roots.is_empty() {
        return Err(anyhow!("client CA: no certificate in it"));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| anyhow!("client certificate verifier: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("fleet TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(session_cache.max(256));
    Ok(config)
}

/// Accepts exactly one server certificate (as `trustpool::agent::client` does).
#[derive(Debug)]
struct Pinned {
    der: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the pinned fleet certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
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
        cert: &CertificateDer<'_>,
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

/// A client configuration for talking to the fleet: the server certificate pinned byte for
/// byte (no name check), and the client's certificate chain and key (PEM). For load
/// generators that keep connections open (`trustpool::agent::client::AgentClient` opens one
/// per request).
pub fn pinned_client_config(
    server_cert_pem: &str,
    client_chain_pem: &str,
    client_key_pem: &str,
) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let der = CertificateDer::from_pem_slice(server_cert_pem.as_bytes())
        .map_err(|e| anyhow!("server certificate: {e}"))?
        .as_ref()
        .to_vec();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(client_chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("client certificate: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(client_key_pem.as_bytes())
        .map_err(|e| anyhow!("client key: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow!("TLS versions: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { der, provider }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| anyhow!("client certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_is_deterministic_and_loads() {
        let (a, key) = server_certificate("s").unwrap();
        let (b, _) = server_certificate("s").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, server_certificate("t").unwrap().0);
        assert!(a.starts_with("-----BEGIN CERTIFICATE-----"));
        // The key matches the certificate (rustls checks when a CA is given).
        let ca = a.clone();
        server_config(&a, &key, &ca, 0).unwrap();
    }

    #[test]
    fn der_integers() {
        assert_eq!(
            ecdsa_der(&[0, 0x80], &[0, 1]),
            vec![0x30, 7, 2, 2, 0, 0x80, 2, 1, 1]
        );
    }
}
