//! The two ways to run a federation: [`run_in_process`] (efgs-core's use cases on the memory
//! store with a virtual clock) and [`run_http`] (real HTTP against gateways the simulation
//! starts, on memory or PostgreSQL, one or several instances, or against a running gateway).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use efgs_core::canonical::DuplicateHasher;
use efgs_core::gateway::{Gateway, GatewayPolicy};
use efgs_core::store::{DynInspectableStore, DynStore};
use efgs_store_memory::MemoryStore;
use time::{Duration, OffsetDateTime};
use tokio::sync::Mutex;

use super::chaos::{Chaos, ChaosStore};
use super::country::{ClientFaults, Country, CountrySetup, Shared};
use super::link::{Http, InProcess, Link, Urls};
use super::progress::Progress;
use super::report::{Latency, Sample, SimReport, peak_rss_mib};
use crate::federation::{Federation, PostgresSchema, TestClock};
use crate::pki::{Pki, trust_entry};

/// The 27 EU member states, the first countries of every simulated federation.
pub const EU27: [&str; 27] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
];

/// Most countries in a run (two-letter codes: the EU 27, then `AA`, `AB`, ...).
pub const MAX_COUNTRIES: usize = 500;

/// `n` distinct two-letter country codes: the EU 27 first, then `AA`, `AB`, ... skipping
/// those already used.
pub fn country_codes(n: usize) -> Vec<String> {
    let mut out: Vec<String> = EU27.iter().take(n).map(|c| (*c).to_owned()).collect();
    'outer: for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            if out.len() >= n {
                break 'outer;
            }
            let code = String::from_utf8_lossy(&[a, b]).into_owned();
            if !EU27.contains(&code.as_str()) {
                out.push(code);
            }
        }
    }
    out
}

/// Store faults of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreFaults {
    /// Share of upload inserts and batch cuts that fail before reaching the store.
    pub fail_rate: f64,
    /// Share of upload inserts that are stored but reported as failed (the acknowledgement
    /// is lost; the client retries with the same tag and gets the idempotent 201).
    pub lost_ack_rate: f64,
    /// Delay before every upload insert and batch read.
    pub delay: StdDuration,
}

impl StoreFaults {
    fn any(&self) -> bool {
        self.fail_rate > 0.0 || self.lost_ack_rate > 0.0 || !self.delay.is_zero()
    }

    fn plan(&self) -> HashMap<&'static str, Chaos> {
        let mut plan = HashMap::new();
        plan.insert(
            "insert_upload",
            Chaos {
                fail_before: self.fail_rate,
                fail_after: self.lost_ack_rate,
                delay: self.delay,
            },
        );
        plan.insert(
            "create_next_batch",
            Chaos {
                fail_before: self.fail_rate,
                ..Chaos::default()
            },
        );
        plan.insert(
            "batch_keys",
            Chaos {
                fail_before: self.fail_rate,
                delay: self.delay,
                ..Chaos::default()
            },
        );
        plan
    }
}

/// What a run does (both modes).
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Countries (1..=500).
    pub countries: usize,
    /// In-process: keys each country uploads per (virtual) day.
    pub keys_per_day: usize,
    /// In-process: virtual days.
    pub days: u32,
    /// Seed of every random choice (habits, keys, faults).
    pub seed: u64,
    /// Largest upload (keys).
    pub max_batch: usize,
    /// Visited countries listed in every key.
    pub visited: usize,
    /// In-process: minutes of virtual time per step.
    pub tick_minutes: u32,
    /// Audit every n-th batch a country reads (0: never).
    pub audit_every: u64,
    /// Client faults.
    pub client_faults: ClientFaults,
    /// Store faults (in-process, and HTTP on the memory store).
    pub store_faults: StoreFaults,
    /// In-process: jump the clock 3 hours across the first midnight.
    pub clock_jump: bool,
    /// In-process: when the virtual clock starts (00:00 UTC of a day).
    pub start: OffsetDateTime,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        RunOptions {
            countries: 27,
            keys_per_day: 25_000,
            days: 14,
            seed: 1,
            max_batch: 5000,
            visited: 27,
            tick_minutes: 60,
            audit_every: 1,
            client_faults: ClientFaults::default(),
            store_faults: StoreFaults::default(),
            clock_jump: false,
            start: now.replace_time(time::Time::MIDNIGHT),
            progress: false,
        }
    }
}

