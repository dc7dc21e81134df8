//! The TPM command layer in the core: command bytes, response decoding, response codes, and
//! the driver against a simulated TPM (PCR_Read rounds, retries, NV chunks, pagination) —
//! and bad responses (truncated, oversized, wrong tags, error codes): errors, never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::VecDeque;

use proptest::prelude::*;
use trustpool_core::codec::ErrorKind;
use trustpool_core::public::{Public, SigScheme};
use trustpool_core::tpm::rc::{code, Subject};
use trustpool_core::tpm::{
    cap, cc, command, pt, response, AkTemplate, Error, Hierarchy, ResponseCode, StartupType, Tpm,
    Transport, TransportError, MAX_RETRIES,
};
use trustpool_core::{AttestationKey, Digest, HashAlg, PcrSet, PcrValues, Quote};

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../test-vectors/swtpm/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(b[at..at + 2].try_into().unwrap())
}

/// A response: header, then `body`.
fn rsp(tag: u16, rc: u32, body: &[u8]) -> Vec<u8> {
    let mut r = tag.to_be_bytes().to_vec();
    r.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    r.extend_from_slice(&rc.to_be_bytes());
    r.extend_from_slice(body);
    r
}

fn ok(body: &[u8]) -> Vec<u8> {
    rsp(0x8001, 0, body)
}

/// A response to a command with one session: handle, parameterSize, params, auth.
fn ok_sessions(handle: Option<u32>, params: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    if let Some(h) = handle {
        b.extend_from_slice(&h.to_be_bytes());
    }
    b.extend_from_slice(&(params.len() as u32).to_be_bytes());
    b.extend_from_slice(params);
    b.extend_from_slice(&[0, 0, 1, 0, 0]);
    rsp(0x8002, 0, &b)
}

fn error(rc: u32) -> Vec<u8> {
    rsp(0x8001, rc, &[])
}

