//! Serving infrastructure: listener, TLS, connection handling, request body limits.
//!
//! warp 0.4 has no TLS and never exposed the peer certificate, so connections are served here
//! with hyper-util's auto builder (HTTP/1.1 and HTTP/2; h2 via ALPN over TLS, h2c with prior
//! knowledge on plain TCP) running `warp::service(filter)`.
//!
//! # Plugging in routes
//!
//! Any warp filter whose extract is a `Reply` can be served with [`serve_connections`]. Every
//! request carries a [`ConnectionInfo`] in its extensions (the peer address and, with mTLS, the
//! DER of the client's end-entity certificate); read it with [`connection_info()`] or
//! `warp::ext::get::<ConnectionInfo>()` (`warp::addr::remote()` is empty in this mode).
//!
//! # Limits and their behaviour
//!
//! - **Connection limit** ([`NetLimits::max_connections`]): when reached, the server stops
//!   accepting; further clients wait in the kernel's listen backlog (their TCP connect succeeds,
//!   their request is served once a slot frees) instead of being reset.
//! - **TLS handshake timeout**: the connection is dropped.
//! - **Header timeout**: the first request must arrive, and every HTTP/1.1 header block must be
//!   complete, within [`NetLimits::header_read_timeout`]; otherwise the connection is closed
//!   without a response.
//! - **Idle timeout**: a connection with no request in flight (request received, response not
//!   yet completely sent) for [`NetLimits::idle_timeout`] is shut down gracefully (HTTP/2
//!   GOAWAY). HTTP/1.1 keep-alive connections are also closed by the header timeout, so their
//!   effective idle limit is the smaller of the two.
//! - **Request bodies**: every body is wrapped so that a gap of more than
//!   [`NetLimits::body_read_timeout`] between two pieces, or more than
//!   [`NetLimits::max_body_bytes`] in total (checked against `Content-Length` before reading
//!   anything, and while counting for chunked bodies), ends the body with a [`BodyError`].
//!   Routes read bodies with [`body_limited`] / [`try_body_limited`], which turn that into a
//!   typed [`BodyError`] (413 / 408 / 400, see [`BodyError::status`]). After such a response the
//!   connection is closed rather than the rest of the body read.
//! - **Graceful shutdown**: when the `shutdown` future completes the listener is closed, every
//!   connection is asked to finish (HTTP/1.1: no more keep-alive; HTTP/2: GOAWAY), in-flight
//!   requests (uploads included) get [`NetLimits::shutdown_grace`] to complete, then what is
//!   left is dropped and [`serve_connections`] returns.
//!
//! # Errors surfacing to the error layer
//!
//! Body problems reach routes as [`BodyError`]: [`try_body_limited`] extracts
//! `Result<Bytes, BodyError>` (no rejection), [`body_limited`] rejects with
//! `warp::reject::custom(BodyError)`, which a `recover` finds with
//! `rejection.find::<BodyError>()` and maps with [`BodyError::status`] / [`BodyError::code`].
//! Connection-level failures (handshake, timeouts) never reach the filter; they are logged at
//! `debug` without peer addresses.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as AutoBuilder;
use rustls::ServerConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use warp::{Filter, Rejection, Reply};

/// What the server knows about the connection a request came in on. Inserted into every
/// request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The peer's address (with a proxy in front: the proxy's address).
    pub remote: SocketAddr,
    /// mTLS: DER of the client's end-entity certificate, exactly as received.
    pub peer_certificate: Option<Arc<[u8]>>,
}

impl ConnectionInfo {
    /// A connection from `remote` without a client certificate.
    pub fn new(remote: SocketAddr) -> Self {
        ConnectionInfo {
            remote,
            peer_certificate: None,
        }
    }

    /// With the DER of a client certificate.
    pub fn with_peer_certificate(mut self, der: impl Into<Arc<[u8]>>) -> Self {
        self.peer_certificate = Some(der.into());
        self
    }
}

/// A filter extracting the request's [`ConnectionInfo`]. Rejects (500, as a missing
/// extension) only when the request did not come through [`serve_connections`], e.g. in a
/// `warp::test` request that did not add one.
pub fn connection_info() -> impl Filter<Extract = (ConnectionInfo,), Error = Rejection> + Clone {
    warp::ext::get::<ConnectionInfo>()
}

