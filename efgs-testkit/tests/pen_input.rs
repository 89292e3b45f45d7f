//! Penetration suite, request content (issue 9 point 8): keys of another country's origin, a
//! valid signature by another country, a batchSignature replayed over other keys, CR/LF,
//! over-long and non-ASCII `batchTag` and identity headers, path traversal, unknown routes and
//! wrong methods. In both auth modes where the identity is not the subject.
//!
//! Every case runs while a well-behaved member state (DE, from 127.0.0.2) downloads and
//! audits, and checks that the attack changed nothing stored (`support::attack`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_testkit::national::encode_body;
use support::Backend;
use support::attack::{Client, GOOD_IP, Mode, PB_V1, Scene};

http_tests!(
    foreign_origin_keys_400_proxy,
    foreign_origin_keys_400_mtls,
    signature_by_other_country_400_proxy,
    signature_by_other_country_400_mtls,
    replayed_batch_signature_400_proxy,
    replayed_batch_signature_400_mtls,
    batch_tag_crlf_overlong_non_ascii_400_proxy,
    batch_tag_crlf_overlong_non_ascii_400_mtls,
    identity_headers_crlf_overlong_non_ascii_refused,
    path_traversal_and_unknown_routes_404_proxy,
    path_traversal_and_unknown_routes_404_mtls,
    unknown_path_with_other_method_404,
);

const PB: BodyFormat = BodyFormat::Protobuf;

/// An identity-header variant: name, headers, expected status, accepted codes.
type HeaderVariant<'a> = (&'a str, Vec<(&'a str, &'a str)>, u16, &'a [&'a str]);
const RAW_WAIT: Duration = Duration::from_secs(5);

/// NL (a member state with valid certificates) uploads keys of FR's origin: signed by NL, by
/// FR's signing certificate, and mixed with its own. 400 each time.
async fn foreign_origin_keys_400(b: Backend, mode: Mode) {
    let scene = Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let nl = Client::country(fed, "NL");
    let fr_keys = fed["FR"].keys(3);
    let mut mixed = fed["NL"].keys(2);
    mixed.extend(fed["FR"].keys(1));
    let (nl, fr_keys, mixed) = (&nl, &fr_keys, &mixed);
    let (replies, _) = scene
        .under_attack("keys of another origin", move || async move {
            vec![
                (
                    "FR keys signed by NL",
                    nl.upload(fed, fr_keys, "NL", "o-1", PB).await,
                ),
                (
                    "FR keys signed by FR",
                    nl.upload(fed, fr_keys, "FR", "o-2", PB).await,
                ),
                (
                    "NL and FR keys signed by NL",
                    nl.upload(fed, mixed, "NL", "o-3", PB).await,
                ),
                (
                    "FR keys signed by FR, JSON",
                    nl.upload(fed, fr_keys, "FR", "o-4", BodyFormat::Json).await,
                ),
            ]
        })
        .await;
    for (what, r) in &replies {
        r.assert_problem(
            what,
            400,
            &["origin-mismatch", "signature-country-mismatch"],
        );
    }
}

async fn foreign_origin_keys_400_proxy(b: Backend) {
    foreign_origin_keys_400(b, Mode::Proxy).await;
}

async fn foreign_origin_keys_400_mtls(b: Backend) {
    foreign_origin_keys_400(b, Mode::Mtls).await;
}

/// NL uploads its own keys with a valid signature by FR's signing certificate: 400. So does
/// an empty upload by NL signed by FR (no key origin ties the signer to the caller there).
/// A signature by an NL certificate that is not on the trust list is refused as untrusted
/// before any public-key operation: its signature over other keys would fail verification,
/// but the trust-list lookup answers first.
async fn signature_by_other_country_400(b: Backend, mode: Mode) {
    let scene = Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let nl = Client::country(fed, "NL");
    let keys = fed["NL"].keys(3);
    let unknown = efgs_testkit::pki::CertSpec::new(Some("NL"), "NL unknown signer", fed.now())
        .generate()
        .unwrap();
    let unknown =
        efgs_core::batch_signature::BatchSigner::from_der(&unknown.cert_der, &unknown.key_der)
            .unwrap();
    let foreign_content = efgs_core::canonical::canonical_batch_bytes(&fed["NL"].keys(2));
    let unknown_signature = unknown.sign(&foreign_content, fed.now()).unwrap();
    let (nl, keys, unknown_signature) = (&nl, &keys, &unknown_signature);
    let (replies, _) = scene
        .under_attack("signature by another country", move || async move {
            vec![
                (
                    "NL keys signed by FR",
                    nl.upload(fed, keys, "FR", "s-1", PB).await,
                    &["signature-country-mismatch"][..],
                ),
                (
                    "an empty NL upload (JSON) signed by FR",
                    nl.upload(fed, &[], "FR", "s-2", BodyFormat::Json).await,
                    &["signature-signer-not-uploader"][..],
                ),
                (
                    "NL keys, another batch's signature by an unknown NL certificate",
                    nl.must(
                        "POST",
                        "/diagnosiskeys/upload",
                        &[
                            ("content-type", PB_V1),
                            ("batchTag", "s-3"),
                            ("batchSignature", unknown_signature),
                        ],
                        encode_body(keys, PB),
                    )
                    .await,
                    &["untrusted-signer"][..],
                ),
            ]
        })
        .await;
    for (what, r, codes) in &replies {
        r.assert_problem(what, 400, codes);
    }
}

