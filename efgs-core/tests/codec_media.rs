//! Content negotiation: one assertion per row of the protocol.md §1.0 tables (with
//! decisions.md item 6 where it changes a row), then the upload/audit `Accept` rules of §1.2/§1.4
//! and the tolerated syntax.
#![allow(clippy::unwrap_used)]

use efgs_core::media::{
    BodyFormat, JSON_V1, MediaTypeError, OPTIONS_ACCEPT, PROTOBUF_V1, SEMVER_NUMBER, SEMVER_PARTS,
    accepts_json, negotiate_download, negotiate_upload, route_upload,
};
use efgs_core::model::FormatVersion;

const PB: &str = "application/protobuf; version=1.0";
const JS: &str = "application/json; version=1.0";

fn upload(ct: Option<&str>) -> Result<(BodyFormat, FormatVersion), MediaTypeError> {
    negotiate_upload(ct, None)
}

// ---- Reading a request body (upload) ---------------------------------------------------------

#[test]
fn upload_valid_types() {
    assert_eq!(
        upload(Some(PB)),
        Ok((BodyFormat::Protobuf, FormatVersion::V1_0))
    );
    assert_eq!(
        upload(Some(JS)),
        Ok((BodyFormat::Json, FormatVersion::V1_0))
    );
}

#[test]
fn upload_row_content_type_missing_is_415_routing() {
    let e = upload(None).unwrap_err();
    assert_eq!(e, MediaTypeError::ContentTypeMissing);
    assert!(e.is_routing());
}

#[test]
fn upload_row_type_not_protobuf_or_json_is_415_routing() {
    for ct in [
        "application/xml; version=1.0",
        "application/x-protobuf; version=1.0",
        "text/plain",
        "application/octet-stream",
        "application/*; version=1.0",
        "*/*",
        "application/problem+json; version=1.0",
        "",
        "garbage",
    ] {
        let e = upload(Some(ct)).unwrap_err();
        assert!(
            matches!(e, MediaTypeError::UnsupportedContentType { ref content_type } if content_type == ct),
            "{ct}: {e:?}"
        );
        assert!(e.is_routing());
    }
}

#[test]
fn upload_row_no_version_is_400() {
    for ct in [
        "application/protobuf",
        "application/json",
        "application/json; charset=utf-8",
    ] {
        let e = upload(Some(ct)).unwrap_err();
        assert_eq!(e, MediaTypeError::ContentTypeVersionMissing, "{ct}");
        assert_eq!(
            e.to_string(),
            "Version parameter of Content-Type is required!"
        );
        assert!(!e.is_routing());
    }
}

#[test]
fn upload_row_version_not_major_minor_is_400() {
    for (v, reason) in [
        ("1", SEMVER_PARTS),
        ("1.0.0", SEMVER_PARTS),
        ("abc", SEMVER_PARTS),
        ("1.2.3.4", SEMVER_PARTS),
        ("nonSem.VerString", SEMVER_NUMBER),
        ("1.x", SEMVER_NUMBER),
        ("", SEMVER_PARTS),
    ] {
        let e = upload(Some(&format!("application/protobuf; version={v}"))).unwrap_err();
        assert_eq!(
            e,
            MediaTypeError::ContentTypeVersionInvalid {
                version: v.into(),
                reason
            },
            "{v}"
        );
        assert_eq!(e.to_string(), reason);
    }
}

#[test]
fn upload_row_major_or_minor_not_1_0_is_406() {
    for v in ["2.0", "1.1", "0.0", "0.1", "1.5"] {
        let e = upload(Some(&format!("application/json; version={v}"))).unwrap_err();
        assert_eq!(
            e,
            MediaTypeError::ContentTypeVersionIncompatible { version: v.into() },
            "{v}"
        );
        assert_eq!(e.to_string(), "Protocol version is not compatible!");
    }
}

// Rows "malformed bytes", "empty body" and "invalid Base64" are body decoding: codec_vectors.rs
// (empty body) and codec_json.rs (Base64); malformed protobuf is in codec_props.rs.

