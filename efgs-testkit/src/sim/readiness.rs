//! `efgs-sim readiness`: the check a peer member state runs against the acceptance gateway to
//! verify a connecting (candidate) member state, with the peer's own certificates.
//!
//! 1. **download**: every batch from the first of `from` on, following `nextBatchTag` up to
//!    the last batch of `to`, answers 200, and the candidate's uploads are found in it.
//! 2. **audit-signature**: every candidate upload inside those batches is re-verified through
//!    the audit endpoint: its `batchSignature` verifies over the canonical bytes of exactly
//!    the keys the audit `amount`s assign to it.
//! 3. **signer-registered**: the signer certificate inside each signature is the
//!    `uploaderSigningThumbprint`, names the candidate as its country, and is the SIGNING
//!    certificate the operator registered to the candidate (trust-list entry signed by the
//!    trust anchor, for the candidate's country).
//! 4. **key-validation**: every candidate key passes the gateway's validation rules at its
//!    upload time (keyData length, rolling start window, rolling period, transmission risk,
//!    visited countries, origin = the candidate).
//! 5. **callback**: whether the candidate's callback endpoint receives notifications. A peer
//!    can neither list another country's subscriptions nor see what reaches its endpoint, so
//!    this needs the candidate's cooperation (ADR 0032): the candidate hands over its
//!    endpoint's delivery log (`--callback-log`, JSON Lines of `{"batchTag", "date",
//!    "receivedAt"}` as [`super::callback::write_log`] writes it), and the peer compares it
//!    with the batches it downloaded itself: every logged notification must name a batch of
//!    the range with its UTC day, and every batch from the first to the last logged one must
//!    have been notified. Without a log the check is `skipped` ([`callback_check`]).
//!
//! The report ([`ReadinessReport`]) says who checked what, when, against which gateway, and
//! each check with its result; it is written as Markdown and JSON.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use efgs_core::DiagnosisKey;
use efgs_core::batch_signature::{SignaturePolicy, verify_detached};
use efgs_core::canonical::canonical_batch_bytes;
use efgs_core::cert::Thumbprint;
use efgs_core::media::BodyFormat;
use efgs_core::model::{CertificateType, DiagnosisKeyBatch};
use efgs_core::tag::BatchTag;
use efgs_core::trust::{TrustAnchors, TrustListEntry};
use efgs_core::validate::{ValidationPolicy, check_origins, validate_batch};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use super::link::{Audited, Http, Link};
use crate::national::AuditRecord;
use crate::pki::CountryCredentials;

/// What to check.
#[derive(Clone, Debug)]
pub struct ReadinessOptions {
    /// The gateway's base URL.
    pub gateway: String,
    /// The peer's credentials (it downloads and audits as itself).
    pub peer: CountryCredentials,
    /// The trust anchors the peer trusts (the operator's).
    pub anchors_pem: String,
    /// The connecting country.
    pub candidate: String,
    /// First date to check.
    pub from: Date,
    /// Last date to check.
    pub to: Date,
    /// Request timeout.
    pub timeout: Duration,
    /// The candidate's callback delivery log, when it subscribed a callback (see the module
    /// documentation, check 5).
    pub callback_log: Option<std::path::PathBuf>,
}

/// A check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed; the details say why.
    Fail,
    /// Not run; the details say why.
    Skipped,
}

/// One check.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    /// Stable name (`download`, `audit-signature`, `signer-registered`, `key-validation`,
    /// `callback`).
    pub name: String,
    /// The result.
    pub result: Outcome,
    /// What was checked and, on failure, each reason (at most 50).
    pub details: Vec<String>,
}

/// One candidate upload inside a batch.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UploadCheck {
    /// The download batch.
    pub batch_tag: String,
    /// Position of the upload's audit entry in the batch.
    pub entry: usize,
    /// Keys of the upload in the batch.
    pub keys: u64,
    /// `uploadedTime` from the audit.
    pub uploaded_time: String,
    /// The signer certificate's thumbprint (from the signature), when it parsed.
    pub signer_thumbprint: Option<String>,
    /// Why it failed (empty when it passed).
    pub failures: Vec<String>,
}

