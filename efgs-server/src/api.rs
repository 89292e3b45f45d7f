//! The EFGS HTTP API (protocol §1 with the changes of decisions.md): routing, header and
//! body extraction, and replies. Every handler calls one efgs-core use case; errors go through
//! the one status table in [`crate::error`].

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use efgs_core::Error;
use efgs_core::callback;
use efgs_core::callback_url::{IpCidr, Resolver, any_contains};
use efgs_core::gateway::{Credentials, Gateway, UploadRequest};
use efgs_core::media;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::error::{error_response, problem, upload_response};
use crate::net::{BodyError, ConnectionInfo, read_limited};
use crate::ops::Ops;
use crate::ops::request::{Note, finish, route_of};
use crate::server::Clock;

/// Header carrying the client certificate's SHA-256 (set by the TLS proxy).
pub(crate) const HEADER_THUMBPRINT: &str = "x-ssl-client-sha256";
/// Header carrying the client certificate's subject DN (set by the TLS proxy).
pub(crate) const HEADER_DN: &str = "x-ssl-client-dn";
/// Header carrying the URL-encoded client certificate PEM (optional, set by the TLS proxy).
pub(crate) const HEADER_CERT: &str = "x-ssl-client-cert";

/// How callers prove who they are.
#[derive(Clone, Debug)]
pub(crate) enum ClientAuth {
    /// A TLS-terminating proxy forwards the identity headers; they are honoured only from
    /// these addresses and ignored from any other (the request then gets 403).
    ProxyHeaders {
        /// The proxies' addresses.
        trusted: Vec<IpCidr>,
        /// Whether `X-SSL-Client-Cert` is honoured (`auth.proxy_cert_header`).
        cert_header: bool,
    },
    /// This server terminates TLS and requires client certificates.
    MutualTls,
}

/// Everything the handlers need.
#[derive(Clone)]
pub(crate) struct AppState {
    /// The use cases.
    pub(crate) gateway: Gateway,
    /// How callers authenticate.
    pub(crate) auth: ClientAuth,
    /// The request body limit in bytes (413 beyond it, never buffered whole).
    pub(crate) body_limit: u64,
    /// The bytes all uploads in flight may hold together (503 beyond it).
    pub(crate) uploads_in_flight: Arc<UploadBudget>,
    /// The clock.
    pub(crate) clock: Clock,
    /// The audit trail and the metrics.
    pub(crate) ops: Ops,
    /// Resolves callback host names at PUT (the same resolver as the delivery worker's).
    pub(crate) resolver: Arc<dyn Resolver>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("gateway", &self.gateway)
            .field("auth", &self.auth)
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// The bytes that uploads in flight may hold together (`upload.max_in_flight_bytes`), in
/// KiB permits: each upload reserves its `Content-Length` (or the body limit when it has none)
/// before its body is read, and holds it until it is answered.
#[derive(Debug)]
pub(crate) struct UploadBudget {
    permits: tokio::sync::Semaphore,
}

impl UploadBudget {
    const UNIT: u64 = 1024;

    pub(crate) fn new(max_bytes: u64) -> Self {
        let units = max_bytes
            .div_ceil(Self::UNIT)
            .min(tokio::sync::Semaphore::MAX_PERMITS as u64);
        UploadBudget {
            permits: tokio::sync::Semaphore::new(usize::try_from(units).unwrap_or(usize::MAX)),
        }
    }

    /// Reserves room for `bytes`, or `None` when the budget is spent (never waits).
    fn reserve(&self, bytes: u64) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let units = u32::try_from(bytes.div_ceil(Self::UNIT).max(1)).unwrap_or(u32::MAX);
        self.permits.try_acquire_many(units).ok()
    }
}

