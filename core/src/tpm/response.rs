//! Response decoding (TPM 2.0 Library Part 3): each function takes one whole response as the
//! transport returned it and gives a checked view borrowing from it. The header is checked
//! first (`responseSize` equal to the bytes received, a tag matching the command's), then the
//! response code, then every field; bytes left over anywhere are an error.

use crate::alg::{HashAlg, MAX_DIGEST_SIZE};
use crate::attest::{Attest, MAX_ATTEST_SIZE, MAX_NAME_SIZE};
use crate::codec::{ErrorKind, Reader};
use crate::pcr::PcrSelection;
use crate::public::{Public, MAX_PUBLIC_SIZE};
use crate::signature::Signature;

use super::{cap, st, Error, ResponseCode};

type Result<T> = core::result::Result<T, Error>;

/// Size of the response header: tag, `responseSize`, `responseCode`.
pub const HEADER_SIZE: usize = 10;
/// TPM 1.2 `TPM_TAG_RSP_COMMAND`: some TPM 2.0 devices answer a malformed command with it.
pub const TPM12_TAG_RSP_COMMAND: u16 = 0x00C4;
/// Largest `TPML_DIGEST.count` (Part 2 §10.9.2: at most eight digests).
pub const MAX_DIGEST_LIST: usize = 8;
/// Bound on `TPM2B_CREATION_DATA` (a `TPMS_CREATION_DATA` with a full PCR selection, digest,
/// names and `outsideInfo`).
pub const MAX_CREATION_DATA_SIZE: usize = 1024;
/// Bound on a `TPM2B_MAX_NV_BUFFER` (`MAX_NV_BUFFER_SIZE` of the largest TPMs).
pub const MAX_NV_BUFFER_SIZE: usize = 2048;
/// Bound on a `TPM2B_NV_PUBLIC`.
pub const MAX_NV_PUBLIC_SIZE: usize = 2 + 4 + 2 + 4 + 2 + MAX_DIGEST_SIZE + 2;
/// Largest `TPML_TAGGED_TPM_PROPERTY.count` (`MAX_TPM_PROPERTIES` for a 4 KiB response).
pub const MAX_TPM_PROPERTIES: usize = 1024 / 8;
/// Bound on a `TPM2B_PRIVATE` (`sizeof(_PRIVATE)`: integrity HMAC, IV and the encrypted
/// sensitive area of the largest key, an RSA-4096 key with its CRT values).
pub const MAX_PRIVATE_SIZE: usize = 2048;
/// Bound on a `TPM2B_PUBLIC_KEY_RSA` (`MAX_RSA_KEY_BYTES`).
pub const MAX_RSA_MESSAGE_SIZE: usize = crate::public::MAX_RSA_KEY_BYTES;
/// Largest nonce or HMAC in a response session.
const MAX_SESSION_BUFFER: usize = MAX_DIGEST_SIZE;

/// The response code of a response, without decoding anything else (`None` when shorter than
/// the header). The driver looks here for warnings worth a retry.
pub fn peek_code(rsp: &[u8]) -> Option<ResponseCode> {
    let b = rsp.get(6..HEADER_SIZE)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(ResponseCode(u32::from_be_bytes(a)))
}

/// A decoded response: the handle it returns (if any) and a reader over its parameters.
#[derive(Debug, Clone)]
pub struct Body<'a> {
    /// The handle area (only TPM2_CreatePrimary, TPM2_Load, … return one).
    pub handle: Option<u32>,
    /// The parameter area, with offsets from the start of the response.
    pub params: Reader<'a>,
}