#[test]
fn upload_accept_must_allow_json() {
    // §1.2: Accept incompatible with application/json is 406 before auth; missing is fine.
    assert!(negotiate_upload(Some(PB), None).is_ok());
    for ok in [
        "application/json",
        "*/*",
        "application/*",
        JS,
        "text/html, application/json;q=0.5",
    ] {
        assert!(negotiate_upload(Some(PB), Some(ok)).is_ok(), "{ok}");
    }
    for bad in [PB, "application/xml", "text/*", "application/json;q=0"] {
        let e = negotiate_upload(Some(PB), Some(bad)).unwrap_err();
        assert!(
            matches!(e, MediaTypeError::NotAcceptable { .. }),
            "{bad}: {e:?}"
        );
        assert!(e.is_routing());
    }
    // 415 (Content-Type) is checked before 406 (Accept), and 406 before the version.
    assert!(matches!(
        negotiate_upload(Some("application/xml"), Some(PB)),
        Err(MediaTypeError::UnsupportedContentType { .. })
    ));
    assert!(matches!(
        negotiate_upload(Some("application/json"), Some(PB)),
        Err(MediaTypeError::NotAcceptable { .. })
    ));
    // route_upload stops before the version.
    assert_eq!(
        route_upload(Some("application/json"), None),
        Ok(BodyFormat::Json)
    );
    assert_eq!(
        route_upload(Some("application/protobuf; version=9.9"), None),
        Ok(BodyFormat::Protobuf)
    );
}

// ---- Writing a response body (download) ------------------------------------------------------

#[test]
fn download_row_protobuf_v1() {
    assert_eq!(negotiate_download(Some(PB)), Ok(BodyFormat::Protobuf));
}

#[test]
fn download_row_json_v1() {
    assert_eq!(negotiate_download(Some(JS)), Ok(BodyFormat::Json));
}

#[test]
fn download_row_type_without_version_is_415() {
    assert_eq!(
        negotiate_download(Some("application/protobuf")),
        Err(MediaTypeError::AcceptVersionMissing)
    );
    assert_eq!(
        negotiate_download(Some("application/json")),
        Err(MediaTypeError::AcceptVersionMissing)
    );
    assert!(!MediaTypeError::AcceptVersionMissing.is_routing());
}

#[test]
fn download_row_missing_accept_or_any_is_protobuf_per_decisions() {
    // Reference: 415. decisions.md item 6: served as protobuf 1.0.
    assert_eq!(negotiate_download(None), Ok(BodyFormat::Protobuf));
    assert_eq!(negotiate_download(Some("*/*")), Ok(BodyFormat::Protobuf));
    assert_eq!(negotiate_download(Some("")), Ok(BodyFormat::Protobuf));
    assert_eq!(
        negotiate_download(Some("application/*")),
        Ok(BodyFormat::Protobuf)
    );
}

#[test]
fn download_row_wrong_version_is_415() {
    for v in ["2.0", "1.1"] {
        assert_eq!(
            negotiate_download(Some(&format!("application/protobuf; version={v}"))),
            Err(MediaTypeError::AcceptVersionIncompatible { version: v.into() })
        );
    }
}

#[test]
fn download_row_unparsable_version_is_415() {
    assert_eq!(
        negotiate_download(Some("application/json; version=abc")),
        Err(MediaTypeError::AcceptVersionInvalid {
            version: "abc".into(),
            reason: SEMVER_PARTS
        })
    );
}

#[test]
fn download_row_non_matching_type_is_406_routing() {
    let e = negotiate_download(Some("application/xml")).unwrap_err();
    assert_eq!(
        e,
        MediaTypeError::NotAcceptable {
            accept: "application/xml".into()
        }
    );
    assert!(e.is_routing());
}

