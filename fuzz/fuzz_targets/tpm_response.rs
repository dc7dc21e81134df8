//! TPM response decoding: every response decoder, and the driver's multi-round operations
//! (PCR reads, properties, NV reads, random) fed fuzzer bytes as the TPM's answers. Errors,
//! never panics, and every loop ends.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trustpool_core::tpm::{response, Tpm, Transport, TransportError};
use trustpool_core::{HashAlg, PcrSet};

/// Answers each command with the next length-prefixed chunk of the input (u16 big-endian
/// length, then that many bytes), then closes.
struct Replay<'a> {
    data: &'a [u8],
}

impl Transport for Replay<'_> {
    fn transact(&mut self, _cmd: &[u8], rsp: &mut [u8]) -> Result<usize, TransportError> {
        let Some((len, rest)) = self.data.split_first_chunk::<2>() else {
            return Err(TransportError::Closed);
        };
        let n = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (chunk, rest) = rest.split_at(n);
        self.data = rest;
        let dst = rsp.get_mut(..n).ok_or(TransportError::ResponseTooLarge {
            size: n,
            capacity: 0,
        })?;
        dst.copy_from_slice(chunk);
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = response::peek_code(data);
    let _ = response::startup(data);
    let _ = response::flush_context(data);
    let _ = response::pcr_extend(data);
    let _ = response::get_capability(data);
    let _ = response::get_random(data);
    if let Ok(r) = response::pcr_read(data) {
        for _ in r.values() {}
    }
    let _ = response::create_primary(data);
    let _ = response::read_public(data);
    let _ = response::quote(data);
    let _ = response::nv_read_public(data);
    let _ = response::nv_read(data);

    let mut tpm = Tpm::new(Replay { data }, [0u8; 4096]);
    let mut set = PcrSet::new();
    let _ = tpm.read_pcrs(
        &[(HashAlg::Sha1, 0xff_ffff), (HashAlg::Sha256, 0xff_ffff)],
        &mut set,
    );
    let mut tpm = Tpm::new(Replay { data }, [0u8; 4096]);
    let _ = tpm.properties();
    let mut tpm = Tpm::new(Replay { data }, [0u8; 4096]);
    let mut out = [0u8; 4096];
    let _ = tpm.nv_read_all(0x01c0_0002, 0x01c0_0002, 1024, &mut out);
    let mut tpm = Tpm::new(Replay { data }, [0u8; 4096]);
    let _ = tpm.get_random(&mut out[..100]);
    let _ = tpm.pcr_banks();
});
