//! IMA runtime policy: the `[ima]` table of the whitelist's human form ([`ImaRules`]), its
//! import from Keylime's formats (runtime policy JSON, legacy allowlists, exclude lists,
//! measurement lists), its compilation into the compact whitelist's IMA sections, and the
//! `trustpool ima show | replay | check` commands ([`ima_show`], [`ima_replay`],
//! [`ima_check`]).
//!
//! Keylime's formats (keylime 7.x, `keylime/ima/ima.py`, `keylime/policy/`):
//!
//! - runtime policy JSON: `digests` (`path → [hex]`; older allowlists call it `hashes`),
//!   `excludes` (Python regular expressions, applied with `re.match`: anchored at the start
//!   only), `keyrings` (`keyring → [hex]`), `ima.ignored_keyrings`, `ima.log_hash_alg`,
//!   `ima-buf` (`name → [hex]`), `verification-keys` (a JSON string holding
//!   `{"pubkeys": [base64 DER], "keyids": [...]}`);
//! - legacy allowlist: `<hex>  <path>` lines, `%keyring:<name>` paths for keys.
//!
//! Keylime compares hex only, whatever the algorithm; so a digest given as bare hex is
//! accepted for every TPM algorithm of its size (64 hex digits: SHA-256, SM3-256,
//! SHA3-256), one given as `sha256:<hex>` for that algorithm only.
//!
//! The compact whitelist can only exclude by prefix. An exclude regex that is a literal
//! prefix (`^/tmp/`, `/var/log/.*`, `boot_aggregate`) compiles to a prefix record; any other
//! is kept for the std-side check in [`ima_check`] (a linear-time matcher for literals, `.`,
//! `.*`, `^` and `$`), and one beyond that is reported and not applied (so it can only add
//! findings, never hide one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use trustpool_core::alg::{Digest, HashAlg};
use trustpool_core::ima::appraise::{appraise_log, path_hash};
use trustpool_core::ima::sig::{key_id_v2, ImaKey};
use trustpool_core::ima::{
    check_boot_aggregate, Appraiser, AsciiLog, BankMode, BinaryLog, Event, Facts, Finding,
    FindingKind, Replay, Stats, Template,
};
use trustpool_core::pcr::PcrBank;
use trustpool_core::public::{key_from_spki_der, pem_to_der};
use trustpool_core::whitelist::{flag, section, Settings, Whitelist, PREFIX_RECORD};

use crate::policy::Builder;

/// The `[ima]` table: runtime policy for IMA measurement lists.
///
/// ```toml
/// [ima]
/// require_selinux_enforcing = true
/// exclude = ["^/tmp/", "/var/log/.*"]
/// ignored_keyrings = [".builtin_trusted_keys"]
/// [ima.digests]
/// "/usr/bin/bash" = ["sha256:5f7a…"]
/// [ima.accept_keyrings]
/// ".ima" = ["sha256:a7d5…"]
/// [ima.ima_buf]
/// "kexec-cmdline" = ["sha256:…"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImaRules {
    /// Entries must be in the allowlist unless excluded (default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
    /// Accepted file digests by path: `sha256:<hex>`, or bare hex (every algorithm of that
    /// size, as Keylime).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, Vec<String>>,
    /// Excluded paths: Keylime-style regular expressions (matched from the start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Keys accepted in keyrings: keyring name → digests of the key (the `ima-buf` entry's
    /// digest).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accept_keyrings: BTreeMap<String, Vec<String>>,
    /// Keyrings whose keys are not checked (`*` for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_keyrings: Vec<String>,
    /// Other measured buffers accepted: name → digests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ima_buf: BTreeMap<String, Vec<String>>,
    /// SELinux must be enforcing per the log's last `selinux-state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_selinux_enforcing: Option<bool>,
    /// Algorithm of the log's template digests (`sha1` for `binary_runtime_measurements`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_hash_alg: Option<String>,
    /// Public keys for `ima-sig` signatures: PEM, or base64 DER `SubjectPublicKeyInfo`.
    /// Not part of the compact whitelist: used by [`ima_check`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_keys: Vec<String>,
}

impl ImaRules {
    pub fn is_empty(&self) -> bool {
        *self == ImaRules::default()
    }

    /// Add another rule set's lists to this one (values of `other` win).
    pub fn merge(&mut self, other: ImaRules) {
        for (dst, src) in [
            (&mut self.digests, other.digests),
            (&mut self.accept_keyrings, other.accept_keyrings),
            (&mut self.ima_buf, other.ima_buf),
        ] {
            for (k, v) in src {
                let e = dst.entry(k).or_default();
                for d in v {
                    if !e.contains(&d) {
                        e.push(d);
                    }
                }
            }
        }
        for (dst, src) in [
            (&mut self.exclude, other.exclude),
            (&mut self.ignored_keyrings, other.ignored_keyrings),
            (&mut self.verification_keys, other.verification_keys),
        ] {
            for s in src {
                if !dst.contains(&s) {
                    dst.push(s);
                }
            }
        }
        self.enforce = other.enforce.or(self.enforce);
        self.require_selinux_enforcing = other
            .require_selinux_enforcing
            .or(self.require_selinux_enforcing);
        self.log_hash_alg = other.log_hash_alg.or(self.log_hash_alg.take());
    }

