//! The callback feature in the audit trail and the metrics (issue 11 with issue 10), over the
//! real server on loopback:
//!
//! - `PUT` / `DELETE /diagnosiskeys/callback/{id}` record `callback.subscription` with the
//!   caller, the id, the URL's host and port (never its user information or path), the outcome
//!   and the status; the chain stays intact (`efgs-server audit-log verify` on PostgreSQL).
//! - A refused caller on a callback route gets the same `auth.failure` event as on a download.
//! - A delivered batch, and a receiver failing until its subscription is suspended, record
//!   `callback.delivery` per attempt (`delivered`; `failed` with the attempt number;
//!   `suspended` at WARN) and move `efgs_callback_events_total`.
//! - The HTTP push sends `audit.http_token_file`'s token as `Authorization: Bearer`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use efgs_core::model::CertificateType;
use efgs_core::store::DynInspectableStore;
use efgs_core::trail::parse_line;
use efgs_testkit::callbacks::{
    Answer, Receiver, TestResolver, cut_one_batch, gateway_client_cert, receiver_cert,
};
use efgs_testkit::collector::Collector;
use efgs_testkit::federation::{Federation, TestClock};
use efgs_testkit::harness::{free_port, gateway_env, gateway_files, write_private};
use efgs_testkit::national::Identity;
use support::{Backend, assert_chain, stored};

http_tests!(
    subscription_changes_and_refused_callers_are_in_the_trail,
    deliveries_and_a_suspension_are_in_the_trail_and_the_metrics,
    the_http_push_sends_the_bearer_token,
);

const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A stored event, parsed.
#[derive(Debug)]
struct Ev {
    level: String,
    name: String,
    fields: Vec<(String, String)>,
    line: String,
}

impl Ev {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The fields after the caller's `route`, for comparing events of two routes.
    fn without(&self, key: &str) -> Vec<(String, String)> {
        self.fields
            .iter()
            .filter(|(k, _)| k != key)
            .cloned()
            .collect()
    }
}

async fn events(store: &DynInspectableStore) -> Vec<Ev> {
    let records = stored(store).await;
    assert_chain(&records);
    records
        .iter()
        .map(|r| {
            let e = parse_line(&r.line).unwrap_or_else(|e| panic!("{e:?}: {}", r.line));
            Ev {
                level: e.level.as_str().to_owned(),
                name: e.name,
                fields: e.fields,
                line: r.line.clone(),
            }
        })
        .collect()
}

/// The events named `name` whose fields include every pair of `with`.
fn matching<'a>(evs: &'a [Ev], name: &str, with: &[(&str, &str)]) -> Vec<&'a Ev> {
    evs.iter()
        .filter(|e| e.name == name && with.iter().all(|(k, v)| e.get(k) == Some(*v)))
        .collect()
}