fn tpm2b(data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

/// A simulated TPM: two PCR banks of 24 PCRs, at most 8 values per PCR_Read, paged
/// properties, short GetRandom answers, NV indices with a chunk limit, and recorded quotes.
struct Sim {
    banks: Vec<(HashAlg, Vec<Digest>)>,
    counter: u32,
    max_per_read: usize,
    pcr_reads: usize,
    /// Extend PCR 16 (all banks) after this many PCR_Read rounds.
    extend_after_reads: Option<usize>,
    props: Vec<(u32, u32)>,
    props_page: usize,
    random_max: usize,
    nv: Vec<(u32, Vec<u8>)>,
    nv_max: usize,
    script: VecDeque<Vec<u8>>,
    sent: Vec<Vec<u8>>,
    started: bool,
}

impl Sim {
    fn new() -> Sim {
        let mk = |alg: HashAlg| {
            let mut v = Vec::new();
            for i in 0..24u8 {
                let mut d = Digest::zero(alg);
                d.extend(&[i]);
                v.push(d);
            }
            (alg, v)
        };
        let mut props = vec![
            (pt::FAMILY_INDICATOR, u32::from_be_bytes(*b"2.0\0")),
            (pt::LEVEL, 0),
            (pt::REVISION, 164),
            (pt::MANUFACTURER, u32::from_be_bytes(*b"IFX\0")),
            (pt::VENDOR_STRING_1, u32::from_be_bytes(*b"SLB9")),
            (pt::VENDOR_STRING_2, u32::from_be_bytes(*b"670\0")),
            (pt::VENDOR_STRING_3, 0),
            (pt::VENDOR_STRING_4, 0),
            (pt::FIRMWARE_VERSION_1, 0x0007_0055),
            (pt::FIRMWARE_VERSION_2, 0x0011_0000),
            (pt::NV_BUFFER_MAX, 768),
        ];
        props.push((0x200, 7)); // a variable property: past the fixed group
        Sim {
            banks: vec![mk(HashAlg::Sha1), mk(HashAlg::Sha256)],
            counter: 17,
            max_per_read: 8,
            pcr_reads: 0,
            extend_after_reads: None,
            props,
            props_page: 4,
            random_max: 16,
            nv: vec![(0x01c0_0002, (0..2000u32).map(|i| i as u8).collect())],
            nv_max: 768,
            script: VecDeque::new(),
            sent: Vec::new(),
            started: true,
        }
    }

    fn selection_bytes(&self) -> Vec<u8> {
        let mut b = (self.banks.len() as u32).to_be_bytes().to_vec();
        for (alg, _) in &self.banks {
            b.extend_from_slice(&alg.id().to_be_bytes());
            b.extend_from_slice(&[3, 0xff, 0xff, 0xff]);
        }
        b
    }

    fn handle(&mut self, cmd: &[u8]) -> Vec<u8> {
        assert_eq!(be32(cmd, 2) as usize, cmd.len(), "commandSize");
        let code = be32(cmd, 6);
        let p = &cmd[10..];
        match code {
            cc::STARTUP => {
                if self.started {
                    error(code::INITIALIZE)
                } else {
                    self.started = true;
                    ok(&[])
                }
            }
            cc::GET_CAPABILITY => {
                let (capability, prop, count) = (be32(p, 0), be32(p, 4), be32(p, 8));
                let mut body = Vec::new();
                match capability {
                    cap::PCRS => {
                        body.push(0);
                        body.extend_from_slice(&cap::PCRS.to_be_bytes());
                        body.extend_from_slice(&self.selection_bytes());
                    }
                    cap::TPM_PROPERTIES => {
                        let list: Vec<_> = self.props.iter().filter(|(p, _)| *p >= prop).collect();
                        let n = list.len().min(count as usize).min(self.props_page);
                        body.push(u8::from(list.len() > n));
                        body.extend_from_slice(&cap::TPM_PROPERTIES.to_be_bytes());
                        body.extend_from_slice(&(n as u32).to_be_bytes());
                        for (p, v) in &list[..n] {
                            body.extend_from_slice(&p.to_be_bytes());
                            body.extend_from_slice(&v.to_be_bytes());
                        }
                    }
                    _ => return error(0x2c4), // TPM_RC_VALUE, parameter 2
                }
                ok(&body)
            }
            cc::GET_RANDOM => {
                let n = (be16(p, 0) as usize).min(self.random_max);
                let bytes: Vec<u8> = (0..n).map(|i| (i as u8) ^ 0x5a).collect();
                ok(&tpm2b(&bytes))
            }
            cc::PCR_READ => {
                self.pcr_reads += 1;
                if self.extend_after_reads == Some(self.pcr_reads) {
                    self.counter += 1;
                    for (_, v) in &mut self.banks {
                        v[16].extend(b"late");
                    }
                }
                let count = be32(p, 0) as usize;
                let mut at = 4;
                let mut out_sel = (count as u32).to_be_bytes().to_vec();
                let mut digests = Vec::new();
                let mut taken = 0;
                for _ in 0..count {
                    let alg = be16(p, at);
                    let size = p[at + 2] as usize;
                    let mut select = p[at + 3..at + 3 + size].to_vec();
                    at += 3 + size;
                    let bank = self.banks.iter().find(|(a, _)| a.id() == alg);
                    for i in 0..size * 8 {
                        let bit = 1u8 << (i % 8);
                        if select[i / 8] & bit == 0 {
                            continue;
                        }
                        match bank {
                            Some((_, values)) if taken < self.max_per_read && i < 24 => {
                                digests.extend_from_slice(&tpm2b(values[i].as_bytes()));
                                taken += 1;
                            }
                            _ => select[i / 8] &= !bit,
                        }
                    }
                    out_sel.extend_from_slice(&alg.to_be_bytes());
                    out_sel.push(size as u8);
                    out_sel.extend_from_slice(&select);
                }
                let mut body = self.counter.to_be_bytes().to_vec();
                body.extend_from_slice(&out_sel);
                body.extend_from_slice(&(taken as u32).to_be_bytes());
                body.extend_from_slice(&digests);
                ok(&body)
            }
            cc::PCR_EXTEND => {
                let pcr = be32(p, 0) as usize;
                let auth = be32(p, 4) as usize;
                let mut at = 8 + auth;
                let n = be32(p, at);
                at += 4;
                for _ in 0..n {
                    let alg = HashAlg::from_id(be16(p, at)).unwrap();
                    let d = &p[at + 2..at + 2 + alg.size()];
                    at += 2 + alg.size();
                    if let Some((_, v)) = self.banks.iter_mut().find(|(a, _)| *a == alg) {
                        v[pcr].extend(d);
                    }
                }
                self.counter += 1;
                ok_sessions(None, &[])
            }
            cc::CREATE_PRIMARY => {
                let mut params = vector("ecc-p256.pub");
                params.extend_from_slice(&tpm2b(&[]));
                params.extend_from_slice(&tpm2b(&[0xaa; 32]));
                params.extend_from_slice(&0x8021u16.to_be_bytes());
                params.extend_from_slice(&be32(p, 0).to_be_bytes());
                params.extend_from_slice(&tpm2b(&[0xbb; 32]));
                params.extend_from_slice(&tpm2b(&vector("ecc-p256.name")));
                ok_sessions(Some(0x8000_0000), &params)
            }
            cc::READ_PUBLIC => {
                let mut params = vector("ecc-p256.pub");
                params.extend_from_slice(&tpm2b(&vector("ecc-p256.name")));
                params.extend_from_slice(&tpm2b(&[0x11; 34]));
                ok(&params)
            }
            cc::QUOTE => {
                let mut params = tpm2b(&vector("ecc-p256.sha256.attest"));
                params.extend_from_slice(&vector("ecc-p256.sha256.sig"));
                ok_sessions(None, &params)
            }
            cc::FLUSH_CONTEXT => ok(&[]),
            cc::NV_READ_PUBLIC => {
                let index = be32(p, 0);
                match self.nv.iter().find(|(i, _)| *i == index) {
                    Some((_, data)) => {
                        let mut pubarea = index.to_be_bytes().to_vec();
                        pubarea.extend_from_slice(&0x000bu16.to_be_bytes());
                        pubarea.extend_from_slice(&0x6204_0001u32.to_be_bytes());
                        pubarea.extend_from_slice(&tpm2b(&[]));
                        pubarea.extend_from_slice(&(data.len() as u16).to_be_bytes());
                        let mut body = tpm2b(&pubarea);
                        body.extend_from_slice(&tpm2b(&[0x00, 0x0b, 1, 2, 3]));
                        ok(&body)
                    }
                    None => error(0x18b),
                }
            }
            cc::NV_READ => {
                let index = be32(p, 4);
                let auth = be32(p, 8) as usize;
                let size = be16(p, 12 + auth) as usize;
                let offset = be16(p, 14 + auth) as usize;
                let Some((_, data)) = self.nv.iter().find(|(i, _)| *i == index) else {
                    return error(0x28b);
                };
                if size > self.nv_max {
                    return error(0x1c4);
                }
                if offset + size > data.len() {
                    return error(code::NV_RANGE);
                }
                ok_sessions(None, &tpm2b(&data[offset..offset + size]))
            }
            _ => error(code::COMMAND_CODE),
        }
    }
}

impl Transport for Sim {
    fn transact(&mut self, cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        self.sent.push(cmd.to_vec());
        let r = match self.script.pop_front() {
            Some(r) => r,
            None => self.handle(cmd),
        };
        let capacity = rsp.len();
        let dst = rsp
            .get_mut(..r.len())
            .ok_or(TransportError::ResponseTooLarge {
                size: r.len(),
                capacity,
            })?;
        dst.copy_from_slice(&r);
        Ok(r.len())
    }
}

fn tpm() -> Tpm<Sim, Vec<u8>> {
    Tpm::new(Sim::new(), vec![0u8; 4096])
}

fn encode(
    f: impl FnOnce(&mut [u8]) -> Result<usize, trustpool_core::codec::BufferTooSmall>,
) -> Vec<u8> {
    let mut buf = [0u8; 1024];
    let n = f(&mut buf).unwrap();
    buf[..n].to_vec()
}

// --- command bytes -------------------------------------------------------------------------

#[test]
fn command_bytes() {
    assert_eq!(
        hex::encode(encode(|b| command::startup(b, StartupType::Clear))),
        "80010000000c000001440000"
    );
    assert_eq!(
        hex::encode(encode(|b| command::get_capability(
            b,
            cap::TPM_PROPERTIES,
            pt::MANUFACTURER,
            1
        ))),
        "8001000000160000017a000000060000010500000001"
    );
    assert_eq!(
        hex::encode(encode(|b| command::pcr_read(
            b,
            &[(HashAlg::Sha256, 0xff), (HashAlg::Sha1, 1 << 16)]
        ))),
        "80010000001a0000017e00000002000b03ff0000000403000001"
    );
    assert_eq!(
        hex::encode(encode(|b| command::flush_context(b, 0x8000_0000))),
        "80010000000e0000016580000000"
    );
    assert_eq!(
        hex::encode(encode(|b| command::get_random(b, 32))),
        "80010000000c0000017b0020"
    );
    // Quote: handle, password session, nonce, TPM_ALG_NULL scheme, selection.
    assert_eq!(
        hex::encode(encode(|b| command::quote(
            b,
            0x8000_0001,
            &[0xab, 0xcd],
            &[(HashAlg::Sha256, 0x0401)]
        ))),
        concat!(
            "8002",
            "0000002b",
            "00000158",
            "80000001",
            "00000009",
            "40000009",
            "0000",
            "01",
            "0000",
            "0002abcd",
            "0010",
            "00000001000b03010400"
        )
    );
    // NV_Read: auth handle, index, session, size, offset.
    assert_eq!(
        hex::encode(encode(|b| command::nv_read(
            b,
            0x01c0_0002,
            0x01c0_0002,
            1024,
            2048
        ))),
        concat!(
            "8002", "00000023", "0000014e", "01c00002", "01c00002", "00000009", "40000009", "0000",
            "01", "0000", "0400", "0800"
        )
    );
    // CreatePrimary carries the template as a TPM2B_PUBLIC.
    let cp = encode(|b| {
        command::create_primary(b, Hierarchy::Owner.handle(), AkTemplate::Rsa2048.public())
    });
    assert_eq!(be32(&cp, 6), cc::CREATE_PRIMARY);
    assert_eq!(be32(&cp, 10), 0x4000_0001);
    assert_eq!(&cp[27..33], &[0, 4, 0, 0, 0, 0]);
    assert_eq!(be16(&cp, 33) as usize, AkTemplate::Rsa2048.public().len());
    assert_eq!(&cp[cp.len() - 6..], &[0, 0, 0, 0, 0, 0]);
    // PCR_Extend: one digest per bank.
    let d = Digest::from_slice(HashAlg::Sha1, &[7; 20]).unwrap();
    let ext = encode(|b| command::pcr_extend(b, 16, &[d]));
    assert_eq!(ext.len(), 10 + 4 + 13 + 4 + 2 + 20);
    assert_eq!(be32(&ext, 10), 16);
}

#[test]
fn command_buffer_too_small_is_an_error() {
    let mut small = [0u8; 20];
    let e = command::quote(&mut small, 1, &[0; 32], &[(HashAlg::Sha256, 0xff)]).unwrap_err();
    assert_eq!(e.capacity, 20);
    let mut tiny = [0u8; 3];
    assert!(command::startup(&mut tiny, StartupType::Clear).is_err());
    // The driver reports it too, without sending anything.
    let mut t = Tpm::new(Sim::new(), [0u8; 16]);
    assert!(matches!(
        t.quote(1, &[0; 32], &[(HashAlg::Sha256, 0xff)]),
        Err(Error::BufferTooSmall(_))
    ));
    assert!(t.transport_mut().sent.is_empty());
}

#[test]
fn ak_templates_are_restricted_signing_keys() {
    for (t, scheme) in [
        (AkTemplate::Rsa2048, SigScheme::RsaSsa(HashAlg::Sha256)),
        (AkTemplate::EccP256, SigScheme::Ecdsa(HashAlg::Sha256)),
    ] {
        // Templates leave `unique` empty; give the RSA one a modulus so it parses as a key.
        let mut bytes = t.public().to_vec();
        if t == AkTemplate::Rsa2048 {
            bytes.truncate(bytes.len() - 2);
            bytes.extend_from_slice(&tpm2b(&[0xc5; 256]));
        }
        let p = Public::parse(&bytes).unwrap();
        assert!(p.attributes.is_restricted_signing());
        assert!(p.attributes.is_fixed_tpm());
        assert_eq!(p.attributes.0, trustpool_core::tpm::AK_ATTRIBUTES);
        assert_eq!(p.scheme(), Some(scheme));
        assert_eq!(AkTemplate::from_name(t.name()), Some(t));
    }
    assert_eq!(AkTemplate::from_name("ECC"), Some(AkTemplate::EccP256));
    assert_eq!(AkTemplate::from_name("dsa"), None);
    assert_eq!(Hierarchy::from_name("e"), Some(Hierarchy::Endorsement));
    assert_eq!(Hierarchy::from_name("owner"), Some(Hierarchy::Owner));
}

// --- response codes ------------------------------------------------------------------------

#[test]
fn response_codes() {
    let v = ResponseCode(0x1c4);
    assert!(v.is_format_one());
    assert_eq!(v.base(), code::VALUE);
    assert_eq!(v.name(), Some("TPM_RC_VALUE"));
    assert_eq!(v.subject(), Some(Subject::Parameter(1)));
    assert_eq!(
        v.to_string(),
        "TPM_RC_VALUE (0x1c4) in parameter 1: value is out of range or not correct for the context"
    );
    let a = ResponseCode(0x98e);
    assert_eq!(a.name(), Some("TPM_RC_AUTH_FAIL"));
    assert_eq!(a.subject(), Some(Subject::Session(1)));
    let h = ResponseCode(0x18b);
    assert_eq!(h.name(), Some("TPM_RC_HANDLE"));
    assert_eq!(h.subject(), Some(Subject::Handle(1)));
    assert_eq!(ResponseCode(0x28b).subject(), Some(Subject::Handle(2)));
    assert_eq!(ResponseCode(0x2d5).subject(), Some(Subject::Parameter(2)));
    assert_eq!(ResponseCode(0x2d5).name(), Some("TPM_RC_SIZE"));
    assert_eq!(ResponseCode(0x095).subject(), None);
    for (rc, name) in [
        (0x922, "TPM_RC_RETRY"),
        (0x90a, "TPM_RC_TESTING"),
        (0x908, "TPM_RC_YIELDED"),
    ] {
        let r = ResponseCode(rc);
        assert!(r.is_warning() && r.is_retryable(), "{rc:#x}");
        assert_eq!(r.name(), Some(name));
        assert_eq!(r.subject(), None);
    }
    assert!(!ResponseCode(0x921).is_retryable()); // LOCKOUT: do not hammer
    assert!(!ResponseCode(0x902).is_retryable());
    let init = ResponseCode(0x100);
    assert_eq!(init.name(), Some("TPM_RC_INITIALIZE"));
    assert!(!init.is_warning() && !init.is_format_one());
    assert!(ResponseCode(0x1e).is_tpm12());
    assert_eq!(ResponseCode(0x1e).name(), Some("TPM_RC_BAD_TAG"));
    assert!(ResponseCode(0x9).is_tpm12());
    assert!(ResponseCode(0x9).to_string().contains("TPM 1.2"));
    assert!(ResponseCode(0x501).is_vendor());
    assert!(ResponseCode(0x501).to_string().contains("vendor"));
    let rm = ResponseCode(0x000b_0922);
    assert_eq!(rm.layer(), 11);
    assert!(!rm.is_retryable());
    assert!(rm.to_string().contains("resource manager"));
    assert!(ResponseCode(0).is_success());
}

// --- the driver against the simulator ------------------------------------------------------

#[test]
fn read_pcrs_in_rounds_across_two_banks() {
    let mut t = tpm();
    let mut set = PcrSet::new();
    let counter = t
        .read_pcrs(
            &[(HashAlg::Sha1, 0xff_ffff), (HashAlg::Sha256, 0xff_ffff)],
            &mut set,
        )
        .unwrap();
    assert_eq!(counter, 17);
    // 48 values, 8 per round.
    assert_eq!(t.transport_mut().pcr_reads, 6);
    let sim = Sim::new();
    for (alg, values) in &sim.banks {
        for (i, d) in values.iter().enumerate() {
            assert_eq!(set.pcr(*alg, i as u8), Some(d), "{alg}:{i}");
        }
    }
    // A TPM that returns fewer per round needs more rounds, same values.
    let mut sim = Sim::new();
    sim.max_per_read = 3;
    let mut t = Tpm::new(sim, vec![0u8; 4096]);
    let mut set2 = PcrSet::new();
    t.read_pcrs(
        &[(HashAlg::Sha256, 0b1011_0000_0000_0000_0111_1111)],
        &mut set2,
    )
    .unwrap();
    assert_eq!(t.transport_mut().pcr_reads, 4);
    assert_eq!(
        set2.bank(HashAlg::Sha256).unwrap().present(),
        0b1011_0000_0000_0000_0111_1111
    );
}

#[test]
fn read_pcrs_starts_over_when_a_pcr_changes() {
    let mut sim = Sim::new();
    sim.extend_after_reads = Some(2);
    let mut t = Tpm::new(sim, vec![0u8; 4096]);
    let mut set = PcrSet::new();
    let counter = t
        .read_pcrs(&[(HashAlg::Sha256, 0xff_ffff)], &mut set)
        .unwrap();
    assert_eq!(counter, 18);
    let sim = t.transport_mut();
    assert_eq!(set.pcr(HashAlg::Sha256, 16), Some(&sim.banks[1].1[16]));
    // rounds: 1 (counter 17), 2 (extended: 18, start over), then 3 more.
    assert_eq!(sim.pcr_reads, 5);
}

#[test]
fn read_pcrs_of_a_missing_bank_is_an_error() {
    let mut t = tpm();
    let mut set = PcrSet::new();
    let e = t
        .read_pcrs(&[(HashAlg::Sha384, 0xff)], &mut set)
        .unwrap_err();
    assert_eq!(
        e,
        Error::PcrNotRead {
            bank: HashAlg::Sha384.id(),
            mask: 0xff
        }
    );
    assert!(e.to_string().contains("sha384"));
    // Allocated banks are read, then the missing one is reported.
    let e = t
        .read_pcrs(&[(HashAlg::Sha256, 0x3), (HashAlg::Sha512, 0x1)], &mut set)
        .unwrap_err();
    assert!(matches!(e, Error::PcrNotRead { .. }));
}

#[test]
fn read_pcrs_rejects_values_not_asked_for() {
    let mut t = tpm();
    // Answer a request for sha256:0 with sha256:1.
    let mut body = 5u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0b, 3, 0x02, 0, 0]);
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&tpm2b(&[1; 32]));
    t.transport_mut().script.push_back(ok(&body));
    let e = t
        .read_pcrs(&[(HashAlg::Sha256, 0x1)], &mut PcrSet::new())
        .unwrap_err();
    assert!(matches!(e, Error::Incomplete(_)), "{e:?}");
}