    /// The log's template digest algorithm (SHA-1 unless `log_hash_alg` says otherwise).
    pub fn log_alg(&self) -> Result<HashAlg, String> {
        match &self.log_hash_alg {
            None => Ok(HashAlg::Sha1),
            Some(s) => HashAlg::from_name(s)
                .ok_or_else(|| format!("ima.log_hash_alg: unknown algorithm {s:?}")),
        }
    }

    /// The exclude patterns, classified.
    pub fn excludes(&self) -> Vec<Exclude> {
        self.exclude.iter().map(|r| Exclude::parse(r)).collect()
    }
}

/// Parse `sha256:<hex>` or bare hex into the algorithms it stands for and the bytes.
pub fn parse_ima_digest(s: &str) -> Result<(Vec<HashAlg>, Vec<u8>), String> {
    let s = s.trim();
    if let Some((alg, hexpart)) = s.split_once(':') {
        let alg = trustpool_core::ima::KernelHash::from_name(&alg.to_ascii_lowercase())
            .and_then(|k| k.hash_alg())
            .or_else(|| HashAlg::from_name(alg))
            .ok_or_else(|| format!("{s:?}: unknown hash algorithm {alg:?}"))?;
        let bytes = hex::decode(hexpart).map_err(|e| format!("{s:?}: {e}"))?;
        if bytes.len() != alg.size() {
            return Err(format!(
                "{s:?}: {} bytes, {alg} digests have {}",
                bytes.len(),
                alg.size()
            ));
        }
        return Ok((vec![alg], bytes));
    }
    let bytes = hex::decode(s).map_err(|e| format!("{s:?}: {e}"))?;
    let algs: Vec<HashAlg> = HashAlg::ALL
        .into_iter()
        .filter(|a| a.size() == bytes.len())
        .collect();
    if algs.is_empty() {
        return Err(format!(
            "{s:?}: {} bytes is no known digest size",
            bytes.len()
        ));
    }
    Ok((algs, bytes))
}

/// A path as the kernel logs it: `n-ng` replaces spaces with `_`
/// (`ima_write_template_field_data()`).
pub fn log_path(path: &str) -> String {
    path.replace(' ', "_")
}

/// An exclude pattern, by what can check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclude {
    /// A literal prefix: compiled into the compact whitelist.
    Prefix(String),
    /// Checked by the std side: literals, `.`, `.*`, optional `$`.
    Pattern(Pattern),
    /// Syntax beyond that: reported and not applied.
    Unsupported { regex: String, reason: String },
}

/// A restricted regular expression, matched from the start of the path (`re.match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub regex: String,
    atoms: Vec<Atom>,
    anchored_end: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Lit(char),
    Any,
    Star,
}

impl Exclude {
    pub fn parse(regex: &str) -> Exclude {
        let unsupported = |reason: &str| Exclude::Unsupported {
            regex: regex.to_string(),
            reason: reason.to_string(),
        };
        if regex.trim().is_empty() {
            // Keylime drops empty lines: they would match every path.
            return unsupported("empty pattern (it would exclude everything)");
        }
        let body = regex.strip_prefix('^').unwrap_or(regex);
        let mut atoms = vec![];
        let mut chars = body.chars().peekable();
        let mut anchored_end = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e) if !e.is_ascii_alphanumeric() => atoms.push(Atom::Lit(e)),
                    Some(e) => return unsupported(&format!("escape \\{e}")),
                    None => return unsupported("trailing backslash"),
                },
                '.' if chars.peek() == Some(&'*') => {
                    chars.next();
                    atoms.push(Atom::Star);
                }
                '.' => atoms.push(Atom::Any),
                '$' if chars.peek().is_none() => anchored_end = true,
                '(' if chars.clone().collect::<String>().starts_with(".*)?")
                    || chars.clone().collect::<String>().starts_with(".*)") =>
                {
                    // `(.*)?` and `(.*)`: the same as `.*` for matching.
                    let skip = if chars.clone().collect::<String>().starts_with(".*)?") {
                        4
                    } else {
                        3
                    };
                    for _ in 0..skip {
                        chars.next();
                    }
                    atoms.push(Atom::Star);
                }
                '[' | ']' | '(' | ')' | '|' | '+' | '?' | '*' | '{' | '}' | '$' | '^' => {
                    return unsupported(&format!("metacharacter {c:?}"))
                }
                c => atoms.push(Atom::Lit(c)),
            }
        }
        while atoms.last() == Some(&Atom::Star) && !anchored_end {
            atoms.pop();
        }
        if !anchored_end && atoms.iter().all(|a| matches!(a, Atom::Lit(_))) {
            let prefix: String = atoms
                .iter()
                .map(|a| match a {
                    Atom::Lit(c) => *c,
                    _ => '?',
                })
                .collect();
            if prefix.len() < PREFIX_RECORD {
                return Exclude::Prefix(prefix);
            }
        }
        Exclude::Pattern(Pattern {
            regex: regex.to_string(),
            atoms,
            anchored_end,
        })
    }

    /// Whether the path is excluded (unsupported patterns exclude nothing).
    pub fn is_match(&self, path: &str) -> bool {
        match self {
            Exclude::Prefix(p) => path.starts_with(p.as_str()),
            Exclude::Pattern(p) => p.is_match(path),
            Exclude::Unsupported { .. } => false,
        }
    }
}

