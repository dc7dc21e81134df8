//! The [`Tpm`] driver: encodes a command into the caller's buffer, sends it over a
//! [`Transport`], receives the response into the rest of the same buffer and decodes it.

use crate::alg::{Digest, HashAlg};
use crate::codec::BufferTooSmall;
use crate::pcr::PcrSet;

use super::command::{self, SessionType, StartupType};
use super::properties::{TpmProperties, FIXED_PROPERTIES};
use super::rc::code;
use super::response::{
    self, CapabilityData, CertifyResponse, CreatePrimaryResponse, CreateResponse,
    GetCapabilityResponse, LoadResponse, NvReadPublicResponse, PcrReadResponse,
    PolicySecretResponse, QuoteResponse, ReadPublicResponse, StartAuthSessionResponse,
};
use super::{cap, pt, Error, Hierarchy, Transport, TransportError};

/// A buffer size that holds any command the driver sends and any response a TPM with
/// `MAX_RESPONSE_SIZE` 4096 returns to them (commands use the first few hundred bytes; the
/// response goes after the command).
pub const DEFAULT_BUFFER_SIZE: usize = 4096 + 512;
/// How many times a command is sent again after `TPM_RC_RETRY`, `TPM_RC_TESTING` or
/// `TPM_RC_YIELDED` before the warning is returned as the error.
pub const MAX_RETRIES: u32 = 16;
/// NV read chunk when the TPM does not state `TPM_PT_NV_BUFFER_MAX`.
pub const DEFAULT_NV_CHUNK: u16 = 1024;
/// Times a multi-round PCR read starts over because `pcrUpdateCounter` moved under it.
const MAX_PCR_RESTARTS: u32 = 3;
/// Banks one PCR read (and [`PcrBanks`]) covers: one per known hash.
const BANKS: usize = HashAlg::ALL.len();

/// The PCR banks of a TPM with the PCRs allocated in each (`TPM_CAP_PCRS`).
pub type PcrBanks = heapless::Vec<(HashAlg, u32), BANKS>;

/// A TPM behind a transport, with the buffer commands and responses pass through.
///
/// `B` is any byte buffer: an array (`[u8; DEFAULT_BUFFER_SIZE]`, the default), a borrowed
/// slice, or a `Vec<u8>`. Methods that return views borrow the driver until the view is
/// dropped; copy out what must outlive the next command.
#[derive(Debug)]
pub struct Tpm<T, B = [u8; DEFAULT_BUFFER_SIZE]> {
    transport: T,
    buf: B,
    max_retries: u32,
}

impl<T: Transport, B: AsMut<[u8]>> Tpm<T, B> {
    pub fn new(transport: T, buf: B) -> Self {
        Tpm {
            transport,
            buf,
            max_retries: MAX_RETRIES,
        }
    }

