//! Log-management collectors on loopback for tests and benches: a syslog receiver (RFC 5424
//! over TCP with octet-counted framing, RFC 6587) and an HTTP receiver of JSON lines. Each
//! keeps what it received in order and can go down (every connection dropped, the port closed)
//! and come back on the same port. The HTTP receiver keeps the `Authorization` header of every
//! request and can require a bearer token (401 and nothing kept without it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What a collector speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectorKind {
    /// Syslog over TCP, octet-counted.
    Syslog,
    /// HTTP POST of JSON lines (answers 200).
    Http,
}

/// A collector on 127.0.0.1.
#[derive(Debug)]
pub struct Collector {
    kind: CollectorKind,
    addr: SocketAddr,
    received: Arc<Mutex<Vec<String>>>,
    /// The `Authorization` header of each HTTP request, in order.
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    /// The `Authorization` value an HTTP request must carry to be accepted.
    required: Option<Arc<str>>,
    task: Option<(JoinHandle<()>, watch::Sender<bool>)>,
}

impl Collector {
    /// Starts a collector on a free loopback port.
    pub async fn start(kind: CollectorKind) -> std::io::Result<Self> {
        Self::start_with(kind, None).await
    }

    /// Starts an HTTP collector that answers 401 (and keeps nothing) to a request without
    /// `Authorization: Bearer <token>`.
    pub async fn start_requiring_bearer(token: &str) -> std::io::Result<Self> {
        Self::start_with(CollectorKind::Http, Some(format!("Bearer {token}").into())).await
    }

    async fn start_with(kind: CollectorKind, required: Option<Arc<str>>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut c = Collector {
            kind,
            addr,
            received: Arc::default(),
            authorizations: Arc::default(),
            required,
            task: None,
        };
        c.serve(listener);
        Ok(c)
    }

    fn serve(&mut self, listener: TcpListener) {
        let (kind, received) = (self.kind, self.received.clone());
        let (authorizations, required) = (self.authorizations.clone(), self.required.clone());
        let (stop_tx, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropped with the task: every connection closes when the collector goes down.
            let mut conns = JoinSet::new();
            loop {
                let stream = tokio::select! {
                    _ = stop.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => break,
                    },
                };
                let received = received.clone();
                let stop = stop.clone();
                let http = HttpCheck {
                    authorizations: authorizations.clone(),
                    required: required.clone(),
                };
                conns.spawn(async move {
                    let _ = match kind {
                        CollectorKind::Syslog => read_syslog(stream, &received, stop).await,
                        CollectorKind::Http => read_http(stream, &received, &http, stop).await,
                    };
                });
            }
            drop(listener);
            while conns.join_next().await.is_some() {}
        });
        self.task = Some((task, stop_tx));
    }

    /// The setting value naming this collector: `tcp://127.0.0.1:PORT` for `audit.syslog`,
    /// `http://127.0.0.1:PORT/events` for `audit.http_url`.
    pub fn url(&self) -> String {
        match self.kind {
            CollectorKind::Syslog => format!("tcp://{}", self.addr),
            CollectorKind::Http => format!("http://{}/events", self.addr),
        }
    }

    /// Goes down as a collector does at shutdown: the port is closed; a syslog connection
    /// first reads what has arrived (until nothing more comes for 50 ms), an HTTP connection
    /// closes at once (a request not yet answered is not kept).
    pub async fn stop(&mut self) {
        if let Some((task, stop)) = self.task.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Goes down at once, as a crash: the port is closed and every connection dropped with
    /// whatever it had not read.
    pub async fn crash(&mut self) {
        if let Some((task, _)) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        let listener = TcpListener::bind(self.addr).await?;
        self.serve(listener);
        Ok(())
    }

    /// The messages received, in order: syslog messages without their length prefix, or JSON
    /// lines.
    pub fn received(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `Authorization` header of every HTTP request received, in order (`None`: the
    /// request had none), accepted or not.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The trail sequence numbers of the messages received, in order (`seq="N"` of a syslog
    /// message's structured data, `"seq"` of a JSON line).
    pub fn seqs(&self) -> Vec<u64> {
        self.received().iter().filter_map(|m| seq_of(m)).collect()
    }

    /// The audit lines received (the `line` of a JSON line; a syslog message's MSG).
    pub fn lines(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|m| match self.kind {
                CollectorKind::Http => serde_json::from_str::<serde_json::Value>(m)
                    .ok()
                    .and_then(|v| v["line"].as_str().map(str::to_owned)),
                CollectorKind::Syslog => m.split_once("] ").map(|(_, line)| line.to_owned()),
            })
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some((task, _)) = self.task.take() {
            task.abort();
        }
    }
}

/// The trail sequence number a received message carries.
pub fn seq_of(message: &str) -> Option<u64> {
    if message.starts_with('{') {
        return serde_json::from_str::<serde_json::Value>(message)
            .ok()
            .and_then(|v| v["seq"].as_u64());
    }
    let rest = &message[message.find("seq=\"")? + 5..];
    rest[..rest.find('"')?].parse().ok()
}

/// Takes every complete octet-counted frame off the front of `buf`.
fn frames(buf: &mut Vec<u8>, out: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut used = 0;
    while let Some(sp) = buf[used..].iter().position(|b| *b == b' ') {
        let n: usize = std::str::from_utf8(&buf[used..used + sp])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| std::io::Error::other("bad octet count"))?;
        let start = used + sp + 1;
        if buf.len() < start + n {
            break;
        }
        out.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(String::from_utf8_lossy(&buf[start..start + n]).into_owned());
        used = start + n;
    }
    buf.drain(..used);
    Ok(())
}

async fn read_syslog(
    mut stream: TcpStream,
    out: &Mutex<Vec<String>>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = stream.read(&mut chunk) => read?,
            _ = stop.changed() => {
                // Shutting down: read what has arrived, then close.
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut chunk)).await
                {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    frames(&mut buf, out)?;
                }
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        frames(&mut buf, out)?;
    }
}

/// What the HTTP receiver notes and requires of each request's `Authorization` header.
struct HttpCheck {
    authorizations: Arc<Mutex<Vec<Option<String>>>>,
    required: Option<Arc<str>>,
}

async fn read_http(
    stream: TcpStream,
    out: &Mutex<Vec<String>>,
    check: &HttpCheck,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    tokio::select! {
        r = serve_http(stream, out, check) => r,
        _ = stop.changed() => Ok(()),
    }
}

/// Answers POSTs of JSON lines with 200, keeping the lines once the answer is written (401,
/// keeping nothing, when a required bearer token is missing).
async fn serve_http(
    stream: TcpStream,
    out: &Mutex<Vec<String>>,
    check: &HttpCheck,
) -> std::io::Result<()> {
    let mut r = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut authorization = None;
        let mut first = true;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" && !first {
                break;
            }
            first = false;
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("authorization")
            {
                authorization = Some(value.trim().to_owned());
            }
        }
        let mut body = vec![0; length];
        r.read_exact(&mut body).await?;
        check
            .authorizations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(authorization.clone());
        if let Some(required) = &check.required
            && authorization.as_deref() != Some(&**required)
        {
            r.get_mut()
                .write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                .await?;
            continue;
        }
        r.get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await?;
        // No await between the answer and keeping the lines: a collector going down either
        // answered and kept them, or did neither.
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        for line in String::from_utf8_lossy(&body).lines() {
            if !line.is_empty() {
                out.push(line.to_owned());
            }
        }
    }
}