/// The readiness report.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReadinessReport {
    /// The tool and its version.
    pub tool: String,
    /// The peer country that ran the check.
    pub checked_by: String,
    /// The thumbprint of the peer's AUTHENTICATION certificate.
    pub checked_by_certificate: String,
    /// The candidate country.
    pub candidate: String,
    /// The gateway checked against.
    pub gateway: String,
    /// First and last date checked.
    pub dates: (String, String),
    /// When the check started and ended (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// Download batches read.
    pub batches_read: u64,
    /// Candidate uploads found.
    pub candidate_uploads: u64,
    /// Candidate keys found.
    pub candidate_keys: u64,
    /// The checks.
    pub checks: Vec<Check>,
    /// Every candidate upload examined.
    pub uploads: Vec<UploadCheck>,
    /// Whether every check that ran passed and at least one upload was examined.
    pub ready: bool,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

impl ReadinessReport {
    /// The report as Markdown, fit to publish.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Readiness of {} — peer check by {}\n",
            self.candidate, self.checked_by
        );
        let _ = writeln!(
            s,
            "**Result: {}**\n",
            if self.ready { "READY" } else { "NOT READY" }
        );
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| candidate | {} |", self.candidate);
        let _ = writeln!(
            s,
            "| checked by | {} (certificate SHA-256 `{}`) |",
            self.checked_by, self.checked_by_certificate
        );
        let _ = writeln!(s, "| gateway | {} |", self.gateway);
        let _ = writeln!(s, "| dates | {} to {} |", self.dates.0, self.dates.1);
        let _ = writeln!(s, "| started | {} |", self.started_at);
        let _ = writeln!(s, "| finished | {} |", self.finished_at);
        let _ = writeln!(s, "| tool | {} |", self.tool);
        let _ = writeln!(
            s,
            "| examined | {} batches, {} candidate uploads, {} candidate keys |\n",
            self.batches_read, self.candidate_uploads, self.candidate_keys
        );
        let _ = writeln!(
            s,
            "## Checks\n\n| check | result | details |\n|---|---|---|"
        );
        for c in &self.checks {
            let result = match c.result {
                Outcome::Pass => "pass",
                Outcome::Fail => "**FAIL**",
                Outcome::Skipped => "skipped",
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                c.name,
                result,
                c.details.join("<br>").replace('|', "\\|")
            );
        }
        let _ = writeln!(
            s,
            "\n## Uploads examined\n\n| batch | entry | keys | uploaded | signer | result |\n|---|---|---|---|---|---|"
        );
        for u in &self.uploads {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | `{}` | {} |",
                u.batch_tag,
                u.entry,
                u.keys,
                u.uploaded_time,
                u.signer_thumbprint.as_deref().unwrap_or("-"),
                if u.failures.is_empty() {
                    "pass".to_owned()
                } else {
                    u.failures.join("; ").replace('|', "\\|")
                }
            );
        }
        s
    }

    /// Writes `readiness-<candidate>.md` and `readiness-<candidate>.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join(format!("readiness-{}.md", self.candidate)),
            self.markdown(),
        )?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(format!("readiness-{}.json", self.candidate)), json)
    }
}

/// Why the check could not run at all (a failed check is a report, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadinessError {
    /// The trust anchors did not parse.
    #[error("trust anchors: {0}")]
    Anchors(#[from] efgs_core::trust::TrustError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The date range is empty.
    #[error("--from is after --to")]
    Dates,
}

impl ReadinessError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ReadinessError::Anchors(_) => "readiness-anchors",
            ReadinessError::Http(_) => "readiness-http",
            ReadinessError::Dates => "readiness-dates",
        }
    }
}

#[derive(Default)]
struct Tally {
    failures: Vec<String>,
    checked: u64,
}

impl Tally {
    fn fail(&mut self, s: String) {
        if self.failures.len() < 50 {
            self.failures.push(s);
        } else if self.failures.len() == 50 {
            self.failures.push("... more".to_owned());
        }
    }

    fn check(self, name: &str, what: String) -> Check {
        let result = if self.failures.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        let mut details = vec![what];
        details.extend(self.failures);
        Check {
            name: name.to_owned(),
            result,
            details,
        }
    }
}