/// Check the header and split a response into its handle and parameter areas.
///
/// `handles` is how many handles the command returns (0 or 1), `sessions` how many
/// authorization sessions the command carried (then the response has `TPM_ST_SESSIONS`, a
/// `parameterSize` and as many `TPMS_AUTH_RESPONSE`s). `name` names the structure in errors.
pub fn parse<'a>(
    rsp: &'a [u8],
    handles: usize,
    sessions: usize,
    name: &'static str,
) -> Result<Body<'a>> {
    let mut r = Reader::new(rsp, name);
    let tag_at = r.offset();
    let tag = r.u16_be("tag").map_err(Error::Response)?;
    let size_at = r.offset();
    let size = r.u32_be("responseSize").map_err(Error::Response)?;
    let code = ResponseCode(r.u32_be("responseCode").map_err(Error::Response)?);
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size != rsp.len() {
        let kind = if size > rsp.len() {
            ErrorKind::Truncated {
                needed: size,
                available: rsp.len(),
            }
        } else {
            ErrorKind::TrailingBytes {
                count: rsp.len().saturating_sub(size),
            }
        };
        return Err(Error::Response(r.error_at(kind, "responseSize", size_at)));
    }
    let expected_tag = if sessions == 0 {
        st::NO_SESSIONS
    } else {
        st::SESSIONS
    };
    let tag_ok = if code.is_success() {
        tag == expected_tag
    } else {
        // Error responses carry no sessions; TPM 1.2-style codes may come with a 1.2 tag.
        matches!(tag, st::NO_SESSIONS | st::SESSIONS | TPM12_TAG_RSP_COMMAND)
    };
    if !tag_ok {
        return Err(Error::Response(r.error_at(
            ErrorKind::InvalidValue {
                value: u64::from(tag),
            },
            "tag",
            tag_at,
        )));
    }
    if !code.is_success() {
        return Err(Error::Tpm(code));
    }
    let handle = match handles {
        0 => None,
        _ => Some(r.u32_be("handle").map_err(Error::Response)?),
    };
    let params = if sessions == 0 {
        let n = r.remaining();
        r.sub(n, "parameters", name).map_err(Error::Response)?
    } else {
        let at = r.offset();
        let psize = usize::try_from(r.u32_be("parameterSize").map_err(Error::Response)?)
            .unwrap_or(usize::MAX);
        if psize > r.remaining() {
            return Err(Error::Response(r.error_at(
                ErrorKind::Truncated {
                    needed: psize,
                    available: r.remaining(),
                },
                "parameterSize",
                at,
            )));
        }
        let p = r.sub(psize, "parameters", name).map_err(Error::Response)?;
        for _ in 0..sessions {
            r.tpm2b(MAX_SESSION_BUFFER, "TPMS_AUTH_RESPONSE.nonce")
                .map_err(Error::Response)?;
            r.u8("TPMS_AUTH_RESPONSE.sessionAttributes")
                .map_err(Error::Response)?;
            r.tpm2b(MAX_SESSION_BUFFER, "TPMS_AUTH_RESPONSE.hmac")
                .map_err(Error::Response)?;
        }
        r.finish().map_err(Error::Response)?;
        p
    };
    Ok(Body { handle, params })
}

fn finish(r: &Reader<'_>) -> Result<()> {
    r.finish().map_err(Error::Response)
}

/// A response with no parameters: TPM2_Startup, TPM2_Shutdown, TPM2_FlushContext
/// (no sessions) or TPM2_PCR_Extend (one session).
pub fn empty(rsp: &[u8], sessions: usize, name: &'static str) -> Result<()> {
    let b = parse(rsp, 0, sessions, name)?;
    finish(&b.params)
}

/// TPM2_Startup (Part 3 §9.3).
pub fn startup(rsp: &[u8]) -> Result<()> {
    empty(rsp, 0, "TPM2_Startup response")
}

/// TPM2_FlushContext (Part 3 §28.4).
pub fn flush_context(rsp: &[u8]) -> Result<()> {
    empty(rsp, 0, "TPM2_FlushContext response")
}

/// TPM2_PCR_Extend (Part 3 §22.2).
pub fn pcr_extend(rsp: &[u8]) -> Result<()> {
    empty(rsp, 1, "TPM2_PCR_Extend response")
}

/// TPM2_PCR_Reset: no parameters.
pub fn pcr_reset(rsp: &[u8]) -> Result<()> {
    empty(rsp, 1, "TPM2_PCR_Reset response")
}

/// `TPML_TAGGED_TPM_PROPERTY`: (`TPM_PT`, value) pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaggedProperties<'a> {
    entries: &'a [u8],
}

impl<'a> TaggedProperties<'a> {
    pub fn len(&self) -> usize {
        self.entries.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (`property`, `value`) in the order the TPM gave them.
    pub fn iter(&self) -> impl Iterator<Item = (u32, u32)> + 'a {
        self.entries.chunks_exact(8).map(|c| {
            let mut p = [0u8; 4];
            let mut v = [0u8; 4];
            p.iter_mut().zip(c).for_each(|(o, i)| *o = *i);
            v.iter_mut()
                .zip(c.iter().skip(4))
                .for_each(|(o, i)| *o = *i);
            (u32::from_be_bytes(p), u32::from_be_bytes(v))
        })
    }

