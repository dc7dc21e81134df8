//! Enrollment by credential activation in the core: the TCG default EK templates, and the
//! bytes of TPM2_StartAuthSession, TPM2_PolicySecret and TPM2_ActivateCredential, their
//! response decoding (two response sessions for ActivateCredential), and the driver's EK
//! policy session, flushed when the policy fails. Malformed responses are errors, not panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::VecDeque;

use sha2::{Digest as _, Sha256};
use trustpool_core::public::{ObjectAttributes, Public, PublicKey, PublicParams};
use trustpool_core::tpm::rc::code;
use trustpool_core::tpm::{
    cc, command, response, rh, EkTemplate, Error, SessionType, Tpm, Transport, TransportError,
    EK_ATTRIBUTES, EK_POLICY_SECRET_ENDORSEMENT,
};
use trustpool_core::HashAlg;

fn encode(
    f: impl FnOnce(&mut [u8]) -> Result<usize, trustpool_core::codec::BufferTooSmall>,
) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = f(&mut buf).unwrap();
    buf[..n].to_vec()
}

fn rsp(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = tag.to_be_bytes().to_vec();
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// A response with `sessions` response sessions (a policy session's carries a nonce).
fn ok_sessions(handle: Option<u32>, params: &[u8], sessions: usize) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(h) = handle {
        b.extend_from_slice(&h.to_be_bytes());
    }
    b.extend_from_slice(&(params.len() as u32).to_be_bytes());
    b.extend_from_slice(params);
    for i in 0..sessions {
        if i == 0 {
            b.extend_from_slice(&[0, 0, 1, 0, 0]);
        } else {
            b.extend_from_slice(&[0, 0x20]);
            b.extend_from_slice(&[0xee; 32]);
            b.extend_from_slice(&[0, 0, 0]);
        }
    }
    rsp(0x8002, 0, &b)
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A TPM that answers from a script and records what it was sent.
#[derive(Default)]
struct Script {
    replies: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
}

impl Transport for Script {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        self.sent.push(cmd.to_vec());
        let r = self.replies.pop_front().ok_or(TransportError::Closed)?;
        rsp[..r.len()].copy_from_slice(&r);
        Ok(r.len())
    }
}

fn scripted(replies: Vec<Vec<u8>>) -> Tpm<Script, Vec<u8>> {
    Tpm::new(
        Script {
            replies: replies.into(),
            sent: Vec::new(),
        },
        vec![0u8; 4096],
    )
}

fn cmd_code(cmd: &[u8]) -> u32 {
    u32::from_be_bytes(cmd[6..10].try_into().unwrap())
}

// --- EK templates --------------------------------------------------------------------------

#[test]
fn ek_policy_is_policy_secret_of_the_endorsement_hierarchy() {
    // TPM2_PolicySecret: policyDigest = H(H(0…0 ‖ TPM_CC_PolicySecret ‖ Name(TPM_RH_ENDORSEMENT))
    // ‖ policyRef), the Name of a permanent handle being the handle (Part 3 §23.4).
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(cc::POLICY_SECRET.to_be_bytes());
    h.update(rh::ENDORSEMENT.to_be_bytes());
    let d = Sha256::digest(h.finalize());
    assert_eq!(d.as_slice(), EK_POLICY_SECRET_ENDORSEMENT);
    assert_eq!(
        hex::encode(EK_POLICY_SECRET_ENDORSEMENT),
        "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
    );
}