/// The callback check (module documentation, check 5): `batches` are the batch tags the peer
/// downloaded, in chain order, with their dates.
pub fn callback_check(opts: &ReadinessOptions, batches: &[(String, Date)]) -> Check {
    let name = "callback".to_owned();
    let Some(path) = &opts.callback_log else {
        return Check {
            name,
            result: Outcome::Skipped,
            details: vec![
                "no delivery log of the candidate's callback endpoint was given \
                 (--callback-log); a peer cannot list or receive another country's callbacks"
                    .to_owned(),
            ],
        };
    };
    let log = match super::callback::read_log(path) {
        Ok(l) => l,
        Err(e) => {
            return Check {
                name,
                result: Outcome::Fail,
                details: vec![format!("the delivery log cannot be read: {e}")],
            };
        }
    };
    let mut t = Tally::default();
    let position: std::collections::HashMap<&str, usize> = batches
        .iter()
        .enumerate()
        .map(|(i, (tag, _))| (tag.as_str(), i))
        .collect();
    let (from, to) = (opts.from.to_string(), opts.to.to_string());
    let mut notified = vec![0u32; batches.len()];
    let mut in_range = 0usize;
    for d in &log {
        if d.date < from || d.date > to {
            continue;
        }
        in_range += 1;
        t.checked += 1;
        match position.get(d.batch_tag.as_str()) {
            Some(&i) => {
                notified[i] += 1;
                if batches[i].1.to_string() != d.date {
                    t.fail(format!(
                        "{} was announced with date {}, the batch is of {}",
                        d.batch_tag, d.date, batches[i].1
                    ));
                }
            }
            None => t.fail(format!(
                "{} ({}) was announced but is not a batch the peer downloaded from {}",
                d.batch_tag, d.date, opts.gateway
            )),
        }
    }
    let first = notified.iter().position(|n| *n > 0);
    let last = notified.iter().rposition(|n| *n > 0);
    let mut summary = format!(
        "{} notifications of {} to {} in the candidate's delivery log {}",
        in_range,
        opts.from,
        opts.to,
        path.display()
    );
    match (first, last) {
        (Some(first), Some(last)) => {
            let span = last - first + 1;
            let missing: Vec<&str> = (first..=last)
                .filter(|i| notified[*i] == 0)
                .map(|i| batches[i].0.as_str())
                .collect();
            let _ = write!(
                summary,
                "; batches {} to {}: {} of {span} notified",
                batches[first].0,
                batches[last].0,
                span - missing.len()
            );
            for m in missing {
                t.fail(format!("batch {m} was not notified to the candidate"));
            }
            let repeated: u32 = notified.iter().map(|n| n.saturating_sub(1)).sum();
            if repeated > 0 {
                let _ = write!(summary, "; {repeated} notifications repeated");
            }
            let after = batches.len() - 1 - last;
            if after > 0 {
                let _ = write!(
                    summary,
                    "; {after} batches cut after the last logged notification (not judged)"
                );
            }
        }
        _ => t.fail(format!(
            "no notification of a batch from {} to {} reached the candidate's endpoint",
            opts.from, opts.to
        )),
    }
    t.check(&name, summary)
}

