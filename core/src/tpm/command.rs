//! Command encoding (TPM 2.0 Library Part 3): each function writes one whole command into the
//! caller's buffer and returns its length. Nothing is allocated; a buffer too small for the
//! command is a [`BufferTooSmall`] error, never a panic.
//!
//! Commands with an authorization area carry one password session (`TPM_RS_PW`, Part 1 §19.8.4)
//! with an empty password: enough for keys made with `userWithAuth` and an empty `authValue`,
//! hierarchies whose authorization is empty, and NV indices with `TPMA_NV_AUTHREAD`.

use crate::alg::{Digest, HashAlg};
use crate::codec::{BufferTooSmall, Writer};

use super::{cc, rh, st, TPM_RS_PW};

type Result<T> = core::result::Result<T, BufferTooSmall>;

/// `TPM_SU` (Part 2 §6.5): the `startupType` of TPM2_Startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartupType {
    /// `TPM_SU_CLEAR`: TPM Reset or TPM Restart.
    Clear,
    /// `TPM_SU_STATE`: TPM Resume after TPM2_Shutdown(STATE).
    State,
}

/// `TPM_SE` (Part 2 §6.11): the `sessionType` of TPM2_StartAuthSession.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionType {
    /// `TPM_SE_HMAC`.
    Hmac,
    /// `TPM_SE_POLICY`.
    Policy,
    /// `TPM_SE_TRIAL`: computes a policy digest, authorizes nothing.
    Trial,
}

impl SessionType {
    pub const fn value(self) -> u8 {
        match self {
            SessionType::Hmac => 0x00,
            SessionType::Policy => 0x01,
            SessionType::Trial => 0x03,
        }
    }
}

/// Write a command: header (tag, size filled in at the end, code), then `body`.
fn emit(
    buf: &mut [u8],
    tag: u16,
    code: u32,
    body: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<usize> {
    let len = {
        let mut w = Writer::new(buf);
        w.u16_be(tag)?;
        w.u32_be(0)?;
        w.u32_be(code)?;
        body(&mut w)?;
        w.len()
    };
    let size = u32::try_from(len).map_err(|_| BufferTooSmall {
        needed: len,
        capacity: u32::MAX as usize,
    })?;
    if let Some(field) = buf.get_mut(2..6) {
        field.copy_from_slice(&size.to_be_bytes());
    }
    Ok(len)
}

/// The authorization area with one empty password session: `authorizationSize`, then
/// `TPMS_AUTH_COMMAND` { `TPM_RS_PW`, empty nonce, `continueSession`, empty hmac }.
fn password_session(w: &mut Writer<'_>) -> Result<()> {
    w.u32_be(9)?;
    w.u32_be(TPM_RS_PW)?;
    w.u16_be(0)?;
    w.u8(0x01)?;
    w.u16_be(0)
}

/// One `TPMS_AUTH_COMMAND` for a policy session that needs no HMAC (no PolicyAuthValue or
/// PolicyPassword): the handle, empty nonce, `sessionAttributes` and empty hmac.
fn policy_auth(w: &mut Writer<'_>, session: u32, continue_session: bool) -> Result<()> {
    w.u32_be(session)?;
    w.u16_be(0)?;
    w.u8(u8::from(continue_session))?;
    w.u16_be(0)
}

/// `TPMS_PCR_SELECT.sizeofSelect` for a mask: 3 bytes (`PCR_SELECT_MIN`, 24 PCRs) unless a
/// PCR above 23 is selected.
fn select_size(mask: u32) -> u8 {
    if mask >> 24 == 0 {
        3
    } else {
        4
    }
}

/// A `TPML_PCR_SELECTION` from (bank, PCR mask) pairs, in the order given.
pub fn write_pcr_selection(w: &mut Writer<'_>, banks: &[(HashAlg, u32)]) -> Result<()> {
    let count = u32::try_from(banks.len()).map_err(|_| BufferTooSmall {
        needed: banks.len(),
        capacity: u32::MAX as usize,
    })?;
    w.u32_be(count)?;
    for (alg, mask) in banks {
        w.u16_be(alg.id())?;
        let size = select_size(*mask);
        w.u8(size)?;
        let bytes = mask.to_le_bytes();
        w.bytes(bytes.get(..usize::from(size)).unwrap_or(&bytes))?;
    }
    Ok(())
}

/// TPM2_Startup (Part 3 §9.3).
pub fn startup(buf: &mut [u8], su: StartupType) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::STARTUP, |w| {
        w.u16_be(match su {
            StartupType::Clear => 0x0000,
            StartupType::State => 0x0001,
        })
    })
}

