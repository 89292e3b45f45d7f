//! `efgs-sim growth`: how wall time and peak memory grow with the number of countries. Each
//! size runs as its own `efgs-sim run` process (so each peak resident set is its own); this
//! module reads their `report.json` files and writes the table (Markdown) and a log-log chart
//! (SVG).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

/// One run of the series.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct GrowthRow {
    /// Countries.
    pub countries: usize,
    /// Keys acknowledged (all countries).
    pub keys_acked: u64,
    /// Keys delivered (distinct per receiver, summed).
    pub deliveries: u64,
    /// Wall time of the run.
    pub wall_secs: f64,
    /// Peak resident memory of the run's process.
    pub peak_rss_mib: Option<f64>,
    /// Whether the verdict held (the run's exit status).
    pub pass: bool,
}

/// Reads the row of a finished run from its `report.json`.
pub fn row_from_report(
    countries: usize,
    report_json: &Path,
    pass: bool,
) -> Result<GrowthRow, String> {
    let text = std::fs::read_to_string(report_json)
        .map_err(|e| format!("{}: {e}", report_json.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", report_json.display()))?;
    let sum = |field: &str| -> u64 {
        v["countries"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c[field].as_u64()).sum())
            .unwrap_or(0)
    };
    Ok(GrowthRow {
        countries,
        keys_acked: sum("keys_acked"),
        deliveries: sum("keys_received"),
        wall_secs: v["wall_secs"].as_f64().unwrap_or(f64::NAN),
        peak_rss_mib: v["peak_rss_mib"].as_f64(),
        pass,
    })
}

/// The table, Markdown, with the growth factors against the first row.
pub fn table(rows: &[GrowthRow]) -> String {
    let mut s = String::from(
        "| countries | keys acknowledged | deliveries | wall | peak RSS | verdict | x countries | x deliveries | x wall | x memory |\n\
         |---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n",
    );
    let first = rows.first();
    for r in rows {
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.1}", a / b)
            } else {
                "-".to_owned()
            }
        };
        let (xc, xd, xw, xm) = match first {
            Some(f) => (
                ratio(r.countries as f64, f.countries as f64),
                ratio(r.deliveries as f64, f.deliveries as f64),
                ratio(r.wall_secs, f.wall_secs),
                match (r.peak_rss_mib, f.peak_rss_mib) {
                    (Some(a), Some(b)) => ratio(a, b),
                    _ => "-".to_owned(),
                },
            ),
            None => Default::default(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} s | {} | {} | {xc} | {xd} | {xw} | {xm} |",
            r.countries,
            r.keys_acked,
            r.deliveries,
            r.wall_secs,
            r.peak_rss_mib
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.0} MiB")),
            if r.pass { "pass" } else { "FAIL" },
        );
    }
    s
}

/// A log-log chart of wall time (seconds) and peak memory (MiB) against countries.
pub fn svg(rows: &[GrowthRow], title: &str) -> String {
    let (w, h) = (560.0, 320.0);
    let (x0, y0, pw, ph) = (60.0, 40.0, 440.0, 230.0);
    let log = |v: f64| v.max(1e-3).log10();
    let xs: Vec<f64> = rows.iter().map(|r| log(r.countries as f64)).collect();
    let ys: Vec<f64> = rows
        .iter()
        .flat_map(|r| [Some(r.wall_secs), r.peak_rss_mib])
        .flatten()
        .filter(|v| v.is_finite())
        .map(log)
        .collect();
    let (xmin, xmax) = bounds(&xs);
    let (ymin, ymax) = bounds(&ys);
    let (ymin, ymax) = (ymin.floor(), ymax.ceil());
    let px = |v: f64| x0 + (v - xmin) / (xmax - xmin).max(1e-9) * pw;
    let py = |v: f64| y0 + ph - (v - ymin) / (ymax - ymin).max(1e-9) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>"#
    );
    let _ = write!(
        s,
        r#"<text x="{x0}" y="20">{} (log-log)</text>"#,
        title.replace('&', "&amp;").replace('<', "&lt;")
    );
    let _ = write!(
        s,
        r#"<path d="M{x0},{y0} V{} H{}" stroke="black" fill="none"/>"#,
        y0 + ph,
        x0 + pw
    );
    for r in rows {
        let x = px(log(r.countries as f64));
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            y0 + ph + 16.0,
            r.countries
        );
    }
    let mut e = ymin;
    while e <= ymax {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            x0 - 4.0,
            py(e) + 4.0,
            10f64.powf(e)
        );
        e += 1.0;
    }
    let wall = |r: &GrowthRow| Some(r.wall_secs);
    let rss = |r: &GrowthRow| r.peak_rss_mib;
    let series: [(&str, &str, &Series); 2] = [
        ("wall time (s)", "#1f77b4", &wall),
        ("peak RSS (MiB)", "#d62728", &rss),
    ];
    for (i, (label, color, value)) in series.iter().enumerate() {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                value(r)
                    .filter(|v| v.is_finite())
                    .map(|v| (px(log(r.countries as f64)), py(log(v))))
            })
            .collect();
        let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            line.join(" ")
        );
        for (x, y) in &pts {
            let _ = write!(
                s,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" fill="{color}">{label}</text>"#,
            x0 + 10.0,
            y0 + 14.0 + 16.0 * i as f64
        );
    }
    s.push_str("</svg>\n");
    s
}

/// How a chart series reads its value from a row.
type Series = dyn Fn(&GrowthRow) -> Option<f64>;

fn bounds(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_chart_show_every_row() {
        let rows = vec![
            GrowthRow {
                countries: 10,
                keys_acked: 2000,
                deliveries: 18_000,
                wall_secs: 0.5,
                peak_rss_mib: Some(20.0),
                pass: true,
            },
            GrowthRow {
                countries: 100,
                keys_acked: 20_000,
                deliveries: 1_980_000,
                wall_secs: 10.0,
                peak_rss_mib: Some(100.0),
                pass: false,
            },
        ];
        let t = table(&rows);
        assert!(
            t.contains(
                "| 100 | 20000 | 1980000 | 10.00 s | 100 MiB | FAIL | 10.0 | 110.0 | 20.0 | 5.0 |"
            ),
            "{t}"
        );
        let s = svg(&rows, "growth");
        assert_eq!(s.matches("<circle").count(), 4);
        assert!(s.contains(">100</text>"));
    }
}