#[test]
fn pcr_extend_changes_what_is_read() {
    let mut t = tpm();
    let d1 = Digest::from_slice(HashAlg::Sha1, &[1; 20]).unwrap();
    let d256 = Digest::from_slice(HashAlg::Sha256, &[2; 32]).unwrap();
    t.pcr_extend(23, &[d1, d256]).unwrap();
    let mut set = PcrSet::new();
    t.read_pcrs(&[(HashAlg::Sha256, 1 << 23)], &mut set)
        .unwrap();
    let mut expect = Sim::new().banks[1].1[23];
    expect.extend(&[2; 32]);
    assert_eq!(set.pcr(HashAlg::Sha256, 23), Some(&expect));
}

#[test]
fn warnings_are_retried_a_bounded_number_of_times() {
    for rc in [code::RETRY, code::TESTING, code::YIELDED] {
        let mut t = tpm();
        for _ in 0..3 {
            t.transport_mut().script.push_back(error(rc));
        }
        let mut out = [0u8; 8];
        t.get_random(&mut out).unwrap();
        assert_eq!(t.transport_mut().sent.len(), 4, "{rc:#x}");
        // The same command was sent again each time.
        let sent = &t.transport_mut().sent;
        assert!(sent.iter().all(|c| c == &sent[0]));
    }
    // A TPM that never stops asking: MAX_RETRIES + 1 sends, then the warning is the error.
    let mut t = tpm();
    for _ in 0..100 {
        t.transport_mut().script.push_back(error(code::RETRY));
    }
    let e = t.flush_context(0x8000_0000).unwrap_err();
    assert_eq!(e, Error::Tpm(ResponseCode(code::RETRY)));
    assert_eq!(t.transport_mut().sent.len(), MAX_RETRIES as usize + 1);
    // No retries when asked for none; other warnings are not retried at all.
    let mut t = tpm();
    t.set_max_retries(0);
    t.transport_mut().script.push_back(error(code::TESTING));
    assert!(t.flush_context(1).is_err());
    assert_eq!(t.transport_mut().sent.len(), 1);
    let mut t = tpm();
    t.transport_mut().script.push_back(error(code::LOCKOUT));
    assert_eq!(
        t.flush_context(1).unwrap_err().response_code(),
        Some(ResponseCode(code::LOCKOUT))
    );
    assert_eq!(t.transport_mut().sent.len(), 1);
}