/// Runs the readiness check; see the module documentation.
pub async fn check_readiness(opts: &ReadinessOptions) -> Result<ReadinessReport, ReadinessError> {
    if opts.from > opts.to {
        return Err(ReadinessError::Dates);
    }
    let started = OffsetDateTime::now_utc();
    let anchors = TrustAnchors::from_pem_bundle(&opts.anchors_pem)?;
    let urls = Arc::new(std::sync::RwLock::new(vec![
        opts.gateway.trim_end_matches('/').to_owned(),
    ]));
    let link = Http::new(urls, &[&opts.peer], opts.timeout)?;
    let me = opts.peer.country.clone();
    let cand = opts.candidate.clone();

    let mut download = Tally::default();
    let mut signature = Tally::default();
    let mut registered = Tally::default();
    let mut validation = Tally::default();
    let mut uploads = Vec::new();
    let mut seen = HashSet::new();
    let mut batches_read = 0u64;
    let mut chain: Vec<(String, Date)> = Vec::new();
    let mut cand_keys = 0u64;

    let mut date = opts.from;
    while date <= opts.to {
        let mut next: Option<String> = None;
        loop {
            let d = next
                .as_deref()
                .and_then(|t| BatchTag::parse(t).ok())
                .map_or(date, |t| t.date);
            match link
                .download(&me, d, next.as_deref(), BodyFormat::Protobuf)
                .await
            {
                Ok(None) => break,
                Err(e) => {
                    download.fail(format!(
                        "download {d} {}: {e}",
                        next.as_deref().unwrap_or("")
                    ));
                    break;
                }
                Ok(Some(served)) => {
                    let Ok(tag) = BatchTag::parse(&served.tag) else {
                        download.fail(format!("batch tag {} is not yyyyMMdd-N", served.tag));
                        break;
                    };
                    if tag.date > opts.to {
                        break;
                    }
                    if seen.insert(served.tag.clone()) {
                        batches_read += 1;
                        chain.push((served.tag.clone(), tag.date));
                        download.checked += 1;
                        let keys = match served.keys() {
                            Ok(k) => k,
                            Err(e) => {
                                download.fail(format!("batch {}: {e}", served.tag));
                                Vec::new()
                            }
                        };
                        let found = examine_batch(
                            &link,
                            &me,
                            &cand,
                            tag,
                            &served.tag,
                            &keys,
                            &anchors,
                            &mut signature,
                            &mut registered,
                            &mut validation,
                            &mut download,
                        )
                        .await;
                        cand_keys += found.iter().map(|u| u.keys).sum::<u64>();
                        uploads.extend(found);
                    }
                    match served.next {
                        Some(n) => next = Some(n),
                        None => break,
                    }
                }
            }
        }
        match date.next_day() {
            Some(d) => date = d,
            None => break,
        }
    }
    if uploads.is_empty() {
        download.fail(format!(
            "no upload of {cand} in the batches of {} to {}",
            opts.from, opts.to
        ));
    }
    let checks = vec![
        download.check(
            "download",
            format!(
                "{batches_read} batches read as {me} from {} to {}, {} uploads of {cand} found",
                opts.from,
                opts.to,
                uploads.len()
            ),
        ),
        {
            let n = signature.checked;
            signature.check(
                "audit-signature",
                format!("{n} uploads re-verified through the audit endpoint"),
            )
        },
        {
            let n = registered.checked;
            registered.check(
                "signer-registered",
                format!("{n} signer certificates checked against the trust list of {cand}"),
            )
        },
        {
            let n = validation.checked;
            validation.check(
                "key-validation",
                format!("{n} keys checked against the gateway's validation rules"),
            )
        },
        callback_check(opts, &chain),
    ];
    let ready = checks.iter().all(|c| c.result != Outcome::Fail) && !uploads.is_empty();
    Ok(ReadinessReport {
        tool: format!("efgs-sim readiness {}", env!("CARGO_PKG_VERSION")),
        checked_by: me,
        checked_by_certificate: opts.peer.auth_thumbprint.as_str().to_owned(),
        candidate: cand,
        gateway: opts.gateway.clone(),
        dates: (opts.from.to_string(), opts.to.to_string()),
        started_at: rfc3339(started),
        finished_at: rfc3339(OffsetDateTime::now_utc()),
        batches_read,
        candidate_uploads: uploads.len() as u64,
        candidate_keys: cand_keys,
        checks,
        uploads,
        ready,
    })
}

