//! The metrics, in Prometheus text exposition format (version 0.0.4), written by hand: a few
//! counters and gauges behind short critical sections, and gauges read at scrape time (store,
//! pool, process). docs/operations.md lists every metric with the alert worth setting.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use efgs_store_postgres::PoolStatus;

/// Upper bounds of the batch cut latency buckets, in seconds.
const CUT_BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Every metric the process counts.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    keys_uploaded: Mutex<BTreeMap<String, u64>>,
    keys_downloaded: Mutex<BTreeMap<String, u64>>,
    signature_failures: Mutex<BTreeMap<&'static str, u64>>,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    batch_cut: Mutex<Histogram>,
    callbacks: Mutex<BTreeMap<(&'static str, String), u64>>,
    push: Mutex<BTreeMap<&'static str, PushState>>,
    /// Events appended by this process.
    pub(crate) trail_events: AtomicU64,
    /// Failed appends.
    pub(crate) trail_failures: AtomicU64,
    /// Highest sequence number this process appended or saw.
    pub(crate) trail_last_seq: AtomicU64,
    /// Unix time of the last successful retention run.
    pub(crate) retention_last_success: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; CUT_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default, Clone, Copy)]
struct PushState {
    acked: u64,
    last_success: u64,
    failures: u64,
    active: bool,
}

/// What is read at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Scrape {
    /// Keys and uploads waiting for a batch (`None`: the store did not answer).
    pub(crate) pending: Option<(u64, u64)>,
    /// The trail's last sequence number in the store.
    pub(crate) trail_head: Option<u64>,
    /// The PostgreSQL pool.
    pub(crate) pool: Option<PoolStatus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn add<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K, n: u64) {
    *lock(m).entry(k).or_default() += n;
}

impl Metrics {
    /// A request to `route` answered with `status`.
    pub(crate) fn request(&self, route: &'static str, status: u16) {
        add(&self.requests, (route, status), 1);
    }

    /// Keys stored from `country`.
    pub(crate) fn keys_uploaded(&self, country: &str, n: u64) {
        let mut m = lock(&self.keys_uploaded);
        match m.get_mut(country) {
            Some(v) => *v += n,
            None => {
                m.insert(country.to_owned(), n);
            }
        }
    }

    /// Keys served to `country`.
    pub(crate) fn keys_downloaded(&self, country: &str, n: u64) {
        let mut m = lock(&self.keys_downloaded);
        match m.get_mut(country) {
            Some(v) => *v += n,
            None => {
                m.insert(country.to_owned(), n);
            }
        }
    }

    /// An upload refused for its signature (`reason`: the error code).
    pub(crate) fn signature_failure(&self, reason: &'static str) {
        add(&self.signature_failures, reason, 1);
    }

    /// A refused authentication (`reason`: the error code).
    pub(crate) fn auth_failure(&self, reason: &'static str) {
        add(&self.auth_failures, reason, 1);
    }

