//! The report of a run: a table per country, the verdict, a JSON file and an SVG chart of
//! keys exchanged over time and batch sizes (written by hand: no chart library).

use std::fmt::{self, Write as _};
use std::path::Path;

use serde::Serialize;

use super::ledger::{Ledger, Verdict};

/// Latency percentiles of one operation, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Requests measured.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

impl Latency {
    /// Percentiles of `micros` (sorted in place).
    pub fn of(micros: &mut [u32]) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_unstable();
        let at = |p: f64| {
            let i = ((micros.len() - 1) as f64 * p).round() as usize;
            f64::from(micros[i.min(micros.len() - 1)]) / 1000.0
        };
        Latency {
            count: micros.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
        }
    }
}

/// One country's line.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct CountryLine {
    /// The country.
    pub country: String,
    /// Upload requests (retries and replays included).
    pub upload_requests: u64,
    /// Uploads acknowledged.
    pub uploads_acked: u64,
    /// Keys put into uploads.
    pub keys_sent: u64,
    /// Own keys acknowledged.
    pub keys_acked: u64,
    /// Keys of others received (distinct).
    pub keys_received: u64,
    /// Keys others had acknowledged.
    pub keys_expected: u64,
    /// Acknowledged keys of others never received.
    pub lost: u64,
    /// Keys received twice.
    pub duplicates: u64,
    /// Keys answered 207 (already stored) on purpose.
    pub refused_as_duplicate: u64,
    /// Download batches read.
    pub batches_read: u64,
    /// Foreign uploads re-verified through the audit endpoint.
    pub audits_passed: u64,
    /// Callback notifications received (downloading on callback).
    pub notifications: u64,
    /// Batches read because a notification announced them.
    pub read_on_callback: u64,
    /// Problems seen (failed audit checks, unexpected answers).
    pub problems: Vec<String>,
    /// Transport errors (retried).
    pub errors: u64,
    /// Upload latency (HTTP mode).
    pub upload_latency: Option<Latency>,
    /// Download latency (HTTP mode).
    pub download_latency: Option<Latency>,
}

/// One sample of the timeline.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Sample {
    /// Time since the start: virtual hours in-process, seconds over HTTP.
    pub t: f64,
    /// Keys acknowledged so far (all countries).
    pub acked: u64,
    /// Keys received so far (all countries, distinct per receiver).
    pub received: u64,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct SimReport {
    /// `in-process` or `http`.
    pub mode: String,
    /// What ran (the options, in words).
    pub setup: String,
    /// The gateway(s) (HTTP mode).
    pub gateways: Vec<String>,
    /// Per country.
    pub countries: Vec<CountryLine>,
    /// The verdict, from the ledgers.
    pub verdict: Verdict,
    /// Unit of [`Sample::t`].
    pub time_unit: String,
    /// Keys exchanged over time.
    pub timeline: Vec<Sample>,
    /// Upload batch sizes.
    pub upload_sizes: Vec<u32>,
    /// Download batch sizes (keys as served to the reader).
    pub download_sizes: Vec<u32>,
    /// Wall time of the run.
    pub wall_secs: f64,
    /// HTTP mode: seconds of the upload phase and keys acknowledged in it.
    pub upload_phase: Option<(f64, u64)>,
    /// Peak resident memory of the process (`VmHWM`), when the platform tells.
    pub peak_rss_mib: Option<f64>,
    /// Store faults injected.
    pub store_faults: u64,
    /// Events (restarts, clock jumps).
    pub events: Vec<String>,
}

impl SimReport {
    /// Builds the lines and the verdict from the ledgers.
    pub fn from_ledgers(ledgers: &[Ledger]) -> SimReport {
        let verdict = Verdict::from_ledgers(ledgers);
        let countries = ledgers
            .iter()
            .zip(&verdict.countries)
            .map(|(l, v)| CountryLine {
                country: l.country.clone(),
                upload_requests: l.upload_requests,
                uploads_acked: l.acked_uploads,
                keys_sent: l.sent,
                keys_acked: v.acknowledged,
                keys_received: v.received,
                keys_expected: v.expected,
                lost: v.lost,
                duplicates: v.duplicates,
                refused_as_duplicate: l.refused_as_duplicate,
                batches_read: l.batches_read,
                audits_passed: l.audits_passed,
                notifications: l.notifications,
                read_on_callback: l.read_on_callback,
                problems: l.problems.clone(),
                errors: l.errors,
                upload_latency: None,
                download_latency: None,
            })
            .collect();
        SimReport {
            countries,
            verdict,
            ..SimReport::default()
        }
    }