/// The complete API filter.
pub(crate) fn api(
    state: AppState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let state = Arc::new(state);
    let with_state = {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let conn = warp::ext::optional::<ConnectionInfo>();

    // Path before method, so an unknown path is 404 and a known one with the wrong method 405.
    let options = warp::path("diagnosiskeys")
        .and(warp::path::end())
        .and(warp::options())
        .map(options_reply);
    let health = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| Response::new(Bytes::from_static(b"ok").into()));

    let upload = warp::path!("diagnosiskeys" / "upload")
        .and(warp::post())
        .and(with_state.clone())
        .and(conn)
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            |state: Arc<AppState>, conn: Option<ConnectionInfo>, headers: HeaderMap, body| async move {
                let mut note = Note::upload(&headers);
                let res = upload_handler(&state, conn.as_ref(), &headers, body, &mut note).await;
                finish(&state.ops, note, res).await
            },
        );

    let download = warp::path!("diagnosiskeys" / "download" / String)
        .and(warp::get())
        .and(with_state.clone())
        .and(conn)
        .and(warp::header::headers_cloned())
        .then(
            |date: String,
             state: Arc<AppState>,
             conn: Option<ConnectionInfo>,
             headers: HeaderMap| async move {
                let mut note = Note::download(&headers, &date);
                let res = download_handler(&state, conn.as_ref(), &headers, &date, &mut note).await;
                finish(&state.ops, note, res).await
            },
        );

    // Callback administration (protocol §1.5-§1.7). Path before method: the list answers 405
    // to anything but GET, a subscription to anything but PUT and DELETE.
    let callbacks = warp::path!("diagnosiskeys" / "callback")
        .and(warp::get())
        .and(with_state.clone())
        .and(conn)
        .and(warp::header::headers_cloned())
        .then(
            |state: Arc<AppState>, conn: Option<ConnectionInfo>, headers: HeaderMap| async move {
                let mut note = Note::callback_list();
                let res = callback_list_handler(&state, conn.as_ref(), &headers, &mut note).await;
                finish(&state.ops, note, res).await
            },
        );
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let subscribe = warp::path!("diagnosiskeys" / "callback" / String)
        .and(warp::put())
        .and(raw_query)
        .and(with_state.clone())
        .and(conn)
        .and(warp::header::headers_cloned())
        .then(
            |id: String,
             query: String,
             state: Arc<AppState>,
             conn: Option<ConnectionInfo>,
             headers: HeaderMap| async move {
                let id = callback::decode_path_segment(&id);
                let url = callback::url_parameter(&query);
                let mut note = Note::callback_put(&id, url.as_deref());
                let res = callback_put_handler(
                    &state,
                    conn.as_ref(),
                    &headers,
                    &id,
                    url.as_deref(),
                    &mut note,
                )
                .await;
                finish(&state.ops, note, res).await
            },
        );
    let unsubscribe =
        warp::path!("diagnosiskeys" / "callback" / String)
            .and(warp::delete())
            .and(with_state.clone())
            .and(conn)
            .and(warp::header::headers_cloned())
            .then(
                |id: String,
                 state: Arc<AppState>,
                 conn: Option<ConnectionInfo>,
                 headers: HeaderMap| async move {
                    let id = callback::decode_path_segment(&id);
                    let mut note = Note::callback_delete(&id);
                    let res =
                        callback_delete_handler(&state, conn.as_ref(), &headers, &id, &mut note)
                            .await;
                    finish(&state.ops, note, res).await
                },
            );

    // Path before method, as for every route: an unknown path is 404 whatever the method.
    let audit = warp::path!("diagnosiskeys" / "audit" / "download" / String / String)
        .and(warp::get())
        .and(with_state)
        .and(conn)
        .and(warp::header::headers_cloned())
        .then(
            |date: String,
             tag: String,
             state: Arc<AppState>,
             conn: Option<ConnectionInfo>,
             headers: HeaderMap| async move {
                let mut note = Note::audit(&date, &tag);
                let res =
                    audit_handler(&state, conn.as_ref(), &headers, &date, &tag, &mut note).await;
                finish(&state.ops, note, res).await
            },
        );

    let routes = options
        .or(health)
        .unify()
        .or(upload)
        .unify()
        .or(download)
        .unify()
        .or(audit)
        .unify()
        .or(callbacks)
        .unify()
        .or(subscribe)
        .unify()
        .or(unsubscribe)
        .unify()
        .recover(recover)
        .unify();
    let metrics = state.ops.metrics.clone();
    warp::path::full()
        .and(routes)
        .map(move |path: warp::path::FullPath, res: Response| {
            metrics.request(route_of(path.as_str()), res.status().as_u16());
            res
        })
}

fn options_reply() -> Response {
    let mut res = Response::new(Bytes::new().into());
    let h = res.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static("POST,GET,OPTIONS"));
    h.insert(
        header::ACCEPT,
        HeaderValue::from_static(media::OPTIONS_ACCEPT),
    );
    res
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn path_of(headers: &HeaderMap, fallback: &str) -> String {
    let _ = headers;
    fallback.to_owned()
}