    /// The value of one property, if listed.
    pub fn get(&self, property: u32) -> Option<u32> {
        self.iter().find(|(p, _)| *p == property).map(|(_, v)| v)
    }
}

/// `TPMU_CAPABILITIES` for the capabilities trustpool reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilityData<'a> {
    /// `TPM_CAP_PCRS`: the allocated PCR banks.
    Pcrs(PcrSelection<'a>),
    /// `TPM_CAP_TPM_PROPERTIES`.
    Properties(TaggedProperties<'a>),
    /// Another capability, its bytes undecoded.
    Other { capability: u32, data: &'a [u8] },
}

/// TPM2_GetCapability's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetCapabilityResponse<'a> {
    /// `moreData`: more values exist beyond those returned.
    pub more_data: bool,
    pub data: CapabilityData<'a>,
}

fn read_bool(r: &mut Reader<'_>, field: &'static str) -> Result<bool> {
    let at = r.offset();
    match r.u8(field).map_err(Error::Response)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(Error::Response(r.error_at(
            ErrorKind::InvalidValue {
                value: u64::from(v),
            },
            field,
            at,
        ))),
    }
}

/// TPM2_GetCapability (Part 3 §30.2).
pub fn get_capability(rsp: &[u8]) -> Result<GetCapabilityResponse<'_>> {
    let mut b = parse(rsp, 0, 0, "TPM2_GetCapability response")?;
    let r = &mut b.params;
    let more_data = read_bool(r, "moreData")?;
    let capability = r
        .u32_be("capabilityData.capability")
        .map_err(Error::Response)?;
    let data = match capability {
        cap::PCRS => {
            r.set_structure("TPML_PCR_SELECTION");
            CapabilityData::Pcrs(PcrSelection::read(r).map_err(Error::Response)?)
        }
        cap::TPM_PROPERTIES => {
            r.set_structure("TPML_TAGGED_TPM_PROPERTY");
            let at = r.offset();
            let count =
                usize::try_from(r.u32_be("count").map_err(Error::Response)?).unwrap_or(usize::MAX);
            if count > MAX_TPM_PROPERTIES {
                return Err(Error::Response(r.error_at(
                    ErrorKind::TooLarge {
                        size: count,
                        max: MAX_TPM_PROPERTIES,
                    },
                    "count",
                    at,
                )));
            }
            let entries = r
                .take(count.saturating_mul(8), "tpmProperty")
                .map_err(Error::Response)?;
            CapabilityData::Properties(TaggedProperties { entries })
        }
        other => {
            let n = r.remaining();
            CapabilityData::Other {
                capability: other,
                data: r.take(n, "data").map_err(Error::Response)?,
            }
        }
    };
    finish(r)?;
    Ok(GetCapabilityResponse { more_data, data })
}

/// TPM2_GetRandom (Part 3 §16.1): the random bytes (`TPM2B_DIGEST`, at most 64).
pub fn get_random(rsp: &[u8]) -> Result<&[u8]> {
    let mut b = parse(rsp, 0, 0, "TPM2_GetRandom response")?;
    let bytes = b
        .params
        .tpm2b(MAX_DIGEST_SIZE, "randomBytes")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(bytes)
}

/// TPM2_PCR_Read's response: what the TPM read and the values, checked against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrReadResponse<'a> {
    /// `pcrUpdateCounter`: changes whenever a PCR is extended.
    pub update_counter: u32,
    /// `pcrSelectionOut`: the PCRs whose values follow.
    pub selection: PcrSelection<'a>,
    /// The marshaled `TPML_DIGEST.digests` (validated).
    digests: &'a [u8],
}

