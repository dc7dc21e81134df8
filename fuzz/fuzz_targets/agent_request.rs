//! The agent's request parsing (Keylime agent API paths and query strings) and its parsing of
//! registrar answers (`GET /version`, the registration's credential blob), on arbitrary
//! input: an error answer, never a panic. The module is compiled here from the std adapter's
//! source, so the fuzzer does not build the networking stack.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../../std-adapter/src/agent/api.rs"]
#[allow(dead_code)]
mod api;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let method = ["GET", "POST", "PUT"][usize::from(sel % 3)];
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (&*text, None),
    };
    if let Ok(api::Route::Integrity(_, q)) = api::route(method, path, query) {
        assert!(q.nonce.len() <= api::MAX_NONCE && q.mask >> 24 == 0);
    }
    let _ = api::parse_mask(&text);
    assert_eq!(api::decode_segment(&api::encode_segment(&text)), text);
    let _ = api::decode_segment(&text);
    let _ = api::ima_slice(&text, u64::from(sel));
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
        let _ = api::pick_version(&v);
        if let Ok(blob) = api::blob_of(&v) {
            let _ = trustpool_core::credential::CredentialBlob::parse(&blob);
        }
    }
});