#[test]
fn startup_already_done_is_not_an_error() {
    let mut t = tpm();
    assert!(!t.startup(StartupType::Clear).unwrap());
    let mut sim = Sim::new();
    sim.started = false;
    let mut t = Tpm::new(sim, vec![0u8; 4096]);
    assert!(t.startup(StartupType::Clear).unwrap());
}

#[test]
fn properties_over_several_pages() {
    let mut t = tpm();
    let p = t.properties().unwrap();
    assert_eq!(p.manufacturer_text().as_str(), "IFX");
    assert_eq!(
        trustpool_core::tpm::manufacturer_name(p.manufacturer().unwrap()),
        Some("Infineon")
    );
    assert_eq!(p.vendor_string().as_str(), "SLB9670");
    assert_eq!(p.family().as_str(), "2.0");
    assert_eq!(p.firmware_version(), Some(0x0007_0055_0011_0000));
    assert_eq!(p.nv_buffer_max(), Some(768));
    assert_eq!(p.revision(), Some(164));
    assert_eq!(p.get(0x200), None);
    // 11 fixed properties, 4 per page: 3 rounds.
    assert_eq!(t.transport_mut().sent.len(), 3);
    assert_eq!(p.iter().count(), 11);
}

#[test]
fn pcr_banks_from_capability() {
    let mut t = tpm();
    let banks = t.pcr_banks().unwrap();
    assert_eq!(
        banks.as_slice(),
        &[(HashAlg::Sha1, 0xff_ffff), (HashAlg::Sha256, 0xff_ffff)]
    );
}