impl<'a> PcrReadResponse<'a> {
    /// (bank, PCR, value) in the order the TPM returned them (selection order).
    pub fn values(&self) -> impl Iterator<Item = (HashAlg, u8, &'a [u8])> + 'a {
        let mut r = Reader::new(self.digests, "TPML_DIGEST");
        self.selection.iter().map_while(move |(alg, pcr)| {
            let d = r.tpm2b(MAX_DIGEST_SIZE, "digests").ok()?;
            Some((HashAlg::from_id(alg)?, pcr, d))
        })
    }

    /// Number of values returned.
    pub fn len(&self) -> usize {
        self.selection.len()
    }

    pub fn is_empty(&self) -> bool {
        self.selection.is_empty()
    }
}

/// TPM2_PCR_Read (Part 3 §22.4). Every selected PCR must have exactly one digest, of its
/// bank's size, and every bank must be a hash this build knows.
pub fn pcr_read(rsp: &[u8]) -> Result<PcrReadResponse<'_>> {
    let mut b = parse(rsp, 0, 0, "TPM2_PCR_Read response")?;
    let r = &mut b.params;
    let update_counter = r.u32_be("pcrUpdateCounter").map_err(Error::Response)?;
    let sel_at = r.offset();
    let selection = PcrSelection::read(r).map_err(Error::Response)?;
    for bank in selection.banks() {
        if HashAlg::from_id(bank.alg).is_none() && !bank.select.iter().all(|b| *b == 0) {
            return Err(Error::Response(r.error_at(
                ErrorKind::UnknownAlgorithm { alg: bank.alg },
                "pcrSelectionOut.hash",
                sel_at,
            )));
        }
    }
    let count_at = r.offset();
    let count = usize::try_from(r.u32_be("pcrValues.count").map_err(Error::Response)?)
        .unwrap_or(usize::MAX);
    if count > MAX_DIGEST_LIST || count != selection.len() {
        return Err(Error::Response(r.error_at(
            ErrorKind::InvalidValue {
                value: count as u64,
            },
            "pcrValues.count",
            count_at,
        )));
    }
    let rest = r.rest();
    let start = r.position();
    for (alg, _) in selection.iter() {
        let at = r.offset();
        let d = r
            .tpm2b(MAX_DIGEST_SIZE, "pcrValues.digests")
            .map_err(Error::Response)?;
        if HashAlg::from_id(alg).map(HashAlg::size) != Some(d.len()) {
            return Err(Error::Response(r.error_at(
                ErrorKind::InvalidValue {
                    value: d.len() as u64,
                },
                "pcrValues.digests.size",
                at,
            )));
        }
    }
    let len = r.position().saturating_sub(start);
    finish(r)?;
    Ok(PcrReadResponse {
        update_counter,
        selection,
        digests: rest.get(..len).unwrap_or(&[]),
    })
}

/// TPM2_CreatePrimary's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatePrimaryResponse<'a> {
    /// The transient handle of the new object.
    pub handle: u32,
    /// `outPublic` as a whole `TPM2B_PUBLIC` (size prefix included), as
    /// `tpm2_readpublic -f tss` writes it.
    pub public: &'a [u8],
    /// The parsed `TPMT_PUBLIC`.
    pub public_area: Public<'a>,
    /// `creationData`, `creationHash` and `creationTicket` are checked but not kept; the
    /// object's Name.
    pub name: &'a [u8],
}

/// A `TPM2B_PUBLIC`: the whole bytes and the parsed area.
fn read_tpm2b_public<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<(&'a [u8], Public<'a>)> {
    let rest = r.rest();
    let at = r.offset();
    let size = usize::from(r.u16_be(field).map_err(Error::Response)?);
    if size > MAX_PUBLIC_SIZE {
        return Err(Error::Response(r.error_at(
            ErrorKind::TooLarge {
                size,
                max: MAX_PUBLIC_SIZE,
            },
            field,
            at,
        )));
    }
    let mut inner = r.sub(size, field, "TPMT_PUBLIC").map_err(Error::Response)?;
    let public = Public::read(&mut inner).map_err(Error::Response)?;
    inner.finish().map_err(Error::Response)?;
    let whole = rest.get(..size.saturating_add(2)).unwrap_or(&[]);
    Ok((whole, public))
}

/// TPM2_CreatePrimary (Part 3 §24.1).
pub fn create_primary(rsp: &[u8]) -> Result<CreatePrimaryResponse<'_>> {
    let mut b = parse(rsp, 1, 1, "TPM2_CreatePrimary response")?;
    let handle = b.handle.unwrap_or(0);
    let r = &mut b.params;
    let (public, public_area) = read_tpm2b_public(r, "outPublic")?;
    r.tpm2b(MAX_CREATION_DATA_SIZE, "creationData")
        .map_err(Error::Response)?;
    r.tpm2b(MAX_DIGEST_SIZE, "creationHash")
        .map_err(Error::Response)?;
    r.u16_be("creationTicket.tag").map_err(Error::Response)?;
    r.u32_be("creationTicket.hierarchy")
        .map_err(Error::Response)?;
    r.tpm2b(MAX_DIGEST_SIZE, "creationTicket.digest")
        .map_err(Error::Response)?;
    let name = r.tpm2b(MAX_NAME_SIZE, "name").map_err(Error::Response)?;
    finish(r)?;
    Ok(CreatePrimaryResponse {
        handle,
        public,
        public_area,
        name,
    })
}

