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
//! - **Request and response deadlines**: a request in flight longer than
//!   [`NetLimits::request_timeout`], or whose ready response has not been completely sent within
//!   [`NetLimits::response_timeout`] (a client that stops reading, pipelines without reading,
//!   or keeps an HTTP/2 flow-control window at zero), has its connection dropped at once.
//! - **Per-address limit** ([`NetLimits::max_connections_per_address`]): further connections
//!   from an address that has its maximum open are closed at once, so one client cannot take
//!   every slot; the trusted proxies ([`NetLimits::per_address_exempt`]) are exempt.
//! - **After a 403** the connection is closed once the response is sent (HTTP/1.1: no
//!   keep-alive; HTTP/2: GOAWAY): a caller without a valid certificate gets one answer per
//!   connection.
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

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use efgs_core::callback_url::IpCidr;
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
#[cfg(test)]
use warp::Rejection;
use warp::{Filter, Reply};

/// What the server knows about the connection a request came in on. Inserted into every
/// request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectionInfo {
    /// The peer's address (with a proxy in front: the proxy's address).
    pub(crate) remote: SocketAddr,
    /// mTLS: DER of the client's end-entity certificate, exactly as received.
    pub(crate) peer_certificate: Option<Arc<[u8]>>,
}

impl ConnectionInfo {
    /// A connection from `remote` without a client certificate.
    pub(crate) fn new(remote: SocketAddr) -> Self {
        ConnectionInfo {
            remote,
            peer_certificate: None,
        }
    }
}

/// A filter extracting the request's [`ConnectionInfo`]. Rejects (500, as a missing
/// extension) only when the request did not come through [`serve_connections`], e.g. in a
/// `warp::test` request that did not add one.
#[cfg(test)]
pub(crate) fn connection_info()
-> impl Filter<Extract = (ConnectionInfo,), Error = Rejection> + Clone {
    warp::ext::get::<ConnectionInfo>()
}

