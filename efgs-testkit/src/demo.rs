//! The `efgs-sim demo` run: a federation of several countries on one machine exchanging
//! keys end to end over real HTTP.
//!
//! 1. A [`Federation`] is built (memory store, the real server on `127.0.0.1`, the system
//!    clock, a fresh PKI with every country onboarded).
//! 2. For a number of rounds every national backend uploads a signed batch of random keys,
//!    alternating protobuf and JSON, and the gateway cuts download batches.
//! 3. Every backend downloads from the first batch of the day, following `nextBatchTag` to
//!    `null`, and checks that it received exactly the other countries' keys (none of its own).
//! 4. Every backend audits one batch and re-verifies each foreign upload's signature over the
//!    downloaded keys, slicing them with the audit `amount` (as Spain, Italy and Finland do),
//!    and checks the signing certificate's operator signature against the trust anchor.
//! 5. A summary table is printed. [`run_demo`] returns `Ok` only if everything matched.
//!
//! With [`DemoOptions::keep_running`] the gateway stays up afterwards (batching every few
//! seconds) and ready-to-paste `curl` commands are printed, until Ctrl-C.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration as StdDuration, Instant};

use efgs_core::DiagnosisKey;
use efgs_core::batch_signature::{SignaturePolicy, verify_detached};
use efgs_core::canonical::canonical_batch_bytes;
use efgs_core::media::BodyFormat;
use efgs_core::model::CertificateType;
use efgs_core::tag::BatchTag;
use efgs_core::trust::{TrustAnchors, TrustListEntry};
use prost::Message as _;
use time::{Date, OffsetDateTime};
use tokio::task::JoinSet;

use crate::federation::{Federation, FederationError, TestClock};
use crate::national::{AuditRecord, NationalBackend, NationalError, UploadResult, encode_body};

/// What the demo does.
#[derive(Clone)]
#[non_exhaustive]
pub struct DemoOptions {
    /// The countries (default DE, FR, NL, IT, ES).
    pub countries: Vec<String>,
    /// Upload rounds (default 10).
    pub rounds: usize,
    /// Pause between rounds (default 1 s, so the run takes about 10 s).
    pub round_interval: StdDuration,
    /// Stop starting rounds after this long (default 30 s).
    pub max_duration: StdDuration,
    /// Keys per upload, inclusive range (default 20..=400).
    pub keys_per_upload: (usize, usize),
    /// The listen address (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Keep the gateway up after the demo and print curl commands, until Ctrl-C.
    pub keep_running: bool,
    /// Print nothing while running (the report is still returned).
    pub quiet: bool,
}

impl fmt::Debug for DemoOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoOptions")
            .field("countries", &self.countries)
            .field("rounds", &self.rounds)
            .field("round_interval", &self.round_interval)
            .field("max_duration", &self.max_duration)
            .field("keys_per_upload", &self.keys_per_upload)
            .field("bind", &self.bind)
            .field("keep_running", &self.keep_running)
            .field("quiet", &self.quiet)
            .finish_non_exhaustive()
    }
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoOptions {
    /// The defaults.
    pub fn new() -> Self {
        DemoOptions {
            countries: ["DE", "FR", "NL", "IT", "ES"]
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
            rounds: 10,
            round_interval: StdDuration::from_secs(1),
            max_duration: StdDuration::from_secs(30),
            keys_per_upload: (20, 400),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            keep_running: false,
            quiet: false,
        }
    }
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The federation could not be started or stopped.
    #[error(transparent)]
    Federation(#[from] FederationError),
    /// A national backend could not talk to the gateway.
    #[error(transparent)]
    National(#[from] NationalError),
    /// The gateway's batching failed.
    #[error("batching: {0}")]
    Gateway(#[from] efgs_core::Error),
    /// The demo ran, but something did not match; the report says what.
    #[error("the demo found problems:\n{0}")]
    Mismatch(Box<DemoReport>),
}

impl DemoError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            DemoError::Federation(e) => e.code(),
            DemoError::National(e) => e.code(),
            DemoError::Gateway(_) => "demo-gateway",
            DemoError::Mismatch(_) => "demo-mismatch",
        }
    }
}

