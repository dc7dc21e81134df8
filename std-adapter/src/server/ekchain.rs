//! EK certificate chains: an EK certificate must be signed by one of the configured
//! manufacturer CA certificates, directly or through others in the same list (RFC 5280 §6.1
//! path building reduced to name chaining and signatures; EK certificates' validity periods
//! and extensions are not judged here — TPM vendors' certificates are notoriously irregular).

use x509_cert::der::{Decode, Encode};
use x509_cert::Certificate;

/// Longest chain followed.
const MAX_DEPTH: usize = 5;

/// Check that `der` chains to one of `roots` (DER certificates). Error: what is missing.
pub fn verify_chain(der: &[u8], roots: &[Vec<u8>]) -> Result<(), String> {
    let parse = |d: &[u8], what: &str| {
        // Trailing NV padding after the certificate is ignored.
        let mut reader = x509_cert::der::SliceReader::new(d).map_err(|e| format!("{what}: {e}"))?;
        Certificate::decode(&mut reader).map_err(|e| format!("{what}: {e}"))
    };
    let cas: Vec<Certificate> = roots
        .iter()
        .enumerate()
        .map(|(i, d)| parse(d, &format!("EK CA #{i}")))
        .collect::<Result<_, _>>()?;
    let mut cert = parse(der, "EK certificate")?;
    for _ in 0..MAX_DEPTH {
        let issuer = cert.tbs_certificate().issuer().clone();
        let candidates: Vec<&Certificate> = cas
            .iter()
            .filter(|c| *c.tbs_certificate().subject() == issuer)
            .collect();
        if candidates.is_empty() {
            return Err(format!("no configured EK CA is named {issuer}"));
        }
        let signer = candidates
            .into_iter()
            .find(|ca| signed_by(&cert, ca).is_ok())
            .ok_or_else(|| {
                format!(
                    "the signature of {} does not verify with the key of CA {issuer}",
                    cert.tbs_certificate().subject()
                )
            })?;
        // A self-signed CA (a root) ends the chain.
        if signer.tbs_certificate().subject() == signer.tbs_certificate().issuer() {
            return Ok(());
        }
        cert = signer.clone();
    }
    Err(format!("chain longer than {MAX_DEPTH}"))
}

/// Whether `cert`'s signature verifies with `ca`'s key (RSA PKCS#1 v1.5 / PSS with SHA-256 or
/// SHA-384, ECDSA P-256/P-384 with SHA-256/384).
fn signed_by(cert: &Certificate, ca: &Certificate) -> Result<(), String> {
    use ring::signature as s;
    let tbs = cert.tbs_certificate().to_der().map_err(|e| e.to_string())?;
    let sig = cert
        .signature()
        .as_bytes()
        .ok_or_else(|| "signature has unused bits".to_string())?;
    let alg = cert.signature_algorithm().oid.to_string();
    let key = ca
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| "CA key has unused bits".to_string())?;
    let scheme: &dyn s::VerificationAlgorithm = match alg.as_str() {
        "1.2.840.113549.1.1.11" => &s::RSA_PKCS1_2048_8192_SHA256,
        "1.2.840.113549.1.1.12" => &s::RSA_PKCS1_2048_8192_SHA384,
        "1.2.840.113549.1.1.13" => &s::RSA_PKCS1_2048_8192_SHA512,
        "1.2.840.113549.1.1.5" => &s::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        "1.2.840.10045.4.3.2" => {
            if key.len() == 65 {
                &s::ECDSA_P256_SHA256_ASN1
            } else {
                &s::ECDSA_P384_SHA256_ASN1
            }
        }
        "1.2.840.10045.4.3.3" => {
            if key.len() == 65 {
                &s::ECDSA_P256_SHA384_ASN1
            } else {
                &s::ECDSA_P384_SHA384_ASN1
            }
        }
        other => return Err(format!("signature algorithm {other} not supported")),
    };
    s::UnparsedPublicKey::new(scheme, key)
        .verify(&tbs, sig)
        .map_err(|_| "bad signature".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        (cert, rcgen::Issuer::new(p, key))
    }

    #[test]
    fn chains_to_a_root_through_an_intermediate() {
        let (root, root_issuer) = ca("TPM Root");
        let ikey = rcgen::KeyPair::generate().unwrap();
        let mut ip = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ip.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ip.distinguished_name
            .push(rcgen::DnType::CommonName, "TPM Intermediate");
        let inter = ip.signed_by(&ikey, &root_issuer).unwrap();
        let inter_issuer = rcgen::Issuer::new(ip, ikey);
        let ekey = rcgen::KeyPair::generate().unwrap();
        let ep = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let ek = ep.signed_by(&ekey, &inter_issuer).unwrap();
        let roots = vec![root.der().to_vec(), inter.der().to_vec()];
        verify_chain(ek.der(), &roots).unwrap();
        // Without the intermediate: no CA of that name.
        let e = verify_chain(ek.der(), &roots[..1]).unwrap_err();
        assert_eq!(e, "no configured EK CA is named CN=TPM Intermediate");
        // Another root of the same name: the signature does not verify.
        let (fake, _) = ca("TPM Intermediate");
        let e = verify_chain(ek.der(), &[fake.der().to_vec()]).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
    }
}
