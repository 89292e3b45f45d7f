//! The penetration suite's harness (issue 9 point 8): a client that speaks to the real
//! server in either auth mode (proxy headers or mutual TLS) from a chosen loopback address, raw
//! HTTP for what client libraries refuse to send, a well-behaved member state that keeps
//! downloading and auditing while an attack runs (its latencies are measured), and a snapshot
//! of everything stored so that a case can show that the attack changed nothing.
//!
//! A case is written as
//!
//! ```ignore
//! let scene = Scene::new(&backend, Mode::Proxy, |b| b).await;
//! let replies = scene.under_attack("label", async { /* the attack, returns what it saw */ }).await;
//! // assert on the replies
//! ```
//!
//! [`Scene::under_attack`] takes a [`Snapshot`] before, runs the attack and the good client
//! ([`GoodLoop`], DE from 127.0.0.2) concurrently, requires every good request to succeed
//! within [`GOOD_DEADLINE`], and compares the snapshot after with the one before.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use efgs_core::DiagnosisKey;
use efgs_core::media::BodyFormat;
use efgs_core::store::{
    BatchInfo, BatchStore as _, KeyCounts, PendingSummary, TrustEntry, TrustListStore as _,
    UploadStat,
};
use efgs_testkit::federation::{Federation, FederationBuilder};
use efgs_testkit::national::encode_body;
use efgs_testkit::pki::GeneratedCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpSocket;

use super::{Backend, BoxError};

/// The longest a well-behaved member state may wait for an answer during an attack.
pub const GOOD_DEADLINE: Duration = Duration::from_secs(2);
/// How long quick attacks are repeated while the good client is measured.
pub const MIN_ATTACK: Duration = Duration::from_millis(500);
/// The address the well-behaved member state (and the seeding upload) comes from.
pub const GOOD_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The address attacks come from.
pub const ATTACKER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// `Content-Type` / `Accept` of protobuf 1.0.
pub const PB_V1: &str = "application/protobuf; version=1.0";
/// `Content-Type` / `Accept` of JSON 1.0.
pub const JSON_V1: &str = "application/json; version=1.0";

/// Serialises the heavy cases of one test binary (many connections, large bodies, memory
/// measurements), so that the memory and PostgreSQL variants do not overlap.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// How the gateway authenticates callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `auth.mode = proxy-headers`: identity in `X-SSL-Client-*` headers.
    Proxy,
    /// `auth.mode = mtls`: identity is the TLS client certificate.
    Mtls,
}

impl Mode {
    /// The mode a federation runs in.
    pub fn of(fed: &Federation) -> Mode {
        if fed.tls().is_some() {
            Mode::Mtls
        } else {
            Mode::Proxy
        }
    }
}

