//! `efgs-server audit-log verify|export`, and the trail events of operator commands.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use efgs_core::store::DynStore;
use efgs_core::trail::{ChainVerifier, Event};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::Trail;
use crate::server::{ServeError, open_store, system_clock};
use crate::settings::Settings;

/// Records read per store call.
const PAGE: usize = 1000;

/// `efgs-server audit-log ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditLogCommand {
    /// Check the hash chain of the stored trail: every event's hash matches its content and
    /// links to the event before it, and no event after the last one read is missing. Names
    /// the first broken link; exit code 1 when the chain is broken.
    Verify,
    /// Write the events with an instant in FROM..TO (TO excluded) as lines, in order.
    Export {
        /// Start: an RFC 3339 instant (`2026-12-01T00:00:00Z`) or a date (`2026-12-01`,
        /// 00:00 UTC).
        #[arg(long, value_name = "FROM")]
        from: String,
        /// End (excluded), in the same forms.
        #[arg(long, value_name = "TO")]
        to: String,
        /// Output file (default: standard output).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

/// Why an `audit-log` command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuditLogError {
    #[error(
        "storage = memory keeps nothing after the server exits; the audit trail needs storage = postgres"
    )]
    MemoryStore,
    #[error("audit trail broken: {0}")]
    Broken(String),
    #[error("--{0}: expected an RFC 3339 instant or a date (YYYY-MM-DD)")]
    Instant(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("storage: {0}")]
    Store(#[from] efgs_core::store::StoreError),
}

fn instant(arg: &'static str, v: &str) -> Result<OffsetDateTime, AuditLogError> {
    if let Ok(t) = OffsetDateTime::parse(v, &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(v, &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| AuditLogError::Instant(arg))
}

/// Runs an `audit-log` command.
pub(crate) async fn audit_log(
    settings: &Settings,
    cmd: AuditLogCommand,
) -> Result<(), AuditLogError> {
    if settings.is_memory_store() {
        return Err(AuditLogError::MemoryStore);
    }
    let store = open_store(settings).await?;
    match cmd {
        AuditLogCommand::Verify => match verify(store.as_ref()).await {
            Ok(report) => {
                tracing::info!("{report}");
                println!("{report}");
                Ok(())
            }
            Err(e) => {
                tracing::error!("{e}");
                Err(e)
            }
        },
        AuditLogCommand::Export { from, to, out } => {
            let (from, to) = (instant("from", &from)?, instant("to", &to)?);
            let mut w: Box<dyn std::io::Write + Send> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(std::fs::File::create(p)?)),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let mut after = 0;
            loop {
                let page = store.audit_records_between(from, to, after, PAGE).await?;
                for r in &page {
                    writeln!(w, "{}", r.line)?;
                }
                match page.last() {
                    Some(r) if page.len() == PAGE => after = r.seq,
                    _ => break,
                }
            }
            w.flush()?;
            Ok(())
        }
    }
}

/// Verifies the stored chain; the report names the events checked, or the first broken link.
pub(crate) async fn verify(store: &DynStore) -> Result<String, AuditLogError> {
    let mut v = ChainVerifier::new();
    // The head first: a running gateway keeps appending, and events appended while the chain
    // is read must not look like a missing end. Everything up to the head must be there.
    let head = store.append_audit_events(Vec::new()).await?;
    let mut after = 0;
    while after < head {
        let page = store.audit_records_after(after, PAGE).await?;
        for r in page.iter().take_while(|r| r.seq <= head) {
            v.push(r).map_err(|b| {
                AuditLogError::Broken(format!("{b}\n  event {}: {}", r.seq, r.line))
            })?;
        }
        match page.last() {
            Some(r) => after = r.seq,
            None => break,
        }
    }
    match v.checked() {
        None if head == 0 => Ok("audit trail empty".to_owned()),
        None => Err(AuditLogError::Broken(format!(
            "the chain ends at event {head} but no event is stored"
        ))),
        Some((_, last, _)) if last < head => Err(AuditLogError::Broken(format!(
            "events {} to {head} are missing: the chain ends at event {head}",
            last + 1
        ))),
        Some((first, last, n)) => Ok(format!(
            "audit trail intact: events {first} to {last} ({n} events){}",
            if first > 1 {
                "; earlier events were removed by retention"
            } else {
                ""
            }
        )),
    }
}

/// Records the event `make` builds for an operator command (no-op with `audit.enabled` off).
pub(crate) async fn record(
    settings: &Settings,
    store: &DynStore,
    make: impl FnOnce(&Trail) -> Event,
) -> Result<(), ServeError> {
    if !settings.ops.trail {
        return Ok(());
    }
    let trail = Trail::off(system_clock());
    store.append_audit_events(vec![make(&trail)]).await?;
    Ok(())
}
