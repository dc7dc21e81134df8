//! The OpenAttestation `PollHosts` contract that OpenStack Nova's TrustedFilter and oVirt/RHV
//! trusted clusters call, as pure functions (no I/O): recognise the paths, read the request the
//! way both clients send it, and answer from stored verdicts. The server puts these behind
//! HTTPS.
//!
//! - Paths: `POST /AttestationService/resources/PollHosts` (OAT ≥ 1.5, oVirt's `PollUri`, Nova
//!   with `api_url=/AttestationService/resources`) and
//!   `POST /OpenAttestationWebServices/V1.0/PollHosts` (Nova's default); a doubled slash is
//!   tolerated.
//! - Requests: Nova `{"count": N, "hosts": ["h1", …]}`; oVirt `{"hosts": ["h1", …]}`, and for
//!   an empty list the invalid `{"hosts":]}`, read as an empty list.
//! - Response: always a JSON object `{"hosts":[{"host_name", "trust_lvl", "vtime"}]}`, one entry
//!   per requested host in request order, the name echoed as sent, levels in lower case
//!   (`trusted`, `untrusted`, `unknown`, `timeout`; never `pending`), `vtime` the verdict's
//!   time in UTC ISO 8601 ending in `Z`.

use serde::Serialize;

/// Largest request body read (bytes).
pub const MAX_BODY: usize = 1 << 20;
/// Most hosts answered in one request.
pub const MAX_HOSTS: usize = 100_000;

/// Whether an HTTP path is one of the `PollHosts` endpoints.
pub fn is_poll_hosts_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let mut norm = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && norm.ends_with('/')) {
            norm.push(c);
        }
    }
    matches!(
        norm.trim_end_matches('/'),
        "/AttestationService/resources/PollHosts" | "/OpenAttestationWebServices/V1.0/PollHosts"
    )
}

/// A host's trust level as the clients expect it (lower case, compared exactly by Nova).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    Trusted,
    Untrusted,
    Unknown,
    Timeout,
}

/// Why a request body could not be read as a host list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body of {0} bytes is larger than {MAX_BODY}")]
    TooLarge(usize),
    #[error("request has {0} hosts, more than {MAX_HOSTS}")]
    TooManyHosts(usize),
    #[error("request is not a PollHosts body: {0}")]
    Malformed(String),
}

#[derive(serde::Deserialize)]
struct Request {
    hosts: Vec<String>,
    // Nova sends it; its value is not needed (the list is authoritative).
    #[serde(default)]
    #[allow(dead_code)]
    count: Option<serde_json::Value>,
}

/// The host names of a `PollHosts` request, in order.
pub fn parse_request(body: &[u8]) -> Result<Vec<String>, RequestError> {
    if body.len() > MAX_BODY {
        return Err(RequestError::TooLarge(body.len()));
    }
    // oVirt's empty list: `{"hosts":]}` (with any whitespace).
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact == b"{\"hosts\":]}" {
        return Ok(Vec::new());
    }
    let req: Request =
        serde_json::from_slice(body).map_err(|e| RequestError::Malformed(e.to_string()))?;
    if req.hosts.len() > MAX_HOSTS {
        return Err(RequestError::TooManyHosts(req.hosts.len()));
    }
    Ok(req.hosts)
}

/// UTC ISO 8601 with a `Z`, seconds precision, from seconds since the Unix epoch.
pub fn iso8601_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's days_from_civil, inverted).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[derive(Serialize)]
struct HostAnswer<'a> {
    host_name: &'a str,
    trust_lvl: TrustLevel,
    vtime: String,
}

#[derive(Serialize)]
struct Answer<'a> {
    hosts: Vec<HostAnswer<'a>>,
}

