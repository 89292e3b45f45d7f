//! Downloading on callback: a simulated national backend's callback endpoint
//! ([`CallbackEndpoint`]) and the delivery log it keeps ([`Delivery`], JSON Lines), which
//! `efgs-sim readiness --callback-log` reads back.
//!
//! The endpoint is an HTTPS server on a loopback address with the country's own certificate
//! (registered on the trust list as its CALLBACK certificate; decisions item 9), requiring a
//! client certificate (the gateway's `callback.client_cert`). Every `GET
//! <url>?batchTag=<tag>&date=<yyyy-MM-dd>` is answered 200 and handed to the country, which
//! downloads exactly the announced batch (`sim::country::Country::fetch_announced`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use efgs_core::cert::Thumbprint;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::callbacks::{client_thumbprint, read_request_head, receiver_cert, server_config};
use crate::pki::GeneratedCert;

/// One notification as a backend's access log would keep it: a line of the delivery log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The announced `batchTag`.
    pub batch_tag: String,
    /// The announced `date` (the batch's UTC day, `yyyy-MM-dd`).
    pub date: String,
    /// When it arrived (RFC 3339, UTC).
    pub received_at: String,
}

/// Writes `deliveries` to `path` as JSON Lines (one [`Delivery`] per line).
pub fn write_log(path: &Path, deliveries: &[Delivery]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for d in deliveries {
        serde_json::to_writer(&mut out, d).map_err(std::io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads a delivery log (JSON Lines; blank lines are skipped).
pub fn read_log(path: &Path) -> Result<Vec<Delivery>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// A callback endpoint on a loopback address; dropping it stops the server.
#[derive(Debug)]
pub struct CallbackEndpoint {
    addr: SocketAddr,
    cert: GeneratedCert,
    task: JoinHandle<()>,
}

impl Drop for CallbackEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the endpoint hands to its country: the announced batch and, for the log, the client
/// certificate the gateway presented.
#[derive(Clone, Debug)]
pub struct Notification {
    /// The delivery.
    pub delivery: Delivery,
    /// SHA-256 of the gateway's client certificate.
    pub client: Option<Thumbprint>,
}

impl CallbackEndpoint {
    /// Starts an endpoint for `country` on `ip` (any port) with a fresh server certificate
    /// for that address; every notification is sent to `tx`.
    pub async fn start(
        ip: std::net::IpAddr,
        country: &str,
        now: OffsetDateTime,
        tx: mpsc::UnboundedSender<Notification>,
    ) -> std::io::Result<CallbackEndpoint> {
        let host = ip.to_string();
        let cert = receiver_cert(&[host.as_str()], country, now).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(
            server_config(&cert).map_err(|e| std::io::Error::other(e.to_string()))?,
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, &tx).await;
                    }
                });
            }
        });
        Ok(CallbackEndpoint { addr, cert, task })
    }

    /// The endpoint's certificate (to register as the country's CALLBACK certificate).
    pub fn cert(&self) -> &GeneratedCert {
        &self.cert
    }

    /// `https://<ip>:<port>/callback`.
    pub fn url(&self) -> String {
        match self.addr {
            SocketAddr::V4(a) => format!("https://{}:{}/callback", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("https://[{}]:{}/callback", a.ip(), a.port()),
        }
    }
}

fn query_param(target: &str, name: &str) -> Option<String> {
    let query = target.split_once('?').map(|(_, q)| q)?;
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            v.replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "=")
        })
}

/// Serves the one request of a connection: 200 for a GET with `batchTag` and `date` (the
/// notification is passed on once the answer is written), 400 otherwise.
async fn serve(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    tx: &mpsc::UnboundedSender<Notification>,
) {
    let client = client_thumbprint(&tls);
    let Some((head, _)) = read_request_head(&mut tls, 16 * 1024).await else {
        return;
    };
    let first = head.split("\r\n").next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let announced = (method == "GET")
        .then(|| {
            Some((
                query_param(target, "batchTag")?,
                query_param(target, "date")?,
            ))
        })
        .flatten();
    let code = if announced.is_some() { 200 } else { 400 };
    let response = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let written = tls.write_all(response.as_bytes()).await.is_ok() && tls.flush().await.is_ok();
    let _ = tls.shutdown().await;
    if written && let Some((batch_tag, date)) = announced {
        let now = OffsetDateTime::now_utc();
        let _ = tx.send(Notification {
            delivery: Delivery {
                batch_tag,
                date,
                received_at: now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            },
            client,
        });
    }
}