    /// A batching step that took `seconds`.
    pub(crate) fn batch_cut(&self, seconds: f64) {
        let mut h = lock(&self.batch_cut);
        for (i, le) in CUT_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// A callback event: `kind` is `delivery` (`outcome`: `delivered`, `failed`,
    /// `unrecorded`), `retry` or `suspension` (`outcome`: the failure's code).
    pub(crate) fn callback(&self, kind: &'static str, outcome: &str) {
        add(&self.callbacks, (kind, outcome.to_owned()), 1);
    }

    /// Sink `sink` is pushed by this process (or not: another instance holds its lease).
    pub(crate) fn push_active(&self, sink: &'static str, active: bool) {
        lock(&self.push).entry(sink).or_default().active = active;
    }

    /// Sink `sink`'s collector acknowledged everything up to `seq` at Unix time `at`.
    pub(crate) fn push_acked(&self, sink: &'static str, seq: u64, at: u64) {
        let mut m = lock(&self.push);
        let s = m.entry(sink).or_default();
        s.acked = s.acked.max(seq);
        s.last_success = at;
        s.active = true;
        self.trail_last_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// Sink `sink`'s cursor as read from the store.
    pub(crate) fn push_cursor(&self, sink: &'static str, seq: u64) {
        let mut m = lock(&self.push);
        let s = m.entry(sink).or_default();
        s.acked = s.acked.max(seq);
    }

    /// A failed delivery attempt to `sink`.
    pub(crate) fn push_failed(&self, sink: &'static str) {
        lock(&self.push).entry(sink).or_default().failures += 1;
    }

    /// The exposition text.
    pub(crate) fn render(&self, scrape: &Scrape) -> String {
        let mut out = String::with_capacity(4096);
        let (version, revision) = super::build_info();
        family(
            &mut out,
            "efgs_build_info",
            "gauge",
            "Version and git revision running (value 1).",
        );
        let _ = writeln!(
            out,
            "efgs_build_info{{version=\"{}\",revision=\"{}\"}} 1",
            esc(version),
            esc(revision)
        );

        family(
            &mut out,
            "efgs_http_requests_total",
            "counter",
            "Requests answered, by route and status.",
        );
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "efgs_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        family(
            &mut out,
            "efgs_upload_keys_total",
            "counter",
            "Keys stored, by uploading country.",
        );
        for (c, n) in lock(&self.keys_uploaded).iter() {
            let _ = writeln!(out, "efgs_upload_keys_total{{country=\"{}\"}} {n}", esc(c));
        }
        family(
            &mut out,
            "efgs_download_keys_total",
            "counter",
            "Keys served, by downloading country.",
        );
        for (c, n) in lock(&self.keys_downloaded).iter() {
            let _ = writeln!(
                out,
                "efgs_download_keys_total{{country=\"{}\"}} {n}",
                esc(c)
            );
        }
        family(
            &mut out,
            "efgs_signature_failures_total",
            "counter",
            "Uploads refused for their batch signature, by reason.",
        );
        for (r, n) in lock(&self.signature_failures).iter() {
            let _ = writeln!(out, "efgs_signature_failures_total{{reason=\"{r}\"}} {n}");
        }
        family(
            &mut out,
            "efgs_auth_failures_total",
            "counter",
            "Requests refused at authentication, by reason.",
        );
        for (r, n) in lock(&self.auth_failures).iter() {
            let _ = writeln!(out, "efgs_auth_failures_total{{reason=\"{r}\"}} {n}");
        }

        family(
            &mut out,
            "efgs_batch_cut_seconds",
            "histogram",
            "Duration of the batching steps that cut a batch.",
        );
        {
            let h = lock(&self.batch_cut);
            for (i, le) in CUT_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "efgs_batch_cut_seconds_bucket{{le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "efgs_batch_cut_seconds_bucket{{le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "efgs_batch_cut_seconds_sum {}", h.sum);
            let _ = writeln!(out, "efgs_batch_cut_seconds_count {}", h.count);
        }
        if let Some((uploads, keys)) = scrape.pending {
            family(
                &mut out,
                "efgs_pending_keys",
                "gauge",
                "Keys uploaded and not yet in a batch.",
            );
            let _ = writeln!(out, "efgs_pending_keys {keys}");
            family(
                &mut out,
                "efgs_pending_uploads",
                "gauge",
                "Uploads not yet in a batch.",
            );
            let _ = writeln!(out, "efgs_pending_uploads {uploads}");
        }

        family(
            &mut out,
            "efgs_callback_events_total",
            "counter",
            "Callback deliveries, retries and suspensions, by outcome.",
        );
        for ((kind, outcome), n) in lock(&self.callbacks).iter() {
            let _ = writeln!(
                out,
                "efgs_callback_events_total{{kind=\"{kind}\",outcome=\"{}\"}} {n}",
                esc(outcome)
            );
        }

        if let Some(p) = scrape.pool {
            family(
                &mut out,
                "efgs_db_pool_connections",
                "gauge",
                "Database pool connections by state (in_use, idle) and the pool's maximum.",
            );
            let _ = writeln!(
                out,
                "efgs_db_pool_connections{{state=\"in_use\"}} {}",
                p.size.saturating_sub(p.available)
            );
            let _ = writeln!(
                out,
                "efgs_db_pool_connections{{state=\"idle\"}} {}",
                p.available
            );
            let _ = writeln!(
                out,
                "efgs_db_pool_connections{{state=\"max\"}} {}",
                p.max_size
            );
            family(
                &mut out,
                "efgs_db_pool_waiting",
                "gauge",
                "Callers waiting for a database connection.",
            );
            let _ = writeln!(out, "efgs_db_pool_waiting {}", p.waiting);
        }

        family(
            &mut out,
            "efgs_audit_events_total",
            "counter",
            "Audit-trail events this process stored.",
        );
        let _ = writeln!(
            out,
            "efgs_audit_events_total {}",
            self.trail_events.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "efgs_audit_append_failures_total",
            "counter",
            "Failed audit-trail appends (their actions were answered 503).",
        );
        let _ = writeln!(
            out,
            "efgs_audit_append_failures_total {}",
            self.trail_failures.load(Ordering::Relaxed)
        );
        let head = scrape
            .trail_head
            .unwrap_or_else(|| self.trail_last_seq.load(Ordering::Relaxed));
        family(
            &mut out,
            "efgs_audit_last_seq",
            "gauge",
            "Sequence number of the last audit-trail event.",
        );
        let _ = writeln!(out, "efgs_audit_last_seq {head}");
        let push = lock(&self.push).clone();
        family(
            &mut out,
            "efgs_audit_push_backlog",
            "gauge",
            "Audit events not yet acknowledged by the collector, by sink (reported by the instance holding the sink's lease).",
        );
        for (sink, s) in push.iter().filter(|(_, s)| s.active) {
            let _ = writeln!(
                out,
                "efgs_audit_push_backlog{{sink=\"{sink}\"}} {}",
                head.saturating_sub(s.acked)
            );
        }
        family(
            &mut out,
            "efgs_audit_push_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last delivery the collector acknowledged, by sink.",
        );
        for (sink, s) in &push {
            let _ = writeln!(
                out,
                "efgs_audit_push_last_success_timestamp_seconds{{sink=\"{sink}\"}} {}",
                s.last_success
            );
        }
        family(
            &mut out,
            "efgs_audit_push_failures_total",
            "counter",
            "Failed delivery attempts, by sink.",
        );
        for (sink, s) in &push {
            let _ = writeln!(
                out,
                "efgs_audit_push_failures_total{{sink=\"{sink}\"}} {}",
                s.failures
            );
        }
        family(
            &mut out,
            "efgs_retention_last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last successful retention run of this process (0: none yet).",
        );
        let _ = writeln!(
            out,
            "efgs_retention_last_success_timestamp_seconds {}",
            self.retention_last_success.load(Ordering::Relaxed)
        );

        process(&mut out);
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value with `\`, `"` and line breaks escaped.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Linux clock ticks per second (`CLK_TCK`, 100 on every mainstream Linux platform).
const CLK_TCK: f64 = 100.0;

/// The standard process metrics, read from `/proc/self` (absent elsewhere).
fn process(out: &mut String) {
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces) closed by `)`.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name.
        if let (Some(u), Some(s)) = (ticks(11), ticks(12)) {
            family(
                out,
                "process_cpu_seconds_total",
                "counter",
                "User and system CPU time spent, in seconds.",
            );
            let _ = writeln!(
                out,
                "process_cpu_seconds_total {}",
                (u + s) as f64 / CLK_TCK
            );
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kb) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    {
        family(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        let _ = writeln!(out, "process_resident_memory_bytes {}", kb * 1024);
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        family(out, "process_open_fds", "gauge", "Open file descriptors.");
        let _ = writeln!(out, "process_open_fds {}", dir.count());
    }
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits")
        && let Some(max) = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    {
        family(
            out,
            "process_max_fds",
            "gauge",
            "Maximum open file descriptors.",
        );
        let _ = writeln!(out, "process_max_fds {max}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_counts_and_escapes() {
        let m = Metrics::default();
        m.request("upload", 201);
        m.request("upload", 201);
        m.keys_uploaded("DE", 10);
        m.keys_uploaded("DE", 5);
        m.signature_failure("signature-invalid");
        m.batch_cut(0.2);
        m.callback("delivery", "a\"b");
        m.push_acked("syslog", 3, 1_700_000_000);
        let text = m.render(&Scrape {
            pending: Some((2, 7)),
            trail_head: Some(10),
            pool: None,
        });
        assert!(text.contains("efgs_http_requests_total{route=\"upload\",status=\"201\"} 2\n"));
        assert!(text.contains("efgs_upload_keys_total{country=\"DE\"} 15\n"));
        assert!(text.contains("efgs_signature_failures_total{reason=\"signature-invalid\"} 1\n"));
        assert!(text.contains("efgs_batch_cut_seconds_bucket{le=\"0.1\"} 0\n"));
        assert!(text.contains("efgs_batch_cut_seconds_bucket{le=\"0.25\"} 1\n"));
        assert!(text.contains("efgs_pending_keys 7\n"));
        assert!(text.contains("outcome=\"a\\\"b\""));
        assert!(text.contains("efgs_audit_push_backlog{sink=\"syslog\"} 7\n"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("efgs_build_info{version=\""));
        // Every sample line belongs to a declared family.
        let mut declared = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.push(rest.split(' ').next().unwrap().to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    declared.iter().any(|d| name.starts_with(d.as_str())),
                    "{name} undeclared"
                );
            }
        }
    }
}
