//! The audit events and metrics of API requests: a [`Note`] collects what a handler learns
//! (caller, outcome, counts) and [`finish`] stores the events before the response leaves, so
//! an answered request is in the trail (ADR 0017). Requests refused before authentication
//! (unknown routes, media-type routing) are counted in the metrics only.

use efgs_core::Error;
use efgs_core::callback_url::{CallbackHost, parse_callback_url};
use efgs_core::cert::Thumbprint;
use efgs_core::gateway::{Credentials, RequestError};
use efgs_core::identity::{
    ClientIdentity, identity_from_cert_header, identity_from_certificate, normalise_thumbprint,
};
use efgs_core::store::{SubscriptionUpsert, UploadOutcome};
use efgs_core::trail::{Event, Level, names};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::Ops;
use crate::error::{answer_for, problem};

/// Longest value of a client-chosen field (batchTag, path date, DN) kept in an event.
const MAX_VALUE: usize = 128;

fn clip(v: &str) -> String {
    v.chars().take(MAX_VALUE).collect()
}

/// The route label of a request path, for the metrics.
pub(crate) fn route_of(path: &str) -> &'static str {
    if path == "/diagnosiskeys/upload" {
        "upload"
    } else if path.starts_with("/diagnosiskeys/download/") {
        "download"
    } else if path.starts_with("/diagnosiskeys/audit/download/") {
        "audit"
    } else if path == "/diagnosiskeys/callback" || path.starts_with("/diagnosiskeys/callback/") {
        "callback"
    } else if path == "/diagnosiskeys" {
        "options"
    } else if path == "/healthz" {
        "healthz"
    } else {
        "other"
    }
}

/// The identity a refused caller presented: thumbprint and subject (never a key).
#[derive(Clone, Debug, Default)]
pub(crate) struct Presented {
    thumbprint: Option<String>,
    subject: Option<String>,
}

impl Presented {
    /// What `creds` name.
    pub(crate) fn of(creds: &Credentials<'_>) -> Self {
        match creds {
            Credentials::ProxyHeaders {
                thumbprint,
                dn,
                certificate,
            } => {
                let from_cert = certificate.and_then(|c| identity_from_cert_header(c).ok());
                Presented {
                    thumbprint: from_cert.map(|id| id.thumbprint.to_string()).or_else(|| {
                        thumbprint.map(|t| {
                            normalise_thumbprint(t)
                                .map_or_else(|| "unreadable".to_owned(), |t| t.to_string())
                        })
                    }),
                    subject: dn.map(clip),
                }
            }
            Credentials::TlsCertificate(der) => {
                let id = identity_from_certificate(der).ok();
                Presented {
                    thumbprint: Some(Thumbprint::of_der(der).to_string()),
                    subject: id.map(|id| format!("C={}", id.country)),
                }
            }
            Credentials::RepeatedHeader(_) | Credentials::None => Presented::default(),
        }
    }
}

#[derive(Debug)]
enum Auth {
    Ok(ClientIdentity),
    Refused {
        reason: &'static str,
        presented: Presented,
    },
}

/// What a request did, for its audit events.
#[derive(Debug)]
pub(crate) struct Note {
    route: &'static str,
    /// The action's event; `None`: the request records its authentication only.
    event: Option<&'static str>,
    auth: Option<Auth>,
    fields: Vec<(&'static str, String)>,
    outcome: Option<&'static str>,
}

impl Note {
    fn new(route: &'static str, event: &'static str) -> Self {
        Note {
            route,
            event: Some(event),
            auth: None,
            fields: Vec::new(),
            outcome: None,
        }
    }

    /// An upload, with its `batchTag` header.
    pub(crate) fn upload(headers: &HeaderMap) -> Self {
        let mut n = Note::new("upload", names::UPLOAD);
        let tag = headers.get("batchtag").map_or_else(
            || "-".to_owned(),
            |v| clip(&String::from_utf8_lossy(v.as_bytes())),
        );
        n.fields.push(("batch_tag", tag));
        n
    }

    /// A download of `date`, with its `batchTag` header if any.
    pub(crate) fn download(headers: &HeaderMap, date: &str) -> Self {
        let mut n = Note::new("download", names::DOWNLOAD);
        n.fields.push(("date", clip(date)));
        if let Some(v) = headers.get("batchtag") {
            n.fields.push((
                "requested_tag",
                clip(&String::from_utf8_lossy(v.as_bytes())),
            ));
        }
        n
    }

    /// An audit query of `date` and `tag`.
    pub(crate) fn audit(date: &str, tag: &str) -> Self {
        let mut n = Note::new("audit", names::AUDIT_QUERY);
        n.fields.push(("date", clip(date)));
        n.fields.push(("batch_tag", clip(tag)));
        n
    }

    /// A listing of the caller's callback subscriptions: its authentication is recorded, the
    /// listing itself is no event (it changes nothing).
    pub(crate) fn callback_list() -> Self {
        let mut n = Note::new("callback", names::CALLBACK_SUBSCRIPTION);
        n.event = None;
        n
    }

    /// A callback subscription upsert of `id` to `url`: the id, and the URL's host and port
    /// only (its user information or path may hold a secret of the receiver).
    pub(crate) fn callback_put(id: &str, url: Option<&str>) -> Self {
        let mut n = Note::new("callback", names::CALLBACK_SUBSCRIPTION);
        n.fields.push(("action", "put".to_owned()));
        n.fields.push(("callback_id", clip(id)));
        let (host, port) = url.map_or_else(|| ("-".to_owned(), "-".to_owned()), host_and_port);
        n.fields.push(("host", host));
        n.fields.push(("port", port));
        n
    }