/// TPM2_Shutdown (Part 3 §9.4).
pub fn shutdown(buf: &mut [u8], su: StartupType) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::SHUTDOWN, |w| {
        w.u16_be(match su {
            StartupType::Clear => 0x0000,
            StartupType::State => 0x0001,
        })
    })
}

/// TPM2_GetCapability (Part 3 §30.2): `capability` (`TPM_CAP`), the first `property`, and at
/// most `count` values.
pub fn get_capability(buf: &mut [u8], capability: u32, property: u32, count: u32) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::GET_CAPABILITY, |w| {
        w.u32_be(capability)?;
        w.u32_be(property)?;
        w.u32_be(count)
    })
}

/// TPM2_GetRandom (Part 3 §16.1).
pub fn get_random(buf: &mut [u8], bytes_requested: u16) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::GET_RANDOM, |w| {
        w.u16_be(bytes_requested)
    })
}

/// TPM2_PCR_Read (Part 3 §22.4). The TPM reads what fits its response (at most eight digests)
/// and says which in `pcrSelectionOut`; [`super::Tpm::read_pcrs`] issues the rounds.
pub fn pcr_read(buf: &mut [u8], selection: &[(HashAlg, u32)]) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::PCR_READ, |w| {
        write_pcr_selection(w, selection)
    })
}

/// TPM2_PCR_Extend (Part 3 §22.2): extend PCR `pcr` with one digest per bank
/// (`TPML_DIGEST_VALUES`); banks not listed are left alone.
pub fn pcr_extend(buf: &mut [u8], pcr: u32, digests: &[Digest]) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::PCR_EXTEND, |w| {
        w.u32_be(pcr)?;
        password_session(w)?;
        let count = u32::try_from(digests.len()).map_err(|_| BufferTooSmall {
            needed: digests.len(),
            capacity: u32::MAX as usize,
        })?;
        w.u32_be(count)?;
        for d in digests {
            w.u16_be(d.alg().id())?;
            w.bytes(d.as_bytes())?;
        }
        Ok(())
    })
}

/// TPM2_PCR_Reset (Part 3 §22.8): set PCR `pcr` to its reset value in every bank. Only PCRs
/// resettable at the current locality qualify (PCR 16, the debug PCR, and PCR 23 at locality 0).
pub fn pcr_reset(buf: &mut [u8], pcr: u32) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::PCR_RESET, |w| {
        w.u32_be(pcr)?;
        password_session(w)
    })
}

/// TPM2_CreatePrimary (Part 3 §24.1) in hierarchy `primary_handle` (`TPM_RH_OWNER`,
/// `TPM_RH_ENDORSEMENT`, …) from `template`, a marshaled `TPMT_PUBLIC` (e.g.
/// [`super::AkTemplate::public`]), with an empty `userAuth`, no sensitive data, no
/// `outsideInfo` and no creation PCRs.
pub fn create_primary(buf: &mut [u8], primary_handle: u32, template: &[u8]) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::CREATE_PRIMARY, |w| {
        w.u32_be(primary_handle)?;
        password_session(w)?;
        // TPM2B_SENSITIVE_CREATE { TPMS_SENSITIVE_CREATE { userAuth: empty, data: empty } }
        w.u16_be(4)?;
        w.u16_be(0)?;
        w.u16_be(0)?;
        w.tpm2b(template)?;
        // outsideInfo
        w.u16_be(0)?;
        // creationPCR
        w.u32_be(0)
    })
}

/// TPM2_ReadPublic (Part 3 §12.4).
pub fn read_public(buf: &mut [u8], object: u32) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::READ_PUBLIC, |w| w.u32_be(object))
}