/// A byte stream to the gateway (TCP, or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An HTTP/1.1 client of the gateway: a fresh connection per request, from a chosen local
/// address, with TLS (and a client certificate, if given) in mtls mode and identity headers
/// (if given) in proxy mode.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    local: IpAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    headers: Vec<(String, String)>,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: hyper::HeaderMap,
    /// Body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The problem+json `code`, if the body is one.
    pub fn code(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, a problem answer, and that its `code` is one of `codes` (any code
    /// when `codes` is empty).
    #[track_caller]
    pub fn assert_problem(&self, what: &str, status: u16, codes: &[&str]) {
        assert_eq!(
            self.status,
            status,
            "{what}: expected {status} {codes:?}, got {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{what}: not a problem answer"
        );
        let code = self.code().unwrap_or_default();
        assert!(
            codes.contains(&code.as_str()) || (codes.is_empty() && !code.is_empty()),
            "{what}: code {code:?} not one of {codes:?}"
        );
    }
}

fn tls_config(fed: &Federation, cert: Option<(&[u8], &[u8])>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = &fed.tls().expect("mtls federation").ca.cert_der;
    roots.add(CertificateDer::from(ca.clone())).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

impl Client {
    /// No identity: no headers, and in mtls mode TLS without a client certificate.
    pub fn anonymous(fed: &Federation) -> Client {
        Client {
            addr: fed.addr(),
            local: ATTACKER_IP,
            tls: (Mode::of(fed) == Mode::Mtls).then(|| tls_config(fed, None)),
            headers: Vec::new(),
        }
    }

    /// Presents a certificate: in mtls mode as the TLS client certificate, in proxy mode as the
    /// thumbprint and DN headers a proxy would forward (`dn` as given).
    pub fn presenting(fed: &Federation, cert_der: &[u8], key_der: &[u8], dn: &str) -> Client {
        let mut c = Client::anonymous(fed);
        match Mode::of(fed) {
            Mode::Mtls => c.tls = Some(tls_config(fed, Some((cert_der, key_der)))),
            Mode::Proxy => {
                let thumbprint = efgs_core::cert::Thumbprint::of_der(cert_der);
                c.headers = vec![
                    (
                        "X-SSL-Client-SHA256".to_owned(),
                        thumbprint.as_str().to_owned(),
                    ),
                    ("X-SSL-Client-DN".to_owned(), dn.to_owned()),
                ];
            }
        }
        c
    }

    /// Presents a generated certificate with its subject DN.
    pub fn presenting_cert(fed: &Federation, cert: &GeneratedCert, dn: &str) -> Client {
        Client::presenting(fed, &cert.cert_der, &cert.key_der, dn)
    }

    /// The country's AUTHENTICATION certificate.
    pub fn country(fed: &Federation, country: &str) -> Client {
        let c = fed[country].credentials();
        Client::presenting(fed, &c.auth_cert_der, &c.auth_key_der, &c.auth_dn)
    }

    /// From another local (loopback) address.
    pub fn bound_to(mut self, ip: IpAddr) -> Client {
        self.local = ip;
        self
    }

    /// Replaces the identity headers sent with every request.
    pub fn with_headers(mut self, headers: &[(&str, &str)]) -> Client {
        self.headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self
    }

    /// The identity headers sent with every request.
    pub fn identity_headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// A new connection (TCP from the local address, then TLS in mtls mode).
    pub async fn connect(&self) -> Result<Box<dyn Io>, BoxError> {
        let tcp = self.connect_tcp().await?;
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some(config) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
                let name = rustls::pki_types::ServerName::try_from("localhost")?.to_owned();
                Ok(Box::new(connector.connect(name, tcp).await?))
            }
        }
    }

    /// A new TCP connection from the local address (no TLS).
    pub async fn connect_tcp(&self) -> std::io::Result<tokio::net::TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(self.local, 0))?;
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// One request on a fresh connection; header values may hold any bytes but CR, LF and NUL
    /// (use [`Self::raw`] for those). Identity headers come first.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, BoxError> {
        use http_body_util::BodyExt as _;
        let io = self.connect().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        let identity = self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (k, v) in identity.chain(headers.iter().copied()) {
            req = req.header(
                hyper::header::HeaderName::from_bytes(k.as_bytes())?,
                hyper::header::HeaderValue::from_bytes(v.as_bytes())?,
            );
        }
        let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await?.to_bytes().to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// [`Self::send`] that panics on a transport error.
    pub async fn must(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        match self.send(method, path, headers, body).await {
            Ok(r) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }

    /// Raw bytes on a fresh connection; reads until the server closes, or until `wait` passed.
    /// The request should say `Connection: close`.
    pub async fn raw(&self, request: &[u8], wait: Duration) -> Result<RawReply, BoxError> {
        let mut io = self.connect().await?;
        io.write_all(request).await?;
        io.flush().await?;
        Ok(read_all(&mut io, wait).await)
    }

    /// A raw HTTP/1.1 request: request line, `Host`, this client's identity headers, `extra`
    /// (raw header lines, each ending in CRLF, written exactly as given), `Content-Length`,
    /// `Connection: close`, then `body`.
    pub fn raw_request(&self, method: &str, path: &str, extra: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n").into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(extra);
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
        out
    }

    /// An upload of `keys` (signed by `signer_country`'s SIGNING certificate) with these
    /// extra headers, as this client.
    pub async fn upload(
        &self,
        fed: &Federation,
        keys: &[DiagnosisKey],
        signer_country: &str,
        tag: &str,
        format: BodyFormat,
    ) -> Reply {
        let signature = fed[signer_country].sign(keys).unwrap();
        self.must(
            "POST",
            "/diagnosiskeys/upload",
            &[
                ("content-type", format.content_type()),
                ("batchTag", tag),
                ("batchSignature", &signature),
            ],
            encode_body(keys, format),
        )
        .await
    }
}