/// TPM2_ReadPublic's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPublicResponse<'a> {
    /// `outPublic` as a whole `TPM2B_PUBLIC`.
    pub public: &'a [u8],
    pub public_area: Public<'a>,
    pub name: &'a [u8],
    pub qualified_name: &'a [u8],
}

/// TPM2_ReadPublic (Part 3 §12.4).
pub fn read_public(rsp: &[u8]) -> Result<ReadPublicResponse<'_>> {
    let mut b = parse(rsp, 0, 0, "TPM2_ReadPublic response")?;
    let r = &mut b.params;
    let (public, public_area) = read_tpm2b_public(r, "outPublic")?;
    let name = r.tpm2b(MAX_NAME_SIZE, "name").map_err(Error::Response)?;
    let qualified_name = r
        .tpm2b(MAX_NAME_SIZE, "qualifiedName")
        .map_err(Error::Response)?;
    finish(r)?;
    Ok(ReadPublicResponse {
        public,
        public_area,
        name,
        qualified_name,
    })
}

/// TPM2_Quote's response: the signed `TPMS_ATTEST` and its `TPMT_SIGNATURE`, both checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteResponse<'a> {
    /// The `TPMS_ATTEST` (the contents of `quoted`, without the `TPM2B` size), as
    /// `tpm2_quote -m` writes it and [`crate::Quote::verify`] takes it.
    pub attest: &'a [u8],
    /// The `TPMT_SIGNATURE`, as `tpm2_quote -s` (`-f tss`) writes it.
    pub signature: &'a [u8],
    pub parsed: Attest<'a>,
}

/// TPM2_Quote (Part 3 §18.4).
pub fn quote(rsp: &[u8]) -> Result<QuoteResponse<'_>> {
    let mut b = parse(rsp, 0, 1, "TPM2_Quote response")?;
    let r = &mut b.params;
    let attest = r
        .tpm2b(MAX_ATTEST_SIZE, "quoted")
        .map_err(Error::Response)?;
    let parsed = Attest::parse(attest).map_err(Error::Response)?;
    let signature = r.rest();
    let start = r.position();
    Signature::read(r).map_err(Error::Response)?;
    let len = r.position().saturating_sub(start);
    finish(r)?;
    Ok(QuoteResponse {
        attest,
        signature: signature.get(..len).unwrap_or(&[]),
        parsed,
    })
}

/// `TPMS_NV_PUBLIC` (Part 2 §13.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvPublic<'a> {
    pub nv_index: u32,
    pub name_alg: u16,
    /// `TPMA_NV`.
    pub attributes: u32,
    pub auth_policy: &'a [u8],
    /// Size of the index's data in bytes.
    pub data_size: u16,
}

impl NvPublic<'_> {
    /// `TPMA_NV_AUTHREAD`: readable with the index's own authorization.
    pub const AUTHREAD: u32 = 1 << 18;
    /// `TPMA_NV_OWNERREAD`: readable with owner authorization.
    pub const OWNERREAD: u32 = 1 << 17;
    /// `TPMA_NV_PPREAD`: readable with platform authorization.
    pub const PPREAD: u32 = 1 << 16;
    /// `TPMA_NV_WRITTEN`: the index has been written.
    pub const WRITTEN: u32 = 1 << 29;
}

/// TPM2_NV_ReadPublic's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NvReadPublicResponse<'a> {
    pub public: NvPublic<'a>,
    pub name: &'a [u8],
}