/// The credentials of a request under the configured authentication mode.
fn credentials<'a>(
    auth: &ClientAuth,
    conn: Option<&'a ConnectionInfo>,
    headers: &'a HeaderMap,
) -> Credentials<'a> {
    match auth {
        ClientAuth::MutualTls => match conn.and_then(|c| c.peer_certificate.as_deref()) {
            Some(der) => Credentials::TlsCertificate(der),
            None => Credentials::None,
        },
        ClientAuth::ProxyHeaders {
            trusted,
            cert_header,
        } => {
            let from_proxy = conn.is_some_and(|c| any_contains(trusted, c.remote.ip()));
            if !from_proxy {
                if headers.contains_key(HEADER_THUMBPRINT)
                    || headers.contains_key(HEADER_DN)
                    || headers.contains_key(HEADER_CERT)
                {
                    // Debug only: a client can send these on every request (no log flooding).
                    tracing::debug!("identity headers from an untrusted address ignored");
                }
                return Credentials::None;
            }
            // A proxy that appends instead of replacing lets the client's own header through.
            for name in [HEADER_THUMBPRINT, HEADER_DN, HEADER_CERT] {
                if headers.get_all(name).iter().nth(1).is_some() {
                    return Credentials::RepeatedHeader(name);
                }
            }
            Credentials::ProxyHeaders {
                thumbprint: header_str(headers, HEADER_THUMBPRINT),
                dn: header_str(headers, HEADER_DN),
                certificate: if *cert_header {
                    header_str(headers, HEADER_CERT)
                } else {
                    None
                },
            }
        }
    }
}

/// Authenticates the caller and notes the outcome for the audit trail (with the presented
/// thumbprint and subject when refused).
async fn authenticate(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    note: &mut Note,
) -> Result<efgs_core::identity::ClientIdentity, Error> {
    let creds = credentials(&state.auth, conn, headers);
    let presented = crate::ops::request::Presented::of(&creds);
    let result = state.gateway.authenticate(creds, (state.clock)()).await;
    note.authenticated(&state.ops, &result, presented);
    result
}

async fn upload_handler<S, B>(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    body: S,
    note: &mut Note,
) -> Response
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    const PATH: &str = "/diagnosiskeys/upload";
    let content_type = header_str(headers, "content-type");
    let accept = header_str(headers, "accept");
    // Routing (415/406) comes before authentication, as in the reference.
    if let Err(e) = media::route_upload(content_type, accept) {
        return error_response(&e.into(), PATH);
    }
    let who = match authenticate(state, conn, headers, note).await {
        Ok(who) => who,
        Err(e) => return error_response(&e, PATH),
    };
    let (format, version) = match media::negotiate_upload(content_type, accept) {
        Ok(v) => v,
        Err(e) => return error_response(&e.into(), PATH),
    };
    let length = header_str(headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    // Memory held by uploads in flight is bounded: beyond the budget, 503 with Retry-After
    // before the body is read (a body over the limit gets its 413 first).
    let too_long = length.is_some_and(|l| l > state.body_limit);
    let wanted = length.unwrap_or(state.body_limit).min(state.body_limit);
    let reserved = (!too_long)
        .then(|| state.uploads_in_flight.reserve(wanted))
        .flatten();
    if reserved.is_none() && !too_long {
        tracing::info!(
            status = 503,
            code = "uploads-in-flight-limit",
            "upload refused: upload.max_in_flight_bytes in use"
        );
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "uploads-in-flight-limit",
            "Too many uploads in flight; retry later",
            None,
            Some(PATH),
        );
    }
    let bytes: Bytes = match read_limited(body, length, state.body_limit).await {
        Ok(b) => b,
        Err(e) => return body_error(&e, PATH),
    };
    let req = UploadRequest {
        batch_tag: header_str(headers, "batchtag"),
        batch_signature: header_str(headers, "batchsignature"),
        format,
        version,
        body: &bytes,
    };
    match state
        .gateway
        .upload_signed(&who, req, (state.clock)())
        .await
    {
        Ok((outcome, signer)) => {
            note.upload_outcome(&state.ops, &outcome, signer.as_ref());
            upload_response(&outcome, PATH)
        }
        Err(e) => {
            note.upload_error(&state.ops, &e);
            error_response(&e, PATH)
        }
    }
}

fn body_error(e: &BodyError, path: &str) -> Response {
    tracing::info!(code = e.code(), "request body refused");
    problem(e.status(), e.code(), &e.to_string(), None, Some(path))
}

