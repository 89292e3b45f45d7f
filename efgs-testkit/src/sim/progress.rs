//! A progress line on stderr: redrawn in place on a terminal, one line per tenth otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

/// A progress bar.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    tty: bool,
    started: Instant,
    last_tenth: u64,
    last_draw: Option<Instant>,
}

impl Progress {
    /// A bar; `enabled = false` prints nothing.
    pub fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_tenth: 0,
            last_draw: None,
        }
    }

    /// Shows `done` of `total` with a status text.
    pub fn update(&mut self, done: f64, total: f64, status: &str) {
        if !self.enabled || total <= 0.0 {
            return;
        }
        let frac = (done / total).clamp(0.0, 1.0);
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.tty {
            if self
                .last_draw
                .is_some_and(|t| t.elapsed().as_millis() < 100 && frac < 1.0)
            {
                return;
            }
            self.last_draw = Some(Instant::now());
            let width = 30;
            let filled = (frac * f64::from(width)) as usize;
            eprint!(
                "\r[{}{}] {:>3.0}% {elapsed:>6.1}s {status}\x1b[K",
                "#".repeat(filled),
                ".".repeat(width as usize - filled),
                frac * 100.0
            );
            let _ = std::io::stderr().flush();
        } else {
            let tenth = (frac * 10.0) as u64;
            if tenth > self.last_tenth {
                self.last_tenth = tenth;
                eprintln!("{:>3.0}% {elapsed:>6.1}s {status}", frac * 100.0);
            }
        }
    }

    /// Ends the line.
    pub fn finish(&mut self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}