impl Pattern {
    /// Glob-style matching with one backtrack point per star: O(len × pattern) at worst.
    pub fn is_match(&self, path: &str) -> bool {
        let s: Vec<char> = path.chars().collect();
        let p = &self.atoms;
        let (mut i, mut j) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        loop {
            if j == p.len() && (!self.anchored_end || i == s.len()) {
                return true;
            }
            match (p.get(j), s.get(i)) {
                (Some(Atom::Star), _) => {
                    star = Some((j, i));
                    j += 1;
                }
                (Some(Atom::Any), Some(_)) => {
                    i += 1;
                    j += 1;
                }
                (Some(Atom::Lit(c)), Some(x)) if c == x => {
                    i += 1;
                    j += 1;
                }
                _ => match star {
                    Some((sj, si)) if si < s.len() => {
                        star = Some((sj, si + 1));
                        j = sj + 1;
                        i = si + 1;
                    }
                    _ => return false,
                },
            }
        }
    }
}

fn prefix_record(prefix: &str) -> Result<Vec<u8>, String> {
    if prefix.len() >= PREFIX_RECORD || prefix.contains('\0') {
        return Err(format!(
            "{prefix:?}: prefixes are at most {} bytes",
            PREFIX_RECORD - 1
        ));
    }
    let mut rec = vec![0u8; PREFIX_RECORD];
    rec[..prefix.len()].copy_from_slice(prefix.as_bytes());
    rec[PREFIX_RECORD - 1] = prefix.len() as u8;
    Ok(rec)
}

fn digest_records(
    b: &mut Builder,
    what: &str,
    tag: &str,
    name: &str,
    digests: &[String],
) -> Result<usize, String> {
    let ph = path_hash(tag.as_bytes(), name.as_bytes());
    let mut n = 0;
    for d in digests {
        let (algs, bytes) = parse_ima_digest(d).map_err(|m| format!("{what}.{name:?}: {m}"))?;
        for alg in algs {
            let mut rec = ph.to_vec();
            rec.extend(&bytes);
            b.add(section::IMA_DIGEST | alg.id(), rec);
            n += 1;
        }
    }
    Ok(n)
}

/// Compile the rules into the compact whitelist's IMA sections (`0x6000 + alg`, `0x6100`)
/// and flags (`IMA_ENFORCED`, `SELINUX_ENFORCING_REQUIRED`). Excludes that are not literal
/// prefixes are left to [`ima_check`] (see [`Exclude`]).
pub fn add_ima_rules(rules: &ImaRules, b: &mut Builder, flags: &mut u32) -> Result<(), String> {
    rules.log_alg()?;
    for (path, digests) in &rules.digests {
        if path.is_empty() {
            return Err("ima.digests: empty path".into());
        }
        digest_records(b, "ima.digests", "", &log_path(path), digests)?;
    }
    for (ring, digests) in &rules.accept_keyrings {
        digest_records(b, "ima.accept_keyrings", "%keyring:", ring, digests)?;
    }
    for (name, digests) in &rules.ima_buf {
        digest_records(b, "ima.ima_buf", "%ima-buf:", &log_path(name), digests)?;
    }
    for ring in &rules.ignored_keyrings {
        let p = if ring == "*" {
            "%keyring:".to_string()
        } else {
            format!("%keyring:{ring}")
        };
        b.add(
            section::IMA_EXCLUDE,
            prefix_record(&p).map_err(|m| format!("ima.ignored_keyrings: {m}"))?,
        );
    }
    for ex in rules.excludes() {
        if let Exclude::Prefix(p) = ex {
            b.add(
                section::IMA_EXCLUDE,
                prefix_record(&p).map_err(|m| format!("ima.exclude: {m}"))?,
            );
        }
    }
    for (k, key) in rules.verification_keys.iter().enumerate() {
        decode_key(key).map_err(|m| format!("ima.verification_keys[{k}]: {m}"))?;
    }
    if rules.enforce != Some(false) {
        *flags |= flag::IMA_ENFORCED;
    }
    if rules.require_selinux_enforcing == Some(true) {
        *flags |= flag::SELINUX_ENFORCING_REQUIRED;
    }
    Ok(())
}