/// Why a run could not be carried out (a failed verdict is not an error: see
/// [`SimReport::ok`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The options make no sense.
    #[error("options: {0}")]
    Options(String),
    /// The PKI could not be made.
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    /// The store refused the trust list.
    #[error("store: {0}")]
    Store(#[from] efgs_core::store::StoreError),
    /// The gateway refused to authenticate a simulated country.
    #[error("gateway: {0}")]
    Gateway(#[from] efgs_core::Error),
    /// A country could not be set up.
    #[error(transparent)]
    Setup(#[from] super::country::SetupError),
    /// The federation could not be started.
    #[error(transparent)]
    Federation(#[from] crate::federation::FederationError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The PKI directory could not be read.
    #[error(transparent)]
    PkiDir(#[from] super::pkidir::PkiDirError),
    /// A task failed.
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A callback endpoint could not be set up or subscribed.
    #[error("callback: {0}")]
    Callback(String),
    /// A file could not be written.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl SimError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SimError::Options(_) => "sim-options",
            SimError::Pki(e) => e.code(),
            SimError::Store(e) => e.code(),
            SimError::Gateway(_) => "sim-gateway",
            SimError::Setup(_) => "sim-setup",
            SimError::Federation(e) => e.code(),
            SimError::Http(_) => "sim-http",
            SimError::PkiDir(_) => "sim-pki-dir",
            SimError::Join(_) => "sim-join",
            SimError::Callback(_) => "sim-callback",
            SimError::Io(_) => "sim-io",
        }
    }
}

fn check(opts: &RunOptions) -> Result<(), SimError> {
    if opts.countries < 2 || opts.countries > MAX_COUNTRIES {
        return Err(SimError::Options(format!(
            "countries must be 2..={MAX_COUNTRIES}"
        )));
    }
    if opts.max_batch == 0 || opts.max_batch > 5000 {
        return Err(SimError::Options("max batch must be 1..=5000".to_owned()));
    }
    if opts.tick_minutes == 0 || 1440 % opts.tick_minutes != 0 {
        return Err(SimError::Options(
            "tick minutes must divide a day (1440)".to_owned(),
        ));
    }
    Ok(())
}

fn visited_pool(n: usize) -> Arc<Vec<String>> {
    Arc::new(country_codes(n.max(1)).into_iter().take(n).collect())
}

fn make_countries(
    pki: &Pki,
    codes: &[String],
    setup: &CountrySetup,
    shared: &Arc<Shared>,
) -> Result<Vec<Country>, SimError> {
    let mut out = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let creds = pki
            .country(code)
            .ok_or_else(|| SimError::Options(format!("no credentials for {code}")))?;
        let index = u16::try_from(i).map_err(|_| SimError::Options("too many".to_owned()))?;
        out.push(Country::new(
            index,
            Arc::new(creds.clone()),
            setup,
            shared.clone(),
        )?);
    }
    Ok(out)
}

fn run_id(seed: u64) -> u32 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b) ^ (seed as u32)
}