#[test]
fn get_random_in_short_rounds() {
    let mut t = tpm();
    let mut out = [0u8; 40];
    t.get_random(&mut out).unwrap();
    assert_eq!(t.transport_mut().sent.len(), 3);
    assert_eq!(&out[..16], &out[16..32]);
    // A TPM that returns nothing is an error, not a loop.
    let mut sim = Sim::new();
    sim.random_max = 0;
    let mut t = Tpm::new(sim, vec![0u8; 4096]);
    assert!(matches!(t.get_random(&mut out), Err(Error::Incomplete(_))));
}

#[test]
fn nv_read_in_chunks() {
    let mut t = tpm();
    let mut out = vec![0u8; 4096];
    let n = t
        .nv_read_all(0x01c0_0002, 0x01c0_0002, 768, &mut out)
        .unwrap();
    assert_eq!(n, 2000);
    assert_eq!(&out[..n], &Sim::new().nv[0].1[..]);
    // PublicRead + 3 chunks (768, 768, 464)
    assert_eq!(t.transport_mut().sent.len(), 4);
    // A chunk larger than the TPM's buffer: the TPM's TPM_RC_VALUE comes back.
    let e = t
        .nv_read_all(0x01c0_0002, 0x01c0_0002, 1024, &mut out)
        .unwrap_err();
    assert_eq!(e.response_code().map(|r| r.base()), Some(code::VALUE));
    // Too small an output buffer.
    let mut small = [0u8; 100];
    assert!(matches!(
        t.nv_read_all(0x01c0_0002, 0x01c0_0002, 768, &mut small),
        Err(Error::BufferTooSmall(_))
    ));
    // A missing index.
    let e = t.nv_read_public(0x01c0_000a).unwrap_err();
    assert_eq!(e.response_code().map(|r| r.base()), Some(code::HANDLE));
    let nv = t.nv_read_public(0x01c0_0002).unwrap();
    assert_eq!(nv.public.data_size, 2000);
    assert_eq!(nv.public.nv_index, 0x01c0_0002);
}

