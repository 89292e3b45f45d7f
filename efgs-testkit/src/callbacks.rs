//! Callback receivers and a resolver the test controls, for tests and benchmarks of callback
//! delivery (decisions items 8-10).
//!
//! - [`Receiver`]: a national backend's callback endpoint: an HTTPS server on a loopback
//!   address with its own certificate, requiring a client certificate (mutual TLS), that
//!   records every request and answers as scripted ([`Answer`]).
//! - [`TestResolver`]: resolves the names a test sets (fixed answers or a cycle of answers),
//!   counting lookups; pass it to `FederationBuilder::resolver`.
//! - [`gateway_client_cert`]: the gateway's callback client certificate, written to files for
//!   the `callback.client_cert` / `callback.client_key` settings.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use efgs_core::BoxError;
use efgs_core::callback_url::Resolver;
use efgs_core::cert::Thumbprint;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::pki::{CertSpec, GeneratedCert, PkiError};

/// How a receiver answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status, empty body, connection closed afterwards.
    Status(u16),
    /// No answer at all: the connection is held open until the client gives up.
    Hang,
}

/// One request a receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    /// The request target (path and query).
    pub target: String,
    /// The `batchTag` query parameter.
    pub batch_tag: Option<String>,
    /// The `date` query parameter.
    pub date: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The method.
    pub method: String,
    /// The thumbprint of the client certificate the gateway presented.
    pub client: Option<Thumbprint>,
    /// How it was answered.
    pub answer: Answer,
    /// Whether the 2xx answer was written completely (a delivery).
    pub delivered: bool,
    /// When the request arrived.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Request>,
    script: VecDeque<Answer>,
    default: Option<Answer>,
    expected_client: Option<Thumbprint>,
}

/// A callback endpoint on a loopback address; see the [module documentation](self). Dropping
/// it stops the server.
#[derive(Debug)]
pub struct Receiver {
    addr: SocketAddr,
    cert: GeneratedCert,
    state: Arc<Mutex<State>>,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server certificate of `country` for `names` (DNS names or IP literals), valid around
/// `now`.
pub fn receiver_cert(
    names: &[&str],
    country: &str,
    now: OffsetDateTime,
) -> Result<GeneratedCert, PkiError> {
    CertSpec {
        subject_alt_names: names.iter().map(|n| (*n).to_owned()).collect(),
        server_auth: true,
        ..CertSpec::new(
            Some(country),
            names.first().copied().unwrap_or("receiver"),
            now,
        )
    }
    .generate()
}

impl Receiver {
    /// Starts a receiver on `addr` (port 0: any) presenting `cert`; it answers 200 unless
    /// scripted otherwise.
    pub async fn start(addr: SocketAddr, cert: GeneratedCert) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let config = server_config(&cert).map_err(std::io::Error::other)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let state = Arc::new(Mutex::new(State::default()));
        let connections = Arc::new(AtomicUsize::new(0));
        let task = {
            let state = Arc::clone(&state);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        if let Ok(tls) = acceptor.accept(tcp).await {
                            serve(tls, &state).await;
                        }
                    });
                }
            })
        };
        Ok(Receiver {
            addr,
            cert,
            state,
            connections,
            task,
        })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The receiver's certificate.
    pub fn cert(&self) -> &GeneratedCert {
        &self.cert
    }

    /// `https://<host>:<port>/callback` for this receiver.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/callback", self.addr.port())
    }

    /// The next answers, in order, before the default.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.lock().script.extend(answers);
    }

    /// The answer once the script is used up (default: 200).
    pub fn set_default(&self, answer: Answer) {
        self.lock().default = Some(answer);
    }

    /// Answer 403 to any client certificate other than `thumbprint` (as a backend that
    /// checks the gateway's certificate does).
    pub fn expect_client(&self, thumbprint: Thumbprint) {
        self.lock().expected_client = Some(thumbprint);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The requests answered 2xx completely, in arrival order.
    pub fn deliveries(&self) -> Vec<Request> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.delivered)
            .cloned()
            .collect()
    }

    /// The `batchTag`s delivered, in arrival order.
    pub fn delivered_tags(&self) -> Vec<String> {
        self.deliveries()
            .into_iter()
            .filter_map(|r| r.batch_tag)
            .collect()
    }

    /// TCP connections accepted so far (whether or not TLS completed).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The TLS configuration of a receiver presenting `cert`: a client certificate is required
/// and any is accepted (the receiver decides what to answer).
pub fn server_config(cert: &GeneratedCert) -> Result<Arc<rustls::ServerConfig>, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
        )?;
    Ok(Arc::new(config))
}

/// The thumbprint of the client certificate of a receiver's TLS connection, if it sent one.
pub fn client_thumbprint(
    tls: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
) -> Option<Thumbprint> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| Thumbprint::of_der(c.as_ref()))
}

/// Reads a request head (up to the blank line, at most `limit` bytes) from a receiver's TLS
/// connection: the head as text, and what was read after it. `None` when the connection ends
/// or fails first, or the head is longer than `limit`.
pub async fn read_request_head(
    tls: &mut tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    limit: usize,
) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match tls.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > limit {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    Some((head, buf))
}

