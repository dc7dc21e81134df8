//! The Keylime agent pull API (versions 2.1–2.6) as pure functions: paths, query strings and
//! response bodies, with no network and no TPM, so that they can be tested and fuzzed alone.
//!
//! The shapes are those the Keylime 7.x verifier and tenant use (`keylime/cloud_verifier_tornado.py`,
//! `keylime/cloud_verifier_common.py`, `keylime/tenant.py`): every answer is
//! `{"code": N, "status": "...", "results": {...}}`.

use serde::Serialize;
use serde_json::{json, Value};

/// The API versions served, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 6] = ["2.1", "2.2", "2.3", "2.4", "2.5", "2.6"];

/// The newest supported version.
pub const CURRENT_VERSION: &str = "2.6";

/// The longest nonce accepted (Keylime sends 20 characters).
pub const MAX_NONCE: usize = 64;

/// The longest query string accepted.
pub const MAX_QUERY: usize = 1024;

/// An API version `2.minor` that this agent serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub minor: u8,
}

impl ApiVersion {
    pub const CURRENT: ApiVersion = ApiVersion { minor: 6 };

    /// Parse `2.1` … `2.6`.
    pub fn parse(s: &str) -> Option<ApiVersion> {
        let minor = s.strip_prefix("2.")?;
        if minor.len() != 1 {
            return None;
        }
        let minor: u8 = minor.parse().ok()?;
        (1..=6).contains(&minor).then_some(ApiVersion { minor })
    }

    /// API 2.5 and later name the EK algorithm with its size (`rsa2048`, `ecc256`).
    pub fn sized_enc_alg(self) -> bool {
        self.minor >= 5
    }

    /// `GET /agent/info` exists from 2.2.
    pub fn has_agent_info(self) -> bool {
        self.minor >= 2
    }
}

impl std::fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "2.{}", self.minor)
    }
}

/// An error answer: the HTTP code and the `status` text saying what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub status: String,
}

impl ApiError {
    pub fn bad_request(status: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            status: status.into(),
        }
    }

    pub fn not_found(status: impl Into<String>) -> ApiError {
        ApiError {
            code: 404,
            status: status.into(),
        }
    }

    pub fn body(&self) -> Value {
        json!({"code": self.code, "status": self.status, "results": {}})
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.status)
    }
}

/// `{"code":200,"status":"Success","results":…}`.
pub fn success(results: Value) -> Value {
    json!({"code": 200, "status": "Success", "results": results})
}

