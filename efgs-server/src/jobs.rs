//! Periodic background jobs in the server process (batching, decisions item 12; retention,
//! decisions item 13).
//!
//! Each job runs on a fixed delay: a run starts `every` after the previous one ended (the
//! first after `first_run_after`), so runs of one job never overlap within a process. Each run
//! is bounded by `run_limit`: when it is exceeded the run's future is dropped. At shutdown no
//! new run starts; a run in progress gets the grace period passed to [`Jobs::shutdown`], then
//! it is dropped.
//!
//! Contract for job implementations:
//! - **Cancellation safety.** A run may be dropped at any `.await` (run limit, shutdown). Each
//!   unit of work must therefore be one database transaction (or otherwise atomic), so that a
//!   dropped run leaves the store consistent; [`JobContext`] lets a run stop cooperatively
//!   between units of work instead.
//! - **Several instances.** Every server instance runs every job. Exclusivity and dense tags
//!   are the store's job (a transaction-scoped lock or `SELECT … FOR UPDATE SKIP LOCKED` and
//!   unique constraints); the runner does not coordinate instances.
//! - **Failures** are logged once per run (at `warn`) and retried at the next run, so a
//!   database outage heals by itself when the database returns.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// When and how long a job runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub(crate) struct JobSchedule {
    /// Name used in logs (`batching`, `retention`).
    pub(crate) name: &'static str,
    /// Delay between the end of one run and the start of the next.
    pub(crate) every: Duration,
    /// Upper bound on one run.
    pub(crate) run_limit: Duration,
    /// Delay before the first run.
    pub(crate) first_run_after: Duration,
}

impl JobSchedule {
    /// A schedule running every `every`, each run bounded by `run_limit`, the first run after
    /// one `every`.
    pub(crate) fn new(name: &'static str, every: Duration, run_limit: Duration) -> Self {
        JobSchedule {
            name,
            every,
            run_limit,
            first_run_after: every,
        }
    }

    /// Sets the delay before the first run.
    #[cfg(test)]
    pub(crate) fn first_run_after(mut self, delay: Duration) -> Self {
        self.first_run_after = delay;
        self
    }
}

/// Passed to every run.
#[derive(Clone, Debug)]
pub(crate) struct JobContext {
    deadline: Instant,
    stop: CancellationToken,
}

impl JobContext {
    /// Completes when shutdown begins.
    #[cfg(test)]
    pub(crate) async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Whether the run should stop before its next unit of work: shutdown has begun, or less
    /// than `margin` is left before the run limit.
    pub(crate) fn should_stop(&self, margin: Duration) -> bool {
        self.stop.is_cancelled() || Instant::now() + margin >= self.deadline
    }
}

/// The set of running background jobs.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Jobs {
    /// No jobs yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Starts running `job` on `schedule`. Must be called inside a Tokio runtime.
    pub(crate) fn spawn<J, Fut, E>(&mut self, schedule: JobSchedule, job: J)
    where
        J: FnMut(JobContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(run_periodic(schedule, job, stop));
    }

    /// Stops scheduling, lets runs in progress finish within `grace`, drops the rest.
    pub(crate) async fn shutdown(mut self, grace: Duration) {
        self.stop.cancel();
        let finished = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            warn!(
                remaining = self.tasks.len(),
                "background jobs did not finish within the grace period; cancelling them"
            );
            self.tasks.shutdown().await;
        }
    }
}

async fn run_periodic<J, Fut, E>(schedule: JobSchedule, mut job: J, stop: CancellationToken)
where
    J: FnMut(JobContext) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let name = schedule.name;
    let mut next = Instant::now() + schedule.first_run_after;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let ctx = JobContext {
            deadline: started + schedule.run_limit,
            stop: stop.clone(),
        };
        match tokio::time::timeout_at(ctx.deadline, job(ctx.clone())).await {
            Ok(Ok(())) => debug!(
                job = name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "job run finished"
            ),
            Ok(Err(e)) => warn!(job = name, error = %e, "job run failed; retrying at the next run"),
            Err(_) => warn!(
                job = name,
                limit_secs = schedule.run_limit.as_secs(),
                "job run exceeded its run limit and was cancelled"
            ),
        }
        if stop.is_cancelled() {
            info!(job = name, "job stopped");
            return;
        }
        next = Instant::now() + schedule.every;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test]
    async fn runs_repeatedly_and_retries_after_errors() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let r = Arc::clone(&runs);
        jobs.spawn(
            JobSchedule::new("t", ms(10), ms(500)).first_run_after(ms(0)),
            move |_ctx| {
                let n = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n.is_multiple_of(2) {
                        Err("transient")
                    } else {
                        Ok(())
                    }
                }
            },
        );
        tokio::time::sleep(ms(150)).await;
        jobs.shutdown(ms(100)).await;
        assert!(runs.load(Ordering::SeqCst) >= 4, "runs: {runs:?}");
    }

    #[tokio::test]
    async fn run_limit_cancels_a_run_and_the_next_run_happens() {
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let (s, f) = (Arc::clone(&started), Arc::clone(&finished));
        jobs.spawn(
            JobSchedule::new("slow", ms(10), ms(30)).first_run_after(ms(0)),
            move |_ctx| {
                s.fetch_add(1, Ordering::SeqCst);
                let f = Arc::clone(&f);
                async move {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            },
        );
        tokio::time::sleep(ms(200)).await;
        jobs.shutdown(ms(50)).await;
        assert!(started.load(Ordering::SeqCst) >= 2);
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn shutdown_lets_a_run_in_progress_finish_within_grace() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let f = Arc::clone(&finished);
        jobs.spawn(
            JobSchedule::new("t", Duration::from_secs(3600), Duration::from_secs(10))
                .first_run_after(ms(0)),
            move |ctx: JobContext| {
                let f = Arc::clone(&f);
                async move {
                    ctx.stopping().await;
                    assert!(ctx.should_stop(Duration::ZERO));
                    tokio::time::sleep(ms(50)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            },
        );
        tokio::time::sleep(ms(20)).await;
        let t = Instant::now();
        jobs.shutdown(Duration::from_secs(5)).await;
        assert_eq!(finished.load(Ordering::SeqCst), 1);
        assert!(t.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn shutdown_drops_a_run_that_outlives_grace() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut jobs = Jobs::new();
        let f = Arc::clone(&finished);
        jobs.spawn(
            JobSchedule::new("t", Duration::from_secs(3600), Duration::from_secs(60))
                .first_run_after(ms(0)),
            move |_ctx| {
                let f = Arc::clone(&f);
                async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            },
        );
        tokio::time::sleep(ms(20)).await;
        let t = Instant::now();
        jobs.shutdown(ms(50)).await;
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(finished.load(Ordering::SeqCst), 0);
    }
}