async fn signature_by_other_country_400_proxy(b: Backend) {
    signature_by_other_country_400(b, Mode::Proxy).await;
}

async fn signature_by_other_country_400_mtls(b: Backend) {
    signature_by_other_country_400(b, Mode::Mtls).await;
}

/// batchSignatures replayed: NL's own signature of an earlier upload over other NL keys; FR's
/// signature (read from the audit) over NL keys; and FR's signature with FR's very keys,
/// uploaded by NL. 400 each time.
async fn replayed_batch_signature_400(b: Backend, mode: Mode) {
    let scene = Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let nl = Client::country(fed, "NL");
    let own = fed["NL"].keys(3);
    let own_signature = fed["NL"].sign(&own).unwrap();
    let r = nl.upload(fed, &own, "NL", "legit-1", PB).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let audit = nl
        .must(
            "GET",
            &format!(
                "/diagnosiskeys/audit/download/{}/{}",
                fed.today(),
                scene.tag
            ),
            &[("accept", "application/json")],
            Vec::new(),
        )
        .await;
    assert_eq!(audit.status, 200);
    let audit: serde_json::Value = serde_json::from_slice(&audit.body).unwrap();
    let fr_signature = audit[0]["batchSignature"].as_str().unwrap().to_owned();
    let other = fed["NL"].keys(3);
    let send = |keys: Vec<efgs_core::DiagnosisKey>, signature: String, tag: &'static str| {
        let nl = nl.clone();
        async move {
            nl.must(
                "POST",
                "/diagnosiskeys/upload",
                &[
                    ("content-type", PB_V1),
                    ("batchTag", tag),
                    ("batchSignature", &signature),
                ],
                encode_body(&keys, PB),
            )
            .await
        }
    };
    let (send, other, own, own_signature, fr_signature, seeded) = (
        &send,
        &other,
        &own,
        &own_signature,
        &fr_signature,
        &scene.seeded,
    );
    let (replies, _) = scene
        .under_attack("replayed batchSignature", move || async move {
            vec![
                (
                    "NL's signature over other NL keys",
                    send(other.clone(), own_signature.clone(), "r-1").await,
                    &["signature-digest-mismatch"][..],
                ),
                (
                    "FR's signature over NL keys",
                    send(other.clone(), fr_signature.clone(), "r-2").await,
                    &["signature-digest-mismatch"][..],
                ),
                (
                    "FR's signature and keys, uploaded by NL",
                    send(seeded.clone(), fr_signature.clone(), "r-3").await,
                    &["origin-mismatch"][..],
                ),
                (
                    "NL's signature over a subset of its keys",
                    send(own[..2].to_vec(), own_signature.clone(), "r-4").await,
                    &["signature-digest-mismatch"][..],
                ),
            ]
        })
        .await;
    for (what, r, codes) in &replies {
        r.assert_problem(what, 400, codes);
    }
}

async fn replayed_batch_signature_400_proxy(b: Backend) {
    replayed_batch_signature_400(b, Mode::Proxy).await;
}

async fn replayed_batch_signature_400_mtls(b: Backend) {
    replayed_batch_signature_400(b, Mode::Mtls).await;
}