/// Connection handling limits. See the module documentation for what each one does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NetLimits {
    /// Maximum simultaneous connections.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for each HTTP/1.1 header block and for the first request after connect.
    pub header_read_timeout: Duration,
    /// Time a connection may stay without a request in flight.
    pub idle_timeout: Duration,
    /// Time allowed between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// Hard cap on any request body; `None` leaves it to the routes.
    pub max_body_bytes: Option<u64>,
    /// Time in-flight requests get at shutdown.
    pub shutdown_grace: Duration,
    /// Maximum size of a header block (HTTP/1.1 read buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Maximum concurrent HTTP/2 streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval (dead peers are dropped after a further
    /// `h2_keep_alive_timeout`); `None` disables pings.
    pub h2_keep_alive_interval: Option<Duration>,
    /// How long to wait for a ping acknowledgement.
    pub h2_keep_alive_timeout: Duration,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_connections: 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            max_body_bytes: Some(16 * 1024 * 1024),
            shutdown_grace: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 100,
            h2_keep_alive_interval: Some(Duration::from_secs(30)),
            h2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Accept loop
// ---------------------------------------------------------------------------------------------

/// Serves `filter` on every connection accepted from `listener` until `shutdown` completes,
/// then shuts down gracefully (see the module documentation) and returns.
///
/// With `tls`, every connection is a TLS connection; use [`server_tls_config`] for mTLS (it
/// advertises `h2` and `http/1.1` via ALPN). Without, connections are plain HTTP/1.1 or h2c.
pub async fn serve_connections<F>(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    filter: F,
    limits: &NetLimits,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: Reply,
{
    let limits = Arc::new(limits.clone());
    let acceptor = tls.map(TlsAcceptor::from);
    let service = warp::service(filter);
    let builder = Arc::new(http_builder(&limits));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let stop = CancellationToken::new();
    let mut connections: JoinSet<()> = JoinSet::new();
    let mut shutdown = pin!(shutdown);

    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, remote) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Typically EMFILE/ENFILE or a connection reset before accept: back off
                    // briefly instead of spinning.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let conn = Connection {
            remote,
            service: service.clone(),
            builder: Arc::clone(&builder),
            limits: Arc::clone(&limits),
            stop: stop.child_token(),
        };
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            conn.run(tcp, acceptor).await;
            drop(permit);
        });
    }

    drop(listener);
    let open = connections.len();
    info!(
        open,
        "shutting down: listener closed, finishing in-flight requests"
    );
    stop.cancel();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            remaining = connections.len(),
            "shutdown grace period over; closing remaining connections"
        );
        connections.shutdown().await;
    }
    info!("all connections closed");
}

fn http_builder(limits: &NetLimits) -> AutoBuilder<TokioExecutor> {
    let mut builder = AutoBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout);
    builder
}

// ---------------------------------------------------------------------------------------------
// One connection
// ---------------------------------------------------------------------------------------------

/// Per-connection activity, watched by the idle watchdog.
#[derive(Clone, Copy, Debug)]
struct Activity {
    in_flight: usize,
    idle_since: Instant,
    served: u64,
}

/// Counts one request as in flight until dropped (with the response body).
struct ActivityGuard(Arc<watch::Sender<Activity>>);

impl ActivityGuard {
    fn begin(tx: &Arc<watch::Sender<Activity>>) -> Self {
        tx.send_modify(|a| {
            a.in_flight += 1;
            a.served += 1;
        });
        ActivityGuard(Arc::clone(tx))
    }
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.0.send_modify(|a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            if a.in_flight == 0 {
                a.idle_since = Instant::now();
            }
        });
    }
}