/// TPM2_NV_ReadPublic (Part 3 §31.6).
pub fn nv_read_public(rsp: &[u8]) -> Result<NvReadPublicResponse<'_>> {
    let mut b = parse(rsp, 0, 0, "TPM2_NV_ReadPublic response")?;
    let r = &mut b.params;
    let at = r.offset();
    let size = usize::from(r.u16_be("nvPublic.size").map_err(Error::Response)?);
    if size > MAX_NV_PUBLIC_SIZE {
        return Err(Error::Response(r.error_at(
            ErrorKind::TooLarge {
                size,
                max: MAX_NV_PUBLIC_SIZE,
            },
            "nvPublic.size",
            at,
        )));
    }
    let mut p = r
        .sub(size, "nvPublic", "TPMS_NV_PUBLIC")
        .map_err(Error::Response)?;
    let public = NvPublic {
        nv_index: p.u32_be("nvIndex").map_err(Error::Response)?,
        name_alg: p.u16_be("nameAlg").map_err(Error::Response)?,
        attributes: p.u32_be("attributes").map_err(Error::Response)?,
        auth_policy: p
            .tpm2b(MAX_DIGEST_SIZE, "authPolicy")
            .map_err(Error::Response)?,
        data_size: p.u16_be("dataSize").map_err(Error::Response)?,
    };
    finish(&p)?;
    let name = r.tpm2b(MAX_NAME_SIZE, "nvName").map_err(Error::Response)?;
    finish(r)?;
    Ok(NvReadPublicResponse { public, name })
}

/// TPM2_NV_Read (Part 3 §31.13): the data read.
pub fn nv_read(rsp: &[u8]) -> Result<&[u8]> {
    let mut b = parse(rsp, 0, 1, "TPM2_NV_Read response")?;
    let data = b
        .params
        .tpm2b(MAX_NV_BUFFER_SIZE, "data")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(data)
}

/// TPM2_StartAuthSession's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAuthSessionResponse<'a> {
    /// The session's handle (`TPM_HT_HMAC_SESSION` or `TPM_HT_POLICY_SESSION`).
    pub handle: u32,
    /// `nonceTPM`.
    pub nonce_tpm: &'a [u8],
}

/// TPM2_StartAuthSession (Part 3 §11.1).
pub fn start_auth_session(rsp: &[u8]) -> Result<StartAuthSessionResponse<'_>> {
    let mut b = parse(rsp, 1, 0, "TPM2_StartAuthSession response")?;
    let handle = b.handle.unwrap_or(0);
    let nonce_tpm = b
        .params
        .tpm2b(MAX_DIGEST_SIZE, "nonceTPM")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(StartAuthSessionResponse { handle, nonce_tpm })
}

/// TPM2_PolicySecret's response. With `expiration` 0 the timeout is empty and the ticket a
/// NULL ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySecretResponse<'a> {
    /// `timeout` (`TPM2B_TIMEOUT`).
    pub timeout: &'a [u8],
    /// `policyTicket.tag` (`TPM_ST_AUTH_SECRET`).
    pub ticket_tag: u16,
    /// `policyTicket.hierarchy`.
    pub ticket_hierarchy: u32,
    /// `policyTicket.digest`.
    pub ticket_digest: &'a [u8],
}

/// Largest `TPM2B_TIMEOUT` (`sizeof(UINT64)`).
const MAX_TIMEOUT_SIZE: usize = 8;

/// TPM2_PolicySecret (Part 3 §23.4).
pub fn policy_secret(rsp: &[u8]) -> Result<PolicySecretResponse<'_>> {
    let mut b = parse(rsp, 0, 1, "TPM2_PolicySecret response")?;
    let r = &mut b.params;
    let timeout = r
        .tpm2b(MAX_TIMEOUT_SIZE, "timeout")
        .map_err(Error::Response)?;
    let ticket_tag = r.u16_be("policyTicket.tag").map_err(Error::Response)?;
    let ticket_hierarchy = r
        .u32_be("policyTicket.hierarchy")
        .map_err(Error::Response)?;
    let ticket_digest = r
        .tpm2b(MAX_DIGEST_SIZE, "policyTicket.digest")
        .map_err(Error::Response)?;
    finish(r)?;
    Ok(PolicySecretResponse {
        timeout,
        ticket_tag,
        ticket_hierarchy,
        ticket_digest,
    })
}

/// TPM2_ActivateCredential (Part 3 §12.5): `certInfo`, the recovered credential
/// (`TPM2B_DIGEST`). The response carries two sessions, one per authorized handle.
pub fn activate_credential(rsp: &[u8]) -> Result<&[u8]> {
    let mut b = parse(rsp, 0, 2, "TPM2_ActivateCredential response")?;
    let cert_info = b
        .params
        .tpm2b(MAX_DIGEST_SIZE, "certInfo")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(cert_info)
}