/// One country's numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountryReport {
    /// The country.
    pub country: String,
    /// Accepted uploads (201).
    pub uploads: usize,
    /// Keys in accepted uploads.
    pub uploaded_keys: usize,
    /// Download batches followed.
    pub download_batches: usize,
    /// Keys downloaded.
    pub downloaded_keys: usize,
    /// Keys the other countries uploaded (what the download should hold).
    pub expected_keys: usize,
    /// Foreign uploads whose signature was re-verified from the audit.
    pub audited_uploads: usize,
    /// What went wrong (empty when all is well).
    pub problems: Vec<String>,
}

/// The outcome of a demo run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DemoReport {
    /// The gateway's base URL.
    pub base_url: String,
    /// Rounds run.
    pub rounds: usize,
    /// Download batches cut, in order.
    pub batches: Vec<String>,
    /// Per country.
    pub countries: Vec<CountryReport>,
    /// Problems not tied to one country.
    pub problems: Vec<String>,
}

impl DemoReport {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.countries.iter().all(|c| c.problems.is_empty())
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<7} | {:>7} | {:>13} | {:>13} | {:>13} | {:>17} | {:>15} | result",
            "country",
            "uploads",
            "uploaded keys",
            "batches read",
            "keys received",
            "expected (others)",
            "audit re-verify"
        )?;
        writeln!(f, "{}", "-".repeat(118))?;
        for c in &self.countries {
            writeln!(
                f,
                "{:<7} | {:>7} | {:>13} | {:>13} | {:>13} | {:>17} | {:>15} | {}",
                c.country,
                c.uploads,
                c.uploaded_keys,
                c.download_batches,
                c.downloaded_keys,
                c.expected_keys,
                c.audited_uploads,
                if c.problems.is_empty() {
                    "ok"
                } else {
                    "FAILED"
                }
            )?;
        }
        let uploaded: usize = self.countries.iter().map(|c| c.uploaded_keys).sum();
        writeln!(
            f,
            "{} rounds, {} download batches ({}), {} keys uploaded in total",
            self.rounds,
            self.batches.len(),
            match (self.batches.first(), self.batches.last()) {
                (Some(a), Some(b)) if a != b => format!("{a} .. {b}"),
                (Some(a), _) => a.clone(),
                _ => "none".to_owned(),
            },
            uploaded
        )?;
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        for c in &self.countries {
            for p in &c.problems {
                writeln!(f, "problem ({}): {p}", c.country)?;
            }
        }
        Ok(())
    }
}

fn random_in(lo: usize, hi: usize) -> usize {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    let span = hi.saturating_sub(lo).saturating_add(1);
    lo + (u64::from_le_bytes(b) % span as u64) as usize
}

struct Printer {
    quiet: bool,
}

impl Printer {
    fn line(&self, s: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", s.as_ref());
        }
    }
}

fn format_name(f: BodyFormat) -> &'static str {
    match f {
        BodyFormat::Protobuf => "protobuf",
        BodyFormat::Json => "json",
    }
}