/// `batchTag` values a proxy or client library might let through: over-long, non-ASCII,
/// control characters, and (raw) CR, LF, NUL and folded lines. Every other part of the upload
/// is valid. 400 (a problem answer, or hyper's bare 400 for malformed HTTP) or the connection
/// closed; never 5xx, never stored.
async fn batch_tag_crlf_overlong_non_ascii_400(b: Backend, mode: Mode) {
    let scene = Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let nl = Client::country(fed, "NL");
    let long = "A".repeat(10 * 1024);
    let tags: Vec<(&str, &str, &[&str])> = vec![
        ("10 KB", &long, &["batch-tag-too-long"]),
        ("65 characters", &long[..65], &["batch-tag-too-long"]),
        (
            "UTF-8",
            "tag-\u{e9}t\u{e9}",
            &["missing-header", "batch-tag-character"],
        ),
        (
            "Latin-1 byte",
            "tag-\u{ff}",
            &["missing-header", "batch-tag-character"],
        ),
        ("tab", "tag\t1", &["batch-tag-character", "missing-header"]),
        ("space", "tag 1", &["batch-tag-character"]),
        ("empty", "", &["batch-tag-empty"]),
    ];
    let raw_tags: Vec<(&str, &[u8])> = vec![
        ("bare CR", b"batchTag: tag\r1\r\n"),
        ("bare LF", b"batchTag: tag\n1\r\n"),
        ("NUL", b"batchTag: tag\x001\r\n"),
        ("DEL", b"batchTag: tag\x7f1\r\n"),
        ("folded", b"batchTag: tag\r\n 1\r\n"),
        ("CR LF header injection, tag over-long", &[]),
    ];
    let mut injected = b"batchTag: ".to_vec();
    injected.extend_from_slice(long.as_bytes());
    injected.extend_from_slice(b"\r\nX-SSL-Client-SHA256: 00\r\n");
    let (headers, body) = scene.upload_parts("NL", "placeholder");
    let without_tag: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| k != "batchTag")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut raw_common = Vec::new();
    for (k, v) in &without_tag {
        raw_common.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let (nl, tags, raw_tags, without_tag, raw_common, injected, body) = (
        &nl,
        &tags,
        &raw_tags,
        &without_tag,
        &raw_common,
        &injected,
        &body,
    );
    let ((), _) = scene
        .under_attack("batchTag values", move || async move {
            for (what, tag, codes) in tags {
                let mut h = without_tag.clone();
                h.push(("batchTag", tag));
                let r = nl
                    .must("POST", "/diagnosiskeys/upload", &h, body.clone())
                    .await;
                r.assert_problem(&format!("batchTag {what}"), 400, codes);
            }
            for (what, line) in raw_tags {
                let mut extra = raw_common.clone();
                if line.is_empty() {
                    extra.extend_from_slice(injected);
                } else {
                    extra.extend_from_slice(line);
                }
                let req = nl.raw_request("POST", "/diagnosiskeys/upload", &extra, body);
                let r = nl.raw(&req, RAW_WAIT).await.unwrap();
                // The injected line repeats an identity header: in proxy mode refused (403)
                // before the tag is read (mtls ignores the headers: 400 for the tag); the other
                // malformed tags are 400.
                let expected: &[u16] = if line.is_empty() { &[400, 403] } else { &[400] };
                r.assert_refused(&format!("raw batchTag {what}"), expected);
            }
        })
        .await;
}

async fn batch_tag_crlf_overlong_non_ascii_400_proxy(b: Backend) {
    batch_tag_crlf_overlong_non_ascii_400(b, Mode::Proxy).await;
}

async fn batch_tag_crlf_overlong_non_ascii_400_mtls(b: Backend) {
    batch_tag_crlf_overlong_non_ascii_400(b, Mode::Mtls).await;
}