/// TPM2_Quote (Part 3 §18.4) with key `sign_handle`, `qualifyingData` = `nonce`, the key's own
/// scheme (`inScheme` = `TPM_ALG_NULL`) and the PCRs in `selection`.
pub fn quote(
    buf: &mut [u8],
    sign_handle: u32,
    nonce: &[u8],
    selection: &[(HashAlg, u32)],
) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::QUOTE, |w| {
        w.u32_be(sign_handle)?;
        password_session(w)?;
        w.tpm2b(nonce)?;
        w.u16_be(crate::alg::id::NULL)?;
        write_pcr_selection(w, selection)
    })
}

/// TPM2_FlushContext (Part 3 §28.4). The handle is a parameter, not in the handle area.
pub fn flush_context(buf: &mut [u8], handle: u32) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::FLUSH_CONTEXT, |w| {
        w.u32_be(handle)
    })
}

/// TPM2_NV_ReadPublic (Part 3 §31.6).
pub fn nv_read_public(buf: &mut [u8], nv_index: u32) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::NV_READ_PUBLIC, |w| {
        w.u32_be(nv_index)
    })
}

/// TPM2_NV_Read (Part 3 §31.13): `size` bytes at `offset`, authorized by `auth_handle` (the
/// index itself, `TPM_RH_OWNER` or `TPM_RH_PLATFORM`) with an empty password.
pub fn nv_read(
    buf: &mut [u8],
    auth_handle: u32,
    nv_index: u32,
    size: u16,
    offset: u16,
) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::NV_READ, |w| {
        w.u32_be(auth_handle)?;
        w.u32_be(nv_index)?;
        password_session(w)?;
        w.u16_be(size)?;
        w.u16_be(offset)
    })
}

/// TPM2_StartAuthSession (Part 3 §11.1) of `session_type` with no salt (`tpmKey` =
/// `TPM_RH_NULL`, empty `encryptedSalt`), unbound (`bind` = `TPM_RH_NULL`), `nonceCaller` =
/// `nonce_caller` (the TPM wants 16 bytes up to the digest size of `auth_hash`), no parameter
/// encryption (`symmetric` = `TPM_ALG_NULL`).
pub fn start_auth_session(
    buf: &mut [u8],
    session_type: SessionType,
    nonce_caller: &[u8],
    auth_hash: HashAlg,
) -> Result<usize> {
    emit(buf, st::NO_SESSIONS, cc::START_AUTH_SESSION, |w| {
        w.u32_be(rh::NULL)?;
        w.u32_be(rh::NULL)?;
        w.tpm2b(nonce_caller)?;
        // encryptedSalt: empty
        w.u16_be(0)?;
        w.u8(session_type.value())?;
        // symmetric: TPM_ALG_NULL (no keyBits or mode follow)
        w.u16_be(crate::alg::id::NULL)?;
        w.u16_be(auth_hash.id())
    })
}

/// TPM2_PolicySecret (Part 3 §23.4): assert in `policy_session` that the caller knows the
/// authorization of `auth_handle` (e.g. `TPM_RH_ENDORSEMENT`, which the TCG EK policy names),
/// given with an empty password; empty `nonceTPM`, `cpHashA` and `policyRef`, `expiration` 0.
pub fn policy_secret(buf: &mut [u8], auth_handle: u32, policy_session: u32) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::POLICY_SECRET, |w| {
        w.u32_be(auth_handle)?;
        w.u32_be(policy_session)?;
        password_session(w)?;
        // nonceTPM, cpHashA, policyRef: empty
        w.u16_be(0)?;
        w.u16_be(0)?;
        w.u16_be(0)?;
        // expiration
        w.u32_be(0)
    })
}

/// TPM2_ActivateCredential (Part 3 §12.5): recover the credential wrapped for the object
/// `activate_handle` (the AK, authorized with an empty password) by the protector
/// `key_handle` (the EK, authorized by `policy_session`, which the TPM flushes afterwards:
/// `continueSession` clear). `credential_blob` is the contents of the `TPM2B_ID_OBJECT` and
/// `secret` of the `TPM2B_ENCRYPTED_SECRET`, both without their size fields.
pub fn activate_credential(
    buf: &mut [u8],
    activate_handle: u32,
    key_handle: u32,
    policy_session: u32,
    credential_blob: &[u8],
    secret: &[u8],
) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::ACTIVATE_CREDENTIAL, |w| {
        w.u32_be(activate_handle)?;
        w.u32_be(key_handle)?;
        // authorizationSize: two TPMS_AUTH_COMMANDs of 9 bytes each.
        w.u32_be(18)?;
        w.u32_be(TPM_RS_PW)?;
        w.u16_be(0)?;
        w.u8(0x01)?;
        w.u16_be(0)?;
        policy_auth(w, policy_session, false)?;
        w.tpm2b(credential_blob)?;
        w.tpm2b(secret)
    })
}