/// Runs a federation in process: a [`Gateway`] on a memory store (behind [`ChaosStore`] when
/// store faults are asked for), the virtual clock stepping `tick_minutes` at a time. Every
/// step each country uploads its share of the day (in batches of its habit's sizes), the
/// gateway cuts the batches that are due, and each country reads the new batches and audits
/// them. At every midnight the retention job runs. At the end the last batches are cut and
/// read until every country has caught up.
pub async fn run_in_process(opts: &RunOptions) -> Result<SimReport, SimError> {
    check(opts)?;
    let wall = Instant::now();
    let codes = country_codes(opts.countries);
    let start = opts.start;
    let clock = TestClock::frozen(start);
    let pki = Pki::generate(&codes, start - Duration::hours(1))?;
    let anchors = pki.anchors()?;
    let memory: Arc<DynInspectableStore> = Arc::new(MemoryStore::new());
    for e in pki.entries() {
        let _ = memory.upsert_trust_entry(trust_entry(e, start)).await?;
    }
    let chaos = opts
        .store_faults
        .any()
        .then(|| ChaosStore::new(memory.clone(), opts.store_faults.plan(), opts.seed));
    let store: Arc<DynStore> = match &chaos {
        Some(c) => Arc::new(c.clone()),
        None => memory.clone(),
    };
    let gateway = Gateway::new(
        store,
        anchors.clone(),
        DuplicateHasher::new(b"efgs-sim duplicate hash secret"),
        GatewayPolicy::default(),
    );
    let creds: Vec<_> = pki.countries.values().collect();
    let link: Arc<dyn Link> =
        Arc::new(InProcess::new(gateway.clone(), &creds, clock.clone()).await?);
    let shared = Arc::new(Shared::new(codes.len()));
    let setup = CountrySetup {
        run: run_id(opts.seed),
        seed: opts.seed,
        visited: visited_pool(opts.visited),
        faults: opts.client_faults.clone(),
        first_date: start.date(),
        audit_every: opts.audit_every,
        anchors: Arc::new(anchors),
        retry_pause: StdDuration::ZERO,
        max_attempts: 50,
        max_batch: opts.max_batch,
    };
    let mut countries = make_countries(&pki, &codes, &setup, &shared)?;

    let ticks_per_day = 1440 / opts.tick_minutes;
    let total_ticks = ticks_per_day * opts.days;
    let tick = Duration::minutes(i64::from(opts.tick_minutes));
    let mut report = SimReport {
        mode: "in-process".to_owned(),
        setup: format!(
            "{} countries x {} days x {} keys/country/day, {} visited countries per key, \
             uploads of up to {} keys, seed {}",
            opts.countries, opts.days, opts.keys_per_day, opts.visited, opts.max_batch, opts.seed
        ),
        time_unit: "virtual hours".to_owned(),
        ..SimReport::default()
    };
    let mut progress = Progress::new(opts.progress);
    let mut offset = Duration::ZERO;
    let mut batching_failures = 0u64;
    for i in 0..total_ticks {
        if opts.clock_jump && i == ticks_per_day - 1 && offset.is_zero() {
            // From the last step before the first midnight to 03:00 the next day.
            offset = tick + Duration::hours(3);
            report.events.push(format!(
                "clock jumped from {} to {}",
                start + tick * i,
                start + tick * i + offset
            ));
        }
        let before = clock.now();
        let now = start + tick * i + offset;
        clock.set(now);
        if before.date() != now.date()
            && let Err(e) = gateway.cleanup(now).await
        {
            report.events.push(format!("retention at {now}: {e}"));
        }
        let last_of_day = (i + 1) % ticks_per_day == 0;
        let quota = opts.keys_per_day / ticks_per_day as usize
            + usize::from(
                ((i % ticks_per_day) as usize) < opts.keys_per_day % ticks_per_day as usize,
            );
        countries = for_each(countries, &link, move |mut c, link| async move {
            c.owed += quota;
            loop {
                let size = c.next_batch_size();
                if c.owed >= size {
                    c.owed -= size;
                    c.upload(link.as_ref(), size).await;
                } else {
                    if last_of_day && c.owed > 0 {
                        let n = std::mem::take(&mut c.owed);
                        c.upload(link.as_ref(), n).await;
                    }
                    break;
                }
            }
            c
        })
        .await?;
        if gateway.batch_all_due(now, usize::MAX).await.is_err() {
            batching_failures += 1;
        }
        countries = for_each(countries, &link, |mut c, link| async move {
            c.poll(link.as_ref()).await;
            c
        })
        .await?;
        let hours = (now - start).as_seconds_f64() / 3600.0;
        report.timeline.push(Sample {
            t: hours,
            acked: shared.acked_total(),
            received: shared.received_total(),
        });
        progress.update(
            f64::from(i + 1),
            f64::from(total_ticks),
            &format!(
                "day {}/{} {} keys acked, {} received",
                i / ticks_per_day + 1,
                opts.days,
                shared.acked_total(),
                shared.received_total()
            ),
        );
    }
    // Drain: cut what is pending and read until every country has caught up.
    for round in 0..20 {
        let now = clock.advance(Duration::minutes(10));
        if gateway.batch_all_due(now, usize::MAX).await.is_err() {
            batching_failures += 1;
        }
        countries = for_each(countries, &link, |mut c, link| async move {
            c.poll(link.as_ref()).await;
            c
        })
        .await?;
        if shared.complete() && round > 0 {
            break;
        }
    }
    report.timeline.push(Sample {
        t: (clock.now() - start).as_seconds_f64() / 3600.0,
        acked: shared.acked_total(),
        received: shared.received_total(),
    });
    progress.finish();
    if batching_failures > 0 {
        report.events.push(format!(
            "{batching_failures} batching runs failed (retried)"
        ));
    }
    finish(&mut report, &countries, &shared, wall);
    report.store_faults = chaos.map_or(0, |c| c.injected());
    Ok(report)
}

