//! Content negotiation, OPTIONS and routing over real HTTP (protocol §1.0, §1.1, §12 item 35;
//! decisions 6).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod support;

use efgs_core::media::BodyFormat;
use efgs_testkit::federation::Federation;
use efgs_testkit::national::{Identity, UploadResult};
use support::{Backend, stored_keys};

const PB_V1: &str = "application/protobuf; version=1.0";

http_tests!(
    options_headers_exact,
    upload_without_content_type_415,
    upload_xml_content_type_415,
    upload_x_protobuf_content_type_415,
    upload_content_type_without_version_400,
    upload_content_type_other_version_406,
    upload_content_type_version_unparsable_400,
    upload_accept_protobuf_406,
    upload_accept_json_ok,
    download_accept_without_version_415,
    download_accept_wrong_version_415,
    download_accept_xml_406,
    download_without_accept_served_as_protobuf,
    media_type_errors_come_before_authentication,
    upload_malformed_protobuf_400,
    upload_malformed_json_400,
    upload_json_camel_case_dsos_alias,
    unknown_route_404,
    wrong_method_405,
);

async fn upload_with_ct(fed: &Federation, ct: Option<&str>) -> UploadResult {
    let de = &fed["DE"];
    let mut req = de.upload_request(de.keys(2)).tag("t");
    req = match ct {
        Some(ct) => req.content_type(ct),
        None => req.no_content_type(),
    };
    req.send().await.unwrap()
}

/// §12 item 35: OPTIONS without authentication: 200, empty body, `Allow` and `Accept` exactly.
async fn options_headers_exact(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let r = fed["DE"]
        .client()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/diagnosiskeys", fed.base_url()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = |n: &str| r.headers().get(n).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("Allow"), "POST,GET,OPTIONS");
    assert_eq!(
        h("Accept"),
        "application/json; version=1.0, application/protobuf; version=1.0"
    );
    assert!(r.bytes().await.unwrap().is_empty());
}

/// Protocol §1.0: no Content-Type: 415.
async fn upload_without_content_type_415(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    assert_eq!(upload_with_ct(&fed, None).await.status, 415);
}

/// Protocol §1.0: `application/xml`: 415.
async fn upload_xml_content_type_415(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    assert_eq!(
        upload_with_ct(&fed, Some("application/xml; version=1.0"))
            .await
            .status,
        415
    );
}

/// Protocol §1.0: `application/x-protobuf`: 415.
async fn upload_x_protobuf_content_type_415(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    assert_eq!(
        upload_with_ct(&fed, Some("application/x-protobuf; version=1.0"))
            .await
            .status,
        415
    );
}

/// Protocol §1.0: no `version` parameter: 400 "Version parameter of Content-Type is
/// required!".
async fn upload_content_type_without_version_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let r = upload_with_ct(&fed, Some("application/protobuf")).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message().as_deref(),
        Some("Version parameter of Content-Type is required!")
    );
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Protocol §1.0: major or minor other than 1.0: 406 "Protocol version is not compatible!".
async fn upload_content_type_other_version_406(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    for v in ["1.1", "2.0", "0.1"] {
        let r = upload_with_ct(&fed, Some(&format!("application/protobuf; version={v}"))).await;
        assert_eq!(r.status, 406, "{v}");
        assert_eq!(
            r.message().as_deref(),
            Some("Protocol version is not compatible!")
        );
    }
}

/// Protocol §1.0: a version that is not `major.minor`: 400.
async fn upload_content_type_version_unparsable_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    for v in ["1", "1.0.0", "abc"] {
        let r = upload_with_ct(&fed, Some(&format!("application/json; version={v}"))).await;
        assert_eq!(r.status, 400, "{v}");
    }
}