/// Serves the one request of a connection (every answer closes it).
async fn serve(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    state: &Mutex<State>,
) {
    let client = client_thumbprint(&tls);
    let mut chunk = [0u8; 4096];
    {
        let Some((head, _rest)) = read_request_head(&mut tls, 64 * 1024).await else {
            return;
        };
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.split(' ');
        let method = parts.next().unwrap_or_default().to_owned();
        let target = parts.next().unwrap_or_default().to_owned();
        let user_agent = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("user-agent"))
            .map(|(_, v)| v.trim().to_owned());
        let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let param = |name: &str| {
            query
                .split('&')
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        };
        let (answer, index) = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let mut answer = s
                .script
                .pop_front()
                .or(s.default)
                .unwrap_or(Answer::Status(200));
            if let Some(expected) = &s.expected_client
                && client.as_ref() != Some(expected)
            {
                answer = Answer::Status(403);
            }
            s.requests.push(Request {
                batch_tag: param("batchTag"),
                date: param("date"),
                target: target.clone(),
                user_agent,
                method,
                client: client.clone(),
                answer,
                delivered: false,
                at: Instant::now(),
            });
            (answer, s.requests.len() - 1)
        };
        match answer {
            Answer::Hang => {
                // Hold the connection until the client closes it.
                while let Ok(n) = tls.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            Answer::Status(code) => {
                let response = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
                let written =
                    tls.write_all(response.as_bytes()).await.is_ok() && tls.flush().await.is_ok();
                if written && (200..300).contains(&code) {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(r) = s.requests.get_mut(index) {
                        r.delivered = true;
                    }
                }
                let _ = tls.shutdown().await;
            }
        }
    }
}

/// Requires a client certificate and accepts any (the receiver records its thumbprint and
/// may refuse it with 403, as a backend checking the gateway's CN or thumbprint does).
#[derive(Debug)]
struct AnyClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Per name: the answers in turn, and the index of the next one.
type Names = HashMap<String, (Vec<Vec<IpAddr>>, usize)>;

/// Resolves the names a test sets; any other name fails. Each name has a list of answers
/// used in turn, cycling (one answer: always the same).
#[derive(Debug, Default)]
pub struct TestResolver {
    names: Mutex<Names>,
    lookups: AtomicUsize,
}

impl TestResolver {
    /// A resolver that knows no name yet.
    pub fn new() -> Arc<TestResolver> {
        Arc::new(TestResolver::default())
    }

    /// `name` resolves to `addrs` from now on.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) {
        self.set_cycle(name, vec![addrs.to_vec()]);
    }

    /// `name` resolves to each of `answers` in turn, one per lookup, cycling.
    pub fn set_cycle(&self, name: &str, answers: Vec<Vec<IpAddr>>) {
        self.lock().insert(name.to_owned(), (answers, 0));
    }

    /// Lookups answered so far (all names).
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Resolver for TestResolver {
    async fn resolve(&self, host: &str, _port: u16) -> Result<Vec<IpAddr>, BoxError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let mut names = self.lock();
        let (answers, next) = names
            .get_mut(host)
            .ok_or_else(|| BoxError::from(format!("{host}: unknown name")))?;
        if answers.is_empty() {
            return Ok(Vec::new());
        }
        let answer = answers[*next % answers.len()].clone();
        *next += 1;
        Ok(answer)
    }
}

/// The gateway's callback client certificate, written to `dir` as `callback-client.pem` and
/// `callback-client.key` (the key readable by its owner only). Returns the certificate and
/// the two paths, for `callback.client_cert` and `callback.client_key`.
pub fn gateway_client_cert(
    dir: &std::path::Path,
    now: OffsetDateTime,
) -> Result<(GeneratedCert, PathBuf, PathBuf), BoxError> {
    let cert = CertSpec {
        client_auth: true,
        ..CertSpec::new(None, "efgs gateway callbacks", now)
    }
    .generate()?;
    let cert_path = dir.join("callback-client.pem");
    let key_path = dir.join("callback-client.key");
    std::fs::write(&cert_path, &cert.cert_pem)?;
    std::fs::write(&key_path, &cert.key_pem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((cert, cert_path, key_path))
}

/// Stores one single-key DE upload (keys of seed `seed`, batchTag `{prefix}-{seed}-{nanos}`)
/// straight into `fed`'s store and cuts one batch through its gateway, which wakes the callback
/// delivery: what a callback test or bench needs to make a receiver due a notification.
pub async fn cut_one_batch(
    fed: &crate::federation::Federation,
    prefix: &str,
    seed: u64,
) -> Result<efgs_core::store::CreatedBatch, BoxError> {
    use efgs_core::store::UploadStore as _;
    let upload = crate::generate::upload(
        "DE",
        &format!("{prefix}-{seed}-{}", fed.now().unix_timestamp_nanos()),
        crate::generate::KeyGen::new(seed).keys("DE", 1),
        fed.now(),
    );
    match fed.store().insert_upload(upload).await? {
        efgs_core::store::UploadOutcome::Stored(_) => {}
        other => return Err(format!("the upload was not stored: {other:?}").into()),
    }
    fed.gateway()
        .batch_step(fed.now())
        .await?
        .ok_or_else(|| "no batch was cut".into())
}
