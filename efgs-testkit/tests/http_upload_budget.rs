//! Issue 9: the bytes held by uploads in flight are bounded (`upload.max_in_flight_bytes`);
//! beyond the budget an upload gets 503 with Retry-After before its body is read, and the
//! budget is given back when an upload ends.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use efgs_core::media::BodyFormat;
use efgs_testkit::federation::Federation;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test]
async fn uploads_beyond_the_in_flight_budget_get_503_until_it_frees() {
    let fed = Federation::builder()
        .countries(["DE", "FR"])
        .setting("upload.max_body_bytes", "64000")
        .setting("upload.max_in_flight_bytes", "64000")
        .build()
        .await
        .unwrap();
    let de = fed["DE"].credentials().clone();
    // DE starts an upload announcing 61,000 bytes and sends none of them: it holds the budget.
    let mut slow = tokio::net::TcpStream::connect(fed.addr()).await.unwrap();
    slow.write_all(
        format!(
            "POST /diagnosiskeys/upload HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/protobuf; version=1.0\r\n\
             X-SSL-Client-SHA256: {}\r\nX-SSL-Client-DN: {}\r\n\
             batchTag: slow\r\nbatchSignature: AAAA\r\nContent-Length: 61000\r\n\r\n",
            de.auth_thumbprint.as_str(),
            de.auth_dn
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // FR's upload does not fit: 503 with Retry-After, nothing stored.
    let fr = &fed["FR"];
    let r = fr
        .upload(&fr.keys(200), "fr-1", BodyFormat::Protobuf)
        .await
        .unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["code"], "uploads-in-flight-limit");
    assert!(r.headers.contains_key("retry-after"));

    // DE gives up: the budget is free again and FR's upload is stored.
    drop(slow);
    let mut stored = 0;
    for _ in 0..50 {
        let r = fr
            .upload(&fr.keys(20), "fr-2", BodyFormat::Protobuf)
            .await
            .unwrap();
        stored = r.status;
        if stored == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 201);

    // The body limit still answers 413 first for an over-long body.
    let mut big = tokio::net::TcpStream::connect(fed.addr()).await.unwrap();
    big.write_all(
        format!(
            "POST /diagnosiskeys/upload HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/protobuf; version=1.0\r\n\
             X-SSL-Client-SHA256: {}\r\nX-SSL-Client-DN: {}\r\n\
             batchTag: big\r\nbatchSignature: AAAA\r\nContent-Length: 100000\r\n\r\n",
            de.auth_thumbprint.as_str(),
            de.auth_dn
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 12];
    big.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");
}