/// TPM2_Create's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateResponse<'a> {
    /// `outPrivate` as a whole `TPM2B_PRIVATE` (size prefix included), as `tpm2_create -r`
    /// writes it: the object's sensitive area, encrypted and integrity-protected by the parent.
    pub private: &'a [u8],
    /// `outPublic` as a whole `TPM2B_PUBLIC` (size prefix included), as `tpm2_create -u`
    /// writes it.
    pub public: &'a [u8],
    /// The parsed `TPMT_PUBLIC`.
    pub public_area: Public<'a>,
}

impl<'a> CreateResponse<'a> {
    /// The contents of `outPrivate`, without its size field (what [`super::command::load`]
    /// takes).
    pub fn private_contents(&self) -> &'a [u8] {
        self.private.get(2..).unwrap_or(&[])
    }
}

/// TPM2_Create (Part 3 §12.1). `creationData`, `creationHash` and `creationTicket` are
/// checked but not kept.
pub fn create(rsp: &[u8]) -> Result<CreateResponse<'_>> {
    let mut b = parse(rsp, 0, 1, "TPM2_Create response")?;
    let r = &mut b.params;
    let rest = r.rest();
    let private = r
        .tpm2b(MAX_PRIVATE_SIZE, "outPrivate")
        .map_err(Error::Response)?;
    let private = rest.get(..private.len().saturating_add(2)).unwrap_or(&[]);
    let (public, public_area) = read_tpm2b_public(r, "outPublic")?;
    r.tpm2b(MAX_CREATION_DATA_SIZE, "creationData")
        .map_err(Error::Response)?;
    r.tpm2b(MAX_DIGEST_SIZE, "creationHash")
        .map_err(Error::Response)?;
    r.u16_be("creationTicket.tag").map_err(Error::Response)?;
    r.u32_be("creationTicket.hierarchy")
        .map_err(Error::Response)?;
    r.tpm2b(MAX_DIGEST_SIZE, "creationTicket.digest")
        .map_err(Error::Response)?;
    finish(r)?;
    Ok(CreateResponse {
        private,
        public,
        public_area,
    })
}

/// TPM2_Load's response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadResponse<'a> {
    /// The transient handle of the loaded object.
    pub handle: u32,
    /// The object's Name.
    pub name: &'a [u8],
}

/// TPM2_Load (Part 3 §12.2).
pub fn load(rsp: &[u8]) -> Result<LoadResponse<'_>> {
    let mut b = parse(rsp, 1, 1, "TPM2_Load response")?;
    let handle = b.handle.unwrap_or(0);
    let name = b
        .params
        .tpm2b(MAX_NAME_SIZE, "name")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(LoadResponse { handle, name })
}

/// TPM2_Certify's response: the signed `TPMS_ATTEST` (of type `TPM_ST_ATTEST_CERTIFY`) and
/// its `TPMT_SIGNATURE`, both checked. Same layout as [`QuoteResponse`].
pub type CertifyResponse<'a> = QuoteResponse<'a>;

/// TPM2_Certify (Part 3 §18.2). The response carries two sessions, one per authorized handle.
pub fn certify(rsp: &[u8]) -> Result<CertifyResponse<'_>> {
    let mut b = parse(rsp, 0, 2, "TPM2_Certify response")?;
    let r = &mut b.params;
    let attest = r
        .tpm2b(MAX_ATTEST_SIZE, "certifyInfo")
        .map_err(Error::Response)?;
    let parsed = Attest::parse(attest).map_err(Error::Response)?;
    let signature = r.rest();
    let start = r.position();
    Signature::read(r).map_err(Error::Response)?;
    let len = r.position().saturating_sub(start);
    finish(r)?;
    Ok(QuoteResponse {
        attest,
        signature: signature.get(..len).unwrap_or(&[]),
        parsed,
    })
}

/// TPM2_RSA_Decrypt (Part 3 §14.2): `message`, the decrypted plaintext
/// (`TPM2B_PUBLIC_KEY_RSA`).
pub fn rsa_decrypt(rsp: &[u8]) -> Result<&[u8]> {
    let mut b = parse(rsp, 0, 1, "TPM2_RSA_Decrypt response")?;
    let message = b
        .params
        .tpm2b(MAX_RSA_MESSAGE_SIZE, "message")
        .map_err(Error::Response)?;
    finish(&b.params)?;
    Ok(message)
}
