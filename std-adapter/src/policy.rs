//! The whitelist's human form (TOML, or the same model as JSON) and its compiler to the compact
//! binary form the core reads (`trustpool_core::whitelist`).
//!
//! See `docs/policy-example.toml` for a commented example.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use trustpool_core::eventlog::EventType;
use trustpool_core::whitelist::{self, flag, section, Settings, Whitelist};
use trustpool_core::HashAlg;

use crate::ima_policy::ImaRules;

/// Errors in a policy: where, and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Toml(String),
    #[error("{path}: {msg}")]
    Invalid { path: String, msg: String },
}

fn invalid(path: impl Into<String>, msg: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        path: path.into(),
        msg: msg.into(),
    }
}

/// One layer of a whitelist: the base, or a host group's additions and overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Name shown in verdicts (at most 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The firmware event log must be supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_eventlog: Option<bool>,
    #[serde(default, skip_serializing_if = "QuoteRules::is_empty")]
    pub quote: QuoteRules,
    /// Golden PCR values: each PCR may have several acceptable values.
    #[serde(default, rename = "pcr", skip_serializing_if = "Vec::is_empty")]
    pub pcrs: Vec<GoldenPcr>,
    #[serde(default, skip_serializing_if = "EventRules::is_empty")]
    pub events: EventRules,
    #[serde(default, skip_serializing_if = "SecureBootRules::is_empty")]
    pub secure_boot: SecureBootRules,
    #[serde(default, skip_serializing_if = "CmdlineRules::is_empty")]
    pub kernel_cmdline: CmdlineRules,
    /// Runtime (IMA) policy: file digests by path, excluded paths, keyrings, SELinux.
    #[serde(default, skip_serializing_if = "ImaRules::is_empty")]
    pub ima: ImaRules,
    /// Per-host-group overrides: lists add to the base, values replace it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Layer>,
}

/// The whole whitelist document.
pub type Policy = Layer;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteRules {
    /// Accepted attestation keys by TPM Name (hex, e.g. `000b…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ak_names: Vec<String>,
    /// Accepted attestation keys by public key digest (`sha256:<hex>` of the RSA modulus or
    /// the uncompressed ECC point).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ak_key_digests: Vec<String>,
    /// Lowest acceptable TPM firmware version (`TPMS_ATTEST.firmwareVersion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_firmware_version: Option<u64>,
    /// PCRs that must be in the quote, e.g. `sha256:0-7,10`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_pcrs: Vec<String>,
}