/// Two empty password sessions (`authorizationSize` 18), for commands with two authorized
/// handles.
fn two_password_sessions(w: &mut Writer<'_>) -> Result<()> {
    w.u32_be(18)?;
    for _ in 0..2 {
        w.u32_be(TPM_RS_PW)?;
        w.u16_be(0)?;
        w.u8(0x01)?;
        w.u16_be(0)?;
    }
    Ok(())
}

/// TPM2_Create (Part 3 §12.1): a child object of the storage key `parent_handle` (authorized
/// with an empty password) from `template`, a marshaled `TPMT_PUBLIC` (e.g.
/// [`super::BINDING_KEY_RSA2048`]), with an empty `userAuth`, no sensitive data, no
/// `outsideInfo` and no creation PCRs. The object is not loaded: see [`load`].
pub fn create(buf: &mut [u8], parent_handle: u32, template: &[u8]) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::CREATE, |w| {
        w.u32_be(parent_handle)?;
        password_session(w)?;
        // TPM2B_SENSITIVE_CREATE { TPMS_SENSITIVE_CREATE { userAuth: empty, data: empty } }
        w.u16_be(4)?;
        w.u16_be(0)?;
        w.u16_be(0)?;
        w.tpm2b(template)?;
        // outsideInfo
        w.u16_be(0)?;
        // creationPCR
        w.u32_be(0)
    })
}

/// TPM2_Load (Part 3 §12.2) of an object made by TPM2_Create under `parent_handle` (empty
/// password). `private` is the contents of its `TPM2B_PRIVATE` and `public` its `TPMT_PUBLIC`
/// (the contents of the `TPM2B_PUBLIC`), both without their size fields.
pub fn load(buf: &mut [u8], parent_handle: u32, private: &[u8], public: &[u8]) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::LOAD, |w| {
        w.u32_be(parent_handle)?;
        password_session(w)?;
        w.tpm2b(private)?;
        w.tpm2b(public)
    })
}

/// TPM2_Certify (Part 3 §18.2): the TPM signs, with `sign_handle` (an AK), a
/// `TPMS_ATTEST` of type `TPM_ST_ATTEST_CERTIFY` stating the Name of the loaded object
/// `object_handle`, with `qualifyingData` = `nonce` and the signing key's own scheme
/// (`inScheme` = `TPM_ALG_NULL`). Both handles are authorized with an empty password: the
/// object in the ADMIN role (a key without `adminWithPolicy`), the AK in the USER role.
pub fn certify(
    buf: &mut [u8],
    object_handle: u32,
    sign_handle: u32,
    nonce: &[u8],
) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::CERTIFY, |w| {
        w.u32_be(object_handle)?;
        w.u32_be(sign_handle)?;
        two_password_sessions(w)?;
        w.tpm2b(nonce)?;
        w.u16_be(crate::alg::id::NULL)
    })
}

/// TPM2_RSA_Decrypt (Part 3 §14.2) of `ciphertext` with the loaded RSA decryption key
/// `key_handle` (empty password), scheme RSAES-OAEP with `hash` for both the OAEP digest and
/// MGF1, and OAEP label `label` (empty: no label; otherwise it must end with a zero byte,
/// Part 1 Annex B.4, which the encrypting side includes in the label).
pub fn rsa_decrypt(
    buf: &mut [u8],
    key_handle: u32,
    ciphertext: &[u8],
    hash: HashAlg,
    label: &[u8],
) -> Result<usize> {
    emit(buf, st::SESSIONS, cc::RSA_DECRYPT, |w| {
        w.u32_be(key_handle)?;
        password_session(w)?;
        w.tpm2b(ciphertext)?;
        // inScheme: TPMT_RSA_DECRYPT { TPM_ALG_OAEP, hashAlg }
        w.u16_be(crate::alg::id::OAEP)?;
        w.u16_be(hash.id())?;
        w.tpm2b(label)
    })
}