/// Completes when the connection has had no request in flight for too long: `first` before
/// the first request, `idle` afterwards.
async fn idle_watchdog(mut rx: watch::Receiver<Activity>, first: Duration, idle: Duration) {
    loop {
        let a = *rx.borrow_and_update();
        if a.in_flight > 0 {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            continue;
        }
        let deadline = a.idle_since + if a.served == 0 { first } else { idle };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return,
            changed = rx.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

struct Connection<S> {
    remote: SocketAddr,
    service: S,
    builder: Arc<AutoBuilder<TokioExecutor>>,
    limits: Arc<NetLimits>,
    stop: CancellationToken,
}

impl<S> Connection<S>
where
    S: tower_service::Service<
            http::Request<GuardedBody>,
            Response = warp::reply::Response,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    async fn run(self, tcp: tokio::net::TcpStream, acceptor: Option<TlsAcceptor>) {
        let Some(acceptor) = acceptor else {
            let info = ConnectionInfo::new(self.remote);
            self.drive(tcp, info).await;
            return;
        };
        let handshake = tokio::select! {
            () = self.stop.cancelled() => return,
            r = tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(tcp)) => r,
        };
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!("TLS handshake timed out");
                return;
            }
        };
        let mut info = ConnectionInfo::new(self.remote);
        info.peer_certificate = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| Arc::<[u8]>::from(cert.as_ref()));
        self.drive(tls, info).await;
    }

    async fn drive<I>(self, io: I, info: ConnectionInfo)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(watch::Sender::new(Activity {
            in_flight: 0,
            idle_since: Instant::now(),
            served: 0,
        }));
        let watchdog = idle_watchdog(
            activity.subscribe(),
            self.limits.header_read_timeout,
            self.limits.idle_timeout,
        );
        let max_body = self.limits.max_body_bytes;
        let body_timeout = self.limits.body_read_timeout;
        let service = self.service;
        let hyper_service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let guard = ActivityGuard::begin(&activity);
            let (mut parts, body) = req.into_parts();
            parts.extensions.insert(info.clone());
            let body = GuardedBody::new(body, max_body, body_timeout);
            let mut service = service.clone();
            let fut =
                tower_service::Service::call(&mut service, http::Request::from_parts(parts, body));
            async move {
                let response = fut.await?;
                Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                    inner,
                    _guard: guard,
                }))
            }
        });

        let conn = self
            .builder
            .serve_connection(TokioIo::new(io), hyper_service);
        let mut conn = pin!(conn);
        let mut watchdog = pin!(watchdog);
        let mut closing = false;
        let mut hard_deadline: Option<Pin<Box<Sleep>>> = None;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.stop.cancelled(), if !closing => {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = &mut watchdog, if !closing => {
                    debug!("closing idle connection");
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    // A peer stuck half-way through a header block is dropped after one more
                    // header timeout.
                    hard_deadline = Some(Box::pin(tokio::time::sleep(
                        self.limits.header_read_timeout,
                    )));
                }
                () = async { if let Some(s) = hard_deadline.as_mut() { s.await } else { std::future::pending().await } } => {
                    debug!("dropping connection that did not close after the idle timeout");
                    return;
                }
            }
        }
    }
}

/// A response body that keeps its request counted as in flight until it has been sent.
struct TrackedBody<B> {
    inner: B,
    _guard: ActivityGuard,
}

impl<B> Body for TrackedBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

/// Why a request body could not be read. Implements `warp::reject::Reject`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the limit (by `Content-Length`, or counted while reading).
    #[error("request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The client stopped sending the body.
    #[error("request body was not received in time")]
    Timeout,
    /// The body could not be read (client aborted, protocol error).
    #[error("request body could not be read: {reason}")]
    Read {
        /// The transport's message.
        reason: String,
    },
}

impl BodyError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "body-too-large",
            BodyError::Timeout => "body-timeout",
            BodyError::Read { .. } => "body-read",
        }
    }

    /// The HTTP status for this error: 413, 408 or 400.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// Maps an error from warp's body stream, recognising the connection-level [`BodyError`]
    /// inside it.
    pub fn from_warp(err: &warp::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
        while let Some(e) = source {
            if let Some(body_error) = e.downcast_ref::<BodyError>() {
                return body_error.clone();
            }
            source = e.source();
        }
        BodyError::Read {
            reason: err.to_string(),
        }
    }
}

impl warp::reject::Reject for BodyError {}