/// The one event named `name` with the fields `with`.
fn one<'a>(evs: &'a [Ev], name: &str, with: &[(&str, &str)]) -> &'a Ev {
    let found = matching(evs, name, with);
    assert_eq!(
        found.len(),
        1,
        "one {name} with {with:?}; the trail:\n{}",
        evs.iter()
            .map(|e| e.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    found[0]
}

async fn until(limit: Duration, what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A federation for callbacks: short attempts and retries, 127.0.0.1 allowed, names resolved
/// by `resolver`.
async fn callback_federation(
    backend: &Backend,
    dir: &std::path::Path,
    resolver: Arc<TestResolver>,
    extra: &[(&str, String)],
) -> (Federation, efgs_testkit::pki::GeneratedCert) {
    let now = time::OffsetDateTime::now_utc();
    let (client, cert, key) = gateway_client_cert(dir, now).unwrap();
    let mut b = backend
        .builder()
        .await
        .countries(["DE", "FR"])
        .clock(TestClock::system())
        .resolver(resolver)
        .loopback_callbacks(&cert, &key);
    for (k, v) in extra {
        b = b.setting(k, v.clone());
    }
    (b.build().await.unwrap(), client)
}

/// `efgs-server audit-log verify` on the federation's PostgreSQL schema.
async fn verify_command(backend: &Backend) -> Option<ExitCode> {
    let Backend::Postgres(schema) = backend else {
        return None;
    };
    let (dir, _pki) = gateway_files().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let argv: Vec<OsString> = ["efgs-server", "audit-log", "verify"]
        .into_iter()
        .map(OsString::from)
        .collect();
    Some(
        efgs_server::run(
            argv,
            gateway_env(dir.path(), schema, listen, "efgs-ops-test"),
            std::future::pending(),
        )
        .await,
    )
}

// ---------------------------------------------------------------------------------------------
// Subscriptions and authentication
// ---------------------------------------------------------------------------------------------

async fn subscription_changes_and_refused_callers_are_in_the_trail(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let resolver = TestResolver::new();
    resolver.set("de.test", &[IpAddr::V4(LOCAL)]);
    let (fed, _) = callback_federation(&backend, dir.path(), resolver, &[]).await;
    let de = &fed["DE"];
    let de_auth = fed.pki().country("DE").unwrap().auth_thumbprint.to_string();

    // A URL with user information and a secret path: neither may reach the trail.
    let secret_url = "https://hook-user:s3cr3t-pw@de.test:8443/hooks/tok-9f8e7d";
    let r = de.callback_put("sub-1", Some(secret_url)).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = de
        .callback_put("sub-1", Some("https://de.test/other"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let refused = de
        .callback_put("sub-2", Some("https://127.0.0.3/x"))
        .await
        .unwrap();
    assert_eq!(
        (refused.status, refused.code().as_deref()),
        (400, Some("callback-url-forbidden-address"))
    );
    assert_eq!(de.callback_list().await.unwrap().status, 200);
    assert_eq!(de.callback_delete("sub-1").await.unwrap().status, 200);
    assert_eq!(de.callback_delete("sub-1").await.unwrap().status, 404);
    // Refused callers, on a callback route and on a download, with the same identity.
    let intruder = Identity::raw(Some(&"ab".repeat(32)), Some("C=DE, CN=intruder"));
    let anon_cb = de
        .clone()
        .with_identity(intruder.clone())
        .callback_put("sub-3", Some("https://de.test/x"))
        .await
        .unwrap();
    assert_eq!(anon_cb.status, 403);
    let anon_dl = de
        .download_request(fed.today())
        .identity(intruder)
        .send()
        .await
        .unwrap();
    assert_eq!(anon_dl.status, 403);
    let nobody = de.clone().with_identity(Identity::None);
    assert_eq!(nobody.callback_delete("sub-1").await.unwrap().status, 403);
    assert_eq!(nobody.callback_list().await.unwrap().status, 403);

    // Every answered request is in the trail when its answer arrives (ADR 0017).
    let evs = events(fed.store()).await;
    let base = [("country", "DE"), ("thumbprint", de_auth.as_str())];
    let subs = matching(&evs, "callback.subscription", &base);
    assert_eq!(subs.len(), 5, "{subs:#?}");
    let created = one(
        &evs,
        "callback.subscription",
        &[("callback_id", "sub-1"), ("outcome", "created")],
    );
    assert_eq!(
        created.fields,
        [
            ("country", "DE"),
            ("thumbprint", de_auth.as_str()),
            ("action", "put"),
            ("callback_id", "sub-1"),
            ("host", "de.test"),
            ("port", "8443"),
            ("outcome", "created"),
            ("status", "200"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
        "{}",
        created.line
    );
    assert_eq!(created.level, "INFO");
    let updated = one(&evs, "callback.subscription", &[("outcome", "updated")]);
    assert_eq!(
        (updated.get("host"), updated.get("port")),
        (Some("de.test"), Some("443"))
    );
    let forbidden = one(
        &evs,
        "callback.subscription",
        &[("outcome", "callback-url-forbidden-address")],
    );
    assert_eq!(
        (
            forbidden.level.as_str(),
            forbidden.get("callback_id"),
            forbidden.get("host"),
            forbidden.get("status")
        ),
        ("WARN", Some("sub-2"), Some("127.0.0.3"), Some("400"))
    );
    let deleted = one(&evs, "callback.subscription", &[("outcome", "deleted")]);
    assert_eq!(
        deleted.without("thumbprint"),
        [
            ("country", "DE"),
            ("action", "delete"),
            ("callback_id", "sub-1"),
            ("outcome", "deleted"),
            ("status", "200"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    let missing = one(
        &evs,
        "callback.subscription",
        &[("outcome", "callback-not-found")],
    );
    assert_eq!(
        (missing.level.as_str(), missing.get("status")),
        ("WARN", Some("404"))
    );
    // Each authenticated callback request (3 PUTs, 2 DELETEs, the list) has its auth.success.
    assert_eq!(
        matching(
            &evs,
            "auth.success",
            &[("route", "callback"), ("country", "DE")]
        )
        .len(),
        6
    );
    // The refusal on the callback route is the refusal on the download route.
    let on_cb = one(
        &evs,
        "auth.failure",
        &[("route", "callback"), ("subject", "C=DE, CN=intruder")],
    );
    let on_dl = one(
        &evs,
        "auth.failure",
        &[("route", "download"), ("subject", "C=DE, CN=intruder")],
    );
    assert_eq!(on_cb.without("route"), on_dl.without("route"));
    assert_eq!(
        (on_cb.level.as_str(), on_cb.get("status")),
        ("WARN", Some("403"))
    );
    assert_eq!(
        matching(
            &evs,
            "auth.failure",
            &[("route", "callback"), ("thumbprint", "-")]
        )
        .len(),
        2,
        "the anonymous DELETE and list"
    );
    for e in &evs {
        for secret in ["s3cr3t", "hook-user", "tok-9f8e7d", "/hooks", "/other"] {
            assert!(!e.line.contains(secret), "{secret} in {}", e.line);
        }
    }
    if let Some(code) = verify_command(&backend).await {
        assert_eq!(code, ExitCode::SUCCESS, "audit-log verify");
    }
    fed.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Deliveries
// ---------------------------------------------------------------------------------------------

/// Stores one upload and cuts one batch through `fed`'s gateway (which wakes its delivery).
async fn cut(fed: &Federation, n: u64) -> String {
    let b = cut_one_batch(fed, "opscb", 19_000 + n).await.unwrap();
    b.batch.tag.to_string()
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, _, body) = support::raw_http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"",
    )
    .await;
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body).into_owned()
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn deliveries_and_a_suspension_are_in_the_trail_and_the_metrics(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let resolver = TestResolver::new();
    resolver.set("de.test", &[IpAddr::V4(LOCAL)]);
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port().unwrap()));
    let (fed, client) = callback_federation(
        &backend,
        dir.path(),
        resolver,
        &[
            ("callback.max_retries", "1".to_owned()),
            ("metrics.listen", metrics.to_string()),
        ],
    )
    .await;
    let mut receivers = Vec::new();
    for (country, name) in [("DE", "de.test"), ("FR", "127.0.0.1")] {
        let cert = receiver_cert(&[name], country, fed.now()).unwrap();
        fed.register(&cert.cert_pem, country, CertificateType::Callback)
            .await
            .unwrap();
        let r = Receiver::start(SocketAddr::new(IpAddr::V4(LOCAL), 0), cert)
            .await
            .unwrap();
        r.expect_client(client.thumbprint.clone());
        receivers.push(r);
    }
    let (good, failing) = (&receivers[0], &receivers[1]);
    failing.set_default(Answer::Status(500));
    let put = async |country: &str, id: &str, url: String| {
        let r = fed[country].callback_put(id, Some(&url)).await.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    };
    put("DE", "good", good.url("de.test")).await;
    put("FR", "failing", failing.url("127.0.0.1")).await;
    let tag = cut(&fed, 1).await;
    let store = fed.store().clone();
    // 1 failed attempt, 1 retry a second later, then suspension.
    until(
        Duration::from_secs(15),
        "delivered, and the failing one suspended, in the trail",
        async || {
            let evs = events(&store).await;
            !matching(&evs, "callback.delivery", &[("outcome", "delivered")]).is_empty()
                && !matching(&evs, "callback.delivery", &[("outcome", "suspended")]).is_empty()
        },
    )
    .await;
    assert_eq!(good.delivered_tags(), std::slice::from_ref(&tag));
    assert_eq!(failing.requests().len(), 2, "one attempt and one retry");
    let sub = &fed.store().list_subscriptions("FR").await.unwrap()[0];
    assert!(sub.suspended_at.is_some());

    let evs = events(fed.store()).await;
    let good_port = good.addr().port().to_string();
    let delivered = one(&evs, "callback.delivery", &[("callback_id", "good")]);
    assert_eq!(
        delivered.fields,
        [
            ("country", "DE"),
            ("callback_id", "good"),
            ("host", "de.test"),
            ("port", good_port.as_str()),
            ("batch_tag", tag.as_str()),
            ("attempt", "1"),
            ("outcome", "delivered"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
        "{}",
        delivered.line
    );
    assert_eq!(delivered.level, "INFO");
    let failing_port = failing.addr().port().to_string();
    let attempts = matching(&evs, "callback.delivery", &[("callback_id", "failing")]);
    let summary: Vec<(&str, Option<&str>, Option<&str>)> = attempts
        .iter()
        .map(|e| (e.level.as_str(), e.get("attempt"), e.get("outcome")))
        .collect();
    assert_eq!(
        summary,
        [
            ("INFO", Some("1"), Some("failed")),
            ("WARN", Some("2"), Some("suspended"))
        ],
        "in order"
    );
    for e in &attempts {
        assert_eq!(
            e.without("attempt")
                .into_iter()
                .filter(|(k, _)| k != "outcome")
                .collect::<Vec<_>>(),
            [
                ("country", "FR"),
                ("callback_id", "failing"),
                ("host", "127.0.0.1"),
                ("port", failing_port.as_str()),
                ("batch_tag", tag.as_str()),
                ("reason", "callback-status"),
                ("receiver_status", "500"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
            "{}",
            e.line
        );
    }
    let text = scrape(metrics).await;
    for (series, n) in [
        (
            "efgs_callback_events_total{kind=\"delivery\",outcome=\"delivered\"}",
            1.0,
        ),
        (
            "efgs_callback_events_total{kind=\"delivery\",outcome=\"failed\"}",
            2.0,
        ),
        (
            "efgs_callback_events_total{kind=\"retry\",outcome=\"callback-status\"}",
            1.0,
        ),
        (
            "efgs_callback_events_total{kind=\"suspension\",outcome=\"callback-status\"}",
            1.0,
        ),
        (
            "efgs_http_requests_total{route=\"callback\",status=\"200\"}",
            2.0,
        ),
    ] {
        assert_eq!(sample(&text, series), n, "{series}:\n{text}");
    }
    if let Some(code) = verify_command(&backend).await {
        assert_eq!(code, ExitCode::SUCCESS, "audit-log verify");
    }
    fed.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// The HTTP push's bearer token
// ---------------------------------------------------------------------------------------------

async fn the_http_push_sends_the_bearer_token(backend: Backend) {
    const TOKEN: &str = "collector-token_4f3e.2d1c~b0a9";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("audit-http-token");
    write_private(&token_file, format!("{TOKEN}\n").as_bytes()).unwrap();
    let collector = Collector::start_requiring_bearer(TOKEN).await.unwrap();
    let fed = backend
        .builder()
        .await
        .countries(["DE"])
        .setting("audit.http_url", collector.url())
        .setting("audit.http_token_file", token_file.display().to_string())
        .setting("audit.push_retry_ms", "50")
        .build()
        .await
        .unwrap();
    let de = &fed["DE"];
    assert_eq!(
        de.upload(
            &de.keys(3),
            "token-1",
            efgs_core::media::BodyFormat::Protobuf
        )
        .await
        .unwrap()
        .status,
        201
    );
    let head = fed.store().append_audit_events(Vec::new()).await.unwrap();
    until(
        Duration::from_secs(10),
        "the collector acknowledges every event",
        async || collector.seqs().len() as u64 >= head,
    )
    .await;
    let auth = collector.authorizations();
    assert!(!auth.is_empty());
    assert!(
        auth.iter()
            .all(|a| a.as_deref() == Some(&*format!("Bearer {TOKEN}"))),
        "{auth:?}"
    );
    fed.shutdown().await.unwrap();

    // The control: without the token the same collector acknowledges nothing.
    let strict = Collector::start_requiring_bearer(TOKEN).await.unwrap();
    let plain = Backend::Memory
        .builder()
        .await
        .countries(["DE"])
        .setting("audit.http_url", strict.url())
        .setting("audit.push_retry_ms", "50")
        .build()
        .await
        .unwrap();
    until(
        Duration::from_secs(10),
        "a few refused pushes",
        async || strict.authorizations().len() >= 2,
    )
    .await;
    assert!(strict.authorizations().iter().all(Option::is_none));
    assert!(strict.received().is_empty(), "nothing acknowledged");
    plain.shutdown().await.unwrap();
}