fn finish(report: &mut SimReport, countries: &[Country], shared: &Shared, wall: Instant) {
    let ledgers: Vec<_> = countries.iter().map(|c| c.ledger.clone()).collect();
    let base = SimReport::from_ledgers(&ledgers);
    report.countries = base.countries;
    report.verdict = base.verdict;
    report.upload_sizes = shared
        .upload_sizes
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    report.download_sizes = shared
        .download_sizes
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    report.wall_secs = wall.elapsed().as_secs_f64();
    report.peak_rss_mib = peak_rss_mib();
}

/// Runs `f` for every country concurrently and gives the countries back in order.
async fn for_each<F, Fut>(
    countries: Vec<Country>,
    link: &Arc<dyn Link>,
    f: F,
) -> Result<Vec<Country>, SimError>
where
    F: Fn(Country, Arc<dyn Link>) -> Fut,
    Fut: std::future::Future<Output = Country> + Send + 'static,
{
    let handles: Vec<_> = countries
        .into_iter()
        .map(|c| tokio::spawn(f(c, link.clone())))
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// Where the HTTP run's gateways come from.
#[derive(Clone, Debug)]
pub enum Target {
    /// Gateways efgs-sim starts on loopback (efgs-server's composition root, proxy-header
    /// identity trusted from loopback, batching checked every second).
    Serve {
        /// PostgreSQL URL (a fresh schema is made and dropped); `None`: the memory store.
        postgres: Option<String>,
        /// Instances on the one store.
        instances: usize,
        /// Restart the first instance this long after the start.
        restart_after: Option<StdDuration>,
    },
    /// A running gateway (or several behind different URLs) whose trust list holds the
    /// entries of `pki` (`efgs-sim pki`, then `efgs-server trust-list import`). Its own
    /// batching job cuts the batches.
    External {
        /// Base URLs.
        urls: Vec<String>,
        /// The PKI directory.
        pki: PathBuf,
    },
}

/// HTTP-only options.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Where the gateways are.
    pub target: Target,
    /// How long countries upload.
    pub duration: StdDuration,
    /// Keys per second each country aims at (0: as fast as it can).
    pub keys_per_sec: f64,
    /// Pause between download polls of a country.
    pub poll_interval: StdDuration,
    /// Longest wait after the uploads for every country to catch up.
    pub drain: StdDuration,
    /// Request timeout.
    pub timeout: StdDuration,
    /// Download on callback instead of polling (with [`Target::Serve`] only): every country
    /// runs an HTTPS callback endpoint on 127.0.0.1 with its own certificate, registered as
    /// its CALLBACK certificate, subscribes it, and reads exactly the batches announced.
    pub on_callback: bool,
    /// With `on_callback`: write each country's delivery log (`callbacks-XX.jsonl`, the
    /// format `efgs-sim readiness --callback-log` reads) into this directory.
    pub callback_log_dir: Option<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            target: Target::Serve {
                postgres: None,
                instances: 1,
                restart_after: None,
            },
            duration: StdDuration::from_secs(60),
            keys_per_sec: 0.0,
            poll_interval: StdDuration::from_millis(500),
            drain: StdDuration::from_secs(60),
            timeout: StdDuration::from_secs(30),
            on_callback: false,
            callback_log_dir: None,
        }
    }
}

