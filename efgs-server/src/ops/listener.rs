//! The private metrics and health listener (`metrics.listen`): `GET /metrics` (Prometheus
//! text), `GET /livez` (the process answers) and `GET /readyz` (the database answers and the
//! trust list can be read, within two seconds; 503 otherwise, and 200 again once they do).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use efgs_core::store::DynStore;
use efgs_store_postgres::PgStore;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::metrics::Scrape;

/// How long `/readyz` and the scrape-time store reads may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the listener reads.
#[derive(Clone, Debug)]
pub(crate) struct Probe {
    /// The store.
    pub(crate) store: Arc<DynStore>,
    /// The PostgreSQL store, for its pool's gauges.
    pub(crate) pg: Option<PgStore>,
    /// The counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Whether the trail is written (its head is read at scrape time).
    pub(crate) trail: bool,
}

impl Probe {
    /// Whether the database answers and the trust list can be read.
    pub(crate) async fn ready(&self) -> Result<(), &'static str> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.store.list_trust_entries()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_transient() => Err("storage unavailable"),
            Ok(Err(_)) => Err("trust list unreadable"),
            Err(_) => Err("storage did not answer in time"),
        }
    }

    async fn scrape(&self) -> String {
        let pending = tokio::time::timeout(PROBE_TIMEOUT, self.store.pending_summary())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|p| (p.uploads, p.keys));
        let trail_head = if self.trail {
            tokio::time::timeout(PROBE_TIMEOUT, self.store.append_audit_events(Vec::new()))
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        self.metrics.render(&Scrape {
            pending,
            trail_head,
            pool: self.pg.as_ref().map(PgStore::pool_status),
        })
    }
}

/// Serves the listener until `stop` is cancelled.
pub(crate) async fn serve(listener: TcpListener, probe: Probe, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let probe = probe.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let probe = probe.clone();
                async move { Ok::<_, Infallible>(answer(&probe, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

async fn answer(probe: &Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "method not allowed\n",
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            probe.scrape().await,
        ),
        "/livez" => text(StatusCode::OK, PLAIN, "ok\n"),
        "/readyz" => match probe.ready().await {
            Ok(()) => text(StatusCode::OK, PLAIN, "ready\n"),
            Err(why) => {
                tracing::debug!(reason = why, "readyz: not ready");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    PLAIN,
                    format!("not ready: {why}\n"),
                )
            }
        },
        _ => text(StatusCode::NOT_FOUND, PLAIN, "not found\n"),
    }
}