/// Proxy mode: identity headers over-long (10 KB; 100 KB beyond the header limit),
/// non-ASCII, and with raw CR, LF or NUL, on an upload and a download. 400 or 403 (or hyper's
/// 400/431 for malformed or oversized header blocks, or the connection closed); never 5xx,
/// never stored.
async fn identity_headers_crlf_overlong_non_ascii_refused(b: Backend) {
    let scene = Scene::new(&b, Mode::Proxy, |f| f).await;
    let fed = &scene.fed;
    let nl = fed["NL"].credentials();
    let (t, dn) = (nl.auth_thumbprint.as_str().to_owned(), nl.auth_dn.clone());
    let long_hex = "a".repeat(10 * 1024);
    let long_dn = format!("O={}", "A".repeat(10 * 1024));
    let long_country = format!("C={}", "N".repeat(10 * 1024));
    let long_cert = "%41".repeat(4 * 1024);
    let nl_crlf = "C=NL%0d%0aC=DE".to_owned();
    let variants: Vec<HeaderVariant<'_>> = vec![
        (
            "10 KB thumbprint",
            vec![("X-SSL-Client-SHA256", &long_hex), ("X-SSL-Client-DN", &dn)],
            403,
            &["unreadable-thumbprint"],
        ),
        (
            "non-ASCII thumbprint",
            vec![
                ("X-SSL-Client-SHA256", "\u{e9}\u{e9}"),
                ("X-SSL-Client-DN", &dn),
            ],
            403,
            &["missing-thumbprint", "unreadable-thumbprint"],
        ),
        (
            "10 KB DN without country",
            vec![("X-SSL-Client-SHA256", &t), ("X-SSL-Client-DN", &long_dn)],
            400,
            &["missing-country"],
        ),
        (
            "10 KB country",
            vec![
                ("X-SSL-Client-SHA256", &t),
                ("X-SSL-Client-DN", &long_country),
            ],
            403,
            &["not-authorized"],
        ),
        (
            "non-ASCII DN",
            vec![
                ("X-SSL-Client-SHA256", &t),
                ("X-SSL-Client-DN", "C=N\u{c9}"),
            ],
            403,
            &["missing-dn", "not-authorized"],
        ),
        (
            "URL-encoded CR LF in the DN",
            vec![("X-SSL-Client-SHA256", &t), ("X-SSL-Client-DN", &nl_crlf)],
            400,
            &["missing-country"],
        ),
        (
            "10 KB certificate header",
            vec![("X-SSL-Client-Cert", &long_cert)],
            403,
            &["unreadable-client-certificate", "missing-thumbprint"],
        ),
    ];
    let raw_variants: Vec<(&str, Vec<u8>)> = vec![
        (
            "bare CR in the thumbprint",
            format!("X-SSL-Client-SHA256: {t}\rX\r\nX-SSL-Client-DN: {dn}\r\n").into_bytes(),
        ),
        (
            "bare LF in the DN",
            format!("X-SSL-Client-SHA256: {t}\r\nX-SSL-Client-DN: C=DE\nC=NL\r\n").into_bytes(),
        ),
        (
            "NUL in the DN",
            format!("X-SSL-Client-SHA256: {t}\r\nX-SSL-Client-DN: C=NL\x00\r\n").into_bytes(),
        ),
        (
            "100 KB DN",
            format!(
                "X-SSL-Client-SHA256: {t}\r\nX-SSL-Client-DN: C=NL,O={}\r\n",
                "A".repeat(100 * 1024)
            )
            .into_bytes(),
        ),
    ];
    let (upload_headers, body) = scene.upload_parts("NL", "h-1");
    let download = format!("/diagnosiskeys/download/{}", fed.today());
    let (variants, raw_variants, upload_headers, body, download) =
        (&variants, &raw_variants, &upload_headers, &body, &download);
    let ((), _) = scene
        .under_attack("identity header values", move || async move {
            for (what, identity, status, codes) in variants {
                let client = Client::anonymous(fed).with_headers(identity);
                let mut h: Vec<(&str, &str)> = upload_headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let r = client
                    .must("POST", "/diagnosiskeys/upload", &h, body.clone())
                    .await;
                r.assert_problem(&format!("upload, {what}"), *status, codes);
                h.clear();
                h.push(("accept", PB_V1));
                let r = client.must("GET", download, &h, Vec::new()).await;
                r.assert_problem(&format!("download, {what}"), *status, codes);
            }
            let anonymous = Client::anonymous(fed);
            for (what, identity) in raw_variants {
                let mut extra = identity.clone();
                for (k, v) in upload_headers {
                    extra.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                let req = anonymous.raw_request("POST", "/diagnosiskeys/upload", &extra, body);
                let r = anonymous.raw(&req, RAW_WAIT).await.unwrap();
                r.assert_refused(&format!("raw upload, {what}"), &[400, 403, 431]);
                let req = anonymous.raw_request("GET", download, identity, &[]);
                let r = anonymous.raw(&req, RAW_WAIT).await.unwrap();
                r.assert_refused(&format!("raw download, {what}"), &[400, 403, 431]);
            }
        })
        .await;
}