    /// Change how often warnings are retried (0: never).
    pub fn set_max_retries(&mut self, retries: u32) {
        self.max_retries = retries;
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn into_inner(self) -> (T, B) {
        (self.transport, self.buf)
    }

    /// Encode a command at the start of the buffer, send it, and return the raw response
    /// (placed right after the command). Retryable warnings are retried here.
    fn run(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, BufferTooSmall>,
    ) -> Result<&[u8], Error> {
        let buf = self.buf.as_mut();
        let capacity = buf.len();
        let n = encode(buf)?;
        let (cmd, rsp) = buf.split_at_mut_checked(n).ok_or(BufferTooSmall {
            needed: n,
            capacity,
        })?;
        let cmd: &[u8] = cmd;
        let mut attempt = 0u32;
        let len = loop {
            let len = self.transport.transact(cmd, rsp)?;
            if len > rsp.len() {
                return Err(Error::Transport(TransportError::ResponseTooLarge {
                    size: len,
                    capacity: rsp.len(),
                }));
            }
            let retry = rsp
                .get(..len)
                .and_then(response::peek_code)
                .is_some_and(|rc| rc.is_retryable());
            if retry && attempt < self.max_retries {
                attempt = attempt.saturating_add(1);
                self.transport.retry_delay(attempt);
                continue;
            }
            break len;
        };
        let rsp: &[u8] = rsp;
        Ok(rsp.get(..len).unwrap_or(&[]))
    }

    /// Send an already encoded command and return the raw response, for commands this driver
    /// does not wrap. Warnings are retried like any other command.
    pub fn execute(&mut self, cmd: &[u8]) -> Result<&[u8], Error> {
        self.run(|b| {
            let capacity = b.len();
            let dst = b.get_mut(..cmd.len()).ok_or(BufferTooSmall {
                needed: cmd.len(),
                capacity,
            })?;
            dst.copy_from_slice(cmd);
            Ok(cmd.len())
        })
    }

    /// TPM2_Startup (Part 3 §9.3). `Ok(false)` when the TPM was already started
    /// (`TPM_RC_INITIALIZE`), which is the normal case on a booted machine.
    pub fn startup(&mut self, su: StartupType) -> Result<bool, Error> {
        let rsp = self.run(|b| command::startup(b, su))?;
        match response::startup(rsp) {
            Ok(()) => Ok(true),
            Err(Error::Tpm(rc)) if rc.base() == code::INITIALIZE && rc.layer() == 0 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// TPM2_Shutdown (Part 3 §9.4).
    pub fn shutdown(&mut self, su: StartupType) -> Result<(), Error> {
        let rsp = self.run(|b| command::shutdown(b, su))?;
        response::empty(rsp, 0, "TPM2_Shutdown response")
    }

    /// TPM2_GetCapability (Part 3 §30.2), one round.
    pub fn get_capability(
        &mut self,
        capability: u32,
        property: u32,
        count: u32,
    ) -> Result<GetCapabilityResponse<'_>, Error> {
        let rsp = self.run(|b| command::get_capability(b, capability, property, count))?;
        response::get_capability(rsp)
    }

    /// The PCR banks and the PCRs allocated in each (`TPM_CAP_PCRS`). Banks of hashes this
    /// build does not know are left out; a bank with mask 0 exists but is not allocated.
    pub fn pcr_banks(&mut self) -> Result<PcrBanks, Error> {
        let rsp = self.get_capability(cap::PCRS, 0, 1)?;
        let CapabilityData::Pcrs(sel) = rsp.data else {
            return Err(Error::Incomplete(
                "TPM_CAP_PCRS answered with another capability",
            ));
        };
        let mut banks = PcrBanks::new();
        for b in sel.banks() {
            if let Some(alg) = b.hash() {
                if !banks.iter().any(|(a, _)| *a == alg) {
                    let _ = banks.push((alg, b.mask()));
                }
            }
        }
        Ok(banks)
    }

    /// Every fixed property (`TPM_PT_FIXED` group: manufacturer, vendor strings, firmware
    /// version, family, buffer sizes …), in as many GetCapability rounds as the TPM needs.
    pub fn properties(&mut self) -> Result<TpmProperties, Error> {
        let mut props = TpmProperties::new();
        let end = pt::FIXED.saturating_add(FIXED_PROPERTIES as u32);
        let mut next = pt::FIXED;
        for _ in 0..FIXED_PROPERTIES {
            let count = end.saturating_sub(next);
            let rsp = self.get_capability(cap::TPM_PROPERTIES, next, count)?;
            let CapabilityData::Properties(list) = rsp.data else {
                return Err(Error::Incomplete(
                    "TPM_CAP_TPM_PROPERTIES answered with another capability",
                ));
            };
            let more = rsp.more_data;
            let Some(last) = props.absorb(&list) else {
                break;
            };
            if !more || last < next || last.saturating_add(1) >= end {
                break;
            }
            next = last.saturating_add(1);
        }
        Ok(props)
    }

    /// Fill `out` from TPM2_GetRandom (Part 3 §16.1), in as many rounds as needed.
    pub fn get_random(&mut self, out: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0usize;
        while filled < out.len() {
            let want = u16::try_from(out.len().saturating_sub(filled).min(64)).unwrap_or(64);
            let rsp = self.run(|b| command::get_random(b, want))?;
            let bytes = response::get_random(rsp)?;
            if bytes.is_empty() || bytes.len() > usize::from(want) {
                return Err(Error::Incomplete(
                    "TPM2_GetRandom returned no or too many bytes",
                ));
            }
            let end = filled.saturating_add(bytes.len());
            if let Some(dst) = out.get_mut(filled..end) {
                dst.copy_from_slice(bytes);
            }
            filled = end;
        }
        Ok(())
    }

    /// One TPM2_PCR_Read round (Part 3 §22.4): the TPM returns what fits, at most eight.
    pub fn pcr_read(&mut self, selection: &[(HashAlg, u32)]) -> Result<PcrReadResponse<'_>, Error> {
        let rsp = self.run(|b| command::pcr_read(b, selection))?;
        response::pcr_read(rsp)
    }

    /// Read every PCR in `selection` into `out`, issuing TPM2_PCR_Read rounds until each has
    /// been read. Should a PCR be extended between rounds (`pcrUpdateCounter` moves), the read
    /// starts over, a few times at most, so the values are from one moment. Returns the
    /// `pcrUpdateCounter` of that moment.
    pub fn read_pcrs(
        &mut self,
        selection: &[(HashAlg, u32)],
        out: &mut PcrSet,
    ) -> Result<u32, Error> {
        let mut wanted: heapless::Vec<(HashAlg, u32), BANKS> = heapless::Vec::new();
        for (alg, mask) in selection.iter().filter(|(_, m)| *m != 0) {
            match wanted.iter_mut().find(|(a, _)| a == alg) {
                Some((_, m)) => *m |= *mask,
                None => {
                    // At most one entry per known hash, so this cannot overflow.
                    let _ = wanted.push((*alg, *mask));
                }
            }
        }
        let total: u32 = wanted.iter().map(|(_, m)| m.count_ones()).sum();
        let mut restarts = 0u32;
        'restart: loop {
            let mut remaining = wanted.clone();
            let mut counter: Option<u32> = None;
            for _ in 0..=total {
                if remaining.iter().all(|(_, m)| *m == 0) {
                    return Ok(counter.unwrap_or(0));
                }
                let ask: heapless::Vec<(HashAlg, u32), BANKS> =
                    remaining.iter().copied().filter(|(_, m)| *m != 0).collect();
                let rsp = self.pcr_read(&ask)?;
                if counter.is_some_and(|c| c != rsp.update_counter) {
                    restarts = restarts.saturating_add(1);
                    if restarts > MAX_PCR_RESTARTS {
                        return Err(Error::Incomplete("PCRs kept changing while they were read"));
                    }
                    continue 'restart;
                }
                counter = Some(rsp.update_counter);
                let mut progress = false;
                for (alg, pcr, value) in rsp.values() {
                    let bit = 1u32.checked_shl(u32::from(pcr)).unwrap_or(0);
                    let slot = remaining
                        .iter_mut()
                        .find(|(a, m)| *a == alg && *m & bit != 0)
                        .ok_or(Error::Incomplete(
                            "TPM2_PCR_Read returned a PCR that was not asked for",
                        ))?;
                    slot.1 &= !bit;
                    if !out.set(alg, pcr, value) {
                        return Err(Error::Incomplete("more PCR banks than a PcrSet holds"));
                    }
                    progress = true;
                }
                if !progress {
                    let (alg, mask) = ask.first().copied().unwrap_or((HashAlg::Sha256, 0));
                    return Err(Error::PcrNotRead {
                        bank: alg.id(),
                        mask,
                    });
                }
            }
            return Err(Error::Incomplete("TPM2_PCR_Read made no progress"));
        }
    }

