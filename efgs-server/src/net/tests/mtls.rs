//! mTLS serving: client certificates reach the filter, handshakes without a certificate or
//! with a wrong CertificateVerify fail, h2 via ALPN, optional client CA, handshake timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::net::server_tls_config_from_der;
use efgs_core::cert::Thumbprint;

fn server_tls(
    client_roots: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
) -> Arc<rustls::ServerConfig> {
    let server = self_signed("efgs test server", "EU");
    server_tls_config_from_der(vec![server.cert.clone()], server.key_clone(), client_roots).unwrap()
}

#[tokio::test]
async fn self_signed_client_cert_reaches_filter_over_h2() {
    let server = TestServer::start(Some(server_tls(None)), test_limits()).await;
    let client = self_signed("DE backend", "DE");
    let tls = tls_connect(
        &client_tls(ClientAuth::Cert(&client), &[b"h2"]),
        server.addr,
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut c = h2_client(tls).await;
    let resp = c.send_request(get("https://localhost/info")).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let (status, body) = body_string(resp).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        body,
        format!("127.0.0.1 {}", Thumbprint::of_der(&client.cert))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_cert_reaches_filter_over_http1() {
    let server = TestServer::start(Some(server_tls(None)), test_limits()).await;
    let client = self_signed("FR backend", "FR");
    let tls = tls_connect(
        &client_tls(ClientAuth::Cert(&client), &[b"http/1.1"]),
        server.addr,
    )
    .await
    .unwrap();
    let mut c = h1_client(tls).await;
    let resp = c.send_request(get("/info")).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(
        body_string(resp).await.1,
        format!("127.0.0.1 {}", Thumbprint::of_der(&client.cert))
    );
    // Without ALPN the connection is served as well.
    let tls = tls_connect(&client_tls(ClientAuth::Cert(&client), &[]), server.addr)
        .await
        .unwrap();
    let mut c = h1_client(tls).await;
    let resp = c.send_request(get("/hello")).await.unwrap();
    assert_eq!(body_string(resp).await.1, "hello");
    server.shutdown().await;
}

async fn request_fails(server: &TestServer, auth: ClientAuth<'_>) {
    let connector = client_tls(auth, &[b"http/1.1"]);
    let attempt = async {
        let tls = tls_connect(&connector, server.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        sender
            .send_request(get("/hello"))
            .await
            .map_err(std::io::Error::other)
    };
    let result = tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .expect("attempt hung");
    assert!(
        result.is_err(),
        "request without a valid client certificate succeeded"
    );
    assert_eq!(server.hits.get(), 0, "request reached the filter");
}

#[tokio::test]
async fn client_without_certificate_fails_handshake() {
    let server = TestServer::start(Some(server_tls(None)), test_limits()).await;
    request_fails(&server, ClientAuth::None).await;
    server.shutdown().await;
}

#[tokio::test]
async fn certificate_verify_signature_is_checked() {
    let server = TestServer::start(Some(server_tls(None)), test_limits()).await;
    let presented = self_signed("victim", "DE");
    let attacker = self_signed("attacker", "DE");
    request_fails(&server, ClientAuth::Mismatched(&presented, &attacker)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn client_ca_mode_requires_a_chain_to_the_ca() {
    let (ca, issued) = ca_and_client();
    let server =
        TestServer::start(Some(server_tls(Some(vec![ca.cert.clone()]))), test_limits()).await;
    let tls = tls_connect(
        &client_tls(ClientAuth::Cert(&issued), &[b"h2"]),
        server.addr,
    )
    .await
    .unwrap();
    let mut c = h2_client(tls).await;
    let resp = c.send_request(get("https://localhost/info")).await.unwrap();
    assert_eq!(
        body_string(resp).await.1,
        format!("127.0.0.1 {}", Thumbprint::of_der(&issued.cert))
    );
    let hits = server.hits.get();
    assert_eq!(hits, 1);
    // A self-signed certificate does not chain to the CA.
    let stranger = self_signed("stranger", "DE");
    let connector = client_tls(ClientAuth::Cert(&stranger), &[b"http/1.1"]);
    let attempt = async {
        let tls = tls_connect(&connector, server.addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        sender
            .send_request(get("/hello"))
            .await
            .map_err(std::io::Error::other)
    };
    assert!(attempt.await.is_err());
    assert_eq!(server.hits.get(), hits);
    server.shutdown().await;
}

#[tokio::test]
async fn tls_handshake_timeout_drops_silent_client() {
    let mut limits = test_limits();
    limits.tls_handshake_timeout = Duration::from_millis(300);
    let server = TestServer::start(Some(server_tls(None)), limits).await;
    let mut tcp = connect(server.addr).await;
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "silent TLS client still connected");
    assert!(t.elapsed() >= Duration::from_millis(250));
    server.shutdown().await;
}

#[tokio::test]
async fn tls_config_from_pem_files_and_refusals_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let cfg = crate::net::server_tls_config(&cert_path, &key_path, None).unwrap();
    assert_eq!(
        cfg.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );

    let other = rcgen::KeyPair::generate().unwrap();
    let other_path = dir.path().join("other.key");
    std::fs::write(&other_path, other.serialize_pem()).unwrap();
    let e = crate::net::server_tls_config(&cert_path, &other_path, None).unwrap_err();
    assert_eq!(e.setting(), "auth.tls_key", "{e}");
    let e = crate::net::server_tls_config(&key_path, &key_path, None).unwrap_err();
    assert_eq!(e.setting(), "auth.tls_cert", "{e}");
    let e = crate::net::server_tls_config(&cert_path, &cert_path, None).unwrap_err();
    assert_eq!(e.setting(), "auth.tls_key", "{e}");
}