impl QuoteRules {
    fn is_empty(&self) -> bool {
        *self == QuoteRules::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoldenPcr {
    pub index: u8,
    /// Acceptable values, `sha256:<hex>` (the prefix names the bank).
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRules {
    /// PCRs whose events are checked (default: the PCRs the rules name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pcrs: Vec<u8>,
    /// PCRs on which events of a type without a rule are allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_unknown: Vec<u8>,
    #[serde(default, rename = "rule", skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<EventRule>,
}

impl EventRules {
    fn is_empty(&self) -> bool {
        *self == EventRules::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRule {
    pub pcr: u8,
    /// Event type name (`EV_EFI_BOOT_SERVICES_APPLICATION`), number, or `any`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Acceptable digests, `sha256:<hex>`.
    pub digests: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureBootRules {
    /// Secure Boot must be enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Acceptable SHA-256 digests of each variable's data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pk: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kek: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub db: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dbx: Vec<String>,
    /// SHA-256 revocation entries dbx must contain (whatever else it holds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dbx_contains: Vec<String>,
    /// Allowed authorities: SHA-256 of `EV_EFI_VARIABLE_AUTHORITY` event data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
}

impl SecureBootRules {
    fn is_empty(&self) -> bool {
        *self == SecureBootRules::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmdlineRules {
    /// Tokens that must appear; `name=…` matches any value of `name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<String>,
    /// Tokens that must not appear.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbid: Vec<String>,
}

impl CmdlineRules {
    fn is_empty(&self) -> bool {
        *self == CmdlineRules::default()
    }
}

/// Parse `sha256:<hex>` into the algorithm and bytes, checking the size.
pub fn parse_digest(s: &str) -> Result<(HashAlg, Vec<u8>), String> {
    let (alg, hexpart) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected <alg>:<hex>, e.g. sha256:ab12…"))?;
    let alg =
        HashAlg::from_name(alg).ok_or_else(|| format!("{s:?}: unknown hash algorithm {alg:?}"))?;
    let bytes = hex::decode(hexpart).map_err(|e| format!("{s:?}: {e}"))?;
    if bytes.len() != alg.size() {
        return Err(format!(
            "{s:?}: {} bytes, {alg} digests have {}",
            bytes.len(),
            alg.size()
        ));
    }
    Ok((alg, bytes))
}

/// Parse `sha256:0-7,10` into the bank and a PCR mask.
pub fn parse_pcr_selection(s: &str) -> Result<(HashAlg, u32), String> {
    let (alg, list) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected <bank>:<pcrs>"))?;
    let alg = HashAlg::from_name(alg).ok_or_else(|| format!("{s:?}: unknown bank {alg:?}"))?;
    let mut mask = 0u32;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u8 = a
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad PCR {a:?}"))?;
        let b: u8 = b
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: bad PCR {b:?}"))?;
        if a > b || b > 23 {
            return Err(format!("{s:?}: PCR range {a}-{b} outside 0-23"));
        }
        for i in a..=b {
            mask |= 1 << i;
        }
    }
    Ok((alg, mask))
}

/// Parse an event type given by name (`EV_…`), number, or `any`.
pub fn parse_event_type(s: &str) -> Result<u32, String> {
    if s.eq_ignore_ascii_case("any") {
        return Ok(whitelist::ANY_EVENT_TYPE);
    }
    if let Some(t) = EventType::from_name(s) {
        return Ok(t.0);
    }
    let n = s.strip_prefix("0x").map_or_else(
        || s.parse::<u32>().ok(),
        |h| u32::from_str_radix(h, 16).ok(),
    );
    n.ok_or_else(|| format!("{s:?}: not an event type name (EV_…), number, or \"any\""))
}

impl Layer {
    /// Parse the TOML form. Unknown keys are errors with the line and the keys expected.
    pub fn from_toml(text: &str, file: &str) -> Result<Policy, PolicyError> {
        toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|sp| {
                    let before = &text[..sp.start.min(text.len())];
                    (
                        before.matches('\n').count() + 1,
                        sp.start - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                    )
                })
                .unwrap_or((0, 0));
            PolicyError::Toml(format!("{file}:{line}:{col}: {}", e.message()))
        })
    }

    /// Parse the JSON form (same model).
    pub fn from_json(text: &str, file: &str) -> Result<Policy, PolicyError> {
        serde_json::from_str(text)
            .map_err(|e| PolicyError::Toml(format!("{file}:{}:{}: {e}", e.line(), e.column())))
    }

    /// The effective layer for a host group: the base with the group's lists added and values
    /// replaced.
    pub fn resolve(&self, group: Option<&str>) -> Result<Layer, PolicyError> {
        let mut base = self.clone();
        base.groups.clear();
        let Some(g) = group else { return Ok(base) };
        let over = self.groups.get(g).ok_or_else(|| {
            invalid(
                format!("groups.{g}"),
                format!(
                    "no such group; groups: {:?}",
                    self.groups.keys().collect::<Vec<_>>()
                ),
            )
        })?;
        if !over.groups.is_empty() {
            return Err(invalid(format!("groups.{g}.groups"), "groups cannot nest"));
        }
        let o = over.clone();
        base.name = o.name.or(base.name);
        base.require_eventlog = o.require_eventlog.or(base.require_eventlog);
        base.quote.ak_names.extend(o.quote.ak_names);
        base.quote.ak_key_digests.extend(o.quote.ak_key_digests);
        base.quote.min_firmware_version = o
            .quote
            .min_firmware_version
            .or(base.quote.min_firmware_version);
        base.quote.require_pcrs.extend(o.quote.require_pcrs);
        base.pcrs.extend(o.pcrs);
        base.events.pcrs.extend(o.events.pcrs);
        base.events.allow_unknown.extend(o.events.allow_unknown);
        base.events.rules.extend(o.events.rules);
        let sb = o.secure_boot;
        base.secure_boot.enabled = sb.enabled.or(base.secure_boot.enabled);
        for (dst, src) in [
            (&mut base.secure_boot.pk, sb.pk),
            (&mut base.secure_boot.kek, sb.kek),
            (&mut base.secure_boot.db, sb.db),
            (&mut base.secure_boot.dbx, sb.dbx),
            (&mut base.secure_boot.dbx_contains, sb.dbx_contains),
            (&mut base.secure_boot.authorities, sb.authorities),
        ] {
            dst.extend(src);
        }
        base.kernel_cmdline.require.extend(o.kernel_cmdline.require);
        base.kernel_cmdline.forbid.extend(o.kernel_cmdline.forbid);
        base.ima.merge(o.ima);
        Ok(base)
    }

    /// Compile into the compact binary whitelist (`.tpw`).
    pub fn compile(&self, group: Option<&str>) -> Result<Vec<u8>, PolicyError> {
        let l = self.resolve(group)?;
        let mut b = Builder::default();
        let mut settings = Settings {
            flags: 0,
            min_firmware_version: l.quote.min_firmware_version.unwrap_or(0),
            required_pcrs: [(0, 0); 4],
            event_pcrs: 0,
            unknown_events_allowed: 0,
            name: [0; 32],
        };
        if let Some(name) = &l.name {
            if name.len() > 32 {
                return Err(invalid("name", format!("{} bytes; at most 32", name.len())));
            }
            settings.name[..name.len()].copy_from_slice(name.as_bytes());
        }
        if l.require_eventlog == Some(true) {
            settings.flags |= flag::EVENTLOG_REQUIRED;
        }
        if l.secure_boot.enabled == Some(true) {
            settings.flags |= flag::SECURE_BOOT_REQUIRED;
        }
        // Required PCRs, merged per bank.
        let mut req: BTreeMap<HashAlg, u32> = BTreeMap::new();
        for (i, s) in l.quote.require_pcrs.iter().enumerate() {
            let (alg, mask) = parse_pcr_selection(s)
                .map_err(|m| invalid(format!("quote.require_pcrs[{i}]"), m))?;
            *req.entry(alg).or_default() |= mask;
        }
        if req.len() > 4 {
            return Err(invalid("quote.require_pcrs", "at most 4 banks"));
        }
        for (slot, (alg, mask)) in settings.required_pcrs.iter_mut().zip(req) {
            *slot = (alg.id(), mask);
        }
        // Attestation keys.
        if !l.quote.ak_names.is_empty() || !l.quote.ak_key_digests.is_empty() {
            settings.flags |= flag::AK_RESTRICTED;
        }
        for (i, n) in l.quote.ak_names.iter().enumerate() {
            let bytes = hex::decode(n.trim())
                .map_err(|e| invalid(format!("quote.ak_names[{i}]"), e.to_string()))?;
            let alg = bytes
                .get(..2)
                .and_then(|a| HashAlg::from_id(u16::from_be_bytes([a[0], a[1]])))
                .filter(|a| a.size() + 2 == bytes.len())
                .ok_or_else(|| {
                    invalid(
                        format!("quote.ak_names[{i}]"),
                        "not a TPM Name (<alg id><digest>)",
                    )
                })?;
            b.add(section::AK_NAME | alg.id(), bytes[2..].to_vec());
        }
        for (i, d) in l.quote.ak_key_digests.iter().enumerate() {
            let (alg, bytes) =
                parse_digest(d).map_err(|m| invalid(format!("quote.ak_key_digests[{i}]"), m))?;
            if alg != HashAlg::Sha256 {
                return Err(invalid(
                    format!("quote.ak_key_digests[{i}]"),
                    "must be sha256",
                ));
            }
            b.add(section::AK_KEY_DIGEST, bytes);
        }
        // Golden PCR values.
        for (i, p) in l.pcrs.iter().enumerate() {
            if p.index > 23 {
                return Err(invalid(format!("pcr[{i}].index"), "PCR index above 23"));
            }
            for (k, v) in p.values.iter().enumerate() {
                let (alg, bytes) =
                    parse_digest(v).map_err(|m| invalid(format!("pcr[{i}].values[{k}]"), m))?;
                let mut rec = vec![p.index];
                rec.extend(bytes);
                b.add(section::PCR_GOLDEN | alg.id(), rec);
            }
        }
        // Event rules.
        let mut event_pcrs = 0u32;
        for (i, r) in l.events.rules.iter().enumerate() {
            if r.pcr > 23 {
                return Err(invalid(
                    format!("events.rule[{i}].pcr"),
                    "PCR index above 23",
                ));
            }
            let t = parse_event_type(&r.event_type)
                .map_err(|m| invalid(format!("events.rule[{i}].type"), m))?;
            event_pcrs |= 1 << r.pcr;
            for (k, d) in r.digests.iter().enumerate() {
                let (alg, bytes) = parse_digest(d)
                    .map_err(|m| invalid(format!("events.rule[{i}].digests[{k}]"), m))?;
                let mut rec = vec![r.pcr];
                rec.extend(t.to_be_bytes());
                rec.extend(bytes);
                b.add(section::EVENT_DIGEST | alg.id(), rec);
            }
        }
        for (i, p) in l.events.pcrs.iter().enumerate() {
            if *p > 23 {
                return Err(invalid(format!("events.pcrs[{i}]"), "PCR index above 23"));
            }
            event_pcrs |= 1 << p;
        }
        settings.event_pcrs = event_pcrs;
        for (i, p) in l.events.allow_unknown.iter().enumerate() {
            if *p > 23 {
                return Err(invalid(
                    format!("events.allow_unknown[{i}]"),
                    "PCR index above 23",
                ));
            }
            settings.unknown_events_allowed |= 1 << p;
        }
        // Secure Boot.
        for (var, (field, list)) in [
            ("pk", &l.secure_boot.pk),
            ("kek", &l.secure_boot.kek),
            ("db", &l.secure_boot.db),
            ("dbx", &l.secure_boot.dbx),
        ]
        .into_iter()
        .enumerate()
        {
            for (k, d) in list.iter().enumerate() {
                let (alg, bytes) =
                    parse_digest(d).map_err(|m| invalid(format!("secure_boot.{field}[{k}]"), m))?;
                if alg != HashAlg::Sha256 {
                    return Err(invalid(
                        format!("secure_boot.{field}[{k}]"),
                        "must be sha256",
                    ));
                }
                let mut rec = vec![var as u8];
                rec.extend(bytes);
                b.add(section::SB_VAR, rec);
            }
        }
        for (id, field, list) in [
            (
                section::DBX_REQUIRED,
                "dbx_contains",
                &l.secure_boot.dbx_contains,
            ),
            (
                section::AUTHORITY,
                "authorities",
                &l.secure_boot.authorities,
            ),
        ] {
            for (k, d) in list.iter().enumerate() {
                let (alg, bytes) =
                    parse_digest(d).map_err(|m| invalid(format!("secure_boot.{field}[{k}]"), m))?;
                if alg != HashAlg::Sha256 {
                    return Err(invalid(
                        format!("secure_boot.{field}[{k}]"),
                        "must be sha256",
                    ));
                }
                b.add(id, bytes);
            }
        }
        if !l.secure_boot.authorities.is_empty() {
            settings.flags |= flag::AUTHORITY_RESTRICTED;
        }
        // Kernel command line.
        for (kind, field, list) in [
            (1u8, "require", &l.kernel_cmdline.require),
            (2u8, "forbid", &l.kernel_cmdline.forbid),
        ] {
            for (k, t) in list.iter().enumerate() {
                if t.is_empty()
                    || t.len() > whitelist::TOKEN_RECORD - 1
                    || t.contains(char::is_whitespace)
                    || t.contains('\0')
                {
                    return Err(invalid(
                        format!("kernel_cmdline.{field}[{k}]"),
                        "a token is 1-63 bytes with no whitespace",
                    ));
                }
                let mut rec = vec![0u8; whitelist::TOKEN_RECORD];
                rec[0] = kind;
                rec[1..1 + t.len()].copy_from_slice(t.as_bytes());
                b.add(section::CMDLINE, rec);
            }
        }
        crate::ima_policy::add_ima_rules(&l.ima, &mut b, &mut settings.flags)
            .map_err(|m| invalid("ima", m))?;
        let mut rec = [0u8; whitelist::SETTINGS_LEN];
        settings.write(&mut rec);
        b.add(section::SETTINGS, rec.to_vec());
        Ok(b.finish())
    }
}

/// Builds the binary form: sections of sorted, de-duplicated records.
#[derive(Default)]
pub struct Builder {
    sections: BTreeMap<u16, BTreeSet<Vec<u8>>>,
}

impl Builder {
    pub fn add(&mut self, id: u16, record: Vec<u8>) {
        self.sections.entry(id).or_default().insert(record);
    }

    pub fn finish(self) -> Vec<u8> {
        let table_len = self.sections.len() * whitelist::SECTION_ENTRY_LEN;
        let mut out = vec![0u8; whitelist::HEADER_LEN + table_len];
        let mut offset = out.len();
        let mut table = Vec::with_capacity(table_len);
        let mut data = Vec::new();
        for (id, recs) in &self.sections {
            let width = recs.iter().next().map_or(0, Vec::len);
            table.extend(id.to_be_bytes());
            table.extend((width as u16).to_be_bytes());
            table.extend((recs.len() as u32).to_be_bytes());
            table.extend((offset as u32).to_be_bytes());
            for r in recs {
                debug_assert_eq!(r.len(), width);
                data.extend_from_slice(r);
            }
            offset += width * recs.len();
        }
        out[whitelist::HEADER_LEN..].copy_from_slice(&table);
        out.extend(data);
        let total = out.len() as u32;
        out[0..4].copy_from_slice(&whitelist::MAGIC);
        out[4..6].copy_from_slice(&whitelist::VERSION.to_be_bytes());
        out[6..8].copy_from_slice(&(whitelist::HEADER_LEN as u16).to_be_bytes());
        out[8..12].copy_from_slice(&total.to_be_bytes());
        out[12..14].copy_from_slice(&(self.sections.len() as u16).to_be_bytes());
        let digest = whitelist::compute_digest(&out).expect("sha256 is always available");
        out[16..48].copy_from_slice(digest.as_bytes());
        out
    }
}

fn section_name(id: u16) -> String {
    let alg = || {
        HashAlg::from_id(id & 0xff).map_or_else(|| format!("{:#04x}", id & 0xff), |a| a.to_string())
    };
    match id {
        section::SETTINGS => "settings".into(),
        section::AK_KEY_DIGEST => "attestation key digests".into(),
        section::DBX_REQUIRED => "dbx must contain".into(),
        section::AUTHORITY => "allowed authorities".into(),
        section::SB_VAR => "secure boot variables".into(),
        section::CMDLINE => "kernel command line rules".into(),
        section::IMA_EXCLUDE => "IMA excluded prefixes".into(),
        _ => match id & 0xff00 {
            section::PCR_GOLDEN => format!("golden PCR values ({})", alg()),
            section::EVENT_DIGEST => format!("event reference digests ({})", alg()),
            section::AK_NAME => format!("attestation key names ({})", alg()),
            section::IMA_DIGEST => format!("IMA allowlist ({})", alg()),
            _ => format!("section {id:#06x}"),
        },
    }
}

/// A description of a compiled whitelist, for `policy show`.
#[derive(Debug, Serialize)]
pub struct ShowReport {
    pub name: String,
    pub digest: String,
    pub bytes: usize,
    pub flags: Vec<&'static str>,
    pub min_firmware_version: u64,
    pub required_pcrs: Vec<String>,
    pub event_pcrs: Vec<u8>,
    pub unknown_events_allowed: Vec<u8>,
    pub sections: Vec<ShowSection>,
}

#[derive(Debug, Serialize)]
pub struct ShowSection {
    pub id: u16,
    pub name: String,
    pub record_width: usize,
    pub records: usize,
}

fn mask_list(m: u32) -> Vec<u8> {
    (0..32).filter(|i| m & (1 << i) != 0).collect()
}

pub fn show(wl: &Whitelist<'_>) -> ShowReport {
    let s = wl.settings();
    let mut flags = Vec::new();
    for (bit, name) in [
        (flag::SECURE_BOOT_REQUIRED, "secure_boot_required"),
        (flag::AK_RESTRICTED, "ak_restricted"),
        (flag::AUTHORITY_RESTRICTED, "authority_restricted"),
        (flag::EVENTLOG_REQUIRED, "eventlog_required"),
        (flag::IMA_ENFORCED, "ima_enforced"),
        (
            flag::SELINUX_ENFORCING_REQUIRED,
            "selinux_enforcing_required",
        ),
    ] {
        if s.has(bit) {
            flags.push(name);
        }
    }
    ShowReport {
        name: s.name().to_string(),
        digest: format!("sha256:{}", hex::encode(wl.digest())),
        bytes: wl.len_bytes(),
        flags,
        min_firmware_version: s.min_firmware_version,
        required_pcrs: s
            .required_pcrs
            .iter()
            .filter(|(a, _)| *a != 0)
            .map(|(a, m)| {
                let name =
                    HashAlg::from_id(*a).map_or_else(|| format!("{a:#06x}"), |h| h.to_string());
                format!(
                    "{name}:{}",
                    mask_list(*m)
                        .iter()
                        .map(u8::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .collect(),
        event_pcrs: mask_list(s.event_pcrs),
        unknown_events_allowed: mask_list(s.unknown_events_allowed),
        sections: wl
            .sections()
            .map(|sec| ShowSection {
                id: sec.id,
                name: section_name(sec.id),
                record_width: sec.width,
                records: sec.len(),
            })
            .collect(),
    }
}

pub fn show_text(r: &ShowReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "whitelist {:?}", r.name);
    let _ = writeln!(s, "  digest:   {}", r.digest);
    let _ = writeln!(s, "  size:     {} bytes", r.bytes);
    let _ = writeln!(
        s,
        "  flags:    {}",
        if r.flags.is_empty() {
            "(none)".into()
        } else {
            r.flags.join(", ")
        }
    );
    if r.min_firmware_version != 0 {
        let _ = writeln!(s, "  min TPM firmware: {:#x}", r.min_firmware_version);
    }
    if !r.required_pcrs.is_empty() {
        let _ = writeln!(s, "  quote must cover: {}", r.required_pcrs.join(" "));
    }
    if !r.event_pcrs.is_empty() {
        let _ = writeln!(
            s,
            "  events checked on PCRs: {:?} (unknown types allowed on {:?})",
            r.event_pcrs, r.unknown_events_allowed
        );
    }
    let _ = writeln!(s, "  sections:");
    for sec in &r.sections {
        let _ = writeln!(
            s,
            "    {:#06x} {:<40} {:>7} × {} bytes",
            sec.id, sec.name, sec.records, sec.record_width
        );
    }
    s
}