/// Runs a federation over HTTP; see [`Target`]. Each country uploads (its habit's batch
/// sizes, retrying with the same tag) for the duration while polling for new batches and
/// auditing them; then the run waits until every country has caught up (or the drain time
/// is over) and computes the verdict from the ledgers.
pub async fn run_http(opts: &RunOptions, http: &HttpOptions) -> Result<SimReport, SimError> {
    check(opts)?;
    let wall = Instant::now();
    let mut report = SimReport {
        mode: "http".to_owned(),
        time_unit: "seconds".to_owned(),
        ..SimReport::default()
    };
    let mut feds: Vec<Federation> = Vec::new();
    let mut schema: Option<PostgresSchema> = None;
    let callback_files = tempfile::tempdir()?;
    if http.on_callback && matches!(http.target, Target::External { .. }) {
        return Err(SimError::Options(
            "downloading on callback needs gateways efgs-sim starts (--serve): it registers \
             the endpoints' CALLBACK certificates on their trust list"
                .to_owned(),
        ));
    }
    let mut chaos: Option<ChaosStore> = None;
    let (pki, codes, urls) = match &http.target {
        Target::Serve {
            postgres,
            instances,
            ..
        } => {
            let codes = country_codes(opts.countries);
            let mut b = Federation::builder()
                .countries(codes.iter().cloned())
                .clock(TestClock::system())
                .setting("batching.check_secs", "1")
                .setting("database.pool_size", "16");
            if http.on_callback {
                let (_, cert, key) = crate::callbacks::gateway_client_cert(
                    callback_files.path(),
                    OffsetDateTime::now_utc(),
                )
                .map_err(|e| SimError::Callback(e.to_string()))?;
                b = b
                    .loopback_callbacks(&cert, &key)
                    .setting("callback.timeout_secs", "5")
                    .setting("callback.lease_secs", "10");
            }
            match postgres {
                Some(url) => {
                    let s = PostgresSchema::new(url.clone()).await?;
                    b = b.postgres(&s);
                    schema = Some(s);
                }
                None if opts.store_faults.any() => {
                    let memory: Arc<DynInspectableStore> = Arc::new(MemoryStore::new());
                    let c = ChaosStore::new(memory, opts.store_faults.plan(), opts.seed);
                    b = b.store(Arc::new(c.clone()));
                    chaos = Some(c);
                }
                None => {}
            }
            let first = b.build().await?;
            for _ in 1..(*instances).max(1) {
                feds.push(first.instance().await?);
            }
            feds.insert(0, first);
            let urls: Vec<String> = feds.iter().map(|f| f.base_url().to_owned()).collect();
            (feds[0].pki().clone(), codes, urls)
        }
        Target::External { urls, pki } => {
            let pki = super::pkidir::read(pki)?;
            let codes: Vec<String> = pki.countries.keys().take(opts.countries).cloned().collect();
            (pki, codes, urls.clone())
        }
    };
    report.gateways = urls.clone();
    report.setup = format!(
        "{} countries for {} s over HTTP, {} visited countries per key, uploads of up to {} keys, \
         {} keys/s per country target, seed {}",
        codes.len(),
        http.duration.as_secs(),
        opts.visited,
        opts.max_batch,
        if http.keys_per_sec > 0.0 {
            format!("{}", http.keys_per_sec)
        } else {
            "unlimited".to_owned()
        },
        opts.seed
    );
    if http.on_callback {
        report.setup.push_str(", downloading on callback");
    }
    let shared_urls: Urls = Arc::new(std::sync::RwLock::new(urls));
    let creds: Vec<_> = codes.iter().filter_map(|c| pki.country(c)).collect();
    let link = Http::new(shared_urls.clone(), &creds, http.timeout)?;
    let dyn_link: Arc<dyn Link> = Arc::new(link.clone());
    let shared = Arc::new(Shared::new(codes.len()));
    let setup = CountrySetup {
        run: run_id(opts.seed),
        seed: opts.seed,
        visited: visited_pool(opts.visited),
        faults: opts.client_faults.clone(),
        first_date: OffsetDateTime::now_utc().date(),
        audit_every: opts.audit_every,
        anchors: Arc::new(pki.anchors()?),
        retry_pause: StdDuration::from_millis(100),
        max_attempts: 100,
        max_batch: opts.max_batch,
    };
    let countries: Vec<Arc<Mutex<Country>>> = make_countries(&pki, &codes, &setup, &shared)?
        .into_iter()
        .map(|c| Arc::new(Mutex::new(c)))
        .collect();

    // Downloading on callback: one endpoint per country, registered and subscribed before
    // the first upload, so every batch of the run is announced.
    let mut endpoints = Vec::new();
    let mut inboxes = Vec::new();
    if http.on_callback {
        let fed = feds
            .first()
            .ok_or_else(|| SimError::Options("no gateway".to_owned()))?;
        for code in &codes {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let ep = super::callback::CallbackEndpoint::start(
                std::net::IpAddr::from([127, 0, 0, 1]),
                code,
                OffsetDateTime::now_utc(),
                tx,
            )
            .await?;
            let entry = fed
                .pki()
                .sign_entry(
                    &ep.cert().cert_pem,
                    code,
                    efgs_core::model::CertificateType::Callback,
                )
                .map_err(|e| SimError::Callback(e.to_string()))?;
            let _ = fed
                .store()
                .upsert_trust_entry(trust_entry(&entry, OffsetDateTime::now_utc()))
                .await?;
            let (status, body) = link
                .subscribe_callback(code, &format!("sim-{:08x}", setup.run), &ep.url())
                .await
                .map_err(|e| SimError::Callback(format!("{code}: {e}")))?;
            if status != 200 {
                return Err(SimError::Callback(format!(
                    "{code}: PUT callback answered {status} {body}"
                )));
            }
            endpoints.push(ep);
            inboxes.push(rx);
        }
        report
            .events
            .push(format!("{} callback endpoints subscribed", endpoints.len()));
    }
    let logs: Arc<std::sync::Mutex<Vec<Vec<super::callback::Delivery>>>> =
        Arc::new(std::sync::Mutex::new(vec![Vec::new(); codes.len()]));

    let deadline = tokio::time::Instant::now() + http.duration;
    let stop_polling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut uploaders = Vec::new();
    let mut pollers = Vec::new();
    let mut inboxes = inboxes.into_iter();
    for (i, c) in countries.iter().enumerate() {
        let (c1, l1) = (c.clone(), dyn_link.clone());
        let rate = http.keys_per_sec;
        uploaders.push(tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut sent = 0f64;
            while tokio::time::Instant::now() < deadline {
                if rate > 0.0 {
                    let due = started + StdDuration::from_secs_f64(sent / rate);
                    if due >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(due).await;
                }
                let mut c = c1.lock().await;
                let n = c.next_batch_size();
                c.upload(l1.as_ref(), n).await;
                sent += n as f64;
            }
        }));
        let (c2, l2, stop) = (c.clone(), dyn_link.clone(), stop_polling.clone());
        let interval = http.poll_interval;
        if let Some(mut inbox) = inboxes.next() {
            let logs = logs.clone();
            pollers.push(tokio::spawn(async move {
                loop {
                    match tokio::time::timeout(StdDuration::from_millis(200), inbox.recv()).await {
                        Ok(Some(n)) => {
                            let d = n.delivery;
                            c2.lock()
                                .await
                                .fetch_announced(l2.as_ref(), &d.date, &d.batch_tag)
                                .await;
                            if let Ok(mut l) = logs.lock() {
                                l[i].push(d);
                            }
                        }
                        Ok(None) => break,
                        Err(_) if stop.load(std::sync::atomic::Ordering::Relaxed) => break,
                        Err(_) => {}
                    }
                }
            }));
            continue;
        }
        pollers.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A few batches per turn: the uploader waiting for the (fair) lock goes next.
                let read = c2.lock().await.poll_at_most(l2.as_ref(), 2).await;
                if read < 2 {
                    tokio::time::sleep(interval).await;
                }
            }
        }));
    }
    // Faults and progress while the uploads run.
    let mut progress = Progress::new(opts.progress);
    let restart_at = match &http.target {
        Target::Serve { restart_after, .. } => {
            restart_after.map(|d| tokio::time::Instant::now() + d)
        }
        Target::External { .. } => None,
    };
    let mut restarted = false;
    let t0 = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        let t = t0.elapsed().as_secs_f64();
        report.timeline.push(Sample {
            t,
            acked: shared.acked_total(),
            received: shared.received_total(),
        });
        progress.update(
            t,
            http.duration.as_secs_f64(),
            &format!(
                "{} keys acked, {} received",
                shared.acked_total(),
                shared.received_total()
            ),
        );
        if !restarted && restart_at.is_some_and(|at| tokio::time::Instant::now() >= at) {
            restarted = true;
            let old = feds.remove(0);
            let old_url = old.base_url().to_owned();
            let fresh = old.restart().await?;
            let new_url = fresh.base_url().to_owned();
            if let Ok(mut u) = shared_urls.write()
                && let Some(slot) = u.iter_mut().find(|s| **s == old_url)
            {
                *slot = new_url.clone();
            }
            report.events.push(format!(
                "gateway instance restarted at {t:.1} s: {old_url} -> {new_url}"
            ));
            feds.insert(0, fresh);
        }
    }
    // Uploads still retrying after the drain time are abandoned (their keys were never
    // acknowledged, so the verdict does not expect them).
    let grace = tokio::time::Instant::now() + http.drain;
    let mut abandoned = 0;
    for mut u in uploaders {
        if tokio::time::timeout_at(grace, &mut u).await.is_err() {
            u.abort();
            abandoned += 1;
            let _ = u.await;
        }
    }
    report.upload_phase = Some((t0.elapsed().as_secs_f64(), shared.acked_total()));
    if abandoned > 0 {
        report.events.push(format!(
            "{abandoned} uploaders still retrying after the drain time: abandoned"
        ));
    }
    progress.finish();
    // Drain.
    let drain_end = tokio::time::Instant::now() + http.drain;
    let mut stable = 0;
    while tokio::time::Instant::now() < drain_end {
        tokio::time::sleep(StdDuration::from_millis(250)).await;
        if shared.complete() {
            stable += 1;
            if stable >= 4 {
                break;
            }
        } else {
            stable = 0;
        }
    }
    stop_polling.store(true, std::sync::atomic::Ordering::Relaxed);
    let grace = tokio::time::Instant::now() + StdDuration::from_secs(10);
    for mut p in pollers {
        if tokio::time::timeout_at(grace, &mut p).await.is_err() {
            p.abort();
            let _ = p.await;
        }
    }
    report.timeline.push(Sample {
        t: t0.elapsed().as_secs_f64(),
        acked: shared.acked_total(),
        received: shared.received_total(),
    });
    let mut owned = Vec::new();
    for c in countries {
        match Arc::try_unwrap(c) {
            Ok(m) => owned.push(m.into_inner()),
            Err(_) => {
                return Err(SimError::Options(
                    "a country task is still running".to_owned(),
                ));
            }
        }
    }
    drop(endpoints);
    if http.on_callback {
        let logs = logs.lock().map(|l| l.clone()).unwrap_or_default();
        for (c, log) in owned.iter_mut().zip(&logs) {
            if c.ledger.notifications == 0 && shared.acked_total() > c.ledger.acked.len() {
                c.ledger
                    .problems
                    .push("no callback notification arrived".to_owned());
            }
            if let Some(dir) = &http.callback_log_dir {
                std::fs::create_dir_all(dir)?;
                super::callback::write_log(
                    &dir.join(format!("callbacks-{}.jsonl", c.code())),
                    log,
                )?;
            }
        }
    }
    finish(&mut report, &owned, &shared, wall);
    let mut lat = link.take_latencies();
    for line in &mut report.countries {
        let mut up = lat
            .remove(&(line.country.clone(), "upload"))
            .unwrap_or_default();
        let mut down = lat
            .remove(&(line.country.clone(), "download"))
            .unwrap_or_default();
        line.upload_latency = Some(Latency::of(&mut up));
        line.download_latency = Some(Latency::of(&mut down));
    }
    report.store_faults = chaos.map_or(0, |c| c.injected());
    for f in feds {
        f.shutdown().await?;
    }
    if let Some(s) = schema {
        let _ = s.drop_schema().await;
    }
    Ok(report)
}