    /// A callback subscription deletion of `id`.
    pub(crate) fn callback_delete(id: &str) -> Self {
        let mut n = Note::new("callback", names::CALLBACK_SUBSCRIPTION);
        n.fields.push(("action", "delete".to_owned()));
        n.fields.push(("callback_id", clip(id)));
        n
    }

    /// A subscription stored (`created`, `updated`, `reactivated`).
    pub(crate) fn subscribed(&mut self, outcome: SubscriptionUpsert) {
        self.outcome = Some(outcome.code());
    }

    /// A subscription deleted.
    pub(crate) fn unsubscribed(&mut self) {
        self.outcome = Some("deleted");
    }

    /// The action was refused after authentication with `e` (its outcome: the error code).
    pub(crate) fn failed(&mut self, e: &Error) {
        self.outcome = Some(answer_for(e).code);
    }

    /// The authentication's result.
    pub(crate) fn authenticated(
        &mut self,
        ops: &Ops,
        result: &Result<ClientIdentity, Error>,
        presented: Presented,
    ) {
        self.auth = Some(match result {
            Ok(id) => Auth::Ok(id.clone()),
            Err(e) => {
                let reason = answer_for(e).code;
                ops.metrics.auth_failure(reason);
                Auth::Refused { reason, presented }
            }
        });
    }

    /// An upload's outcome.
    pub(crate) fn upload_outcome(
        &mut self,
        ops: &Ops,
        outcome: &UploadOutcome,
        signer: Option<&Thumbprint>,
    ) {
        self.outcome = Some(outcome.code());
        let keys = match outcome {
            UploadOutcome::Stored(r) => {
                ops.metrics.keys_uploaded(&r.country, r.number_of_keys);
                Some(r.number_of_keys)
            }
            UploadOutcome::Replayed(r) => Some(r.number_of_keys),
            UploadOutcome::BatchTagExists { .. } => None,
            UploadOutcome::DuplicateKeys(c) => {
                Some((c.ok.len() + c.conflict.len() + c.failed.len()) as u64)
            }
        };
        if let Some(k) = keys {
            self.fields.push(("keys", k.to_string()));
        }
        if let Some(s) = signer {
            self.fields.push(("signer", s.to_string()));
        }
    }

    /// A refused upload.
    pub(crate) fn upload_error(&mut self, ops: &Ops, e: &Error) {
        let code = answer_for(e).code;
        self.outcome = Some(code);
        if matches!(
            e,
            Error::Signature(_) | Error::Request(RequestError::UntrustedSigner(_))
        ) {
            ops.metrics.signature_failure(code);
        }
    }

    /// A download served.
    pub(crate) fn downloaded(&mut self, ops: &Ops, country: &str, tag: &str, keys: u64) {
        ops.metrics.keys_downloaded(country, keys);
        self.outcome = Some("served");
        self.fields.push(("batch_tag", tag.to_owned()));
        self.fields.push(("keys", keys.to_string()));
    }

    /// An audit query answered with `entries` entries.
    pub(crate) fn audited(&mut self, entries: usize) {
        self.outcome = Some("served");
        self.fields.push(("entries", entries.to_string()));
    }

    /// The request's events, given its response status.
    fn events(self, ops: &Ops, status: StatusCode) -> Vec<Event> {
        let status = status.as_u16();
        let trail = &ops.trail;
        match self.auth {
            None => Vec::new(),
            Some(Auth::Refused { reason, presented }) => {
                vec![
                    trail
                        .event(Level::Warn, names::AUTH_FAILURE)
                        .field("route", self.route)
                        .field("reason", reason)
                        .field("thumbprint", presented.thumbprint.as_deref().unwrap_or("-"))
                        .field("subject", presented.subject.as_deref().unwrap_or("-"))
                        .field("status", status),
                ]
            }
            Some(Auth::Ok(id)) => {
                let success = trail
                    .event(Level::Info, names::AUTH_SUCCESS)
                    .field("route", self.route)
                    .field("country", &id.country)
                    .field("thumbprint", &id.thumbprint);
                let level = if status >= 400 {
                    Level::Warn
                } else {
                    Level::Info
                };
                let Some(event) = self.event else {
                    return vec![success];
                };
                let mut action = trail
                    .event(level, event)
                    .field("country", &id.country)
                    .field("thumbprint", &id.thumbprint);
                for (k, v) in self.fields {
                    action.push(k, v);
                }
                action.push("outcome", self.outcome.unwrap_or("refused"));
                action.push("status", status);
                vec![success, action]
            }
        }
    }
}

/// The host and port of a callback URL (`-` when it does not parse as one); never its user
/// information, path or query.
pub(crate) fn host_and_port(url: &str) -> (String, String) {
    match parse_callback_url(url) {
        Ok(u) => {
            let host = match u.host() {
                CallbackHost::Domain(d) => clip(d),
                CallbackHost::Ip(ip) => ip.to_string(),
            };
            (host, u.port().to_string())
        }
        Err(_) => ("-".to_owned(), "-".to_owned()),
    }
}

/// Stores the request's events, then lets the response go; 503 when the trail cannot be
/// written (the action happened but cannot be reported as done without its record; a retry is
/// answered from the stored state: an upload is then a replay).
pub(crate) async fn finish(ops: &Ops, note: Note, res: Response) -> Response {
    let events = note.events(ops, res.status());
    match ops.trail.record(events).await {
        Ok(()) => res,
        // The request already failed on the store (an outage): that answer stands.
        Err(_) if res.status().is_server_error() => res,
        Err(e) => {
            let mut res = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "audit-trail-unavailable",
                &format!("{e}; retry later"),
                None,
                None,
            );
            res.headers_mut().insert(
                warp::http::header::RETRY_AFTER,
                warp::http::HeaderValue::from_static("5"),
            );
            res
        }
    }
}