/// Protocol §1.2: the upload produces JSON; `Accept: application/protobuf...` is 406.
async fn upload_accept_protobuf_406(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag("t")
        .accept(PB_V1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 406);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Protocol §1.2: `Accept: application/json` (or none) is fine for uploads.
async fn upload_accept_json_ok(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag("t")
        .accept("application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201);
}

/// Protocol §1.0: a download Accept without `version`: 415.
async fn download_accept_without_version_415(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    for a in ["application/protobuf", "application/json"] {
        let r = fed["DE"]
            .download(fed.today(), None, Some(a))
            .await
            .unwrap();
        assert_eq!(r.status, 415, "{a}");
    }
}

/// Protocol §1.0: a download Accept with another or an unparsable version: 415.
async fn download_accept_wrong_version_415(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    for v in ["2.0", "1.1", "abc"] {
        let a = format!("application/protobuf; version={v}");
        let r = fed["DE"]
            .download(fed.today(), None, Some(&a))
            .await
            .unwrap();
        assert_eq!(r.status, 415, "{a}");
    }
}

/// Protocol §1.0: a type the route cannot produce: 406.
async fn download_accept_xml_406(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let r = fed["DE"]
        .download(fed.today(), None, Some("application/xml"))
        .await
        .unwrap();
    assert_eq!(r.status, 406);
}

/// Decisions 6: no `Accept`, or `*/*`, is served as `application/protobuf; version=1.0`.
async fn download_without_accept_served_as_protobuf(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let keys = fed["DE"].keys(2);
    assert_eq!(
        fed["DE"]
            .upload(&keys, "a", BodyFormat::Protobuf)
            .await
            .unwrap()
            .status,
        201
    );
    fed.run_batching_now().await.unwrap();
    for accept in [None, Some("*/*")] {
        let r = fed["FR"].download(fed.today(), None, accept).await.unwrap();
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.content_type.as_deref(), Some(PB_V1));
        assert_eq!(r.keys, keys);
    }
}

/// Protocol §1.0: 415/406 from routing come before authentication.
async fn media_type_errors_come_before_authentication(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag("t")
        .identity(Identity::None)
        .content_type("application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 415);
    let r = de
        .download_request(fed.today())
        .identity(Identity::None)
        .accept("application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 406);
    // Without a media problem the same anonymous requests are 403.
    let r = de
        .download_request(fed.today())
        .identity(Identity::None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 403);
}

/// Protocol §1.0: malformed protobuf bytes: 400.
async fn upload_malformed_protobuf_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let r = de
        .upload_request(de.keys(1))
        .tag("t")
        .body(vec![0x0a, 0xff, 0xff, 0xff, 0x01])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
}

/// Protocol §1.0: trailing garbage after the JSON object: 400.
async fn upload_malformed_json_400(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let de = &fed["DE"];
    let keys = de.keys(1);
    let mut body = efgs_testkit::national::encode_body(&keys, BodyFormat::Json);
    body.extend_from_slice(b" x");
    let r = de
        .upload_request(keys)
        .tag("t")
        .format(BodyFormat::Json)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(stored_keys(&fed).await, 0);
}

/// Decisions 6: JSON input accepts `daysSinceOnsetOfSymptoms` as an alias.
async fn upload_json_camel_case_dsos_alias(b: Backend) {
    let fed = b.federation(&["DE", "FR"]).await;
    let de = &fed["DE"];
    let mut keys = de.keys(1);
    keys[0].days_since_onset_of_symptoms = 7;
    let body = String::from_utf8(efgs_testkit::national::encode_body(&keys, BodyFormat::Json))
        .unwrap()
        .replace("days_since_onset_of_symptoms", "daysSinceOnsetOfSymptoms");
    assert!(body.contains("\"daysSinceOnsetOfSymptoms\": 7"), "{body}");
    let r = de
        .upload_request(keys.clone())
        .tag("t")
        .format(BodyFormat::Json)
        .body(body.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    fed.run_batching_now().await.unwrap();
    let got = fed["FR"]
        .download(fed.today(), None, Some(PB_V1))
        .await
        .unwrap();
    assert_eq!(got.keys[0].days_since_onset_of_symptoms, 7);
}

/// Protocol §1.0: unknown paths are 404 (without authentication).
async fn unknown_route_404(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let r = fed["DE"]
        .client()
        .get(format!("{}/diagnosiskeys/nothing-here", fed.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// Protocol §1.0: a known path with another method is 405.
async fn wrong_method_405(b: Backend) {
    let fed = b.federation(&["DE"]).await;
    let r = fed["DE"]
        .client()
        .delete(format!("{}/diagnosiskeys/upload", fed.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
}
