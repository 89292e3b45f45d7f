//! Content negotiation on arbitrary header values: never panics, and agrees with itself
//! (`route_upload` is the routing prefix of `negotiate_upload`).
#![no_main]

use efgs_core::media::{accepts_json, negotiate_download, negotiate_upload, route_upload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // First line: Content-Type, rest: Accept (absent when there is no newline).
    let (content_type, accept) = match s.split_once('\n') {
        Some((ct, acc)) => (Some(ct), Some(acc)),
        None => (Some(s), None),
    };
    let full = negotiate_upload(content_type, accept);
    let routed = route_upload(content_type, accept);
    match (&full, &routed) {
        (Ok((f, _)), Ok(g)) => assert_eq!(f, g),
        (Err(e), Err(r)) => assert_eq!(e, r),
        (Err(e), Ok(_)) => assert!(!e.is_routing()),
        (Ok(_), Err(r)) => panic!("routing failed but negotiation passed: {r:?}"),
    }
    let _ = negotiate_download(accept);
    let _ = negotiate_download(content_type);
    let _ = accepts_json(accept);
});