/// A whitelist holding only the IMA rules (and its settings record), for `ima check` on its
/// own and for tests.
pub fn compile_ima_whitelist(rules: &ImaRules, name: &str) -> Result<Vec<u8>, String> {
    let mut b = Builder::default();
    let mut settings = Settings {
        flags: 0,
        min_firmware_version: 0,
        required_pcrs: [(0, 0); 4],
        event_pcrs: 0,
        unknown_events_allowed: 0,
        name: [0; 32],
    };
    add_ima_rules(rules, &mut b, &mut settings.flags)?;
    let n = name.len().min(32);
    settings.name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let mut rec = [0u8; trustpool_core::whitelist::SETTINGS_LEN];
    settings.write(&mut rec);
    b.add(section::SETTINGS, rec.to_vec());
    Ok(b.finish())
}

/// A verification key: PEM `PUBLIC KEY`, or base64 of the DER `SubjectPublicKeyInfo`.
pub fn decode_key(s: &str) -> Result<Vec<u8>, String> {
    let t = s.trim();
    if t.starts_with("-----BEGIN") {
        let mut buf = vec![0u8; t.len()];
        let der = pem_to_der(t.as_bytes(), &mut buf).map_err(|e| e.to_string())?;
        let der = der.to_vec();
        key_from_spki_der(&der).map_err(|e| e.to_string())?;
        return Ok(der);
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(t)
        .map_err(|e| format!("neither PEM nor base64 DER: {e}"))?;
    key_from_spki_der(&der).map_err(|e| e.to_string())?;
    Ok(der)
}

fn str_list(v: Option<&serde_json::Value>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(vec![]),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| format!("{what}: not a string: {x}"))
            })
            .collect(),
        Some(x) => Err(format!("{what}: expected a list, found {x}")),
    }
}

fn map_of_lists(
    v: Option<&serde_json::Value>,
    what: &str,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), str_list(Some(v), &format!("{what}.{k}"))?)))
            .collect(),
        Some(x) => Err(format!("{what}: expected an object, found {x}")),
    }
}

/// Read a Keylime runtime policy (or a Keylime JSON allowlist, which calls `digests`
/// `hashes`).
pub fn ima_rules_from_keylime_policy(json: &str) -> Result<ImaRules, String> {
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("runtime policy: {e}"))?;
    let o = v.as_object().ok_or("runtime policy: not a JSON object")?;
    let mut r = ImaRules {
        digests: map_of_lists(o.get("digests").or_else(|| o.get("hashes")), "digests")?,
        exclude: str_list(o.get("excludes").or_else(|| o.get("exclude")), "excludes")?,
        accept_keyrings: map_of_lists(o.get("keyrings"), "keyrings")?,
        ima_buf: map_of_lists(o.get("ima-buf"), "ima-buf")?,
        ..ImaRules::default()
    };
    if let Some(ima) = o.get("ima").and_then(|i| i.as_object()) {
        r.ignored_keyrings = str_list(ima.get("ignored_keyrings"), "ima.ignored_keyrings")?;
        r.log_hash_alg = ima
            .get("log_hash_alg")
            .and_then(|a| a.as_str())
            .map(String::from);
        if ima.get("dm_policy").is_some_and(|d| !d.is_null()) {
            return Err("ima.dm_policy: device-mapper policies are not supported".into());
        }
    }
    match o.get("verification-keys") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => {}
        Some(serde_json::Value::String(s)) => {
            let kv: serde_json::Value =
                serde_json::from_str(s).map_err(|e| format!("verification-keys: {e}"))?;
            let kv = match kv {
                serde_json::Value::String(inner) => {
                    serde_json::from_str(&inner).map_err(|e| format!("verification-keys: {e}"))?
                }
                other => other,
            };
            r.verification_keys = str_list(kv.get("pubkeys"), "verification-keys.pubkeys")?;
        }
        Some(x) => return Err(format!("verification-keys: expected a string, found {x}")),
    }
    r.log_alg()?;
    Ok(r)
}