#[test]
fn create_primary_quote_and_verify() {
    let mut t = tpm();
    let (handle, public) = {
        let r = t
            .create_primary(Hierarchy::Endorsement, AkTemplate::EccP256.public())
            .unwrap();
        assert_eq!(r.name, vector("ecc-p256.name").as_slice());
        (r.handle, r.public.to_vec())
    };
    assert_eq!(handle, 0x8000_0000);
    assert_eq!(public, vector("ecc-p256.pub"));
    let rp = t.read_public(handle).unwrap();
    assert_eq!(rp.public, public.as_slice());
    assert_eq!(rp.qualified_name.len(), 34);
    let q = t.quote(handle, b"", &[(HashAlg::Sha256, 0xff)]).unwrap();
    assert_eq!(q.attest, vector("ecc-p256.sha256.attest").as_slice());
    assert_eq!(q.signature, vector("ecc-p256.sha256.sig").as_slice());
    let (attest, sig) = (q.attest.to_vec(), q.signature.to_vec());
    let ak = AttestationKey::from_public(Public::parse_tpm2b(&public).unwrap()).unwrap();
    let nonce = hex::decode("07addd49399f1a88dbeaa90e735b35a86a268e59").unwrap();
    Quote::verify(&attest, &sig, &ak, &nonce).unwrap();
    t.flush_context(handle).unwrap();
}

// --- malformed responses -------------------------------------------------------------------

/// Valid responses to every command the driver decodes, from the simulator.
fn valid_responses() -> Vec<(u32, Vec<u8>)> {
    let mut sim = Sim::new();
    let cmds: Vec<Vec<u8>> = vec![
        encode(|b| command::startup(b, StartupType::Clear)),
        encode(|b| command::get_capability(b, cap::PCRS, 0, 1)),
        encode(|b| command::get_capability(b, cap::TPM_PROPERTIES, pt::FIXED, 64)),
        encode(|b| command::get_random(b, 16)),
        encode(|b| command::pcr_read(b, &[(HashAlg::Sha1, 0xff), (HashAlg::Sha256, 0xff)])),
        encode(|b| command::pcr_extend(b, 1, &[Digest::zero(HashAlg::Sha1)])),
        encode(|b| command::create_primary(b, 0x4000_000b, AkTemplate::EccP256.public())),
        encode(|b| command::read_public(b, 0x8000_0000)),
        encode(|b| command::quote(b, 0x8000_0000, &[], &[(HashAlg::Sha256, 0xff)])),
        encode(|b| command::flush_context(b, 0x8000_0000)),
        encode(|b| command::nv_read_public(b, 0x01c0_0002)),
        encode(|b| command::nv_read(b, 0x01c0_0002, 0x01c0_0002, 512, 0)),
    ];
    sim.started = false;
    cmds.iter().map(|c| (be32(c, 6), sim.handle(c))).collect()
}

/// Decode a response as the answer to `code`; `Ok` when it decoded.
fn decode(code: u32, r: &[u8]) -> Result<(), Error> {
    match code {
        cc::STARTUP => response::startup(r),
        cc::GET_CAPABILITY => response::get_capability(r).map(drop),
        cc::GET_RANDOM => response::get_random(r).map(drop),
        cc::PCR_READ => response::pcr_read(r).map(drop),
        cc::PCR_EXTEND => response::pcr_extend(r),
        cc::CREATE_PRIMARY => response::create_primary(r).map(drop),
        cc::READ_PUBLIC => response::read_public(r).map(drop),
        cc::QUOTE => response::quote(r).map(drop),
        cc::FLUSH_CONTEXT => response::flush_context(r),
        cc::NV_READ_PUBLIC => response::nv_read_public(r).map(drop),
        cc::NV_READ => response::nv_read(r).map(drop),
        other => panic!("no decoder for command {other:#x}"),
    }
}

#[test]
fn valid_responses_decode() {
    for (code, r) in valid_responses() {
        decode(code, &r).unwrap_or_else(|e| panic!("{code:#x}: {e}"));
    }
}

#[test]
fn truncated_responses_are_errors() {
    for (code, r) in valid_responses() {
        for n in 0..r.len() {
            let e = decode(code, &r[..n]).unwrap_err();
            assert!(
                matches!(e, Error::Response(_)),
                "{code:#x} cut at {n}: {e:?}"
            );
        }
        // The header's size kept but the bytes cut: the size is named.
        if r.len() > 10 {
            let e = decode(code, &r[..r.len() - 1]).unwrap_err();
            let Error::Response(pe) = e else { panic!() };
            assert_eq!(pe.field, "responseSize");
            assert!(matches!(pe.kind, ErrorKind::Truncated { .. }));
        }
    }
}

#[test]
fn oversized_responses_are_errors() {
    for (code, r) in valid_responses() {
        // A byte more than responseSize says.
        let mut long = r.clone();
        long.push(0);
        let Error::Response(e) = decode(code, &long).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.field, "responseSize");
        assert_eq!(e.kind, ErrorKind::TrailingBytes { count: 1 });
        // A byte more, and responseSize saying so: trailing bytes inside the response.
        let mut padded = r.clone();
        padded.push(0);
        let size = padded.len() as u32;
        padded[2..6].copy_from_slice(&size.to_be_bytes());
        let e = decode(code, &padded).unwrap_err();
        assert!(matches!(e, Error::Response(_)), "{code:#x}: {e:?}");
    }
}

