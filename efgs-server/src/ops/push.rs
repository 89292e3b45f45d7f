//! Pushing the trail to log management (ADR 0019): one pusher per configured collector
//! (`audit.syslog`, `audit.http_url`) in every instance; the one holding the sink's lease in
//! the store sends, from the cursor the store keeps (the last event the collector
//! acknowledged), in sequence order, and moves the cursor after each acknowledged batch. While
//! the collector is unreachable events wait in the store; nothing is lost and, once it is back,
//! nothing already acknowledged is sent again.
//!
//! Acknowledgement: for HTTP a 2xx answer to the POST. Syslog over TCP has none (RFC 6587), so
//! a batch counts as delivered once written and, [`SETTLE`] later, the connection has not been
//! reset: a collector that closed before reading the data (or with it unread) resets the
//! connection (Linux answers data for a closed socket, and a close with unread data, with a
//! RST), so those events are sent again on a new connection. Each message carries `seq` and
//! `hash` in its structured data, so a collector can also drop a duplicate by itself.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use efgs_core::store::{DynStore, TrailRecord};
use efgs_core::trail::timestamp;
use futures_util::FutureExt as _;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::settings::{SinkKind, SinkSettings};

/// Most events sent in one write or POST.
const BATCH: usize = 1000;
/// How long a lease lasts without renewal (another instance takes over after it).
const LEASE: time::Duration = time::Duration::seconds(30);
/// How long a written syslog batch must go without a connection reset before it counts as
/// delivered.
pub(crate) const SETTLE: Duration = Duration::from_millis(200);
/// Connecting, TLS and an HTTP answer must complete within this.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The RFC 5424 facility: 13, "log audit".
const FACILITY: u8 = 13;
/// The structured-data id (enterprise number 32473 is reserved for documentation, RFC 5612).
const SD_ID: &str = "efgs@32473";

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("collector answered {0}")]
    Status(http::StatusCode),
    #[error("the collector reset the connection before reading every event")]
    Reset,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Stream for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Stream for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

enum Conn {
    Syslog(Box<dyn Stream>),
    Http(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
}

async fn timeout<T, E: Into<PushError>>(
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, PushError> {
    tokio::time::timeout(IO_TIMEOUT, f)
        .await
        .map_err(|_| PushError::Timeout)?
        .map_err(Into::into)
}

async fn connect(sink: &SinkSettings) -> Result<Conn, PushError> {
    let tcp = timeout(TcpStream::connect((sink.host.as_str(), sink.port))).await?;
    let _ = tcp.set_nodelay(true);
    let stream: Box<dyn Stream> = match &sink.tls {
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            Box::new(timeout(connector.connect(tls.server_name.clone(), tcp)).await?)
        }
        None => Box::new(tcp),
    };
    match sink.kind {
        SinkKind::Syslog => Ok(Conn::Syslog(stream)),
        SinkKind::Http { .. } => {
            let (send, conn) =
                timeout(hyper::client::conn::http1::handshake(TokioIo::new(stream))).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::Http(send))
        }
    }
}

/// Whether a syslog connection is still open: no pending error (a reset) and no end of stream
/// or data from the collector (which never sends).
fn syslog_open(s: &mut Box<dyn Stream>) -> Result<bool, PushError> {
    if s.tcp().take_error()?.is_some() {
        return Err(PushError::Reset);
    }
    let mut buf = [0u8; 256];
    match s.read(&mut buf).now_or_never() {
        None => Ok(true),
        Some(Ok(0)) => Ok(false),
        Some(Ok(_)) => Ok(true),
        Some(Err(e)) => Err(e.into()),
    }
}

/// One RFC 5424 message for `r`, octet-counted (RFC 6587 §3.4.1).
pub(crate) fn syslog_frame(r: &TrailRecord, hostname: &str, pid: u32) -> String {
    let mut parts = r.line.splitn(4, ' ');
    let _ = parts.next();
    let severity = match parts.next() {
        Some("WARN") => 4,
        _ => 6,
    };
    let msgid: String = parts
        .next()
        .unwrap_or("-")
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let msg = format!(
        "<{}>1 {} {hostname} efgs-server {pid} {msgid} [{SD_ID} seq=\"{}\" hash=\"{}\"] {}",
        FACILITY * 8 + severity,
        timestamp(r.at),
        r.seq,
        hex::encode(r.hash),
        r.line
    );
    format!("{} {msg}", msg.len())
}

/// The host name for syslog's HOSTNAME field (`-` when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(255)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