/// Read a legacy allowlist: `<digest>  <path>` lines (blank lines and `#` comments
/// skipped); `%keyring:<name>` paths accept keys.
pub fn ima_rules_from_allowlist(text: &str) -> Result<ImaRules, String> {
    let mut r = ImaRules::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((digest, path)) = line.split_once(char::is_whitespace) else {
            return Err(format!("line {}: expected <digest> <path>", i + 1));
        };
        let path = path.trim();
        parse_ima_digest(digest).map_err(|m| format!("line {}: {m}", i + 1))?;
        let dst = match path.strip_prefix("%keyring:") {
            Some(ring) => r.accept_keyrings.entry(ring.to_string()).or_default(),
            None => r.digests.entry(path.to_string()).or_default(),
        };
        if !dst.contains(&digest.to_string()) {
            dst.push(digest.to_string());
        }
    }
    Ok(r)
}

/// Read a Keylime exclude list: one regex per line, `#` comments and blank lines skipped.
pub fn ima_rules_from_exclude_list(text: &str) -> ImaRules {
    ImaRules {
        exclude: text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect(),
        ..ImaRules::default()
    }
}

/// The digests a measurement list records, as Keylime's `create_runtime_policy
/// --ima-measurement-list` takes them (file entries only; `ima-buf` and violations skipped).
pub fn ima_rules_from_log(
    log: &[u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
) -> Result<ImaRules, String> {
    let mut r = ImaRules::default();
    for_each_event(log, format, template_alg, |e| {
        if e.template == Template::ImaBuf || e.is_violation() {
            return Ok(());
        }
        if let (Some(name), Some(fd)) = (e.name_str(), e.file_digest) {
            if fd.is_well_formed() {
                let d = fd.to_string();
                let v = r.digests.entry(name.to_string()).or_default();
                if !v.contains(&d) {
                    v.push(d);
                }
            }
        }
        Ok(())
    })?;
    Ok(r)
}

/// Measurement list forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Binary,
    Ascii,
}

/// Binary unless the input looks like `ascii_runtime_measurements` (printable text whose
/// first line starts with a PCR number).
pub fn detect_format(log: &[u8]) -> LogFormat {
    let head = &log[..log.len().min(512)];
    let first = head.split(|c| *c == b'\n').next().unwrap_or(&[]);
    let text = head
        .iter()
        .all(|c| c.is_ascii_graphic() || c.is_ascii_whitespace());
    let t = first
        .iter()
        .skip_while(|c| **c == b' ')
        .take_while(|c| c.is_ascii_digit())
        .count();
    if text && t > 0 {
        LogFormat::Ascii
    } else {
        LogFormat::Binary
    }
}

fn for_each_event<'a>(
    log: &'a [u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
    mut f: impl FnMut(Event<'a>) -> Result<(), String>,
) -> Result<LogFormat, String> {
    let fmt = format.unwrap_or_else(|| detect_format(log));
    match fmt {
        LogFormat::Binary => {
            for e in BinaryLog::new(log, template_alg) {
                f(e.map_err(|e| e.to_string())?)?;
            }
        }
        LogFormat::Ascii => {
            for e in AsciiLog::new(log).with_template_alg(template_alg) {
                f(e.map_err(|e| e.to_string())?)?;
            }
        }
    }
    Ok(fmt)
}

fn events(
    log: &[u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
) -> Result<(LogFormat, Vec<Event<'_>>), String> {
    let mut v = vec![];
    let fmt = for_each_event(log, format, template_alg, |e| {
        v.push(e);
        Ok(())
    })?;
    Ok((fmt, v))
}

/// `trustpool ima show`: one line per entry (up to `limit`).
pub fn ima_show(
    log: &[u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
    limit: Option<usize>,
) -> Result<String, String> {
    let (fmt, evs) = events(log, format, template_alg)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} entries ({fmt:?} log, {template_alg} template digests)",
        evs.len()
    );
    for e in evs.iter().take(limit.unwrap_or(usize::MAX)) {
        let digest = e
            .file_digest
            .map_or_else(|| "-".to_string(), |d| d.to_string());
        let name = e.name.map_or_else(|| "-".into(), String::from_utf8_lossy);
        let mut extra = String::new();
        if let Some(sig) = e.sig {
            let _ = write!(extra, " sig[{}]", sig.len());
        }
        if let Some(buf) = e.buf {
            let _ = write!(extra, " buf[{}]", buf.len());
        }
        if e.is_violation() {
            extra.push_str(" VIOLATION");
        }
        let _ = writeln!(
            s,
            "{:>6} {:>2} {} {} {} {}{}",
            e.index,
            e.pcr,
            hex::encode(e.template_digest()),
            e.template_name,
            digest,
            name,
            extra
        );
    }
    Ok(s)
}

/// What `ima replay` found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub format: LogFormat,
    pub entries: u64,
    pub violations: u64,
    pub template_mismatches: u64,
    /// Entries whose template digest is not the hash of their data (first 20).
    pub mismatched_entries: Vec<u64>,
    pub other_pcr_entries: u64,
    /// Replayed PCR 10 per bank, `alg:hex`.
    pub pcr10: Vec<String>,
    /// With quoted PCRs: the number of entries after which the replay equals the quote.
    pub quote_matched_after: Option<u64>,
    pub quote_given: bool,
    /// With quoted PCRs: the `boot_aggregate` check (`pcrs_0_to_7`, `pcrs_0_to_9`, or why not).
    pub boot_aggregate: Option<String>,
}