    /// Whether the run passed: the verdict holds and no audit check or answer went wrong.
    pub fn ok(&self) -> bool {
        self.verdict.holds() && self.countries.iter().all(|c| c.problems.is_empty())
    }

    /// Keys acknowledged in total.
    pub fn acked(&self) -> u64 {
        self.countries.iter().map(|c| c.keys_acked).sum()
    }

    /// Writes `report.txt`, `report.json` and `chart.svg` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.txt"), self.to_string())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("report.json"), json)?;
        std::fs::write(dir.join("chart.svg"), self.svg())?;
        Ok(())
    }

    /// The chart: keys acknowledged and received over time (left), batch sizes (right).
    pub fn svg(&self) -> String {
        let mut s = String::new();
        let (w, h) = (960.0, 400.0);
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
        );
        s.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
        // Left: timeline.
        let (x0, y0, pw, ph) = (60.0, 40.0, 520.0, 300.0);
        let tmax = self
            .timeline
            .iter()
            .map(|p| p.t)
            .fold(0.0, f64::max)
            .max(1e-9);
        let vmax = self
            .timeline
            .iter()
            .map(|p| p.acked.max(p.received))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let _ = write!(
            s,
            r#"<text x="{x0}" y="20">keys exchanged over time ({})</text>"#,
            esc(&self.time_unit)
        );
        axes(&mut s, x0, y0, pw, ph, tmax, vmax);
        for (series, color, label, dy) in [
            (0, "#1f77b4", "acknowledged (all uploads)", 0.0),
            (1, "#d62728", "received (sum over countries)", 16.0),
        ] {
            let pts: Vec<String> = self
                .timeline
                .iter()
                .map(|p| {
                    let v = if series == 0 { p.acked } else { p.received } as f64;
                    format!("{:.1},{:.1}", x0 + p.t / tmax * pw, y0 + ph - v / vmax * ph)
                })
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
            let _ = write!(
                s,
                r#"<text x="{}" y="{}" fill="{color}">{label}</text>"#,
                x0 + 10.0,
                y0 + 14.0 + dy
            );
        }
        // Right: histogram of batch sizes.
        let (x1, y1, qw, qh) = (660.0, 40.0, 260.0, 300.0);
        let _ = write!(s, r#"<text x="{x1}" y="20">batch sizes (keys)</text>"#);
        let bins = 10usize;
        let top = self
            .upload_sizes
            .iter()
            .chain(&self.download_sizes)
            .copied()
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let hist = |v: &[u32]| {
            let mut h = vec![0u64; bins];
            for x in v {
                let i = ((f64::from(*x) / top) * bins as f64) as usize;
                h[i.min(bins - 1)] += 1;
            }
            h
        };
        let hu = hist(&self.upload_sizes);
        let hd = hist(&self.download_sizes);
        let cmax = hu.iter().chain(&hd).copied().max().unwrap_or(1).max(1) as f64;
        axes(&mut s, x1, y1, qw, qh, top, cmax);
        let bw = qw / bins as f64;
        for i in 0..bins {
            for (j, (hv, color)) in [(&hu, "#1f77b4"), (&hd, "#ff7f0e")].iter().enumerate() {
                let v = hv[i] as f64 / cmax * qh;
                let _ = write!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
                    x1 + i as f64 * bw + j as f64 * bw / 2.0,
                    y1 + qh - v,
                    bw / 2.0 - 1.0,
                    v
                );
            }
        }
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" fill="#1f77b4">uploads</text><text x="{}" y="{}" fill="#ff7f0e">downloads</text>"##,
            x1 + 10.0,
            y1 + 14.0,
            x1 + 10.0,
            y1 + 30.0
        );
        let _ = write!(
            s,
            r#"<text x="{x0}" y="{}">{}</text>"#,
            h - 20.0,
            esc(&self.setup)
        );
        s.push_str("</svg>\n");
        s
    }
}