#[test]
fn download_accept_lists_and_q_values() {
    assert_eq!(
        negotiate_download(Some("application/xml, application/json; version=1.0")),
        Ok(BodyFormat::Json)
    );
    assert_eq!(
        negotiate_download(Some(&format!("{JS}, {PB}"))),
        Ok(BodyFormat::Json)
    );
    assert_eq!(
        negotiate_download(Some(&format!("{PB}, {JS}"))),
        Ok(BodyFormat::Protobuf)
    );
    assert_eq!(
        negotiate_download(Some(&format!("{PB};q=0.5, {JS}"))),
        Ok(BodyFormat::Json)
    );
    assert_eq!(
        negotiate_download(Some(&format!("{JS};q=0, {PB};q=0.1"))),
        Ok(BodyFormat::Protobuf)
    );
    // The first entry that succeeds wins; otherwise the first matching entry's error.
    assert_eq!(
        negotiate_download(Some(&format!("application/protobuf, {JS}"))),
        Ok(BodyFormat::Json)
    );
    assert_eq!(
        negotiate_download(Some("application/protobuf, application/json; version=2.0")),
        Err(MediaTypeError::AcceptVersionMissing)
    );
    // Malformed entries are skipped; q=0 everywhere leaves nothing acceptable.
    assert_eq!(
        negotiate_download(Some(&format!("garbage, {JS}"))),
        Ok(BodyFormat::Json)
    );
    assert!(matches!(
        negotiate_download(Some(&format!("{PB};q=0"))),
        Err(MediaTypeError::NotAcceptable { .. })
    ));
    assert!(matches!(
        negotiate_download(Some("text/*, image/png")),
        Err(MediaTypeError::NotAcceptable { .. })
    ));
}

#[test]
fn tolerated_syntax() {
    for accept in [
        "Application/Protobuf; Version=1.0",
        "APPLICATION/PROTOBUF;VERSION=1.0",
        "application/protobuf ;  version = 1.0 ",
        "application/protobuf; version=\"1.0\"",
        "application/protobuf;charset=utf-8;version=1.0",
        "application/protobuf; version=1.0; q=0.9",
        "  application/protobuf;version=1.0  ,",
    ] {
        assert_eq!(
            negotiate_download(Some(accept)),
            Ok(BodyFormat::Protobuf),
            "{accept}"
        );
        assert_eq!(
            upload(Some(accept.trim().trim_end_matches(','))),
            Ok((BodyFormat::Protobuf, FormatVersion::V1_0)),
            "{accept}"
        );
    }
}

// ---- JSON-only routes (audit §1.4, callback list §1.5) ---------------------------------------

#[test]
fn json_only_routes() {
    for ok in [
        None,
        Some(""),
        Some("*/*"),
        Some("application/*"),
        Some("application/json"),
        Some(JS),
        Some("application/json; version=2.0"),
        Some("Application/JSON"),
        Some("application/protobuf; version=1.0, application/json"),
    ] {
        assert_eq!(accepts_json(ok), Ok(()), "{ok:?}");
    }
    for bad in [
        PB,
        "application/protobuf",
        "application/xml",
        "text/plain",
        "application/json;q=0",
    ] {
        assert!(
            matches!(
                accepts_json(Some(bad)),
                Err(MediaTypeError::NotAcceptable { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn constants_and_codes() {
    assert_eq!(PROTOBUF_V1, "application/protobuf; version=1.0");
    assert_eq!(JSON_V1, "application/json; version=1.0");
    assert_eq!(
        OPTIONS_ACCEPT,
        "application/json; version=1.0, application/protobuf; version=1.0"
    );
    let kinds = [
        MediaTypeError::ContentTypeMissing,
        MediaTypeError::UnsupportedContentType {
            content_type: String::new(),
        },
        MediaTypeError::NotAcceptable {
            accept: String::new(),
        },
        MediaTypeError::ContentTypeVersionMissing,
        MediaTypeError::ContentTypeVersionInvalid {
            version: String::new(),
            reason: SEMVER_PARTS,
        },
        MediaTypeError::ContentTypeVersionIncompatible {
            version: String::new(),
        },
        MediaTypeError::AcceptVersionMissing,
        MediaTypeError::AcceptVersionInvalid {
            version: String::new(),
            reason: SEMVER_PARTS,
        },
        MediaTypeError::AcceptVersionIncompatible {
            version: String::new(),
        },
    ];
    let codes: std::collections::HashSet<_> = kinds.iter().map(MediaTypeError::code).collect();
    assert_eq!(codes.len(), kinds.len(), "codes are distinct");
}