impl ReplayReport {
    pub fn ok(&self) -> bool {
        self.template_mismatches == 0 && (!self.quote_given || self.quote_matched_after.is_some())
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} entries, {} violations, {} template hash mismatches",
            self.entries, self.violations, self.template_mismatches
        );
        if !self.mismatched_entries.is_empty() {
            let _ = writeln!(s, "  mismatched entries: {:?}", self.mismatched_entries);
        }
        for v in &self.pcr10 {
            let _ = writeln!(s, "  PCR 10 {v}");
        }
        if self.quote_given {
            match self.quote_matched_after {
                Some(n) if n == self.entries => {
                    let _ = writeln!(s, "  matches the quoted PCR 10");
                }
                Some(n) => {
                    let _ = writeln!(s, "  matches the quoted PCR 10 after entry {n} of {} (later entries not yet quoted)", self.entries);
                }
                None => {
                    let _ = writeln!(s, "  does NOT match the quoted PCR 10 after any entry");
                }
            }
        }
        if let Some(b) = &self.boot_aggregate {
            let _ = writeln!(s, "  boot_aggregate: {b}");
        }
        s
    }
}

/// Replay `log` (a whole list, or the entries after an earlier replay that ended at `start`)
/// into the quoted bank, the kernel's two ways (the bank's own template hash, then the padded
/// SHA-1 digest), and say after how many entries it equals the quoted PCR 10, if ever.
/// Returns (entries in `log`, entries after which it matched).
pub fn ima_replay_from(
    log: &[u8],
    template_alg: HashAlg,
    start: Option<&trustpool_core::Digest>,
    quoted: &PcrBank,
) -> Result<(u64, Option<u64>), String> {
    use trustpool_core::ima::BankState;
    let (_, evs) = events(log, None, template_alg)?;
    let bank = quoted.alg();
    let mut last = (evs.len() as u64, None);
    for mode in [BankMode::TemplateHash, BankMode::PaddedSha1] {
        let value = match start {
            Some(d) if d.alg() == bank => *d,
            Some(_) => return Err("the stored PCR 10 is of another bank".into()),
            None => trustpool_core::Digest::zero(bank),
        };
        let mut r = Replay::resume(
            template_alg,
            trustpool_core::ima::IMA_PCR,
            &[BankState {
                alg: bank,
                mode,
                value,
            }],
            0,
            0,
        )
        .map_err(|e| e.to_string())?;
        let mut matched = (r.matches(quoted) == Some(true)).then_some(0);
        for e in &evs {
            let step = r.feed(e).map_err(|e| e.to_string())?;
            if step.extended && r.matches(quoted) == Some(true) {
                matched = Some(r.entries());
            }
        }
        last = (r.entries(), matched);
        if matched.is_some() {
            break;
        }
    }
    Ok(last)
}

/// `trustpool ima replay`: replay PCR 10 of `banks` (default: the log's own bank), check
/// every template hash, and compare with a quoted bank when given.
pub fn ima_replay(
    log: &[u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
    banks: &[(HashAlg, BankMode)],
    quoted: Option<&PcrBank>,
) -> Result<ReplayReport, String> {
    let (fmt, evs) = events(log, format, template_alg)?;
    let default = [(template_alg, BankMode::TemplateHash)];
    let banks = if banks.is_empty() {
        &default[..]
    } else {
        banks
    };
    let mut r = Replay::with_banks(template_alg, trustpool_core::ima::IMA_PCR, banks)
        .map_err(|e| e.to_string())?;
    let mut matched = quoted.and_then(|q| (r.matches(q) == Some(true)).then_some(0));
    let mut mismatched = vec![];
    for e in &evs {
        let step = r.feed(e).map_err(|e| e.to_string())?;
        if step.template_hash_ok == Some(false) && mismatched.len() < 20 {
            mismatched.push(e.index);
        }
        if let (Some(q), None, true) = (quoted, matched, step.extended) {
            if r.matches(q) == Some(true) {
                matched = Some(r.entries());
            }
        }
    }
    let boot_aggregate = quoted.and_then(|q| {
        evs.iter()
            .find(|e| e.is_boot_aggregate())
            .map(|e| match check_boot_aggregate(e, q) {
                Ok(b) => serde_json::to_value(b)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                Err(err) => format!("{err:?}"),
            })
    });
    Ok(ReplayReport {
        format: fmt,
        entries: r.entries(),
        violations: r.violations(),
        template_mismatches: r.template_mismatches(),
        mismatched_entries: mismatched,
        other_pcr_entries: r.other_pcr_entries(),
        pcr10: r.banks().iter().map(|b| b.value.to_string()).collect(),
        quote_matched_after: matched,
        quote_given: quoted.is_some(),
        boot_aggregate,
    })
}

/// One finding, for reports.
#[derive(Debug, Clone, Serialize)]
pub struct FindingReport {
    pub index: u64,
    pub kind: FindingKind,
    pub fatal: bool,
    pub name: String,
    pub digest: Option<String>,
}

impl From<&Finding<'_>> for FindingReport {
    fn from(f: &Finding<'_>) -> Self {
        FindingReport {
            index: f.index,
            kind: f.kind,
            fatal: f.kind.is_fatal(),
            name: String::from_utf8_lossy(f.name).into_owned(),
            digest: f.digest.map(|d| d.to_string()),
        }
    }
}

