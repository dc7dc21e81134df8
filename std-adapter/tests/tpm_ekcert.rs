//! EK certificates: `trustpool::ekcert` parses the DER X.509 certificate and checks that it
//! certifies the EK (RSA modulus and exponent, ECC curve and point), on a certificate made
//! here with rcgen and on the ones `swtpm_setup --create-ek-cert` writes to NV, read back with
//! `TpmSession::ek_certificates`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use trustpool::ekcert::{EkCertError, EkCertificate};
use trustpool_core::tpm::{AkTemplate, EkTemplate, Hierarchy};

mod swtpm;
use swtpm::*;

/// The TCG "Template L-2" EK's TPM2B_PUBLIC with the point (x, y).
fn ecc_ek_tpm2b(x: &[u8], y: &[u8]) -> Vec<u8> {
    let t = EkTemplate::EccP256.public();
    let mut v = t[..t.len() - 2 * (2 + 32)].to_vec();
    for c in [x, y] {
        v.extend_from_slice(&(c.len() as u16).to_be_bytes());
        v.extend_from_slice(c);
    }
    let mut out = (v.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&v);
    out
}

fn tpm2b(t: &[u8]) -> Vec<u8> {
    let mut out = (t.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(t);
    out
}

#[test]
fn ek_certificate_key_must_be_the_eks() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "trustpool test EK");
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x02, 0x03]));
    params.not_before = rcgen::date_time_ymd(2020, 1, 2);
    params.not_after = rcgen::date_time_ymd(2040, 3, 4);
    let cert = params.self_signed(&key).unwrap();
    let c = EkCertificate::parse(cert.der()).unwrap();
    assert_eq!(c.subject, "CN=trustpool test EK");
    assert_eq!(c.issuer, "CN=trustpool test EK");
    assert_eq!(c.serial, "010203");
    assert_eq!(c.not_before, "2020-01-02T00:00:00Z");
    assert_eq!(c.not_after, "2040-03-04T00:00:00Z");
    assert_eq!(c.not_before_unix, 1_577_923_200);
    // NV indices are often larger than the certificate: trailing bytes are ignored.
    let mut padded = cert.der().to_vec();
    padded.extend_from_slice(&[0xff; 17]);
    assert_eq!(EkCertificate::parse(&padded).unwrap(), c);

    let raw = key.public_key_raw();
    assert_eq!((raw.len(), raw[0]), (65, 4));
    let (x, y) = (&raw[1..33], &raw[33..]);
    c.check_ek(&ecc_ek_tpm2b(x, y)).unwrap();

    // Another point, another curve, another algorithm, no key at all.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let o = other.public_key_raw();
    let err = c.check_ek(&ecc_ek_tpm2b(&o[1..33], &o[33..])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EK certificate key does not match the EK: ECC point differs"
    );
    let mut y_flipped = y.to_vec();
    y_flipped[31] ^= 1;
    assert!(matches!(
        c.check_ek(&ecc_ek_tpm2b(x, &y_flipped)),
        Err(EkCertError::KeyMismatch(_))
    ));
    let err = c
        .check_ek(&tpm2b(EkTemplate::Rsa2048.public()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "EK certificate key does not match the EK: the certificate has an ECC key, the EK is RSA"
    );
    let err = c.check_ek(&[0, 4, 0, 0x23, 0, 0]).unwrap_err();
    assert!(matches!(err, EkCertError::EkPublic(_)), "{err}");

    // Not a certificate.
    for bad in [&b""[..], b"\x30\x03\x02\x01\x01", &cert.der()[..100]] {
        let err = EkCertificate::parse(bad).unwrap_err();
        assert!(matches!(err, EkCertError::Der(_)), "{err}");
        assert!(err
            .to_string()
            .starts_with("EK certificate is not a DER X.509 certificate: "));
    }
}

#[test]
fn swtpm_ek_certificates_certify_its_eks() {
    if !have(&["swtpm", "swtpm_setup", "swtpm_localca"]) {
        return;
    }
    let Some(t) = Swtpm::start_with_ek_certs() else {
        return;
    };
    let mut s = t.session();
    let certs = s.ek_certificates().unwrap();
    let find = |index: &str| {
        let info = certs
            .iter()
            .find(|c| c.index == index)
            .unwrap_or_else(|| panic!("no EK certificate at {index}: {certs:?}"));
        EkCertificate::parse(&info.der).unwrap()
    };
    let rsa = find("0x01c00002");
    let ecc = find("0x01c00016");
    for c in [&rsa, &ecc] {
        // swtpm_localca without a VM id: subject "CN=unknown" (the TPM is named in the
        // subjectAltName), issued by the local CA's signing key, with no well-defined
        // expiration (RFC 5280 §4.1.2.5).
        assert_eq!(c.subject, "CN=unknown", "{c:?}");
        assert_eq!(c.issuer, "CN=swtpm-localca", "{c:?}");
        assert!(!c.serial.is_empty());
        assert_eq!(c.not_after, "9999-12-31T23:59:59Z");
        assert!(c.not_before_unix < c.not_after_unix, "{c:?}");
    }

    // The RSA certificate is for the TCG default EK (Template L-1), as trustpool creates it.
    let ek_rsa = s.create_ek(EkTemplate::Rsa2048).unwrap();
    rsa.check_ek(&ek_rsa.public).unwrap();
    // swtpm_setup's persistent RSA EK is that key.
    let persisted = s.tpm().read_public(0x8101_0001).unwrap().public.to_vec();
    assert_eq!(hex::encode(&persisted), hex::encode(&ek_rsa.public));
    // The ECC certificate is for swtpm_setup's NIST P-384 EK (persistent 0x81010016).
    let ek_p384 = s.tpm().read_public(0x8101_0016).unwrap().public.to_vec();
    ecc.check_ek(&ek_p384).unwrap();

    // Certificates for other keys are refused.
    let ak = s
        .create_ak(AkTemplate::Rsa2048, Hierarchy::Endorsement)
        .unwrap();
    let err = rsa.check_ek(&ak.public).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EK certificate key does not match the EK: RSA modulus differs (2048 bits in the \
         certificate, 2048 in the EK)"
    );
    let err = ecc.check_ek(&ek_rsa.public).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EK certificate key does not match the EK: the certificate has an ECC key, the EK is RSA"
    );
    let ek_p256 = s.create_ek(EkTemplate::EccP256).unwrap();
    let err = ecc.check_ek(&ek_p256.public).unwrap_err();
    assert_eq!(
        err.to_string(),
        "EK certificate key does not match the EK: ECC curve differs (nist_p384 in the \
         certificate, nist_p256 in the EK)"
    );
    let err = rsa.check_ek(&ek_p384).unwrap_err();
    assert!(matches!(err, EkCertError::KeyMismatch(_)), "{err}");
    for h in [ak.handle, ek_p256.handle, ek_rsa.handle] {
        s.flush(h).unwrap();
    }
}