fn axes(s: &mut String, x: f64, y: f64, w: f64, h: f64, xmax: f64, ymax: f64) {
    let _ = write!(
        s,
        r#"<path d="M{x},{y} V{} H{}" stroke="black" fill="none"/>"#,
        y + h,
        x + w
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x + f * w,
            y + h + 16.0,
            short(xmax * f),
            x - 4.0,
            y + h - f * h + 4.0,
            short(ymax * f)
        );
    }
}

fn short(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "efgs-sim {}: {}", self.mode, self.setup)?;
        for g in &self.gateways {
            writeln!(f, "gateway: {g}")?;
        }
        let http = self.countries.iter().any(|c| c.upload_latency.is_some());
        write!(
            f,
            "{:<7} {:>8} {:>8} {:>10} {:>10} {:>11} {:>11} {:>6} {:>5} {:>8} {:>8} {:>6}",
            "country",
            "requests",
            "acked",
            "keys sent",
            "keys acked",
            "received",
            "expected",
            "lost",
            "dup",
            "batches",
            "audited",
            "errors"
        )?;
        if http {
            write!(f, "  upload p50/p95/p99 ms   download p50/p95/p99 ms")?;
        }
        writeln!(f)?;
        for c in &self.countries {
            write!(
                f,
                "{:<7} {:>8} {:>8} {:>10} {:>10} {:>11} {:>11} {:>6} {:>5} {:>8} {:>8} {:>6}",
                c.country,
                c.upload_requests,
                c.uploads_acked,
                c.keys_sent,
                c.keys_acked,
                c.keys_received,
                c.keys_expected,
                c.lost,
                c.duplicates,
                c.batches_read,
                c.audits_passed,
                c.errors
            )?;
            if let (Some(u), Some(d)) = (&c.upload_latency, &c.download_latency) {
                write!(
                    f,
                    "  {:>6.1}/{:>6.1}/{:>6.1}    {:>6.1}/{:>6.1}/{:>6.1}",
                    u.p50_ms, u.p95_ms, u.p99_ms, d.p50_ms, d.p95_ms, d.p99_ms
                )?;
            }
            writeln!(f)?;
        }
        if self.countries.iter().any(|c| c.notifications > 0) {
            for c in &self.countries {
                writeln!(
                    f,
                    "callbacks ({}): {} notifications, {} batches read on callback",
                    c.country, c.notifications, c.read_on_callback
                )?;
            }
        }
        for e in &self.events {
            writeln!(f, "event: {e}")?;
        }
        for c in &self.countries {
            for p in c.problems.iter().take(5) {
                writeln!(f, "problem ({}): {p}", c.country)?;
            }
            if c.problems.len() > 5 {
                writeln!(
                    f,
                    "problem ({}): ... {} more",
                    c.country,
                    c.problems.len() - 5
                )?;
            }
        }
        let acked = self.acked();
        if let Some((secs, keys)) = self.upload_phase {
            writeln!(
                f,
                "upload phase: {keys} keys acknowledged in {secs:.1} s = {:.0} keys/s",
                keys as f64 / secs.max(1e-9)
            )?;
        }
        writeln!(
            f,
            "{} keys acknowledged, {} deliveries; {:.1} s wall, {:.0} keys/s acknowledged{}; store faults injected: {}",
            acked,
            self.countries.iter().map(|c| c.keys_received).sum::<u64>(),
            self.wall_secs,
            acked as f64 / self.wall_secs.max(1e-9),
            self.peak_rss_mib
                .map(|m| format!(", peak RSS {m:.0} MiB"))
                .unwrap_or_default(),
            self.store_faults
        )?;
        writeln!(
            f,
            "verdict: {} (lost {}, delivered twice {}, own keys returned {}; audit/answer problems {})",
            if self.ok() { "PASS" } else { "FAIL" },
            self.verdict.lost,
            self.verdict.duplicates,
            self.verdict.own_received,
            self.countries
                .iter()
                .map(|c| c.problems.len())
                .sum::<usize>()
        )
    }
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