/// Host facts from the log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FactsReport {
    pub selinux_enforcing: Option<bool>,
    pub selinux_state: Option<String>,
    pub selinux_policy_hash: Option<String>,
    pub kexec_cmdline: Option<String>,
    pub boot_aggregate: Option<String>,
    pub keys_measured: u64,
}

impl From<&Facts<'_>> for FactsReport {
    fn from(f: &Facts<'_>) -> Self {
        let text = |b: &trustpool_core::ima::Blob<'_>| {
            String::from_utf8_lossy(&b.bytes().collect::<Vec<_>>()).into_owned()
        };
        FactsReport {
            selinux_enforcing: f.selinux_enforcing,
            selinux_state: f.selinux_state.map(|(_, b)| text(&b)),
            selinux_policy_hash: f.selinux_policy_hash.map(|(_, b)| b.to_string()),
            kexec_cmdline: f.kexec_cmdline.map(|(_, b)| text(&b)),
            boot_aggregate: f.boot_aggregate.map(|d| d.to_string()),
            keys_measured: f.keys_measured,
        }
    }
}

/// What `ima check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    pub whitelist: String,
    pub stats: Stats,
    /// Excluded by std-side patterns (not expressible as prefixes).
    pub excluded_by_pattern: u64,
    /// Exclude patterns that could not be applied.
    pub unsupported_excludes: Vec<String>,
    pub fatal_findings: u64,
    /// The first findings (at most 1000).
    pub findings: Vec<FindingReport>,
    pub facts: FactsReport,
    pub replay: ReplayReport,
}

impl CheckReport {
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "IMA {} against whitelist {}",
            if self.passed { "PASSED" } else { "FAILED" },
            self.whitelist
        );
        s += &self.replay.text();
        let st = &self.stats;
        let _ = writeln!(
            s,
            "  {} entries: {} allowed, {} signed, {} excluded (+{} by pattern), {} unchecked, {} violations, {} fatal findings",
            st.entries, st.allowed, st.signed, st.excluded, self.excluded_by_pattern, st.unchecked, st.violations, self.fatal_findings
        );
        for u in &self.unsupported_excludes {
            let _ = writeln!(s, "  exclude not applied: {u}");
        }
        for f in &self.findings {
            let _ = writeln!(
                s,
                "  #{:<6} {:?}{} {} {}",
                f.index,
                f.kind,
                if f.fatal { "" } else { " (not fatal)" },
                f.name,
                f.digest.as_deref().unwrap_or("")
            );
        }
        if let Some(e) = self.facts.selinux_enforcing {
            let _ = writeln!(s, "  SELinux enforcing: {e}");
        }
        if let Some(k) = &self.facts.kexec_cmdline {
            let _ = writeln!(s, "  kexec command line: {k}");
        }
        s
    }
}