/// The request body as hyper delivers it, with the connection-level size cap and the
/// between-pieces timeout.
struct GuardedBody {
    inner: Incoming,
    read: u64,
    max: Option<u64>,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl GuardedBody {
    fn new(inner: Incoming, max: Option<u64>, timeout: Duration) -> Self {
        GuardedBody {
            inner,
            read: 0,
            max,
            timeout,
            sleep: None,
            done: false,
        }
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(max) = this.max
            && this.read == 0
            && this.inner.size_hint().lower() > max
        {
            // Declared too large: refuse before reading (and before any 100-continue).
            this.done = true;
            return Poll::Ready(Some(Err(BodyError::TooLarge { limit: max })));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    this.read = this.read.saturating_add(data.len() as u64);
                    if let Some(max) = this.max
                        && this.read > max
                    {
                        this.done = true;
                        return Poll::Ready(Some(Err(BodyError::TooLarge { limit: max })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                Poll::Ready(Some(Err(BodyError::Read {
                    reason: e.to_string(),
                })))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.done = true;
                    Poll::Ready(Some(Err(BodyError::Timeout)))
                } else {
                    Poll::Pending
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Reads a body stream into memory, refusing more than `max` bytes: at once when
/// `content_length` exceeds it, otherwise as soon as the running count does. Never holds more
/// than `max` bytes.
pub async fn read_limited<S, B>(
    stream: S,
    content_length: Option<u64>,
    max: u64,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if content_length.is_some_and(|len| len > max) {
        return Err(BodyError::TooLarge { limit: max });
    }
    // Do not trust the declared length for the allocation.
    let initial = content_length.unwrap_or(0).min(max).min(1024 * 1024);
    let mut body = BytesMut::with_capacity(usize::try_from(initial).unwrap_or(0));
    let mut stream = pin!(stream);
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| BodyError::from_warp(&e))?;
        if (body.len() as u64).saturating_add(chunk.remaining() as u64) > max {
            return Err(BodyError::TooLarge { limit: max });
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            let n = piece.len();
            body.extend_from_slice(piece);
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// Extracts the request body as `Result<Bytes, BodyError>` with at most `max` bytes (see
/// [`read_limited`]). Rejects only if another filter already took the body.
pub fn try_body_limited(
    max: u64,
) -> impl Filter<Extract = (Result<Bytes, BodyError>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .then(move |len: Option<u64>, stream| read_limited(stream, len, max))
}

/// Extracts the request body with at most `max` bytes, rejecting with
/// `warp::reject::custom(`[`BodyError`]`)` (413 for too large; see [`BodyError::status`]).
pub fn body_limited(max: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    try_body_limited(max).and_then(|result: Result<Bytes, BodyError>| async move {
        result.map_err(warp::reject::custom)
    })
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// Why the TLS configuration could not be built. Messages name the setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The setting naming the file.
        setting: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the material (e.g. key does not match the certificate).
    #[error("{reason}")]
    Rustls {
        /// The setting concerned.
        setting: &'static str,
        /// rustls' message.
        reason: String,
    },
}

impl TlsSetupError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            TlsSetupError::Pem { .. } => "tls-pem",
            TlsSetupError::Rustls { .. } => "tls-rustls",
        }
    }

    /// The configuration setting the error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            TlsSetupError::Pem { setting, .. } | TlsSetupError::Rustls { setting, .. } => setting,
        }
    }
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    let pem_err = |reason: String| TlsSetupError::Pem {
        setting,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_err("no PEM CERTIFICATE found".to_owned()));
    }
    Ok(certs)
}

/// Builds the mTLS server configuration from PEM files: `cert` (chain, leaf first), `key`, and
/// optionally `client_ca` (see [`server_tls_config_from_der`]).
pub fn server_tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = read_certs("auth.tls_cert", cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Pem {
        setting: "auth.tls_key",
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let roots = client_ca
        .map(|p| read_certs("auth.client_ca", p))
        .transpose()?;
    server_tls_config_from_der(chain, key_der, roots)
}

/// Builds the mTLS server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`). A client certificate is always required. With `client_roots`, it must chain to
/// one of them; without, any certificate (self-signed included) is accepted and only the
/// handshake signature (CertificateVerify) is checked, leaving authorisation to the thumbprint
/// lookup of the authentication filter.
pub fn server_tls_config_from_der(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<Vec<CertificateDer<'static>>>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match client_roots {
        None => Arc::new(AcceptAnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        }),
        Some(roots) => {
            let mut store = rustls::RootCertStore::empty();
            for root in roots {
                store.add(root).map_err(|e| TlsSetupError::Rustls {
                    setting: "auth.client_ca",
                    reason: e.to_string(),
                })?;
            }
            rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(store),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|e| TlsSetupError::Rustls {
                setting: "auth.client_ca",
                reason: e.to_string(),
            })?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls {
            setting: "auth.tls_cert",
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsSetupError::Rustls {
            setting: "auth.tls_key",
            reason: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Requires a client certificate and accepts any that parses as X.509 (self-signed included),
/// but verifies the handshake signature with the certificate's key.
#[derive(Debug)]
struct AcceptAnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAnyClientCert {
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
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        use x509_cert::der::Decode as _;
        x509_cert::Certificate::from_der(end_entity.as_ref()).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