/// Answer a `PollHosts` body from stored verdicts: `verdict(host)` gives the level and the
/// verdict's time (Unix seconds) of a known host. Unknown hosts are `unknown` with `vtime` =
/// `now`. A body that is not a host list gets an empty list: the clients accept only 200 with
/// JSON, so the answer is always one.
pub fn answer(
    body: &[u8],
    verdict: impl Fn(&str) -> Option<(TrustLevel, u64)>,
    now: u64,
) -> Vec<u8> {
    let hosts = parse_request(body).unwrap_or_default();
    let answer = Answer {
        hosts: hosts
            .iter()
            .map(|h| {
                let (trust_lvl, t) = verdict(h).unwrap_or((TrustLevel::Unknown, now));
                HostAnswer {
                    host_name: h,
                    trust_lvl,
                    vtime: iso8601_utc(t),
                }
            })
            .collect(),
    };
    serde_json::to_vec(&answer).unwrap_or_else(|_| b"{\"hosts\":[]}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(is_poll_hosts_path(
            "/AttestationService/resources/PollHosts"
        ));
        assert!(is_poll_hosts_path(
            "/OpenAttestationWebServices/V1.0/PollHosts"
        ));
        assert!(is_poll_hosts_path(
            "/AttestationService/resources//PollHosts"
        ));
        assert!(is_poll_hosts_path(
            "//OpenAttestationWebServices/V1.0/PollHosts?x=1"
        ));
        assert!(!is_poll_hosts_path(
            "/AttestationService/resources/PollHost"
        ));
        assert!(!is_poll_hosts_path("/"));
    }

    #[test]
    fn requests_as_nova_and_ovirt_send_them() {
        assert_eq!(
            parse_request(br#"{"count": 2, "hosts": ["c1", "c2"]}"#).unwrap(),
            ["c1", "c2"]
        );
        assert_eq!(
            parse_request(br#"{"hosts":["node-1.example"]}"#).unwrap(),
            ["node-1.example"]
        );
        assert!(parse_request(br#"{"hosts":]}"#).unwrap().is_empty());
        assert!(parse_request(b"{ \"hosts\" : ] }").unwrap().is_empty());
        assert!(matches!(
            parse_request(b"{\"hosts\": 3}"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(&vec![b' '; MAX_BODY + 1]),
            Err(RequestError::TooLarge(_))
        ));
    }

    #[test]
    fn answers_in_request_order_with_exact_names() {
        let verdicts = |h: &str| match h {
            "c1" => Some((TrustLevel::Trusted, 1_764_079_200)),
            "Ünïcode host" => Some((TrustLevel::Untrusted, 0)),
            "slow" => Some((TrustLevel::Timeout, 951_782_400)),
            _ => None,
        };
        let body = r#"{"count":4,"hosts":["slow","c1","nope","Ünïcode host"]}"#;
        let out = answer(body.as_bytes(), verdicts, 1_764_079_999);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let hosts = v["hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 4);
        assert_eq!(hosts[0]["host_name"], "slow");
        assert_eq!(hosts[0]["trust_lvl"], "timeout");
        assert_eq!(hosts[0]["vtime"], "2000-02-29T00:00:00Z");
        assert_eq!(hosts[1]["trust_lvl"], "trusted");
        assert_eq!(hosts[1]["vtime"], "2025-11-25T14:00:00Z");
        assert_eq!(hosts[2]["trust_lvl"], "unknown");
        assert_eq!(hosts[2]["vtime"], "2025-11-25T14:13:19Z");
        assert_eq!(hosts[3]["host_name"], "Ünïcode host");
        assert_eq!(hosts[3]["vtime"], "1970-01-01T00:00:00Z");
        assert_eq!(answer(b"{\"hosts\":]}", verdicts, 0), b"{\"hosts\":[]}");
        assert_eq!(answer(b"garbage", verdicts, 0), b"{\"hosts\":[]}");
    }

    proptest::proptest! {
        #[test]
        fn any_body_gets_a_json_answer(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let out = answer(&body, |_| Some((TrustLevel::Trusted, 1)), 2);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            proptest::prop_assert!(v["hosts"].is_array());
        }

        #[test]
        fn dates_count_back_to_the_same_second(unix in 0u64..(400 * 366 * 86_400)) {
            let s = iso8601_utc(unix);
            proptest::prop_assert_eq!(s.len(), 20);
            proptest::prop_assert!(s.ends_with('Z'));
            // Days before the date, counted the slow way, give the same instant back.
            let (y, m, d): (u64, u64, u64) = (s[0..4].parse().unwrap(), s[5..7].parse().unwrap(), s[8..10].parse().unwrap());
            let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
            let mut days: u64 = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum();
            let month_days = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
            days += month_days[..(m - 1) as usize].iter().sum::<u64>() + d - 1;
            let (hh, mm, ss): (u64, u64, u64) = (s[11..13].parse().unwrap(), s[14..16].parse().unwrap(), s[17..19].parse().unwrap());
            proptest::prop_assert_eq!(days * 86_400 + hh * 3600 + mm * 60 + ss, unix);
        }
    }
}