/// With NL's valid identity: traversal paths (raw, as sent), doubled slashes, encoded dots,
/// unknown routes: 404 (400 `invalid-date` where the traversal text lands in the download's
/// date parameter); a known path with a wrong method: 405. Never a file, never 5xx.
async fn path_traversal_and_unknown_routes_404(b: Backend, mode: Mode) {
    let scene = Scene::new(&b, mode, |f| f).await;
    let fed = &scene.fed;
    let nl = Client::country(fed, "NL").bound_to(GOOD_IP);
    let today = fed.today();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "GET",
            "/diagnosiskeys/../../etc/passwd".into(),
            404,
            "not-found",
        ),
        (
            "GET",
            "/diagnosiskeys/download/../../../etc/passwd".into(),
            404,
            "not-found",
        ),
        (
            "GET",
            "/diagnosiskeys/%2e%2e/%2e%2e/etc/passwd".into(),
            404,
            "not-found",
        ),
        (
            "GET",
            "/diagnosiskeys/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd".into(),
            404,
            "not-found",
        ),
        (
            "GET",
            "/diagnosiskeys/download/..%2f..%2fetc%2fpasswd".into(),
            400,
            "invalid-date",
        ),
        (
            "GET",
            "/diagnosiskeys/download/%2e%2e".into(),
            400,
            "invalid-date",
        ),
        (
            "GET",
            "/diagnosiskeys/download/..".into(),
            400,
            "invalid-date",
        ),
        (
            "GET",
            format!("/diagnosiskeys//download/{today}"),
            404,
            "not-found",
        ),
        (
            "GET",
            format!("/diagnosiskeys/download//{today}"),
            404,
            "not-found",
        ),
        (
            "GET",
            format!("/diagnosiskeys/download/{today}/.."),
            404,
            "not-found",
        ),
        (
            "GET",
            format!("/diagnosiskeys/audit/download/{today}/../../x"),
            404,
            "not-found",
        ),
        ("GET", "/etc/passwd".into(), 404, "not-found"),
        ("GET", "/".into(), 404, "not-found"),
        ("GET", "/..".into(), 404, "not-found"),
        ("GET", "/diagnosiskeys/callbacks".into(), 404, "not-found"),
        (
            "GET",
            "/diagnosiskeys/callback/a/b".into(),
            404,
            "not-found",
        ),
        ("GET", "/diagnosiskeys/upload/..".into(), 404, "not-found"),
        ("GET", format!("/{}", "a/".repeat(2000)), 404, "not-found"),
        (
            "GET",
            "/diagnosiskeys/upload".into(),
            405,
            "method-not-allowed",
        ),
        (
            "PUT",
            "/diagnosiskeys/upload".into(),
            405,
            "method-not-allowed",
        ),
        (
            "TRACE",
            "/diagnosiskeys/upload".into(),
            405,
            "method-not-allowed",
        ),
        (
            "DELETE",
            format!("/diagnosiskeys/download/{today}"),
            405,
            "method-not-allowed",
        ),
        (
            "POST",
            format!("/diagnosiskeys/audit/download/{today}/{}", scene.tag),
            405,
            "method-not-allowed",
        ),
    ];
    let (nl, cases_ref) = (&nl, &cases);
    let (replies, _) = scene
        .under_attack("paths and methods", move || async move {
            let mut out = Vec::new();
            for (method, path, _, _) in cases_ref {
                let req = nl.raw_request(method, path, b"Accept: */*\r\n", &[]);
                out.push(nl.raw(&req, RAW_WAIT).await.unwrap());
            }
            out
        })
        .await;
    for ((method, path, status, code), r) in cases.iter().zip(&replies) {
        let what = format!("{method} {}", &path[..path.len().min(80)]);
        assert_eq!(r.status, Some(*status), "{what}: {}", r.text());
        assert_eq!(r.code().as_deref(), Some(*code), "{what}: {}", r.text());
        assert!(!r.text().contains("root:"), "{what}: a file was served");
    }
}

async fn path_traversal_and_unknown_routes_404_proxy(b: Backend) {
    path_traversal_and_unknown_routes_404(b, Mode::Proxy).await;
}

async fn path_traversal_and_unknown_routes_404_mtls(b: Backend) {
    path_traversal_and_unknown_routes_404(b, Mode::Mtls).await;
}

/// docs/API-ERRORS.md: "an unknown path (the path is matched before the method, as in the
/// reference)" is 404, whatever the method.
async fn unknown_path_with_other_method_404(b: Backend) {
    let scene = &Scene::new(&b, Mode::Proxy, |f| f).await;
    let nl = &Client::country(&scene.fed, "NL");
    let cases = &[
        ("PUT", "/diagnosiskeys/callback/cb-1/x"),
        ("POST", "/diagnosiskeys/callbacks"),
        ("DELETE", "/etc/passwd"),
        ("POST", "/"),
        ("PATCH", "/diagnosiskeys/unknown"),
    ];
    let (replies, _) = scene
        .under_attack("unknown paths, other methods", move || async move {
            let mut out = Vec::new();
            for (method, path) in cases {
                out.push(nl.must(method, path, &[], Vec::new()).await);
            }
            out
        })
        .await;
    for ((method, path), r) in cases.iter().zip(&replies) {
        r.assert_problem(&format!("{method} {path}"), 404, &["not-found"]);
    }
}