/// What [`Client::raw`] read.
#[derive(Debug)]
pub struct RawReply {
    /// Everything read.
    pub bytes: Vec<u8>,
    /// The status of the first response, if one arrived.
    pub status: Option<u16>,
    /// Whether the server closed (EOF or reset) before the wait was over.
    pub closed: bool,
}

impl RawReply {
    /// The bytes as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The first response's body as a problem `code`, if it is one.
    pub fn code(&self) -> Option<String> {
        let split = self.bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let body = &self.bytes[split + 4..];
        let start = body.iter().position(|b| *b == b'{')?;
        let end = body.iter().rposition(|b| *b == b'}')?;
        serde_json::from_slice::<serde_json::Value>(&body[start..=end])
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_owned)
    }
}

impl RawReply {
    /// Asserts a refusal: no response at all (connection closed) or one of `allowed`; never a
    /// success, never 5xx.
    #[track_caller]
    pub fn assert_refused(&self, what: &str, allowed: &[u16]) {
        match self.status {
            None => assert!(self.closed, "{what}: neither an answer nor a close"),
            Some(s) => assert!(
                allowed.contains(&s),
                "{what}: {s}, expected one of {allowed:?}: {}",
                self.text()
            ),
        }
    }
}

/// Reads until EOF, an error (reset) or `wait`.
pub async fn read_all(io: &mut (impl AsyncRead + Unpin), wait: Duration) -> RawReply {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) => break false,
            Ok(Ok(0) | Err(_)) => break true,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
        }
    };
    let status = bytes
        .starts_with(b"HTTP/1.")
        .then(|| std::str::from_utf8(bytes.get(9..12)?).ok()?.parse().ok())
        .flatten();
    RawReply {
        bytes,
        status,
        closed,
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------------

/// Everything a refused request must leave as it was: key counts, pending uploads, upload
/// statistics, the trust list and the latest batch. (Download statistics are not in it: the
/// good client's downloads add to them.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    keys: KeyCounts,
    pending: PendingSummary,
    uploads: Vec<UploadStat>,
    trust: Vec<TrustEntry>,
    latest: Option<BatchInfo>,
}

impl Snapshot {
    /// Reads the federation's store.
    pub async fn take(fed: &Federation) -> Snapshot {
        let s = fed.store();
        Snapshot {
            keys: s.key_counts().await.unwrap(),
            pending: s.pending_summary().await.unwrap(),
            uploads: s
                .upload_stats(time::OffsetDateTime::UNIX_EPOCH)
                .await
                .unwrap(),
            trust: s.list_trust_entries().await.unwrap(),
            latest: s.latest_batch().await.unwrap(),
        }
    }

    /// Panics (naming what differs) unless `self` equals `before`.
    #[track_caller]
    pub fn assert_same(&self, before: &Snapshot, what: &str) {
        assert_eq!(self.keys, before.keys, "{what}: key counts changed");
        assert_eq!(
            self.pending, before.pending,
            "{what}: pending uploads changed"
        );
        assert_eq!(
            self.uploads, before.uploads,
            "{what}: upload records changed"
        );
        assert_eq!(self.trust, before.trust, "{what}: trust list changed");
        assert_eq!(self.latest, before.latest, "{what}: latest batch changed");
    }
}

// ---------------------------------------------------------------------------------------------
// The well-behaved member state
// ---------------------------------------------------------------------------------------------

/// One request of the good client.
#[derive(Debug, Clone)]
struct Sample {
    latency: Duration,
    failure: Option<String>,
}