#[test]
fn wrong_tags_are_errors() {
    for (code, r) in valid_responses() {
        for tag in [0x8001u16, 0x8002, 0x00c4, 0x0000, 0xffff] {
            if tag == be16(&r, 0) {
                continue;
            }
            let mut bad = r.clone();
            bad[..2].copy_from_slice(&tag.to_be_bytes());
            let Error::Response(e) = decode(code, &bad).unwrap_err() else {
                panic!()
            };
            assert_eq!(e.field, "tag", "{code:#x} tag {tag:#x}");
            assert_eq!(e.offset, 0);
        }
    }
}

#[test]
fn error_codes_come_back_as_tpm_errors() {
    for (code, _) in valid_responses() {
        for rc in [0x1c4u32, 0x98e, 0x18b, 0x101, 0x922] {
            assert_eq!(
                decode(code, &error(rc)),
                Err(Error::Tpm(ResponseCode(rc))),
                "{code:#x}"
            );
        }
        // A TPM 1.2-style answer (tag 0x00C4) to a malformed command.
        assert_eq!(
            decode(code, &rsp(0x00c4, 0x1e, &[])),
            Err(Error::Tpm(ResponseCode(0x1e)))
        );
    }
}

#[test]
fn transport_failures_and_lies() {
    struct Liar(usize);
    impl Transport for Liar {
        fn transact(&mut self, _: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
            if self.0 == 0 {
                return Err(TransportError::Timeout { what: "test" });
            }
            Ok(rsp.len() + self.0)
        }
    }
    let mut t = Tpm::new(Liar(1), [0u8; 256]);
    assert!(matches!(
        t.flush_context(1),
        Err(Error::Transport(TransportError::ResponseTooLarge { .. }))
    ));
    let mut t = Tpm::new(Liar(0), [0u8; 256]);
    let e = t.flush_context(1).unwrap_err();
    assert_eq!(
        e,
        Error::Transport(TransportError::Timeout { what: "test" })
    );
    assert_eq!(e.to_string(), "transport: test: timed out");
    // A response bigger than the buffer's room.
    let mut sim = Sim::new();
    sim.script.push_back(ok(&vec![0u8; 300]));
    let mut t = Tpm::new(sim, [0u8; 256]);
    assert!(matches!(t.flush_context(1), Err(Error::Transport(_))));
}

#[test]
fn pcr_read_response_checks() {
    // Digest count that disagrees with the selection.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0b, 3, 0x03, 0, 0]);
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&tpm2b(&[1; 32]));
    let Error::Response(e) = response::pcr_read(&ok(&body)).unwrap_err() else {
        panic!()
    };
    assert_eq!(e.field, "pcrValues.count");
    // A digest of the wrong size for its bank.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0b, 3, 0x01, 0, 0]);
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&tpm2b(&[1; 20]));
    let Error::Response(e) = response::pcr_read(&ok(&body)).unwrap_err() else {
        panic!()
    };
    assert_eq!(e.field, "pcrValues.digests.size");
    // More than eight digests.
    let mut body = 1u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x04, 3, 0xff, 0x01, 0]);
    body.extend_from_slice(&9u32.to_be_bytes());
    for _ in 0..9 {
        body.extend_from_slice(&tpm2b(&[1; 20]));
    }
    assert!(response::pcr_read(&ok(&body)).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes, as the answer to any command: an error or a value, never a panic.
    #[test]
    fn arbitrary_responses_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        for code in [cc::STARTUP, cc::GET_CAPABILITY, cc::GET_RANDOM, cc::PCR_READ, cc::PCR_EXTEND,
                     cc::CREATE_PRIMARY, cc::READ_PUBLIC, cc::QUOTE, cc::FLUSH_CONTEXT,
                     cc::NV_READ_PUBLIC, cc::NV_READ] {
            let _ = decode(code, &data);
        }
        let _ = response::peek_code(&data);
    }

    /// Valid responses with a byte changed, or a header that fits the bytes: never a panic,
    /// and through the driver's multi-round operations too.
    #[test]
    fn mutated_responses_never_panic(which in 0usize..12, at in any::<usize>(), byte in any::<u8>(),
                                     fix_size in any::<bool>()) {
        let all = valid_responses();
        let (code, mut r) = all[which % all.len()].clone();
        let i = at % r.len();
        r[i] = byte;
        if fix_size {
            let n = r.len() as u32;
            r[2..6].copy_from_slice(&n.to_be_bytes());
        }
        let _ = decode(code, &r);
        let mut sim = Sim::new();
        sim.script.push_back(r.clone());
        let mut t = Tpm::new(sim, vec![0u8; 4096]);
        let mut set = PcrSet::new();
        let _ = t.read_pcrs(&[(HashAlg::Sha1, 0xff_ffff), (HashAlg::Sha256, 0xff_ffff)], &mut set);
        let mut sim = Sim::new();
        sim.script.push_back(r.clone());
        let mut t = Tpm::new(sim, vec![0u8; 4096]);
        let _ = t.properties();
        let mut sim = Sim::new();
        sim.script.push_back(r);
        let mut t = Tpm::new(sim, vec![0u8; 4096]);
        let mut out = [0u8; 3000];
        let _ = t.nv_read_all(0x01c0_0002, 0x01c0_0002, 512, &mut out);
    }

    /// Every encoder either fits the buffer or says it does not, whatever its size.
    #[test]
    fn encoders_never_panic(size in 0usize..120, nonce in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut buf = vec![0u8; size];
        let _ = command::quote(&mut buf, 1, &nonce, &[(HashAlg::Sha256, 0xff_ffff), (HashAlg::Sha1, 1)]);
        let _ = command::create_primary(&mut buf, 1, AkTemplate::Rsa2048.public());
        let _ = command::pcr_extend(&mut buf, 1, &[Digest::zero(HashAlg::Sha512)]);
        let _ = command::nv_read(&mut buf, 1, 2, 3, 4);
        let _ = command::get_capability(&mut buf, 1, 2, 3);
    }
}