    /// TPM2_PCR_Extend (Part 3 §22.2): extend PCR `pcr` with one digest per bank.
    pub fn pcr_extend(&mut self, pcr: u32, digests: &[Digest]) -> Result<(), Error> {
        let rsp = self.run(|b| command::pcr_extend(b, pcr, digests))?;
        response::pcr_extend(rsp)
    }

    /// TPM2_PCR_Reset (Part 3 §22.8).
    pub fn pcr_reset(&mut self, pcr: u32) -> Result<(), Error> {
        let rsp = self.run(|b| command::pcr_reset(b, pcr))?;
        response::pcr_reset(rsp)
    }

    /// TPM2_CreatePrimary (Part 3 §24.1) from a `TPMT_PUBLIC` template (e.g.
    /// [`super::AkTemplate::public`]). Flush the handle when done with it.
    pub fn create_primary(
        &mut self,
        hierarchy: Hierarchy,
        template: &[u8],
    ) -> Result<CreatePrimaryResponse<'_>, Error> {
        let rsp = self.run(|b| command::create_primary(b, hierarchy.handle(), template))?;
        response::create_primary(rsp)
    }

    /// TPM2_ReadPublic (Part 3 §12.4).
    pub fn read_public(&mut self, handle: u32) -> Result<ReadPublicResponse<'_>, Error> {
        let rsp = self.run(|b| command::read_public(b, handle))?;
        response::read_public(rsp)
    }

    /// TPM2_Quote (Part 3 §18.4) over `selection` with `nonce` as `qualifyingData`, signed
    /// with the key's own scheme.
    pub fn quote(
        &mut self,
        sign_handle: u32,
        nonce: &[u8],
        selection: &[(HashAlg, u32)],
    ) -> Result<QuoteResponse<'_>, Error> {
        let rsp = self.run(|b| command::quote(b, sign_handle, nonce, selection))?;
        response::quote(rsp)
    }

    /// TPM2_FlushContext (Part 3 §28.4).
    pub fn flush_context(&mut self, handle: u32) -> Result<(), Error> {
        let rsp = self.run(|b| command::flush_context(b, handle))?;
        response::flush_context(rsp)
    }

    /// TPM2_NV_ReadPublic (Part 3 §31.6). A missing index is `TPM_RC_HANDLE`.
    pub fn nv_read_public(&mut self, nv_index: u32) -> Result<NvReadPublicResponse<'_>, Error> {
        let rsp = self.run(|b| command::nv_read_public(b, nv_index))?;
        response::nv_read_public(rsp)
    }

    /// One TPM2_NV_Read (Part 3 §31.13) of at most the TPM's `TPM_PT_NV_BUFFER_MAX` bytes.
    pub fn nv_read(
        &mut self,
        auth_handle: u32,
        nv_index: u32,
        offset: u16,
        size: u16,
    ) -> Result<&[u8], Error> {
        let rsp = self.run(|b| command::nv_read(b, auth_handle, nv_index, size, offset))?;
        response::nv_read(rsp)
    }

    /// Read a whole NV index into `out` in chunks of at most `chunk` bytes (the TPM's
    /// `TPM_PT_NV_BUFFER_MAX`; 0 for [`DEFAULT_NV_CHUNK`]). Returns the index's size.
    pub fn nv_read_all(
        &mut self,
        auth_handle: u32,
        nv_index: u32,
        chunk: u16,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let size = usize::from(self.nv_read_public(nv_index)?.public.data_size);
        let capacity = out.len();
        let dst = out.get_mut(..size).ok_or(BufferTooSmall {
            needed: size,
            capacity,
        })?;
        let chunk = if chunk == 0 { DEFAULT_NV_CHUNK } else { chunk };
        let mut offset = 0usize;
        while offset < size {
            let n = usize::from(chunk).min(size.saturating_sub(offset));
            let off16 = u16::try_from(offset).unwrap_or(u16::MAX);
            let n16 = u16::try_from(n).unwrap_or(u16::MAX);
            let data = self.nv_read(auth_handle, nv_index, off16, n16)?;
            if data.len() != n {
                return Err(Error::Incomplete(
                    "TPM2_NV_Read returned fewer bytes than asked",
                ));
            }
            let end = offset.saturating_add(n);
            if let Some(d) = dst.get_mut(offset..end) {
                d.copy_from_slice(data);
            }
            offset = end;
        }
        Ok(size)
    }

    /// TPM2_StartAuthSession (Part 3 §11.1): an unsalted, unbound session of `session_type`
    /// with `nonce_caller` (16 bytes up to the `auth_hash` digest size) and no parameter
    /// encryption. Flush the handle unless a command ends the session.
    pub fn start_auth_session(
        &mut self,
        session_type: SessionType,
        nonce_caller: &[u8],
        auth_hash: HashAlg,
    ) -> Result<StartAuthSessionResponse<'_>, Error> {
        let rsp =
            self.run(|b| command::start_auth_session(b, session_type, nonce_caller, auth_hash))?;
        response::start_auth_session(rsp)
    }

    /// TPM2_PolicySecret (Part 3 §23.4) with `auth_handle`'s empty password, no nonce, cpHash
    /// or policyRef, and no expiration.
    pub fn policy_secret(
        &mut self,
        auth_handle: u32,
        policy_session: u32,
    ) -> Result<PolicySecretResponse<'_>, Error> {
        let rsp = self.run(|b| command::policy_secret(b, auth_handle, policy_session))?;
        response::policy_secret(rsp)
    }

    /// TPM2_ActivateCredential (Part 3 §12.5): the credential in `credential_blob` (the
    /// `TPM2B_ID_OBJECT` contents) and `secret` (the `TPM2B_ENCRYPTED_SECRET` contents), for
    /// the object `activate_handle` (empty password) under the EK `key_handle` authorized by
    /// `policy_session`. On success the TPM has ended the policy session; on failure flush it.
    pub fn activate_credential(
        &mut self,
        activate_handle: u32,
        key_handle: u32,
        policy_session: u32,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<&[u8], Error> {
        let rsp = self.run(|b| {
            command::activate_credential(
                b,
                activate_handle,
                key_handle,
                policy_session,
                credential_blob,
                secret,
            )
        })?;
        response::activate_credential(rsp)
    }

    /// The EK's policy (TPM2_PolicySecret(`TPM_RH_ENDORSEMENT`)) in a fresh policy session
    /// started with `nonce_caller`; returns the session handle, ready for
    /// [`Tpm::activate_credential`]. The session is flushed if the policy fails.
    pub fn ek_policy_session(&mut self, nonce_caller: &[u8]) -> Result<u32, Error> {
        let session = self
            .start_auth_session(SessionType::Policy, nonce_caller, HashAlg::Sha256)?
            .handle;
        if let Err(e) = self.policy_secret(super::rh::ENDORSEMENT, session) {
            let _ = self.flush_context(session);
            return Err(e);
        }
        Ok(session)
    }

    /// TPM2_Create (Part 3 §12.1) of a child of the storage key `parent` (e.g. a primary key
    /// from [`super::SRK_RSA2048`]) from a `TPMT_PUBLIC` template (e.g.
    /// [`super::BINDING_KEY_RSA2048`]). The object is returned, not loaded: see
    /// [`Tpm::load`].
    pub fn create(&mut self, parent: u32, template: &[u8]) -> Result<CreateResponse<'_>, Error> {
        let rsp = self.run(|b| command::create(b, parent, template))?;
        response::create(rsp)
    }

    /// TPM2_Load (Part 3 §12.2) under `parent` of an object made by TPM2_Create: `private`
    /// the contents of its `TPM2B_PRIVATE`, `public` its `TPMT_PUBLIC` (no size fields).
    /// Flush the handle when done with it.
    pub fn load(
        &mut self,
        parent: u32,
        private: &[u8],
        public: &[u8],
    ) -> Result<LoadResponse<'_>, Error> {
        let rsp = self.run(|b| command::load(b, parent, private, public))?;
        response::load(rsp)
    }

    /// TPM2_Certify (Part 3 §18.2): `sign_handle` (an AK) certifies the loaded object
    /// `object_handle`, with `nonce` as `qualifyingData`, signed with the AK's own scheme.
    pub fn certify(
        &mut self,
        object_handle: u32,
        sign_handle: u32,
        nonce: &[u8],
    ) -> Result<CertifyResponse<'_>, Error> {
        let rsp = self.run(|b| command::certify(b, object_handle, sign_handle, nonce))?;
        response::certify(rsp)
    }

    /// TPM2_RSA_Decrypt (Part 3 §14.2) with RSAES-OAEP over `hash` and OAEP `label` (empty
    /// for none): the plaintext.
    pub fn rsa_decrypt(
        &mut self,
        key_handle: u32,
        ciphertext: &[u8],
        hash: HashAlg,
        label: &[u8],
    ) -> Result<&[u8], Error> {
        let rsp = self.run(|b| command::rsa_decrypt(b, key_handle, ciphertext, hash, label))?;
        response::rsa_decrypt(rsp)
    }
}