/// Connection handling limits. See the module documentation for what each one does.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub(crate) struct NetLimits {
    /// Maximum simultaneous connections.
    pub(crate) max_connections: usize,
    /// Time allowed for a TLS handshake.
    pub(crate) tls_handshake_timeout: Duration,
    /// Time allowed for each HTTP/1.1 header block and for the first request after connect.
    pub(crate) header_read_timeout: Duration,
    /// Time a connection may stay without a request in flight.
    pub(crate) idle_timeout: Duration,
    /// Time allowed between two pieces of a request body.
    pub(crate) body_read_timeout: Duration,
    /// Hard cap on any request body; `None` leaves it to the routes.
    pub(crate) max_body_bytes: Option<u64>,
    /// Time in-flight requests get at shutdown.
    pub(crate) shutdown_grace: Duration,
    /// Maximum size of a header block (HTTP/1.1 read buffer, HTTP/2 header list).
    pub(crate) max_header_bytes: usize,
    /// Maximum concurrent HTTP/2 streams per connection.
    pub(crate) h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval (dead peers are dropped after a further
    /// `h2_keep_alive_timeout`); `None` disables pings.
    pub(crate) h2_keep_alive_interval: Option<Duration>,
    /// How long to wait for a ping acknowledgement.
    pub(crate) h2_keep_alive_timeout: Duration,
    /// Upper bound on one request, from its arrival until its response is completely sent
    /// (slow bodies, slow handlers, responses the client does not read).
    pub(crate) request_timeout: Duration,
    /// Upper bound on sending one response, from when it is ready until it is completely sent
    /// (a client that stops reading, an HTTP/2 flow-control window kept at zero).
    pub(crate) response_timeout: Duration,
    /// Maximum simultaneous connections from one address (0: no limit); further connections
    /// from it are closed at once.
    pub(crate) max_connections_per_address: usize,
    /// Addresses the per-address limit does not apply to (the trusted proxies, which carry
    /// every member state's traffic).
    pub(crate) per_address_exempt: Vec<IpCidr>,
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
            request_timeout: Duration::from_secs(120),
            response_timeout: Duration::from_secs(60),
            max_connections_per_address: 64,
            per_address_exempt: Vec::new(),
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
pub(crate) async fn serve_connections<F>(
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
    let per_address = PerAddress::new(&limits);

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
        let Some(address_slot) = per_address.admit(remote.ip()) else {
            debug!("connection refused: too many connections from one address");
            drop(tcp);
            continue;
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
            drop(address_slot);
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

/// Per-connection activity, watched by the connection's watchdog.
#[derive(Clone, Debug)]
struct Activity {
    /// Requests in flight (received, response not yet completely sent), by number: when each
    /// arrived and when its response was ready.
    requests: BTreeMap<u64, (Instant, Option<Instant>)>,
    idle_since: Instant,
    served: u64,
    /// Close the connection once nothing is in flight (after a 403).
    close: bool,
    /// Since when writing to the client has been blocked (its receive window is full), if it
    /// is: responses handed to the connection count as in flight until they are on the wire.
    write_blocked_since: Option<Instant>,
}

/// Why the watchdog ends a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// No request for too long, or a close was asked for: finish gracefully.
    Graceful,
    /// A request or its response overran its deadline: drop the connection now.
    Deadline,
}

/// Counts one request as in flight until dropped (with the response body).
struct RequestGuard {
    tx: Arc<watch::Sender<Activity>>,
    id: u64,
}

impl RequestGuard {
    fn begin(tx: &Arc<watch::Sender<Activity>>) -> Self {
        let mut id = 0;
        tx.send_modify(|a| {
            id = a.served;
            a.served += 1;
            a.requests.insert(id, (Instant::now(), None));
        });
        RequestGuard {
            tx: Arc::clone(tx),
            id,
        }
    }

    /// The response is ready: from now on it must be sent within the response deadline.
    /// `close` asks for the connection to be closed once it is sent.
    fn responding(&self, close: bool) {
        self.tx.send_modify(|a| {
            if let Some(r) = a.requests.get_mut(&self.id) {
                r.1 = Some(Instant::now());
            }
            a.close |= close;
        });
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.tx.send_modify(|a| {
            a.requests.remove(&self.id);
            if a.requests.is_empty() {
                a.idle_since = Instant::now();
            }
        });
    }
}

/// Completes when the connection should end: [`Ending::Graceful`] when it has had no request
/// in flight for too long (`first` before the first request, `idle` afterwards) or a close was
/// asked for and nothing is in flight; [`Ending::Deadline`] when a request in flight overran
/// `limits.request_timeout` or its response `limits.response_timeout`.
async fn watchdog(
    mut rx: watch::Receiver<Activity>,
    first: Duration,
    limits: Arc<NetLimits>,
) -> Ending {
    loop {
        let a = rx.borrow_and_update().clone();
        let (deadline, ending) = if let Some(blocked) = a.write_blocked_since {
            let write = blocked + limits.response_timeout;
            let request = a
                .requests
                .values()
                .map(|(arrived, _)| *arrived + limits.request_timeout)
                .min();
            (request.map_or(write, |r| r.min(write)), Ending::Deadline)
        } else if a.requests.is_empty() {
            if a.close {
                return Ending::Graceful;
            }
            let idle = if a.served == 0 {
                first
            } else {
                limits.idle_timeout
            };
            (a.idle_since + idle, Ending::Graceful)
        } else {
            let deadline = a
                .requests
                .values()
                .map(|(arrived, ready)| {
                    let whole = *arrived + limits.request_timeout;
                    ready.map_or(whole, |r| whole.min(r + limits.response_timeout))
                })
                .min()
                .unwrap_or_else(|| Instant::now() + limits.request_timeout);
            (deadline, Ending::Deadline)
        };
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return ending,
            changed = rx.changed() => {
                if changed.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Open connections per client address, for [`NetLimits::max_connections_per_address`].
#[derive(Clone)]
struct PerAddress {
    max: usize,
    exempt: Arc<Vec<IpCidr>>,
    open: Arc<std::sync::Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection of an address; released when dropped.
struct AddressSlot {
    table: Option<(PerAddress, IpAddr)>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((table, ip)) = self.table.take() {
            let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}

impl PerAddress {
    fn new(limits: &NetLimits) -> Self {
        PerAddress {
            max: limits.max_connections_per_address,
            exempt: Arc::new(limits.per_address_exempt.clone()),
            open: Arc::default(),
        }
    }

    /// A slot for a new connection from `ip`, or `None` when the address has its maximum.
    fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        if self.max == 0 || efgs_core::callback_url::any_contains(&self.exempt, ip) {
            return Some(AddressSlot { table: None });
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: Some((self.clone(), ip)),
        })
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
            requests: BTreeMap::new(),
            idle_since: Instant::now(),
            served: 0,
            close: false,
            write_blocked_since: None,
        }));
        let watchdog = watchdog(
            activity.subscribe(),
            self.limits.header_read_timeout,
            Arc::clone(&self.limits),
        );
        let max_body = self.limits.max_body_bytes;
        let body_timeout = self.limits.body_read_timeout;
        let activity_for_io = Arc::clone(&activity);
        let service = self.service;
        let hyper_service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let guard = RequestGuard::begin(&activity);
            let (mut parts, body) = req.into_parts();
            let http1 = parts.version < http::Version::HTTP_2;
            parts.extensions.insert(info.clone());
            let body = GuardedBody::new(body, max_body, body_timeout);
            let mut service = service.clone();
            let fut =
                tower_service::Service::call(&mut service, http::Request::from_parts(parts, body));
            async move {
                let mut response = fut.await?;
                // After a 403 the connection is closed: a caller without a valid certificate
                // gets one answer per connection. HTTP/1.1 says so in the response, so that
                // clients do not reuse the connection (HTTP/2 gets a GOAWAY).
                let refused = response.status() == http::StatusCode::FORBIDDEN;
                if refused && http1 {
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                guard.responding(refused);
                Ok::<_, Infallible>(response.map(|inner| TrackedBody {
                    inner,
                    _guard: guard,
                }))
            }
        });

        let io = WriteWatch {
            inner: io,
            activity: Arc::clone(&activity_for_io),
            blocked: false,
        };
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
                ending = &mut watchdog, if !closing => {
                    if ending == Ending::Deadline {
                        debug!("dropping connection: a request or its response overran its deadline");
                        return;
                    }
                    debug!("closing connection (idle, or after a refusal)");
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

/// The connection's I/O, reporting to the watchdog when writing to the client blocks and
/// when it moves again.
struct WriteWatch<I> {
    inner: I,
    activity: Arc<watch::Sender<Activity>>,
    blocked: bool,
}

impl<I> WriteWatch<I> {
    fn note<T>(&mut self, poll: &Poll<T>) {
        let blocked = poll.is_pending();
        if blocked != self.blocked {
            self.blocked = blocked;
            self.activity.send_modify(|a| {
                a.write_blocked_since = blocked.then(Instant::now);
            });
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteWatch<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteWatch<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.note(&poll);
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.note(&poll);
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.note(&poll);
        poll
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in flight until it has been sent.
struct TrackedBody<B> {
    inner: B,
    _guard: RequestGuard,
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

mod body;
#[cfg(test)]
mod tests;
mod tls;

use body::GuardedBody;
#[cfg(test)]
pub(crate) use body::body_limited;
pub(crate) use body::{BodyError, read_limited};
pub use tls::TlsSetupError;
pub(crate) use tls::server_tls_config;
#[cfg(test)]
pub(crate) use tls::server_tls_config_from_der;