/// The body of `GET /version`.
pub fn version_body() -> Value {
    success(json!({
        "supported_version": CURRENT_VERSION,
        "supported_versions": SUPPORTED_VERSIONS,
    }))
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /version`.
    Version,
    /// `GET /vX.Y/quotes/integrity?…`.
    Integrity(ApiVersion, IntegrityQuery),
    /// `GET /vX.Y/quotes/identity?nonce=…`.
    Identity(ApiVersion, String),
    /// `GET /vX.Y/agent/info` (2.2 and later).
    Info(ApiVersion),
    /// `POST /vX.Y/notifications/revocation`.
    Revocation(ApiVersion),
    /// `POST /vX.Y/keys/ukey` and `/keys/vkey`: a key half from the tenant or the verifier.
    KeyHalf(ApiVersion, KeyHalf),
    /// `GET /vX.Y/keys/pubkey`.
    Pubkey(ApiVersion),
    /// `GET /vX.Y/keys/verify?challenge=…`.
    VerifyKey(ApiVersion, String),
}

/// Which half of the bootstrap key a `POST /keys/*key` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHalf {
    U,
    V,
}

/// The query of `GET /quotes/integrity`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityQuery {
    /// The caller's nonce; its ASCII bytes are the quote's `extraData`.
    pub nonce: String,
    /// PCRs asked for (bit n = PCR n); PCR 16 is always added to the quote.
    pub mask: u32,
    /// `partial=1`: the verifier has the transport key already; leave `pubkey` out.
    pub partial: bool,
    /// The first IMA entry wanted.
    pub ima_ml_entry: u64,
}

/// Route a request by method, path and query string. A `/vX.Y/` prefix this agent does not
/// serve is a 400 whose status contains `API version not supported` (the verifier then
/// renegotiates with `GET /version`).
pub fn route(method: &str, path: &str, query: Option<&str>) -> Result<Route, ApiError> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(ApiError {
            code: 414,
            status: format!("query string longer than {MAX_QUERY} bytes"),
        });
    }
    // Tolerate a doubled slash, as some clients join base URLs and paths that way.
    let path = path.trim_start_matches('/');
    if path == "version" {
        return match method {
            "GET" => Ok(Route::Version),
            _ => Err(method_not_allowed(method, "/version")),
        };
    }
    let (version, rest) = match path.split_once('/') {
        Some((v, rest)) => (v, rest),
        None => (path, ""),
    };
    let Some(v) = version.strip_prefix('v') else {
        return Err(ApiError::not_found(format!("no such path: /{path}")));
    };
    let Some(version) = ApiVersion::parse(v) else {
        return Err(ApiError::bad_request(format!(
            "API version not supported: {v} (supported: {})",
            SUPPORTED_VERSIONS.join(", ")
        )));
    };
    let rest = rest.trim_end_matches('/');
    let want = |m: &str| -> Result<(), ApiError> {
        if method == m {
            Ok(())
        } else {
            Err(method_not_allowed(method, rest))
        }
    };
    match rest {
        "quotes/integrity" => {
            want("GET")?;
            Ok(Route::Integrity(version, parse_integrity_query(query)?))
        }
        "quotes/identity" => {
            want("GET")?;
            let params = Params::parse(query)?;
            Ok(Route::Identity(version, params.nonce()?))
        }
        "agent/info" if version.has_agent_info() => {
            want("GET")?;
            Ok(Route::Info(version))
        }
        "notifications/revocation" => {
            want("POST")?;
            Ok(Route::Revocation(version))
        }
        "keys/ukey" => {
            want("POST")?;
            Ok(Route::KeyHalf(version, KeyHalf::U))
        }
        "keys/vkey" => {
            want("POST")?;
            Ok(Route::KeyHalf(version, KeyHalf::V))
        }
        "keys/pubkey" => {
            want("GET")?;
            Ok(Route::Pubkey(version))
        }
        "keys/verify" => {
            want("GET")?;
            let params = Params::parse(query)?;
            let challenge = params
                .get("challenge")
                .ok_or_else(|| ApiError::bad_request("missing query parameter 'challenge'"))?;
            if challenge.is_empty()
                || challenge.len() > MAX_NONCE
                || !challenge.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(ApiError::bad_request(format!(
                    "challenge must be 1 to {MAX_NONCE} letters and digits"
                )));
            }
            Ok(Route::VerifyKey(version, challenge.to_string()))
        }
        _ => Err(ApiError::not_found(format!(
            "no such path in API {version}: /{rest}"
        ))),
    }
}

fn method_not_allowed(method: &str, path: &str) -> ApiError {
    ApiError {
        code: 405,
        status: format!(
            "method {method} not allowed on /{}",
            path.trim_start_matches('/')
        ),
    }
}

/// The query of `GET /quotes/integrity`: `nonce` (required), `mask` (hex, required),
/// `partial` (`0` or `1`, default `0`), `ima_ml_entry` (default 0).
pub fn parse_integrity_query(query: &str) -> Result<IntegrityQuery, ApiError> {
    let params = Params::parse(query)?;
    let nonce = params.nonce()?;
    let mask = params
        .get("mask")
        .ok_or_else(|| ApiError::bad_request("missing query parameter 'mask'"))
        .and_then(parse_mask)?;
    let partial = match params.get("partial") {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "partial must be 0 or 1, not '{}'",
                printable(other)
            )))
        }
    };
    let ima_ml_entry = match params.get("ima_ml_entry") {
        None | Some("") => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "ima_ml_entry must be a decimal entry number, not '{}'",
                printable(s)
            ))
        })?,
    };
    Ok(IntegrityQuery {
        nonce,
        mask,
        partial,
        ima_ml_entry,
    })
}

/// A PCR mask as Keylime writes it: hex with or without `0x`, PCRs 0–23 only.
pub fn parse_mask(s: &str) -> Result<u32, ApiError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "mask must be a hex PCR bitmap such as 0x400, not '{}'",
            printable(s)
        )));
    }
    let mask = u32::from_str_radix(digits, 16)
        .map_err(|_| ApiError::bad_request(format!("mask '{}' is not hex", printable(s))))?;
    if mask >> 24 != 0 {
        return Err(ApiError::bad_request(format!(
            "mask {mask:#x} selects PCRs above 23"
        )));
    }
    Ok(mask)
}

/// Query parameters (`a=b&c=d`), each name at most once. Values are taken as they are:
/// every value this API accepts is letters and digits, so a percent-escape is simply invalid.
struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    fn parse(query: &'a str) -> Result<Params<'a>, ApiError> {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if pairs.iter().any(|(name, _)| *name == k) {
                return Err(ApiError::bad_request(format!(
                    "query parameter '{}' given twice",
                    printable(k)
                )));
            }
            if pairs.len() >= 16 {
                return Err(ApiError::bad_request("more than 16 query parameters"));
            }
            pairs.push((k, v));
        }
        Ok(Params { pairs })
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    fn nonce(&self) -> Result<String, ApiError> {
        let nonce = self
            .get("nonce")
            .ok_or_else(|| ApiError::bad_request("missing query parameter 'nonce'"))?;
        if nonce.is_empty() {
            return Err(ApiError::bad_request("nonce is empty"));
        }
        if nonce.len() > MAX_NONCE {
            return Err(ApiError::bad_request(format!(
                "nonce is {} characters long, more than {MAX_NONCE}",
                nonce.len()
            )));
        }
        if let Some(pos) = nonce.bytes().position(|b| !b.is_ascii_alphanumeric()) {
            return Err(ApiError::bad_request(format!(
                "nonce must be letters and digits only (character {} is not)",
                pos + 1
            )));
        }
        Ok(nonce.to_string())
    }
}

/// At most 40 characters of untrusted text, control characters replaced, for error messages.
fn printable(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The algorithms the agent reports, in Keylime's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algorithms {
    /// `sha256`, `sha1`, `sha384`.
    pub hash: &'static str,
    /// The EK's: true for RSA 2048, false for ECC P-256.
    pub ek_rsa: bool,
    /// `rsassa` or `ecdsa`.
    pub sign: &'static str,
}

impl Algorithms {
    pub fn enc_alg(&self, version: ApiVersion) -> &'static str {
        match (self.ek_rsa, version.sized_enc_alg()) {
            (true, false) => "rsa",
            (true, true) => "rsa2048",
            (false, false) => "ecc",
            (false, true) => "ecc256",
        }
    }
}

/// The `results` of a quote answer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuoteResults {
    /// `r` + base64(TPMS_ATTEST) + `:` + base64(TPMT_SIGNATURE) + `:` + base64(PCR values).
    pub quote: String,
    pub hash_alg: &'static str,
    pub enc_alg: &'static str,
    pub sign_alg: &'static str,
    /// PEM of the transport key (when `partial=0`, and always for identity quotes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pubkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ima_measurement_list: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ima_measurement_list_entry: Option<u64>,
    /// base64 of the binary firmware event log (when PCR 0 was asked for).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mb_measurement_list: Option<String>,
    /// Seconds since the epoch when the host booted.
    pub boottime: u64,
}

/// The IMA entries from `first` on, of an ASCII measurement list, and the entry number the
/// answer starts at. A `first` past the end of the list means the list was restarted (the host
/// rebooted since the verifier's last request): the whole list is returned from entry 0, which
/// is how the Keylime verifier recognises a reboot (`ima_measurement_list_entry == 0`). A
/// `first` equal to the number of entries gives an empty list.
pub fn ima_slice(log: &str, first: u64) -> (u64, &str) {
    let mut start = 0usize;
    let mut n = 0u64;
    while n < first {
        match log.get(start..).and_then(|rest| rest.find('\n')) {
            Some(i) => {
                start = start.saturating_add(i).saturating_add(1);
                n = n.saturating_add(1);
            }
            None => {
                // Fewer complete lines than asked: the last line may lack a newline.
                let tail = log.get(start..).unwrap_or("");
                if !tail.is_empty() {
                    n = n.saturating_add(1);
                    start = log.len();
                }
                break;
            }
        }
    }
    if n < first {
        return (0, log);
    }
    (first, log.get(start..).unwrap_or(""))
}

/// A name as one URL path segment: letters, digits and `-._~` kept, every other byte
/// percent-encoded (RFC 3986 §2.3 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_segment`]: `%XX` escapes decoded; an invalid escape is kept as it
/// is, and bytes that are not UTF-8 become U+FFFD.
pub fn decode_segment(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = b
            .get(i.saturating_add(1)..i.saturating_add(3))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i = i.saturating_add(3);
            }
            _ => {
                out.push(c);
                i = i.saturating_add(1);
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The newest 2.x version in a `GET /version` answer's `results.supported_versions` (or
/// `current_version`) that this agent speaks.
pub fn pick_version(v: &Value) -> Option<ApiVersion> {
    let results = v.get("results")?;
    let mut offered: Vec<&str> = results
        .get("supported_versions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(c) = results.get("current_version").and_then(Value::as_str) {
        offered.push(c);
    }
    offered.into_iter().filter_map(ApiVersion::parse).max()
}

/// The credential blob of a registration answer (`results.blob`, base64).
pub fn blob_of(v: &Value) -> Result<Vec<u8>, String> {
    let blob = v
        .pointer("/results/blob")
        .and_then(Value::as_str)
        .ok_or_else(|| "the registrar's answer has no results.blob".to_string())?;
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|e| format!("results.blob is not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(ApiVersion::parse("2.1"), Some(ApiVersion { minor: 1 }));
        assert_eq!(ApiVersion::parse("2.6"), Some(ApiVersion::CURRENT));
        for bad in ["2.0", "2.7", "1.0", "3.0", "2.10", "2", "", "2.x"] {
            assert_eq!(ApiVersion::parse(bad), None, "{bad}");
        }
        assert_eq!(
            version_body().to_string(),
            r#"{"code":200,"results":{"supported_version":"2.6","supported_versions":["2.1","2.2","2.3","2.4","2.5","2.6"]},"status":"Success"}"#
        );
    }

    #[test]
    fn integrity_route() {
        let r = route(
            "GET",
            "/v2.2/quotes/integrity",
            Some("nonce=ABCdef123&mask=0x408400&partial=1&ima_ml_entry=17"),
        )
        .unwrap();
        assert_eq!(
            r,
            Route::Integrity(
                ApiVersion { minor: 2 },
                IntegrityQuery {
                    nonce: "ABCdef123".into(),
                    mask: 0x408400,
                    partial: true,
                    ima_ml_entry: 17
                }
            )
        );
    }

    #[test]
    fn unsupported_version_is_400_with_the_phrase() {
        let e = route("GET", "/v3.0/quotes/integrity", Some("nonce=a&mask=1")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.status.contains("API version not supported"), "{e}");
        let e = route("GET", "/v2.0/agent/info", None).unwrap_err();
        assert!(e.status.contains("API version not supported"));
        // agent/info does not exist in 2.1
        assert_eq!(
            route("GET", "/v2.1/agent/info", None).unwrap_err().code,
            404
        );
    }

    #[test]
    fn bad_queries_name_what_is_wrong() {
        let q = |s: &str| parse_integrity_query(s).unwrap_err().status;
        assert_eq!(q("mask=0x1"), "missing query parameter 'nonce'");
        assert_eq!(q("nonce=abc"), "missing query parameter 'mask'");
        assert_eq!(
            q("nonce=ab-c&mask=1"),
            "nonce must be letters and digits only (character 3 is not)"
        );
        assert_eq!(
            q(&format!("nonce={}&mask=1", "a".repeat(65))),
            "nonce is 65 characters long, more than 64"
        );
        assert_eq!(
            q("nonce=a&mask=0x1000000"),
            "mask 0x1000000 selects PCRs above 23"
        );
        assert_eq!(
            q("nonce=a&mask=zz"),
            "mask must be a hex PCR bitmap such as 0x400, not 'zz'"
        );
        assert_eq!(
            q("nonce=a&mask=1&partial=2"),
            "partial must be 0 or 1, not '2'"
        );
        assert_eq!(
            q("nonce=a&mask=1&ima_ml_entry=-1"),
            "ima_ml_entry must be a decimal entry number, not '-1'"
        );
        assert_eq!(
            q("nonce=a&nonce=b&mask=1"),
            "query parameter 'nonce' given twice"
        );
    }

    #[test]
    fn enc_alg_names_follow_the_version() {
        let a = Algorithms {
            hash: "sha256",
            ek_rsa: true,
            sign: "rsassa",
        };
        assert_eq!(a.enc_alg(ApiVersion { minor: 4 }), "rsa");
        assert_eq!(a.enc_alg(ApiVersion { minor: 5 }), "rsa2048");
    }

    #[test]
    fn segments_round_trip() {
        for name in ["compute-1", "host name/with space", "hôte", "a%2Fb", ""] {
            assert_eq!(decode_segment(&encode_segment(name)), name);
        }
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(decode_segment("100%"), "100%");
        assert_eq!(decode_segment("%zz%4"), "%zz%4");
    }

    #[test]
    fn ima_slices() {
        let log = "a\nb\nc\n";
        assert_eq!(ima_slice(log, 0), (0, "a\nb\nc\n"));
        assert_eq!(ima_slice(log, 1), (1, "b\nc\n"));
        assert_eq!(ima_slice(log, 3), (3, ""));
        // Past the end: the log restarted.
        assert_eq!(ima_slice(log, 4), (0, "a\nb\nc\n"));
        assert_eq!(ima_slice("a\nb", 1), (1, "b"));
        assert_eq!(ima_slice("a\nb", 2), (2, ""));
        assert_eq!(ima_slice("a\nb", 3), (0, "a\nb"));
    }

    proptest::proptest! {
        #[test]
        fn route_never_panics(method in "GET|POST|PUT", path in "[/a-z0-9.]{0,40}", query in ".{0,200}") {
            let _ = route(&method, &path, Some(&query));
        }

        #[test]
        fn ima_slice_is_a_suffix(log in "[a-c\n]{0,60}", first in 0u64..30) {
            let (start, tail) = ima_slice(&log, first);
            proptest::prop_assert!(log.ends_with(tail));
            proptest::prop_assert!(start == first || start == 0);
        }
    }
}