#[test]
fn ek_templates_are_the_tcg_defaults() {
    for t in [EkTemplate::Rsa2048, EkTemplate::EccP256] {
        let p = Public::parse(t.public()).unwrap();
        assert_eq!(p.name_alg, HashAlg::Sha256.id(), "{t:?}");
        assert_eq!(p.attributes.0, EK_ATTRIBUTES, "{t:?}");
        let a = ObjectAttributes(EK_ATTRIBUTES);
        for bit in [
            1 << 1, // fixedTPM
            1 << 4, // fixedParent
            1 << 5, // sensitiveDataOrigin
            ObjectAttributes::ADMIN_WITH_POLICY,
            ObjectAttributes::RESTRICTED,
            ObjectAttributes::DECRYPT,
        ] {
            assert!(a.has(bit));
        }
        assert_eq!(EK_ATTRIBUTES.count_ones(), 6);
        assert_eq!(p.auth_policy, EK_POLICY_SECRET_ENDORSEMENT);
        let PublicParams::Asymmetric {
            key,
            scheme,
            scheme_id,
            symmetric,
        } = p.params
        else {
            panic!("{t:?}: not asymmetric");
        };
        assert_eq!(symmetric, 0x0006, "{t:?}: AES");
        assert_eq!((scheme, scheme_id), (None, 0x0010), "{t:?}: scheme NULL");
        match (t, key) {
            (EkTemplate::Rsa2048, PublicKey::Rsa { modulus, exponent }) => {
                assert_eq!(modulus, &[0u8; 256][..]);
                assert_eq!(exponent, 65537);
            }
            (EkTemplate::EccP256, PublicKey::Ecc { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    // Byte for byte: header, AES-128-CFB, then the type-specific tail.
    let rsa = EkTemplate::Rsa2048.public();
    assert_eq!(rsa.len(), 314);
    assert_eq!(hex::encode(&rsa[..10]), "0001000b000300b20020");
    assert_eq!(
        hex::encode(&rsa[42..58]),
        "00060080004300100800000000000100"
    );
    assert!(rsa[58..].iter().all(|b| *b == 0));
    let ecc = EkTemplate::EccP256.public();
    assert_eq!(ecc.len(), 122);
    assert_eq!(hex::encode(&ecc[..10]), "0023000b000300b20020");
    assert_eq!(hex::encode(&ecc[42..56]), "0006008000430010000300100020");
    assert!(ecc[56..88].iter().all(|b| *b == 0));
    assert_eq!(hex::encode(&ecc[88..90]), "0020");
    assert!(ecc[90..].iter().all(|b| *b == 0));
}

// --- command bytes -------------------------------------------------------------------------

#[test]
fn start_auth_session_bytes() {
    assert_eq!(
        hex::encode(encode(|b| command::start_auth_session(
            b,
            SessionType::Policy,
            &[0x11; 16],
            HashAlg::Sha256
        ))),
        concat!(
            "8001",
            "0000002b",
            "00000176",
            "40000007", // tpmKey: TPM_RH_NULL
            "40000007", // bind: TPM_RH_NULL
            "0010",
            "11111111111111111111111111111111", // nonceCaller
            "0000",                             // encryptedSalt
            "01",                               // TPM_SE_POLICY
            "0010",                             // symmetric: TPM_ALG_NULL
            "000b"                              // authHash: SHA-256
        )
    );
    let trial = encode(|b| command::start_auth_session(b, SessionType::Trial, &[], HashAlg::Sha1));
    assert_eq!(hex::encode(&trial[18..]), "000000000300100004");
}

#[test]
fn policy_secret_bytes() {
    assert_eq!(
        hex::encode(encode(|b| command::policy_secret(
            b,
            rh::ENDORSEMENT,
            0x0300_0000
        ))),
        concat!(
            "8002", "00000029", "00000151", "4000000b", // authHandle: TPM_RH_ENDORSEMENT
            "03000000", // policySession
            "00000009", // authorizationSize
            "40000009", // TPM_RS_PW
            "0000", "01", "0000", "0000",     // nonceTPM
            "0000",     // cpHashA
            "0000",     // policyRef
            "00000000"  // expiration
        )
    );
}

#[test]
fn activate_credential_bytes() {
    assert_eq!(
        hex::encode(encode(|b| command::activate_credential(
            b,
            0x8000_0001,
            0x8000_0000,
            0x0300_0000,
            &[0xaa, 0xbb, 0xcc],
            &[0xdd, 0xee]
        ))),
        concat!(
            "8002",
            "00000031",
            "00000147",
            "80000001", // activateHandle: the AK
            "80000000", // keyHandle: the EK
            "00000012", // authorizationSize: two sessions
            "40000009", // TPM_RS_PW for the AK
            "0000",
            "01",
            "0000",
            "03000000", // the policy session for the EK
            "0000",
            "00", // continueSession clear
            "0000",
            "0003aabbcc", // credentialBlob
            "0002ddee"    // secret
        )
    );
    let mut small = [0u8; 40];
    assert!(command::activate_credential(&mut small, 1, 2, 3, &[0; 32], &[0; 256]).is_err());
}

// --- responses -----------------------------------------------------------------------------

#[test]
fn responses_decode() {
    let r = rsp(
        0x8001,
        0,
        &[&0x0300_0000u32.to_be_bytes()[..], &tpm2b(&[0x42; 32])].concat(),
    );
    let s = response::start_auth_session(&r).unwrap();
    assert_eq!(s.handle, 0x0300_0000);
    assert_eq!(s.nonce_tpm, &[0x42; 32][..]);

    // Empty timeout, NULL ticket (TPM_ST_AUTH_SECRET, TPM_RH_NULL, empty digest).
    let r = ok_sessions(None, &hex::decode("00008023400000070000").unwrap(), 1);
    let p = response::policy_secret(&r).unwrap();
    assert!(p.timeout.is_empty());
    assert_eq!((p.ticket_tag, p.ticket_hierarchy), (0x8023, rh::NULL));
    assert!(p.ticket_digest.is_empty());

    let r = ok_sessions(None, &tpm2b(b"the secret"), 2);
    assert_eq!(response::activate_credential(&r).unwrap(), b"the secret");
    // One response session where two are due: the leftover is an error, not a misread.
    let one = ok_sessions(None, &tpm2b(b"the secret"), 1);
    assert!(matches!(
        response::activate_credential(&one),
        Err(Error::Response(_))
    ));
    // Three are too many.
    let three = ok_sessions(None, &tpm2b(b"the secret"), 3);
    assert!(matches!(
        response::activate_credential(&three),
        Err(Error::Response(_))
    ));
    // TPM_RC_INTEGRITY on parameter 1 (the credential blob).
    let integrity = 0x09f | 0x040 | 0x100;
    let e = response::activate_credential(&rsp(0x8001, integrity, &[])).unwrap_err();
    assert_eq!(e.response_code().unwrap().base(), code::INTEGRITY);
    // Every truncation of a good response is an error.
    for good in [
        r.clone(),
        rsp(
            0x8001,
            0,
            &[&0x0300_0000u32.to_be_bytes()[..], &tpm2b(&[1; 16])].concat(),
        ),
    ] {
        for n in 0..good.len() {
            let mut cut = good[..n].to_vec();
            if n >= 6 {
                cut[2..6].copy_from_slice(&(n as u32).to_be_bytes());
            }
            assert!(response::activate_credential(&cut).is_err());
            assert!(response::start_auth_session(&cut).is_err());
        }
    }
}

// --- driver --------------------------------------------------------------------------------

#[test]
fn driver_runs_the_ek_policy_and_activation() {
    let mut t = scripted(vec![
        rsp(
            0x8001,
            0,
            &[&0x0300_0001u32.to_be_bytes()[..], &tpm2b(&[9; 32])].concat(),
        ),
        ok_sessions(None, &hex::decode("00008023400000070000").unwrap(), 1),
        ok_sessions(None, &tpm2b(&[0x5e; 32]), 2),
    ]);
    let session = t.ek_policy_session(&[1; 32]).unwrap();
    assert_eq!(session, 0x0300_0001);
    let secret = t
        .activate_credential(0x8000_0001, 0x8000_0000, session, &[1, 2], &[3])
        .unwrap()
        .to_vec();
    assert_eq!(secret, [0x5e; 32]);
    let (script, _) = t.into_inner();
    let codes: Vec<u32> = script.sent.iter().map(|c| cmd_code(c)).collect();
    assert_eq!(
        codes,
        [
            cc::START_AUTH_SESSION,
            cc::POLICY_SECRET,
            cc::ACTIVATE_CREDENTIAL
        ]
    );
    // PolicySecret names the session the TPM returned.
    assert_eq!(&script.sent[1][14..18], &0x0300_0001u32.to_be_bytes());
}

#[test]
fn a_failed_policy_flushes_its_session() {
    let bad_auth = 0x0000_098e; // TPM_RC_AUTH_FAIL, session 1
    let mut t = scripted(vec![
        rsp(
            0x8001,
            0,
            &[&0x0300_0002u32.to_be_bytes()[..], &tpm2b(&[9; 32])].concat(),
        ),
        rsp(0x8001, bad_auth, &[]),
        rsp(0x8001, 0, &[]),
    ]);
    let e = t.ek_policy_session(&[1; 32]).unwrap_err();
    assert!(matches!(e, Error::Tpm(_)));
    let (script, _) = t.into_inner();
    let last = script.sent.last().unwrap();
    assert_eq!(cmd_code(last), cc::FLUSH_CONTEXT);
    assert_eq!(&last[10..14], &0x0300_0002u32.to_be_bytes());
}