/// `trustpool ima check`: replay (and compare with the quote when given) and appraise the
/// log against a compiled whitelist. `rules` (the `[ima]` table the whitelist was compiled
/// from) adds what the compact form cannot hold: non-prefix excludes and verification keys.
pub fn ima_check(
    log: &[u8],
    format: Option<LogFormat>,
    template_alg: HashAlg,
    whitelist: &[u8],
    rules: Option<&ImaRules>,
    quoted: Option<&PcrBank>,
) -> Result<CheckReport, String> {
    let wl = Whitelist::parse(whitelist).map_err(|e| format!("whitelist: {e}"))?;
    let replay = ima_replay(log, format, template_alg, &[], quoted)?;
    let excludes: Vec<Exclude> = rules.map(ImaRules::excludes).unwrap_or_default();
    let unsupported: Vec<String> = excludes
        .iter()
        .filter_map(|e| match e {
            Exclude::Unsupported { regex, reason } => Some(format!("{regex:?}: {reason}")),
            _ => None,
        })
        .collect();
    let patterns: Vec<&Exclude> = excludes
        .iter()
        .filter(|e| matches!(e, Exclude::Pattern(_)))
        .collect();
    let ders: Vec<Vec<u8>> = rules
        .map(|r| {
            r.verification_keys
                .iter()
                .map(|k| decode_key(k))
                .collect::<Result<_, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let keys: Vec<ImaKey<'_>> = ders
        .iter()
        .filter_map(|d| {
            Some(ImaKey {
                key_id: key_id_v2(d)?,
                key: key_from_spki_der(d).ok()?,
            })
        })
        .collect();
    let mut appraiser = Appraiser::new(&wl).with_keys(&keys);
    let mut findings = vec![];
    let mut by_pattern = 0u64;
    let mut fatal = 0u64;
    let fmt = format.unwrap_or_else(|| detect_format(log));
    let mut report = |f: Finding<'_>| {
        let name = String::from_utf8_lossy(f.name);
        let plain_file = !matches!(
            f.kind,
            FindingKind::KeyringNotAllowed
                | FindingKind::BufNotAllowed
                | FindingKind::SelinuxNotEnforcing
        );
        if plain_file && f.kind.is_fatal() && patterns.iter().any(|p| p.is_match(&name)) {
            by_pattern += 1;
            return;
        }
        if f.kind.is_fatal() {
            fatal += 1;
        }
        if findings.len() < 1000 {
            findings.push(FindingReport::from(&f));
        }
    };
    let facts = match fmt {
        LogFormat::Binary => appraise_log(
            BinaryLog::new(log, template_alg),
            &mut appraiser,
            &mut report,
        ),
        LogFormat::Ascii => appraise_log(
            AsciiLog::new(log).with_template_alg(template_alg),
            &mut appraiser,
            &mut report,
        ),
    }
    .map_err(|e| e.to_string())?;
    let facts = FactsReport::from(&facts);
    Ok(CheckReport {
        passed: fatal == 0 && replay.ok(),
        whitelist: format!(
            "{:?} sha256:{}",
            wl.settings().name(),
            hex::encode(wl.digest())
        ),
        stats: *appraiser.stats(),
        excluded_by_pattern: by_pattern,
        unsupported_excludes: unsupported,
        fatal_findings: fatal,
        findings,
        facts,
        replay,
    })
}

/// A synthetic measurement list and the rules that allow all of it.
pub struct Synthetic {
    /// `binary_runtime_measurements` (SHA-1 template digests, `ima-ng`, SHA-256 file
    /// digests), starting with `boot_aggregate`.
    pub binary: Vec<u8>,
    /// The same entries as `ascii_runtime_measurements`.
    pub ascii: String,
    /// One digest per path.
    pub rules: ImaRules,
    /// SHA-1 PCR 10 after all entries.
    pub pcr10: Digest,
}

/// Make a log of `n` entries (and its allowlist) deterministically from `seed`.
pub fn synthetic_log(n: usize, seed: u64) -> Synthetic {
    let mut binary = Vec::with_capacity(n * 120);
    let mut ascii = String::with_capacity(n * 140);
    let mut digests = BTreeMap::new();
    let mut pcr = Digest::zero(HashAlg::Sha1);
    let mut paths = BTreeSet::new();
    for i in 0..n {
        let name = if i == 0 {
            "boot_aggregate".to_string()
        } else {
            format!("/usr/lib/synthetic/{:02x}/lib{i:07}-{seed}.so", i % 251)
        };
        paths.insert(name.clone());
        let mut h = HashAlg::Sha256.hasher().expect("sha256");
        h.update(&seed.to_le_bytes());
        h.update(&(i as u64).to_le_bytes());
        let fd = h.finalize();
        let mut data = vec![];
        let mut dng = b"sha256:\0".to_vec();
        dng.extend(fd.as_bytes());
        data.extend((dng.len() as u32).to_le_bytes());
        data.extend(&dng);
        data.extend((name.len() as u32 + 1).to_le_bytes());
        data.extend(name.as_bytes());
        data.push(0);
        let td = HashAlg::Sha1.hash(&data).expect("sha1");
        pcr.extend(td.as_bytes());
        binary.extend(10u32.to_le_bytes());
        binary.extend(td.as_bytes());
        binary.extend(6u32.to_le_bytes());
        binary.extend(b"ima-ng");
        binary.extend((data.len() as u32).to_le_bytes());
        binary.extend(&data);
        let _ = writeln!(
            ascii,
            "10 {} ima-ng sha256:{} {name}",
            hex::encode(td.as_bytes()),
            hex::encode(fd.as_bytes())
        );
        if i > 0 {
            digests.insert(name, vec![format!("sha256:{}", hex::encode(fd.as_bytes()))]);
        }
    }
    Synthetic {
        binary,
        ascii,
        rules: ImaRules {
            digests,
            ..ImaRules::default()
        },
        pcr10: pcr,
    }
}