async fn send(
    conn: &mut Conn,
    sink: &SinkSettings,
    records: &[TrailRecord],
    host: &str,
    pid: u32,
) -> Result<(), PushError> {
    match conn {
        Conn::Syslog(s) => {
            let mut out = String::with_capacity(records.len() * 256);
            for r in records {
                out.push_str(&syslog_frame(r, host, pid));
            }
            timeout(s.write_all(out.as_bytes())).await?;
            timeout(s.flush()).await?;
            tokio::time::sleep(SETTLE).await;
            // Closed cleanly after reading: delivered (the next batch reconnects).
            syslog_open(s).map(|_| ())
        }
        Conn::Http(send) => {
            let SinkKind::Http { path } = &sink.kind else {
                return Err(PushError::Timeout);
            };
            let mut body = String::with_capacity(records.len() * 400);
            for r in records {
                body.push_str(&r.to_json());
                body.push('\n');
            }
            let authority = if sink.host.contains(':') {
                format!("[{}]:{}", sink.host, sink.port)
            } else {
                format!("{}:{}", sink.host, sink.port)
            };
            let mut req = http::Request::post(path.as_str())
                .header(http::header::HOST, authority)
                .header(http::header::CONTENT_TYPE, "application/x-ndjson");
            if let Some(token) = &sink.token {
                // Checked at start (settings::ops::check_token); marked sensitive so that it
                // is never printed.
                let mut value = http::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| PushError::Timeout)?;
                value.set_sensitive(true);
                req = req.header(http::header::AUTHORIZATION, value);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|_| PushError::Timeout)?;
            timeout(send.ready()).await?;
            let res = timeout(send.send_request(req)).await?;
            if res.status().is_success() {
                Ok(())
            } else {
                Err(PushError::Status(res.status()))
            }
        }
    }
}

/// A pusher for one collector.
pub(crate) struct Pusher {
    /// The collector.
    pub(crate) sink: SinkSettings,
    /// The trail's store.
    pub(crate) store: Arc<DynStore>,
    /// Where delivery is counted.
    pub(crate) metrics: Arc<Metrics>,
    /// Wait between attempts.
    pub(crate) retry: Duration,
    /// Notified when this instance appended events.
    pub(crate) appended: Arc<Notify>,
    /// This instance's lease owner name.
    pub(crate) owner: String,
}

impl Pusher {
    /// Pushes until `stop` is cancelled.
    pub(crate) async fn run(self, stop: CancellationToken) {
        let name = self.sink.name;
        let (host, pid) = (hostname(), std::process::id());
        let mut conn: Option<Conn> = None;
        let mut failing = false;
        loop {
            let wait = {
                let now = OffsetDateTime::now_utc();
                match self.step(&mut conn, now, &host, pid).await {
                    Ok(Step::Sent) => {
                        if failing {
                            tracing::info!(sink = name, "audit push delivering again");
                            failing = false;
                        }
                        Duration::ZERO
                    }
                    Ok(Step::Idle) => self.retry,
                    Err(e) => {
                        self.metrics.push_failed(name);
                        conn = None;
                        if !failing {
                            tracing::warn!(sink = name, error = %e, "audit push failed; retrying (events wait in the store)");
                            failing = true;
                        }
                        self.retry
                    }
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.appended.notified(), if !failing => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn step(
        &self,
        conn: &mut Option<Conn>,
        now: OffsetDateTime,
        host: &str,
        pid: u32,
    ) -> Result<Step, PushError> {
        let name = self.sink.name;
        let store_err = |e: efgs_core::store::StoreError| {
            PushError::Io(std::io::Error::other(format!("store: {e}")))
        };
        let Some(cursor) = self
            .store
            .claim_audit_push(name, &self.owner, now, now + LEASE)
            .await
            .map_err(store_err)?
        else {
            // Another instance pushes this sink.
            self.metrics.push_active(name, false);
            *conn = None;
            return Ok(Step::Idle);
        };
        self.metrics.push_active(name, true);
        self.metrics.push_cursor(name, cursor);
        let records = self
            .store
            .audit_records_after(cursor, BATCH)
            .await
            .map_err(store_err)?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(Step::Idle);
        };
        if let Some(Conn::Syslog(s)) = conn
            && !syslog_open(s).unwrap_or(false)
        {
            *conn = None;
        }
        if conn.is_none() {
            *conn = Some(connect(&self.sink).await?);
        }
        let Some(c) = conn.as_mut() else {
            return Ok(Step::Idle);
        };
        send(c, &self.sink, &records, host, pid).await?;
        let acked = self
            .store
            .ack_audit_push(name, &self.owner, last, OffsetDateTime::now_utc() + LEASE)
            .await
            .map_err(store_err)?;
        if acked {
            let unix = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
            self.metrics.push_acked(name, last, unix);
            Ok(Step::Sent)
        } else {
            tracing::warn!(sink = name, "audit push lease lost to another instance");
            *conn = None;
            Ok(Step::Idle)
        }
    }
}

enum Step {
    Sent,
    Idle,
}

#[cfg(test)]
mod tests {
    use super::*;
    use efgs_core::trail::{Event, GENESIS, Level};
    use time::macros::datetime;

    #[test]
    fn syslog_frames_are_rfc5424_octet_counted() {
        let e = Event::new(
            datetime!(2026-12-06 05:30:00 UTC),
            Level::Warn,
            "auth.failure",
        )
        .field("reason", "not-authorized");
        let r = TrailRecord::chain(0, GENESIS, &e);
        let f = syslog_frame(&r, "gw1", 42);
        let (len, msg) = f.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert_eq!(
            msg,
            format!(
                "<108>1 2026-12-06T05:30:00.000000Z gw1 efgs-server 42 auth.failure \
                 [efgs@32473 seq=\"1\" hash=\"{}\"] {}",
                hex::encode(r.hash),
                r.line
            )
        );
    }
}