#[allow(clippy::too_many_arguments)]
async fn examine_batch(
    link: &Http,
    me: &str,
    cand: &str,
    tag: BatchTag,
    raw_tag: &str,
    keys: &[DiagnosisKey],
    anchors: &TrustAnchors,
    signature: &mut Tally,
    registered: &mut Tally,
    validation: &mut Tally,
    download: &mut Tally,
) -> Vec<UploadCheck> {
    let entries: Vec<AuditRecord> = match link.audit(me, tag.date, raw_tag).await {
        Ok(Audited::Entries(e)) => e,
        Ok(Audited::Status(404, _)) if keys.is_empty() => return Vec::new(),
        Ok(Audited::Status(s, m)) => {
            download.fail(format!("audit {raw_tag}: {s} {m}"));
            return Vec::new();
        }
        Err(e) => {
            download.fail(format!("audit {raw_tag}: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.country != me) {
        let amount = usize::try_from(e.amount).unwrap_or(usize::MAX);
        let Some(end) = pos.checked_add(amount).filter(|end| *end <= keys.len()) else {
            signature.fail(format!(
                "{raw_tag}: the audit amounts exceed the {} keys downloaded",
                keys.len()
            ));
            return out;
        };
        let slice = &keys[pos..end];
        pos = end;
        if e.country != cand {
            continue;
        }
        let mut u = UploadCheck {
            batch_tag: raw_tag.to_owned(),
            entry: i,
            keys: e.amount,
            uploaded_time: e.uploaded_time.clone(),
            signer_thumbprint: None,
            failures: Vec::new(),
        };
        let uploaded = OffsetDateTime::parse(
            &e.uploaded_time,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        // 2: the signature over the canonical bytes of exactly these keys.
        signature.checked += 1;
        let signer = match verify_detached(
            &e.batch_signature,
            &canonical_batch_bytes(slice),
            uploaded.unwrap_or_else(OffsetDateTime::now_utc),
            &SignaturePolicy::default(),
        ) {
            Ok(s) => Some(s),
            Err(err) => {
                let m = format!("signature does not verify over the downloaded keys: {err}");
                signature.fail(format!("{raw_tag} entry {i}: {m}"));
                u.failures.push(m);
                None
            }
        };
        // 3: the signer is the candidate's registered SIGNING certificate.
        registered.checked += 1;
        if let Some(signer) = &signer {
            u.signer_thumbprint = Some(signer.thumbprint.as_str().to_owned());
            let mut fails = Vec::new();
            if signer.country != cand {
                fails.push(format!(
                    "signed by a certificate of {} (subject C={}), not of {cand}",
                    signer.country, signer.country
                ));
            }
            if signer.thumbprint.as_str() != e.uploader_signing_thumbprint {
                fails.push(format!(
                    "signer {} is not the uploaderSigningThumbprint {}",
                    signer.thumbprint, e.uploader_signing_thumbprint
                ));
            }
            match (&e.signing_certificate, &e.signing_certificate_operator_signature) {
                (Some(pem), Some(sig)) => {
                    let entry = TrustListEntry {
                        country: cand.to_owned(),
                        cert_type: CertificateType::Signing,
                        pem: pem.clone(),
                        signature: sig.clone(),
                        thumbprint: signer.thumbprint.clone(),
                        revoked: false,
                    };
                    match entry.verify(anchors) {
                        Ok(v) if Thumbprint::of_der(v.der()) == signer.thumbprint => {}
                        Ok(_) => fails.push(
                            "the registered signing certificate is not the signer".to_owned(),
                        ),
                        Err(err) => fails.push(format!(
                            "the signing certificate is not registered to {cand} by the trust anchor: {err}"
                        )),
                    }
                }
                _ => fails.push(format!(
                    "the signer certificate is not on the trust list as a SIGNING certificate of {cand}"
                )),
            }
            for f in fails {
                registered.fail(format!("{raw_tag} entry {i}: {f}"));
                u.failures.push(f);
            }
        }
        // 4: the gateway's validation rules on every key, at the upload time.
        validation.checked += slice.len() as u64;
        let batch = DiagnosisKeyBatch {
            keys: slice.to_vec(),
        };
        let at = uploaded.unwrap_or_else(OffsetDateTime::now_utc);
        if let Err(err) = validate_batch(&batch, at, &ValidationPolicy::default())
            .and_then(|()| check_origins(&batch.keys, cand))
        {
            let m = format!("key validation: {err}");
            validation.fail(format!("{raw_tag} entry {i}: {m}"));
            u.failures.push(m);
        }
        out.push(u);
    }
    if pos != keys.len() {
        signature.fail(format!(
            "{raw_tag}: the audit amounts cover {pos} of {} keys downloaded",
            keys.len()
        ));
    }
    out
}
