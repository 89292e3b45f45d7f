//! Starting operations with the server: the trail writer, the `config.loaded` event (and the
//! start-up trust-list import), the pushers and the metrics listener.

use std::sync::Arc;
use std::time::Duration;

use efgs_core::store::DynStore;
use efgs_core::trail::{Event, Level, names};
use efgs_store_postgres::PgStore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::listener::{Probe, serve};
use super::push::Pusher;
use super::{Metrics, Ops, Trail, build_info};
use crate::server::{Clock, ImportReport, ServeError};
use crate::settings::Settings;

/// Operations running beside the API.
pub(crate) struct Running {
    /// What the handlers and jobs use.
    pub(crate) ops: Ops,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    writer: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops the pushers and the listener, then lets the writer store what is queued.
    pub(crate) async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        drop(self.ops);
        if let Some(writer) = self.writer.take() {
            // Ends once every handle (requests still finishing) is gone.
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
        }
    }
}

/// A URL with any `user:password@` replaced by `[redacted]@`.
fn redact_userinfo(v: &str) -> String {
    match (v.find("://"), v.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}[redacted]{}", &v[..s + 3], &v[at..]),
        _ => v.to_owned(),
    }
}

/// The `config.loaded` event: the version, the revision and every setting as
/// `efgs-server serve --check` prints it (secrets redacted).
pub(crate) fn config_event(trail: &Trail, settings: &Settings) -> Event {
    let (version, revision) = build_info();
    let mut e = trail
        .event(Level::Info, names::CONFIG_LOADED)
        .field("version", version)
        .field("revision", revision);
    for line in settings.effective_settings().lines() {
        if let Some((k, v)) = line.split_once(" = ") {
            e.push(k, redact_userinfo(v));
        }
    }
    e
}

/// The `trust.import` event of an import.
pub(crate) fn import_event(
    trail: &Trail,
    source: &std::path::Path,
    report: &ImportReport,
    os_user: &str,
) -> Event {
    trail
        .event(
            if report.refused.is_empty() && report.kept_revoked.is_empty() {
                Level::Info
            } else {
                Level::Warn
            },
            names::TRUST_IMPORT,
        )
        .field("source", source.display())
        .field("os_user", os_user)
        .field("inserted", report.inserted)
        .field("replaced", report.replaced)
        .field("unchanged", report.unchanged)
        .field("kept_revoked", report.kept_revoked.len())
        .field("refused", report.refused.len())
}

/// Starts the trail writer, records the start, and starts the pushers and the listener.
pub(crate) async fn start(
    settings: &Settings,
    store: Arc<DynStore>,
    pg: Option<PgStore>,
    clock: Clock,
    imported: Option<(std::path::PathBuf, ImportReport)>,
) -> Result<Running, ServeError> {
    let metrics = Arc::new(Metrics::default());
    let ops_settings = &settings.ops;
    let (trail, writer) = if ops_settings.trail {
        let (t, w) = Trail::start(store.clone(), metrics.clone(), clock);
        (t, Some(w))
    } else {
        (Trail::off(clock), None)
    };
    let mut events = vec![config_event(&trail, settings)];
    if let Some((dir, report)) = &imported {
        events.push(import_event(&trail, dir, report, "server-start"));
    }
    if trail.record(events).await.is_err() {
        tracing::warn!("the start of the server is not in the audit trail");
    }
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    if let Some(addr) = ops_settings.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local = listener.local_addr().map_or(addr, |a| a);
        tracing::info!(listen = %local, "metrics listener serving /metrics, /livez, /readyz");
        let probe = Probe {
            store: store.clone(),
            pg,
            metrics: metrics.clone(),
            trail: trail.is_on(),
        };
        tasks.spawn(serve(listener, probe, stop.clone()));
    }
    if !ops_settings.sinks.is_empty() {
        let mut id = [0u8; 8];
        let _ = getrandom::fill(&mut id);
        let owner = format!("{}-{}", std::process::id(), hex::encode(id));
        for sink in &ops_settings.sinks {
            let pusher = Pusher {
                sink: sink.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                retry: ops_settings.push_retry,
                appended: trail.appended(),
                owner: owner.clone(),
            };
            tasks.spawn(pusher.run(stop.clone()));
        }
    }
    Ok(Running {
        ops: Ops { trail, metrics },
        stop,
        tasks,
        writer,
    })
}

#[cfg(test)]
mod tests {
    use super::redact_userinfo;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact_userinfo("https://u:secret@collector/x"),
            "https://[redacted]@collector/x"
        );
        assert_eq!(
            redact_userinfo("tcp://collector:6514"),
            "tcp://collector:6514"
        );
    }
}