/// A well-behaved member state (DE from [`GOOD_IP`]) downloading and auditing the seeded
/// batch in a loop, one fresh connection per request, until [`Self::finish`].
pub struct GoodLoop {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What the good client saw.
#[derive(Debug, Clone)]
pub struct GoodStats {
    /// Number of requests.
    pub requests: usize,
    /// Failures (status, transport error or deadline), described.
    pub failures: Vec<String>,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Largest latency.
    pub max: Duration,
}

impl GoodLoop {
    /// Starts the loop against `scene`.
    pub fn start(scene: &Scene) -> GoodLoop {
        let client = Client::country(&scene.fed, "DE").bound_to(GOOD_IP);
        let download = format!("/diagnosiskeys/download/{}", scene.fed.today());
        let audit = format!(
            "/diagnosiskeys/audit/download/{}/{}",
            scene.fed.today(),
            scene.tag
        );
        let expected_keys = scene.seeded.len();
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (stop, done, samples) =
                (Arc::clone(&stop), Arc::clone(&done), Arc::clone(&samples));
            async move {
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    let (path, accept) = if i.is_multiple_of(2) {
                        (&download, PB_V1)
                    } else {
                        (&audit, "application/json")
                    };
                    i += 1;
                    let t = Instant::now();
                    let r = tokio::time::timeout(
                        GOOD_DEADLINE,
                        client.send("GET", path, &[("accept", accept)], Vec::new()),
                    )
                    .await;
                    let latency = t.elapsed();
                    let failure = match r {
                        Err(_) => Some(format!("{path}: no answer within {GOOD_DEADLINE:?}")),
                        Ok(Err(e)) => Some(format!("{path}: {e}")),
                        Ok(Ok(r)) if r.status != 200 => Some(format!(
                            "{path}: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        )),
                        Ok(Ok(r)) if path == &download => {
                            let keys = efgs_core::proto::decode_batch(&r.body)
                                .map(|b| b.keys.len())
                                .unwrap_or(usize::MAX);
                            (keys != expected_keys)
                                .then(|| format!("{path}: {keys} keys, not {expected_keys}"))
                        }
                        Ok(Ok(_)) => None,
                    };
                    samples.lock().unwrap().push(Sample { latency, failure });
                    done.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
        GoodLoop {
            stop,
            done,
            samples,
            task,
        }
    }

    /// Requests finished so far.
    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits until at least `min_requests` requests finished (at most 20 s), stops the loop
    /// and returns what it saw.
    pub async fn finish(self, min_requests: usize) -> GoodStats {
        let until = Instant::now() + Duration::from_secs(20);
        while self.done.load(Ordering::SeqCst) < min_requests && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let samples = self.samples.lock().unwrap().clone();
        let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
        latencies.sort();
        let pct = |p: usize| {
            latencies
                .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let mut failures: Vec<String> = samples.iter().filter_map(|s| s.failure.clone()).collect();
        if samples.len() < min_requests {
            failures.push(format!(
                "only {} good requests finished, {min_requests} wanted",
                samples.len()
            ));
        }
        GoodStats {
            requests: samples.len(),
            failures,
            p50: pct(50),
            p99: pct(99),
            max: latencies.last().copied().unwrap_or_default(),
        }
    }
}

impl GoodStats {
    /// Panics unless every good request was answered correctly within [`GOOD_DEADLINE`].
    #[track_caller]
    pub fn assert_served(&self, what: &str) {
        assert!(
            self.failures.is_empty(),
            "{what}: the well-behaved member state was not served: {:?}",
            self.failures
        );
        assert!(
            self.max <= GOOD_DEADLINE,
            "{what}: the well-behaved member state waited {:?}",
            self.max
        );
    }

    /// `n=.. p50=..ms p99=..ms max=..ms`.
    pub fn summary(&self) -> String {
        format!(
            "n={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
            self.requests,
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Scene
// ---------------------------------------------------------------------------------------------

/// A federation of DE (the well-behaved member state), FR (which uploaded the seeded batch)
/// and NL (a member state whose certificates attackers use), with one batch of FR keys.
pub struct Scene {
    /// The federation.
    pub fed: Federation,
    /// The seeded batch's tag.
    pub tag: String,
    /// The seeded keys.
    pub seeded: Vec<DiagnosisKey>,
    /// The backend's name (for messages).
    pub backend: &'static str,
}

impl Scene {
    /// A scene with 10 seeded keys; `customise` adjusts the builder (settings, proxies).
    pub async fn new(
        b: &Backend,
        mode: Mode,
        customise: impl FnOnce(FederationBuilder) -> FederationBuilder,
    ) -> Scene {
        Scene::with_seed(b, mode, 10, customise).await
    }

    /// A scene with `n` seeded keys.
    pub async fn with_seed(
        b: &Backend,
        mode: Mode,
        n: usize,
        customise: impl FnOnce(FederationBuilder) -> FederationBuilder,
    ) -> Scene {
        let mut builder = b.builder().await.countries(["DE", "FR", "NL"]);
        if mode == Mode::Mtls {
            builder = builder.mutual_tls();
        }
        let fed = customise(builder).build().await.unwrap();
        let fr = Client::country(&fed, "FR").bound_to(GOOD_IP);
        let seeded = fed["FR"].keys(n);
        let r = fr
            .upload(&fed, &seeded, "FR", "seed-1", BodyFormat::Protobuf)
            .await;
        assert_eq!(
            r.status,
            201,
            "seeding: {}",
            String::from_utf8_lossy(&r.body)
        );
        fed.run_batching_now().await.unwrap();
        let tag = super::tag(fed.today(), 1);
        Scene {
            fed,
            tag,
            seeded,
            backend: match b {
                Backend::Memory => "memory",
                Backend::Postgres(_) => "postgres",
            },
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        Mode::of(&self.fed)
    }

    /// `label` with backend and mode.
    pub fn label(&self, label: &str) -> String {
        format!("{label} [{} {:?}]", self.backend, self.mode())
    }

    /// Runs attack rounds while the good client downloads and audits: `attack()` is run, then
    /// run again until the attack has lasted [`MIN_ATTACK`] and the good client finished at
    /// least 3 requests meanwhile (at most 50 rounds). Asserts that every good request was
    /// answered correctly within [`GOOD_DEADLINE`] and that the store is as before. Returns
    /// the first round's result and the good client's figures.
    pub async fn under_attack<T, F, Fut>(&self, label: &str, mut attack: F) -> (T, GoodStats)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = T>,
    {
        let label = self.label(label);
        let before = Snapshot::take(&self.fed).await;
        let good = GoodLoop::start(self);
        let t = Instant::now();
        let first = attack().await;
        let mut rounds = 1;
        while (t.elapsed() < MIN_ATTACK || good.done() < 3) && rounds < 50 {
            attack().await;
            rounds += 1;
        }
        self.finish(&label, before, good, t, rounds, first).await
    }

    /// One long attack (many connections, large bodies) while the good client downloads and
    /// audits; as [`Self::under_attack`], without repeating the attack.
    pub async fn under_long_attack<T>(
        &self,
        label: &str,
        attack: impl Future<Output = T>,
    ) -> (T, GoodStats) {
        let label = self.label(label);
        let before = Snapshot::take(&self.fed).await;
        let good = GoodLoop::start(self);
        let t = Instant::now();
        let out = attack.await;
        self.finish(&label, before, good, t, 1, out).await
    }

    async fn finish<T>(
        &self,
        label: &str,
        before: Snapshot,
        good: GoodLoop,
        t: Instant,
        rounds: usize,
        out: T,
    ) -> (T, GoodStats) {
        let attack_time = t.elapsed();
        let stats = good.finish(3).await;
        eprintln!(
            "PENTEST {label}: {rounds} attack round(s) in {:.0}ms; good client {}",
            attack_time.as_secs_f64() * 1e3,
            stats.summary()
        );
        stats.assert_served(label);
        Snapshot::take(&self.fed).await.assert_same(&before, label);
        (out, stats)
    }

    /// A well-formed, correctly signed upload request of 3 keys of `country` (path, headers,
    /// body), for attacks that change one thing.
    pub fn upload_parts(&self, country: &str, tag: &str) -> (Vec<(String, String)>, Vec<u8>) {
        let keys = self.fed[country].keys(3);
        let signature = self.fed[country].sign(&keys).unwrap();
        (
            vec![
                ("content-type".to_owned(), PB_V1.to_owned()),
                ("batchTag".to_owned(), tag.to_owned()),
                ("batchSignature".to_owned(), signature),
            ],
            encode_body(&keys, BodyFormat::Protobuf),
        )
    }
}

/// (route, reply) pairs.
pub type Routed = Vec<(String, Reply)>;

/// A request of [`every_route`]: name, method, path, headers, body.
type Planned<'a> = (&'a str, &'a str, String, Vec<(String, String)>, Vec<u8>);

/// Sends one request on every route as `client`: an upload (well-formed, signed by
/// `upload_country`), downloads with and without `batchTag`, the audit, and unknown paths.
/// Returns (route, reply) for the known routes and the unknown ones separately.
pub async fn every_route(
    scene: &Scene,
    client: &Client,
    upload_country: &str,
    extra: &[(&str, &str)],
) -> (Routed, Routed) {
    let today = scene.fed.today();
    let (upload_headers, body) = scene.upload_parts(upload_country, "attack-1");
    let owned = |base: &[(&str, &str)]| -> Vec<(String, String)> {
        base.iter()
            .chain(extra.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let mut upload = upload_headers;
    upload.extend(owned(&[]));
    let tag = scene.tag.clone();
    let download = format!("/diagnosiskeys/download/{today}");
    let audit = format!("/diagnosiskeys/audit/download/{today}/{tag}");
    let requests: Vec<Planned<'_>> = vec![
        (
            "upload",
            "POST",
            "/diagnosiskeys/upload".to_owned(),
            upload,
            body,
        ),
        (
            "download",
            "GET",
            download.clone(),
            owned(&[("accept", PB_V1)]),
            Vec::new(),
        ),
        (
            "download+tag",
            "GET",
            download,
            owned(&[("accept", JSON_V1), ("batchTag", &tag)]),
            Vec::new(),
        ),
        (
            "audit",
            "GET",
            audit,
            owned(&[("accept", "application/json")]),
            Vec::new(),
        ),
    ];
    let mut known = Vec::new();
    for (name, method, path, h, body) in requests {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        known.push((name.to_owned(), client.must(method, &path, &h, body).await));
    }
    let mut unknown = Vec::new();
    for (method, path) in [
        ("GET", "/diagnosiskeys/callback"),
        ("PUT", "/diagnosiskeys/callback/cb-1"),
        ("GET", "/diagnosiskeys/audit/download"),
        ("POST", "/diagnosiskeys/upload/extra"),
        ("GET", "/admin"),
    ] {
        let h: Vec<(&str, &str)> = extra.to_vec();
        unknown.push((
            format!("{method} {path}"),
            client.must(method, path, &h, Vec::new()).await,
        ));
    }
    (known, unknown)
}

/// Asserts that every known route answered `status` with one of `codes`, and every unknown
/// path 403, 404 or 405 (the path is matched before authentication; see
/// `pen_input::unknown_path_with_other_method_404` for the 405).
#[track_caller]
pub fn assert_every_route_refused(
    label: &str,
    (known, unknown): &(Routed, Routed),
    status: u16,
    codes: &[&str],
) {
    for (route, r) in known {
        r.assert_problem(&format!("{label}: {route}"), status, codes);
    }
    for (route, r) in unknown {
        assert!(
            (403..=405).contains(&r.status),
            "{label}: {route}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Process figures
// ---------------------------------------------------------------------------------------------

/// A `VmXxx` figure of this process from /proc/self/status, in KiB.
pub fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Peak resident set size (VmHWM), KiB.
pub fn peak_rss_kib() -> u64 {
    vm_kib("VmHWM:")
}

/// Resets the peak resident set size to the current one (Linux `clear_refs` 5); false when
/// the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Starts a peak-RSS measurement: resets the peak to the current RSS when the kernel allows
/// it, and returns the base to subtract (KiB).
pub fn peak_base() -> u64 {
    if reset_peak_rss() {
        vm_kib("VmRSS:")
    } else {
        peak_rss_kib()
    }
}

/// Growth of the peak RSS since [`peak_base`] returned `base` (KiB).
pub fn peak_growth(base: u64) -> u64 {
    peak_rss_kib().saturating_sub(base)
}