// --- keys: Create, Load, Certify, RSA_Decrypt ------------------------------------------------

#[test]
fn key_command_bytes() {
    use trustpool_core::tpm::BINDING_KEY_RSA2048;
    // Certify: object and signing handles, two password sessions, nonce, TPM_ALG_NULL.
    assert_eq!(
        hex::encode(encode(|b| command::certify(
            b,
            0x8000_0001,
            0x8000_0002,
            &[0xab]
        ))),
        concat!(
            "8002", "0000002d", "00000148", "80000001", "80000002", "00000012", "40000009", "0000",
            "01", "0000", "40000009", "0000", "01", "0000", "0001ab", "0010"
        )
    );
    // RSA_Decrypt: key, session, ciphertext, TPMT_RSA_DECRYPT { OAEP, SHA-256 }, label.
    assert_eq!(
        hex::encode(encode(|b| command::rsa_decrypt(
            b,
            0x8000_0003,
            &[1, 2],
            HashAlg::Sha256,
            b"L\0"
        ))),
        concat!(
            "8002", "00000027", "00000159", "80000003", "00000009", "40000009", "0000", "01",
            "0000", "00020102", "0017", "000b", "00024c00"
        )
    );
    // Load: parent, session, TPM2B_PRIVATE, TPM2B_PUBLIC.
    assert_eq!(
        hex::encode(encode(|b| command::load(b, 0x8000_0000, &[9, 9], &[7]))),
        concat!(
            "8002", "00000022", "00000157", "80000000", "00000009", "40000009", "0000", "01",
            "0000", "00020909", "000107"
        )
    );
    // Create: like CreatePrimary, with the parent's handle.
    let c = encode(|b| command::create(b, 0x8000_0000, &BINDING_KEY_RSA2048));
    assert_eq!(be32(&c, 6), cc::CREATE);
    assert_eq!(be32(&c, 10), 0x8000_0000);
    assert_eq!(&c[27..33], &[0, 4, 0, 0, 0, 0]);
    assert_eq!(be16(&c, 33) as usize, BINDING_KEY_RSA2048.len());
    assert_eq!(&c[35..35 + BINDING_KEY_RSA2048.len()], &BINDING_KEY_RSA2048);
    assert_eq!(&c[c.len() - 6..], &[0, 0, 0, 0, 0, 0]);
}

#[test]
fn key_templates() {
    use trustpool_core::public::ObjectAttributes as A;
    use trustpool_core::tpm::{
        BINDING_KEY_ATTRIBUTES, BINDING_KEY_RSA2048, SRK_ATTRIBUTES, SRK_RSA2048,
    };
    let srk = Public::parse(&SRK_RSA2048).unwrap();
    assert_eq!(srk.attributes.0, SRK_ATTRIBUTES);
    assert!(srk
        .attributes
        .has(A::RESTRICTED | A::DECRYPT | A::FIXED_TPM | A::NO_DA));
    assert!(!srk.attributes.has(A::SIGN_ENCRYPT));
    // The binding key template leaves `unique` empty; give it a modulus to parse as a key.
    let mut b = BINDING_KEY_RSA2048.to_vec();
    b.truncate(b.len() - 2);
    b.extend_from_slice(&tpm2b(&[0xc5; 256]));
    let p = Public::parse(&b).unwrap();
    assert_eq!(p.attributes.0, BINDING_KEY_ATTRIBUTES);
    assert_eq!(
        BINDING_KEY_ATTRIBUTES,
        A::FIXED_TPM | A::FIXED_PARENT | A::SENSITIVE_DATA_ORIGIN | A::USER_WITH_AUTH | A::DECRYPT
    );
    assert_eq!(p.scheme(), None);
}

#[test]
fn key_responses() {
    // Create: outPrivate, outPublic, creationData, creationHash, creationTicket.
    let mut public = trustpool_core::tpm::BINDING_KEY_RSA2048.to_vec();
    public.truncate(public.len() - 2);
    public.extend_from_slice(&tpm2b(&[0xc5; 256]));
    let mut params = tpm2b(&[0x11; 40]);
    params.extend_from_slice(&tpm2b(&public));
    params.extend_from_slice(&tpm2b(&[0; 10]));
    params.extend_from_slice(&tpm2b(&[0; 32]));
    params.extend_from_slice(&[0x80, 0x21, 0x40, 0, 0, 1]);
    params.extend_from_slice(&tpm2b(&[0; 32]));
    let r = ok_sessions(None, &params);
    let c = response::create(&r).unwrap();
    assert_eq!(c.private, &tpm2b(&[0x11; 40])[..]);
    assert_eq!(c.private_contents(), &[0x11; 40]);
    assert_eq!(c.public, &tpm2b(&public)[..]);
    assert_eq!(c.public_area.bytes, &public[..]);
    // Trailing bytes are an error.
    let mut long = params.clone();
    long.push(0);
    assert!(matches!(
        response::create(&ok_sessions(None, &long)),
        Err(Error::Response(_))
    ));
    // Load: handle and Name.
    let l = ok_sessions(Some(0x8000_0004), &tpm2b(&[0, 0x0b, 1, 2]));
    let l = response::load(&l).unwrap();
    assert_eq!((l.handle, l.name), (0x8000_0004, &[0, 0x0b, 1, 2][..]));
    // RSA_Decrypt: the message; an error code is the TPM's.
    let m = ok_sessions(None, &tpm2b(&[5; 32]));
    assert_eq!(response::rsa_decrypt(&m).unwrap(), &[5; 32]);
    assert!(matches!(
        response::rsa_decrypt(&error(0x084)),
        Err(Error::Tpm(rc)) if rc.base() == code::VALUE
    ));
}