async fn download_handler(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    date: &str,
    note: &mut Note,
) -> Response {
    let path = path_of(headers, "/diagnosiskeys/download");
    let negotiated = media::negotiate_download(header_str(headers, "accept"));
    if let Err(e) = &negotiated
        && e.is_routing()
    {
        return error_response(&e.clone().into(), &path);
    }
    let who = match authenticate(state, conn, headers, note).await {
        Ok(who) => who,
        Err(e) => return error_response(&e, &path),
    };
    let format = match negotiated {
        Ok(f) => f,
        Err(e) => return error_response(&e.into(), &path),
    };
    let tag = header_str(headers, "batchtag");
    match state
        .gateway
        .download(&who, date, tag, format, (state.clock)())
        .await
    {
        Ok(d) => {
            note.downloaded(
                &state.ops,
                &who.country,
                &d.batch_tag.to_string(),
                d.number_of_keys,
            );
            let mut res = Response::new(d.body.clone().into());
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            );
            h.insert("X-Protobuf-Schema", HeaderValue::from_static("Efgs.proto"));
            h.insert(
                "X-Protobuf-Message",
                HeaderValue::from_static("eu.interop.DiagnosisKeyBatch"),
            );
            if let Ok(v) = HeaderValue::from_str(&d.batch_tag.to_string()) {
                h.insert("batchTag", v);
            }
            if let Ok(v) = HeaderValue::from_str(&d.next_batch_tag_header()) {
                h.insert("nextBatchTag", v);
            }
            res
        }
        Err(e) => {
            note.failed(&e);
            error_response(&e, &path)
        }
    }
}

async fn audit_handler(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    date: &str,
    tag: &str,
    note: &mut Note,
) -> Response {
    let path = "/diagnosiskeys/audit/download";
    if let Err(e) = media::accepts_json(header_str(headers, "accept")) {
        return error_response(&Error::from(e), path);
    }
    if let Err(e) = authenticate(state, conn, headers, note).await {
        return error_response(&e, path);
    }
    match state.gateway.audit(date, tag, (state.clock)()).await {
        Ok(entries) => {
            note.audited(entries.len());
            let body = serde_json::to_vec(&entries).unwrap_or_default();
            let mut res = Response::new(body.into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => {
            note.failed(&e);
            error_response(&e, path)
        }
    }
}

const CALLBACK_PATH: &str = "/diagnosiskeys/callback";

async fn callback_list_handler(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    note: &mut Note,
) -> Response {
    if let Err(e) = media::accepts_json(header_str(headers, "accept")) {
        return error_response(&Error::from(e), CALLBACK_PATH);
    }
    let who = match authenticate(state, conn, headers, note).await {
        Ok(who) => who,
        Err(e) => return error_response(&e, CALLBACK_PATH),
    };
    match state.gateway.subscriptions(&who).await {
        Ok(list) => {
            let body = serde_json::to_vec(&list).unwrap_or_default();
            let mut res = Response::new(body.into());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(e) => error_response(&e, CALLBACK_PATH),
    }
}

async fn callback_put_handler(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    id: &str,
    url: Option<&str>,
    note: &mut Note,
) -> Response {
    let who = match authenticate(state, conn, headers, note).await {
        Ok(who) => who,
        Err(e) => return error_response(&e, CALLBACK_PATH),
    };
    match state
        .gateway
        .subscribe(&who, id, url, state.resolver.as_ref(), (state.clock)())
        .await
    {
        Ok(outcome) => {
            note.subscribed(outcome);
            tracing::info!(country = %who.country, outcome = outcome.code(), "callback subscription stored");
            Response::new(Bytes::new().into())
        }
        Err(e) => {
            note.failed(&e);
            error_response(&e, CALLBACK_PATH)
        }
    }
}

async fn callback_delete_handler(
    state: &AppState,
    conn: Option<&ConnectionInfo>,
    headers: &HeaderMap,
    id: &str,
    note: &mut Note,
) -> Response {
    let who = match authenticate(state, conn, headers, note).await {
        Ok(who) => who,
        Err(e) => return error_response(&e, CALLBACK_PATH),
    };
    match state.gateway.unsubscribe(&who, id).await {
        Ok(()) => {
            note.unsubscribed();
            tracing::info!(country = %who.country, "callback subscription deleted");
            Response::new(Bytes::new().into())
        }
        Err(e) => {
            note.failed(&e);
            error_response(&e, CALLBACK_PATH)
        }
    }
}

async fn recover(rej: Rejection) -> Result<Response, Infallible> {
    let (status, code, message) = if rej.is_not_found() {
        (StatusCode::NOT_FOUND, "not-found", "Not Found")
    } else if rej.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
        )
    } else if let Some(e) = rej.find::<BodyError>() {
        return Ok(body_error(e, ""));
    } else {
        tracing::error!(?rej, "unhandled rejection");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal Server Error.",
        )
    };
    Ok(problem(status, code, message, None, None).into_response())
}