/// Runs the demo; see the [module documentation](self).
pub async fn run_demo(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    let out = Printer { quiet: opts.quiet };
    let fed = Federation::builder()
        .countries(opts.countries.iter().cloned())
        .clock(TestClock::system())
        .bind(opts.bind)
        .build()
        .await?;
    out.line(format!(
        "efgs demo: gateway listening on {} (memory store, identity headers trusted from loopback)",
        fed.base_url()
    ));
    out.line(format!(
        "efgs demo: trust anchor and {} countries onboarded ({}): AUTHENTICATION and SIGNING \
         certificates, trust-list entries signed by the anchor",
        fed.countries().count(),
        fed.countries().collect::<Vec<_>>().join(", ")
    ));
    let first_day = fed.today();
    let mut report = DemoReport {
        base_url: fed.base_url().to_owned(),
        ..DemoReport::default()
    };
    let mut per_country: BTreeMap<String, CountryReport> = fed
        .countries()
        .map(|c| {
            (
                c.to_owned(),
                CountryReport {
                    country: c.to_owned(),
                    ..CountryReport::default()
                },
            )
        })
        .collect();
    // Every accepted key, by uploader country.
    let mut uploaded: BTreeMap<String, Vec<DiagnosisKey>> = BTreeMap::new();

    let started = Instant::now();
    for round in 1..=opts.rounds {
        if started.elapsed() >= opts.max_duration {
            out.line(format!(
                "efgs demo: time limit reached after {} rounds",
                round - 1
            ));
            break;
        }
        let mut set: JoinSet<(String, BodyFormat, Vec<DiagnosisKey>, UploadOutcomeLine)> =
            JoinSet::new();
        for (i, backend) in fed.backends().enumerate() {
            let backend = backend.clone();
            let n = random_in(opts.keys_per_upload.0, opts.keys_per_upload.1);
            let format = if (round + i) % 2 == 0 {
                BodyFormat::Protobuf
            } else {
                BodyFormat::Json
            };
            let tag = format!("{}-demo-{}-{round}", backend.country(), std::process::id());
            set.spawn(async move {
                let keys = backend.keys(n);
                let r = backend.upload(&keys, &tag, format).await;
                (backend.country().to_owned(), format, keys, r.into())
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(r) => results.push(r),
                Err(e) => report.problems.push(format!("upload task failed: {e}")),
            }
        }
        results.sort_by(|a, b| a.0.cmp(&b.0));
        let mut parts = Vec::new();
        for (country, format, keys, outcome) in results {
            let c = per_country.entry(country.clone()).or_default();
            match outcome {
                UploadOutcomeLine::Status(201) => {
                    c.uploads += 1;
                    c.uploaded_keys += keys.len();
                    parts.push(format!(
                        "{country} {} keys ({}) 201",
                        keys.len(),
                        format_name(format)
                    ));
                    uploaded.entry(country).or_default().extend(keys);
                }
                UploadOutcomeLine::Status(s) => {
                    c.problems
                        .push(format!("round {round}: upload answered {s}"));
                    parts.push(format!("{country} {s}"));
                }
                UploadOutcomeLine::Failed(e) => {
                    c.problems
                        .push(format!("round {round}: upload failed: {e}"));
                    parts.push(format!("{country} failed"));
                }
            }
        }
        out.line(format!("round {round:>2}: {}", parts.join(" | ")));
        for b in fed.run_batching_now().await? {
            out.line(format!(
                "          batch {} cut: {} uploads, {} keys",
                b.batch.tag, b.uploads, b.batch.number_of_keys
            ));
            report.batches.push(b.batch.tag.to_string());
        }
        report.rounds = round;
        if round < opts.rounds {
            tokio::time::sleep(opts.round_interval).await;
        }
    }
    for b in fed.run_batching_now().await? {
        report.batches.push(b.batch.tag.to_string());
    }

    // Downloads and audits.
    let anchors = fed.pki().anchors().map_err(FederationError::from)?;
    for backend in fed.backends() {
        let c = per_country.entry(backend.country().to_owned()).or_default();
        check_country(backend, first_day, &uploaded, &anchors, c, &out).await?;
    }
    report.countries = per_country.into_values().collect();

    out.line("");
    out.line(report.to_string());

    if opts.keep_running {
        keep_running(&fed, first_day, &report, &out).await;
    }
    fed.shutdown().await?;
    if report.ok() {
        Ok(report)
    } else {
        Err(DemoError::Mismatch(Box::new(report)))
    }
}

enum UploadOutcomeLine {
    Status(u16),
    Failed(String),
}

impl From<Result<UploadResult, NationalError>> for UploadOutcomeLine {
    fn from(r: Result<UploadResult, NationalError>) -> Self {
        match r {
            Ok(r) => UploadOutcomeLine::Status(r.status),
            Err(e) => UploadOutcomeLine::Failed(e.to_string()),
        }
    }
}

fn counts(keys: &[DiagnosisKey]) -> HashMap<Vec<u8>, usize> {
    let mut m = HashMap::new();
    for k in keys {
        *m.entry(k.encode_to_vec()).or_insert(0) += 1;
    }
    m
}

async fn check_country(
    backend: &NationalBackend,
    day: Date,
    uploaded: &BTreeMap<String, Vec<DiagnosisKey>>,
    anchors: &TrustAnchors,
    c: &mut CountryReport,
    out: &Printer,
) -> Result<(), DemoError> {
    let me = backend.country();
    // Alternate formats between countries to exercise both.
    let format = if me.as_bytes().first().is_some_and(|b| b % 2 == 0) {
        BodyFormat::Json
    } else {
        BodyFormat::Protobuf
    };
    let batches = backend.download_all_as(day, format).await?;
    let downloaded: Vec<DiagnosisKey> = batches.iter().flat_map(|b| b.keys.clone()).collect();
    let expected: Vec<DiagnosisKey> = uploaded
        .iter()
        .filter(|(country, _)| country.as_str() != me)
        .flat_map(|(_, keys)| keys.iter().cloned())
        .collect();
    c.download_batches = batches.len();
    c.downloaded_keys = downloaded.len();
    c.expected_keys = expected.len();
    if downloaded.iter().any(|k| k.origin == me) {
        c.problems
            .push("the download holds the country's own keys".to_owned());
    }
    if counts(&downloaded) != counts(&expected) {
        c.problems.push(format!(
            "downloaded {} keys, expected exactly the other countries' {} keys",
            downloaded.len(),
            expected.len()
        ));
    }
    let tags: Vec<&str> = batches
        .iter()
        .filter_map(|b| b.batch_tag.as_deref())
        .collect();
    out.line(format!(
        "download {me}: {} batches ({}) in {}, {} keys, expected {}: {}",
        batches.len(),
        match (tags.first(), tags.last()) {
            (Some(a), Some(b)) if a != b => format!("{a} .. {b}"),
            (Some(a), _) => (*a).to_owned(),
            _ => "none".to_owned(),
        },
        format_name(format),
        downloaded.len(),
        expected.len(),
        if c.problems.is_empty() {
            "ok"
        } else {
            "MISMATCH"
        }
    ));

    // Audit the batch with the most foreign keys.
    let Some(batch) = batches.iter().max_by_key(|b| b.keys.len()) else {
        return Ok(());
    };
    let Some(tag) = batch.batch_tag.as_deref() else {
        c.problems
            .push("a download answer had no batchTag header".to_owned());
        return Ok(());
    };
    let Ok(parsed) = BatchTag::parse(tag) else {
        c.problems
            .push(format!("batch tag {tag} is not yyyyMMdd-N"));
        return Ok(());
    };
    let audit = backend.audit(parsed.date, tag).await?;
    if audit.status != 200 {
        c.problems
            .push(format!("audit of {tag} answered {}", audit.status));
        return Ok(());
    }
    match reverify(me, &batch.keys, &audit.entries, anchors, backend.now()) {
        Ok(n) => {
            c.audited_uploads = n;
            out.line(format!(
                "audit {me}: {tag}: {} entries, {n} foreign uploads re-verified over the \
                 downloaded keys",
                audit.entries.len()
            ));
        }
        Err(e) => c.problems.push(format!("audit of {tag}: {e}")),
    }
    Ok(())
}

/// Re-verifies every foreign upload of a download batch as Spain, Italy and Finland do: walk
/// the audit entries in order, take `amount` keys from the downloaded list for each entry of
/// another country (the caller's own keys are not in its download), verify the entry's
/// `batchSignature` over those keys' canonical bytes, and check the signer and the
/// certificate's operator signature. Returns the number of uploads verified.
pub fn reverify(
    me: &str,
    downloaded: &[DiagnosisKey],
    entries: &[AuditRecord],
    anchors: &TrustAnchors,
    now: OffsetDateTime,
) -> Result<usize, String> {
    let mut pos = 0usize;
    let mut verified = 0usize;
    for e in entries.iter().filter(|e| e.country != me) {
        let amount = usize::try_from(e.amount).map_err(|_| "amount out of range".to_owned())?;
        let end = pos
            .checked_add(amount)
            .filter(|end| *end <= downloaded.len())
            .ok_or_else(|| {
                format!(
                    "amounts exceed the {} downloaded keys at {} entry",
                    downloaded.len(),
                    e.country
                )
            })?;
        let slice = &downloaded[pos..end];
        pos = end;
        let signer = verify_detached(
            &e.batch_signature,
            &canonical_batch_bytes(slice),
            now,
            &SignaturePolicy::default(),
        )
        .map_err(|err| format!("{} upload: signature does not verify: {err}", e.country))?;
        if signer.thumbprint.as_str() != e.uploader_signing_thumbprint {
            return Err(format!(
                "{} upload: signer {} is not uploaderSigningThumbprint {}",
                e.country, signer.thumbprint, e.uploader_signing_thumbprint
            ));
        }
        if signer.country != e.country || slice.iter().any(|k| k.origin != e.country) {
            return Err(format!(
                "{} upload: origin or signer country differs",
                e.country
            ));
        }
        let (Some(pem), Some(sig)) = (
            e.signing_certificate.as_ref(),
            e.signing_certificate_operator_signature.as_ref(),
        ) else {
            return Err(format!("{} upload: no signing certificate", e.country));
        };
        let entry = TrustListEntry {
            country: e.country.clone(),
            cert_type: CertificateType::Signing,
            pem: pem.clone(),
            signature: sig.clone(),
            thumbprint: signer.thumbprint.clone(),
            revoked: false,
        };
        entry.verify(anchors).map_err(|err| {
            format!(
                "{} upload: signing certificate not vouched for by the anchor: {err}",
                e.country
            )
        })?;
        verified += 1;
    }
    if pos != downloaded.len() {
        return Err(format!(
            "the audit amounts cover {pos} of {} downloaded keys",
            downloaded.len()
        ));
    }
    Ok(verified)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

async fn keep_running(fed: &Federation, day: Date, report: &DemoReport, out: &Printer) {
    let Some(de) = fed.backends().next() else {
        return;
    };
    let base = fed.base_url();
    let creds = de.credentials();
    let auth = format!(
        "-H {} -H {}",
        shell_quote(&format!(
            "X-SSL-Client-SHA256: {}",
            creds.auth_thumbprint.as_str()
        )),
        shell_quote(&format!("X-SSL-Client-DN: {}", creds.auth_dn))
    );
    let mut lines = vec![
        String::new(),
        format!(
            "The gateway keeps running on {base} (batching every 5 s). Try, as {}:",
            de.country()
        ),
        String::new(),
        "# the two advertised media types".to_owned(),
        format!("curl -i -X OPTIONS {base}/diagnosiskeys"),
        String::new(),
        format!("# the first batch of {day}, in JSON"),
        format!(
            "curl -i {auth} -H 'Accept: application/json; version=1.0' {base}/diagnosiskeys/download/{day}"
        ),
    ];
    if let Some(tag) = report.batches.get(1) {
        lines.push(String::new());
        lines.push("# a batch by its tag, in protobuf".to_owned());
        lines.push(format!(
            "curl -s {auth} -H 'Accept: application/protobuf; version=1.0' -H 'batchTag: {tag}' \
             {base}/diagnosiskeys/download/{day} | xxd | head"
        ));
    }
    if let Some(tag) = report.batches.first() {
        lines.push(String::new());
        lines.push("# the audit of a batch".to_owned());
        lines.push(format!(
            "curl -s {auth} {base}/diagnosiskeys/audit/download/{day}/{tag}"
        ));
    }
    // A signed upload ready for curl.
    let dir = std::env::temp_dir().join(format!("efgs-demo-{}", fed.addr().port()));
    let keys = de.keys(3);
    if let (Ok(()), Ok(sig)) = (std::fs::create_dir_all(&dir), de.sign(&keys)) {
        let body = dir.join("upload.bin");
        let sig_file = dir.join("upload.sig");
        if std::fs::write(&body, encode_body(&keys, BodyFormat::Protobuf)).is_ok()
            && std::fs::write(&sig_file, &sig).is_ok()
        {
            lines.push(String::new());
            lines.push("# upload 3 signed keys (files written by the demo)".to_owned());
            lines.push(format!(
                "curl -i -X POST {auth} -H 'Content-Type: application/protobuf; version=1.0' \
                 -H 'batchTag: curl-1' -H \"batchSignature: $(cat {})\" --data-binary @{} \
                 {base}/diagnosiskeys/upload",
                sig_file.display(),
                body.display()
            ));
        }
    }
    lines.push(String::new());
    lines.push("Press Ctrl-C to stop.".to_owned());
    for l in lines {
        out.line(l);
    }
    let batching = async {
        loop {
            tokio::time::sleep(StdDuration::from_secs(5)).await;
            match fed.run_batching_now().await {
                Ok(made) => {
                    for b in made {
                        out.line(format!(
                            "batch {} cut: {} uploads, {} keys",
                            b.batch.tag, b.uploads, b.batch.number_of_keys
                        ));
                    }
                }
                Err(e) => out.line(format!("batching failed: {e}")),
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        () = batching => {},
    }
    out.line("efgs demo: stopping");
}
