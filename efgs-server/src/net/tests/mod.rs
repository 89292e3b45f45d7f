//! Tests of the connection layer. Shared helpers: a real server on 127.0.0.1:0 with a test
//! filter, raw and hyper clients, certificates.
#![allow(dead_code, clippy::unwrap_used, unreachable_pub)]

mod mtls;
mod serving;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::net::{
    BodyError, ConnectionInfo, NetLimits, body_limited, connection_info, serve_connections,
};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warp::{Filter, Rejection, Reply};

pub const ROUTE_BODY_LIMIT: u64 = 1024 * 1024;

/// Counts requests that reached the filter.
#[derive(Clone, Default)]
pub struct Hits(Arc<AtomicUsize>);

impl Hits {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

async fn recover(r: Rejection) -> Result<impl Reply, Rejection> {
    if let Some(e) = r.find::<BodyError>() {
        return Ok(warp::reply::with_status(e.code(), e.status()));
    }
    Err(r)
}

/// The test routes:
/// - `GET /hello` → `hello`
/// - `GET /info` → `<remote ip> <thumbprint of the peer certificate or "none">`
/// - `POST /upload` → body length (route limit [`ROUTE_BODY_LIMIT`])
/// - `POST /upload-unlimited` → body length (only the connection-level cap applies)
/// - `GET /slow` → `slow done` after 1 s
/// - `GET /big` → 32 MiB of zeros (more than loopback socket buffers hold)
/// - `GET /forbidden` → 403
pub fn test_filter(hits: Hits) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let count = warp::any().map(move || {
        hits.0.fetch_add(1, Ordering::SeqCst);
    });
    let hello = warp::path("hello").and(warp::get()).map(|| "hello");
    let info = warp::path("info")
        .and(warp::get())
        .and(connection_info())
        .map(|ci: ConnectionInfo| {
            let tp = ci.peer_certificate.as_deref().map_or_else(
                || "none".to_owned(),
                |der| efgs_core::cert::Thumbprint::of_der(der).to_string(),
            );
            format!("{} {}", ci.remote.ip(), tp)
        });
    let upload = warp::path("upload")
        .and(warp::post())
        .and(body_limited(ROUTE_BODY_LIMIT))
        .map(|b: Bytes| b.len().to_string());
    let unlimited = warp::path("upload-unlimited")
        .and(warp::post())
        .and(body_limited(u64::MAX))
        .map(|b: Bytes| b.len().to_string());
    let slow = warp::path("slow").and(warp::get()).then(|| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        "slow done"
    });
    let big = warp::path("big")
        .and(warp::get())
        .map(|| vec![0u8; 32 * 1024 * 1024]);
    let forbidden = warp::path("forbidden")
        .and(warp::get())
        .map(|| warp::reply::with_status("no", http::StatusCode::FORBIDDEN));
    count
        .untuple_one()
        .and(
            hello
                .or(info)
                .or(upload)
                .or(unlimited)
                .or(slow)
                .or(big)
                .or(forbidden),
        )
        .recover(recover)
}

pub fn test_limits() -> NetLimits {
    NetLimits {
        max_body_bytes: Some(4 * 1024 * 1024),
        shutdown_grace: Duration::from_secs(10),
        ..NetLimits::default()
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Hits,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>, limits: NetLimits) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let filter = test_filter(hits.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            serve_connections(listener, tls, filter, &limits, async {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            addr,
            hits,
            stop: Some(tx),
            handle,
        }
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `serve_connections` to return.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .expect("server did not stop")
            .unwrap();
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn wait(self) -> Result<(), tokio::time::error::Elapsed> {
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .map(|r| r.unwrap())
    }
}

pub type H1Sender<B> = hyper::client::conn::http1::SendRequest<B>;
pub type H2Sender<B> = hyper::client::conn::http2::SendRequest<B>;

pub async fn h1_client<I, B>(io: I) -> H1Sender<B>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

pub async fn h2_client<I, B>(io: I) -> H2Sender<B>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

pub fn get(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::get(uri)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

pub fn post(uri: &str, body: impl Into<Bytes>) -> http::Request<Full<Bytes>> {
    http::Request::post(uri)
        .header("host", "localhost")
        .body(Full::new(body.into()))
        .unwrap()
}

pub async fn body_string<B>(resp: http::Response<B>) -> (http::StatusCode, String)
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// Reads until the peer closes, errors or `limit` passes. Returns what was read and whether the
/// connection ended (EOF or error) rather than timing out.
pub async fn read_until_closed<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until a full response head (`\r\n\r\n`) arrived, or the connection ends / times out.
pub async fn read_head<R: AsyncRead + Unpin>(r: &mut R, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&out[..end]).into_owned());
        }
        match tokio::time::timeout_at(deadline, r.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS helpers
// ---------------------------------------------------------------------------------------------

pub struct Identity {
    pub cert: rustls::pki_types::CertificateDer<'static>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Identity {
    pub fn key_clone(&self) -> rustls::pki_types::PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

fn key_der(k: &rcgen::KeyPair) -> rustls::pki_types::PrivateKeyDer<'static> {
    rustls::pki_types::PrivateKeyDer::Pkcs8(k.serialize_der().into())
}

/// A self-signed certificate with subject `CN=<cn>, C=<country>`.
pub fn self_signed(cn: &str, country: &str) -> Identity {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::CountryName, country);
    let cert = params.self_signed(&key).unwrap();
    Identity {
        cert: cert.der().clone(),
        key: key_der(&key),
    }
}

/// A CA and a client certificate it issued.
pub fn ca_and_client() -> (Identity, Identity) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = Identity {
        cert: ca_cert.der().clone(),
        key: key_der(&ca_key),
    };
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "client");
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CountryName, "DE");
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (
        ca,
        Identity {
            cert: leaf.der().clone(),
            key: key_der(&leaf_key),
        },
    )
}

/// Accepts any server certificate but checks handshake signatures (tests only).
#[derive(Debug)]
pub struct AnyServerCert(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Presents a fixed certificate with an arbitrary (possibly mismatched) signing key.
#[derive(Debug)]
pub struct FixedClientCert(pub Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

pub enum ClientAuth<'a> {
    None,
    Cert(&'a Identity),
    /// Certificate of the first identity, signing key of the second.
    Mismatched(&'a Identity, &'a Identity),
}

pub fn client_tls(auth: ClientAuth<'_>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCert(
            provider.signature_verification_algorithms,
        )));
    let mut cfg = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Cert(id) => builder
            .with_client_auth_cert(vec![id.cert.clone()], id.key_clone())
            .unwrap(),
        ClientAuth::Mismatched(cert, key) => {
            let signer = provider
                .key_provider
                .load_private_key(key.key_clone())
                .unwrap();
            let ck = rustls::sign::CertifiedKey::new(vec![cert.cert.clone()], signer);
            builder.with_client_cert_resolver(Arc::new(FixedClientCert(Arc::new(ck))))
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

pub async fn tls_connect(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}
