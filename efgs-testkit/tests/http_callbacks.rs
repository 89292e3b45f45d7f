//! Callbacks over HTTP (issue 10; protocol §1.5-§1.7 and §7, decisions items 8-10): the
//! administration routes, and delivery to real HTTPS receivers on loopback with their own
//! certificates, admitted by `callback.allow_cidrs`. Host names are resolved by a resolver
//! the test controls; no test sends traffic outside loopback (127.0.0.3 stands for the refused
//! private address).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use efgs_core::model::CertificateType;
use efgs_core::store::CallbackStore as _;
use efgs_testkit::callbacks::{
    Answer, Receiver, TestResolver, cut_one_batch, gateway_client_cert, receiver_cert,
};
use efgs_testkit::federation::{Federation, TestClock};
use efgs_testkit::pki::GeneratedCert;
use support::Backend;

http_tests!(
    admin_routes_list_upsert_and_delete_per_country,
    policy_refuses_bad_urls_at_put,
    three_receivers_get_twenty_batches_once_in_order,
);

const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
/// The only address allowed in the policy test.
const ALLOWED_HERE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// A loopback address outside the allow-list: stands for a private address.
const REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A federation set up for callbacks, with what the tests need around it.
struct Setup {
    fed: Federation,
    resolver: Arc<TestResolver>,
    client: GeneratedCert,
    _dir: tempfile::TempDir,
}

/// The test settings: a short attempt timeout, lease and retry interval, a 100 ms poll, and
/// 127.0.0.1 (only) allowed.
async fn setup(backend: &Backend, countries: &[&str], settings: &[(&str, &str)]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let (client, cert, key) = gateway_client_cert(dir.path(), now).unwrap();
    let resolver = TestResolver::new();
    let mut b = backend
        .builder()
        .await
        .countries(countries.iter().copied())
        .clock(TestClock::system())
        .resolver(resolver.clone())
        .loopback_callbacks(&cert, &key);
    for (k, v) in settings {
        b = b.setting(k, *v);
    }
    Setup {
        fed: b.build().await.unwrap(),
        resolver,
        client,
        _dir: dir,
    }
}

/// Registers `cert` on the trust list as `country`'s certificate of type `t`.
async fn register(fed: &Federation, cert: &GeneratedCert, country: &str, t: CertificateType) {
    fed.register(&cert.cert_pem, country, t).await.unwrap();
}

/// A receiver on `ip` for `names`, registered as `country`'s CALLBACK certificate, checking the
/// gateway's client certificate.
async fn receiver(s: &Setup, ip: Ipv4Addr, names: &[&str], country: &str) -> Receiver {
    receiver_as(s, ip, names, country, CertificateType::Callback).await
}

/// [`receiver`] registered with type `t`.
async fn receiver_as(
    s: &Setup,
    ip: Ipv4Addr,
    names: &[&str],
    country: &str,
    t: CertificateType,
) -> Receiver {
    let cert = receiver_cert(names, country, s.fed.now()).unwrap();
    register(&s.fed, &cert, country, t).await;
    let r = Receiver::start(SocketAddr::new(IpAddr::V4(ip), 0), cert)
        .await
        .unwrap();
    r.expect_client(s.client.thumbprint.clone());
    r
}

/// Stores one upload and cuts one batch through `fed`'s gateway (which wakes its delivery);
/// returns the batch tag and date as a receiver should see them.
async fn cut(fed: &Federation, n: u64) -> (String, String) {
    let b = cut_one_batch(fed, "cb", 9_000 + n).await.unwrap();
    (
        b.batch.tag.to_string(),
        b.batch.created_at.date().to_string(),
    )
}

/// Waits until `f` holds, failing after `limit`.
async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Subscribes `good` (DE's control receiver, at good.test) as "good", cuts batch `n`, and
/// waits until the control has received exactly that batch.
async fn control_receives_a_batch(fed: &Federation, good: &Receiver, n: u64) {
    put(fed, "DE", "good", &good.url("good.test")).await;
    let (tag, _) = cut(fed, n).await;
    until(
        Duration::from_secs(10),
        "the control receives the batch",
        || good.deliveries().len() == 1,
    )
    .await;
    assert_eq!(good.delivered_tags(), [tag]);
}

async fn put(fed: &Federation, country: &str, id: &str, url: &str) {
    let r = fed[country].callback_put(id, Some(url)).await.unwrap();
    assert_eq!(
        r.status,
        200,
        "PUT {id} {url}: {}",
        String::from_utf8_lossy(&r.body)
    );
}

/// Warnings and errors of every test in this binary, for the operator-event check.
fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogWriter(w.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Administration
// ---------------------------------------------------------------------------------------------

/// GET/PUT/DELETE with the reference's semantics (protocol §1.5-§1.7, build point 1).
async fn admin_routes_list_upsert_and_delete_per_country(backend: Backend) {
    let s = setup(&backend, &["DE", "FR"], &[]).await;
    let fed = &s.fed;
    s.resolver.set("de.test", &[IpAddr::V4(LOCAL)]);
    let empty = fed["DE"].callback_list().await.unwrap();
    assert_eq!((empty.status, empty.json()), (200, serde_json::json!([])));
    assert_eq!(empty.content_type.as_deref(), Some("application/json"));

    put(fed, "DE", "second", "https://de.test:8443/cb").await;
    put(fed, "DE", "first", "https://127.0.0.1/x").await;
    // Idempotent upsert: the same id again replaces the URL and keeps its place.
    put(fed, "DE", "second", "https://de.test/new").await;
    put(fed, "DE", "second", "https://de.test/new").await;
    // The URL may arrive not URL-encoded.
    let raw = fed["DE"]
        .callback_put_raw("raw", "https://de.test:9/a/b")
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    // Ids of exactly 32 characters are accepted (an MD5 hex, as CWA uses).
    let md5 = "0123456789abcdef0123456789abcdef";
    put(fed, "FR", md5, "https://127.0.0.1/fr").await;

    let list = fed["DE"].callback_list().await.unwrap();
    assert_eq!(
        list.json(),
        serde_json::json!([
            {"callbackId": "second", "url": "https://de.test/new"},
            {"callbackId": "first", "url": "https://127.0.0.1/x"},
            {"callbackId": "raw", "url": "https://de.test:9/a/b"},
        ]),
        "the caller's subscriptions, exactly callbackId and url, in insertion order"
    );
    let fr = fed["FR"].callback_list().await.unwrap();
    assert_eq!(
        fr.json(),
        serde_json::json!([{"callbackId": md5, "url": "https://127.0.0.1/fr"}])
    );

    let long = fed["DE"]
        .callback_put(&"a".repeat(33), Some("https://127.0.0.1/x"))
        .await
        .unwrap();
    assert_eq!(
        (long.status, long.code().as_deref()),
        (400, Some("callback-id-too-long"))
    );
    let missing = fed["DE"].callback_put("x", None).await.unwrap();
    assert_eq!(
        (missing.status, missing.code().as_deref()),
        (400, Some("callback-url-missing"))
    );
    assert_eq!(
        missing.content_type.as_deref(),
        Some("application/problem+json")
    );

    // DELETE: unknown id, and another country's id, are 404 and delete nothing.
    let unknown = fed["DE"].callback_delete("nope").await.unwrap();
    assert_eq!(
        (unknown.status, unknown.code().as_deref()),
        (404, Some("callback-not-found"))
    );
    assert_eq!(
        unknown.json()["message"],
        "Could not find any callback subscription for the given callbackId."
    );
    let foreign = fed["DE"].callback_delete(md5).await.unwrap();
    assert_eq!(foreign.status, 404);
    assert_eq!(
        fed["FR"]
            .callback_list()
            .await
            .unwrap()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let gone = fed["DE"].callback_delete("first").await.unwrap();
    assert_eq!(gone.status, 200);
    let ids: Vec<String> = fed["DE"]
        .callback_list()
        .await
        .unwrap()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["callbackId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["second", "raw"]);

    // Authentication exactly as the other routes; wrong methods 405.
    let anonymous = fed["DE"]
        .clone()
        .with_identity(efgs_testkit::national::Identity::None);
    assert_eq!(anonymous.callback_list().await.unwrap().status, 403);
    assert_eq!(
        anonymous
            .callback_put("x", Some("https://127.0.0.1/"))
            .await
            .unwrap()
            .status,
        403
    );
    assert_eq!(
        anonymous.callback_delete("second").await.unwrap().status,
        403
    );
    let client = fed["DE"].client().clone();
    let post = client
        .post(format!("{}/diagnosiskeys/callback", fed.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 405);
    let get_one = client
        .get(format!("{}/diagnosiskeys/callback/second", fed.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(get_one.status().as_u16(), 405);
}

/// The URL policy at PUT (decisions item 8): each refused URL gets 400 with a problem code
/// and creates nothing.
async fn policy_refuses_bad_urls_at_put(backend: Backend) {
    // Only 127.0.0.4 is allowed here, so every form of 127.0.0.1 must be refused.
    let s = setup(
        &backend,
        &["DE"],
        &[("callback.allow_cidrs", "127.0.0.4/32")],
    )
    .await;
    let fed = &s.fed;
    // A name resolving to an allowed and a refused address (the allow-listed 127.0.0.4
    // stands for a public address); a name resolving to a private address only.
    s.resolver.set(
        "mixed.test",
        &[IpAddr::V4(LOCAL), "10.1.2.3".parse().unwrap()],
    );
    s.resolver.set("private.test", &[IpAddr::V4(REFUSED)]);
    s.resolver.set(
        "mixed-ok.test",
        &[IpAddr::V4(ALLOWED_HERE), IpAddr::V4(ALLOWED_HERE)],
    );
    s.resolver
        .set("v6private.test", &["fd00::1".parse().unwrap()]);
    let refused = [
        ("http://127.0.0.4/cb", "callback-url-not-https"),
        ("https://127.0.0.4/cb?x=1", "callback-url-has-query"),
        ("https://127.0.0.4/cb?", "callback-url-has-query"),
        ("https://localhost/cb", "callback-url-loopback-name"),
        ("https://sub.localhost/cb", "callback-url-loopback-name"),
        ("https://127.0.0.1/cb", "callback-url-forbidden-address"),
        ("https://127.0.0.2/cb", "callback-url-forbidden-address"),
        ("https://0/cb", "callback-url-forbidden-address"),
        ("https://0177.0.0.1/cb", "callback-url-forbidden-address"),
        ("https://2130706433/cb", "callback-url-forbidden-address"),
        ("https://0x7f.0.0.1/cb", "callback-url-forbidden-address"),
        ("https://[::1]/cb", "callback-url-forbidden-address"),
        (
            "https://[::ffff:127.0.0.2]/cb",
            "callback-url-forbidden-address",
        ),
        ("https://[::]/cb", "callback-url-forbidden-address"),
        ("https://10.2.5.6/cb", "callback-url-forbidden-address"),
        ("https://172.16.5.3/cb", "callback-url-forbidden-address"),
        (
            "https://192.168.178.58/cb",
            "callback-url-forbidden-address",
        ),
        ("https://169.254.85.69/cb", "callback-url-forbidden-address"),
        ("https://100.64.23.5/cb", "callback-url-forbidden-address"),
        ("https://[fc00::1]/cb", "callback-url-forbidden-address"),
        (
            "https://[fd9e:35a:352e:1212::1]/cb",
            "callback-url-forbidden-address",
        ),
        ("https://[fe80::1]/cb", "callback-url-forbidden-address"),
        ("https://192.0.2.1/cb", "callback-url-forbidden-address"),
        ("https://198.51.100.7/cb", "callback-url-forbidden-address"),
        ("https://203.0.113.9/cb", "callback-url-forbidden-address"),
        ("https://[2001:db8::1]/cb", "callback-url-forbidden-address"),
        ("https://198.18.0.1/cb", "callback-url-forbidden-address"),
        ("https://[2001:2::1]/cb", "callback-url-forbidden-address"),
        ("https://224.0.0.1/cb", "callback-url-forbidden-address"),
        ("https://[ff02::1]/cb", "callback-url-forbidden-address"),
        (
            "https://255.255.255.255/cb",
            "callback-url-forbidden-address",
        ),
        ("https://mixed.test/cb", "callback-url-forbidden-address"),
        ("https://private.test/cb", "callback-url-forbidden-address"),
        (
            "https://v6private.test/cb",
            "callback-url-forbidden-address",
        ),
        ("https://unknown.test/cb", "callback-url-unresolvable"),
        ("teststring1234", "callback-url-unparsable"),
        ("", "callback-url-unparsable"),
    ];
    for (url, code) in refused {
        let r = fed["DE"].callback_put("x", Some(url)).await.unwrap();
        assert_eq!(
            (r.status, r.code().as_deref()),
            (400, Some(code)),
            "{url}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["message"], "Callback URL is invalid");
    }
    let long = format!("https://127.0.0.4/{}", "a".repeat(300));
    let r = fed["DE"].callback_put("x", Some(&long)).await.unwrap();
    assert_eq!(
        (r.status, r.code().as_deref()),
        (400, Some("callback-url-too-long"))
    );
    assert!(
        fed.store()
            .list_subscriptions("DE")
            .await
            .unwrap()
            .is_empty()
    );
    // The control: an allowed address passes.
    put(fed, "DE", "x", "https://127.0.0.4/cb").await;
    put(fed, "DE", "y", "https://mixed-ok.test/cb").await;
}

// ---------------------------------------------------------------------------------------------
// Delivery
// ---------------------------------------------------------------------------------------------

/// Three receivers, twenty batches: each gets every batch exactly once, in cut order, with
/// `batchTag`, `date` and the User-Agent, and sees the gateway's client certificate.
async fn three_receivers_get_twenty_batches_once_in_order(backend: Backend) {
    let s = setup(&backend, &["DE", "FR", "PL"], &[]).await;
    let fed = &s.fed;
    s.resolver.set("de.test", &[IpAddr::V4(LOCAL)]);
    s.resolver.set("fr.test", &[IpAddr::V4(LOCAL)]);
    let de = receiver(&s, LOCAL, &["de.test"], "DE").await;
    let fr = receiver(&s, LOCAL, &["fr.test"], "FR").await;
    // PL's receiver certificate is registered as an AUTHENTICATION certificate (accepted too,
    // decisions item 9), and its URL is an IP literal.
    let pl = receiver_as(
        &s,
        LOCAL,
        &["127.0.0.1"],
        "PL",
        CertificateType::Authentication,
    )
    .await;
    put(fed, "DE", "de", &de.url("de.test")).await;
    put(fed, "FR", "fr", &fr.url("fr.test")).await;
    put(fed, "PL", "pl", &pl.url("127.0.0.1")).await;
    let mut cuts = Vec::new();
    for n in 0..20 {
        cuts.push(cut(fed, n).await);
    }
    for r in [&de, &fr, &pl] {
        until(Duration::from_secs(20), "20 deliveries each", || {
            r.deliveries().len() >= 20
        })
        .await;
    }
    // Nothing more arrives (no duplicates).
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, r) in [("de", &de), ("fr", &fr), ("pl", &pl)] {
        let got: Vec<(String, String)> = r
            .deliveries()
            .into_iter()
            .map(|d| (d.batch_tag.unwrap(), d.date.unwrap()))
            .collect();
        assert_eq!(
            got, cuts,
            "{name}: every batch once, in cut order, with its date"
        );
        for d in r.requests() {
            assert_eq!(d.method, "GET");
            assert_eq!(d.user_agent.as_deref(), Some("EFGS Callback Engine"));
            assert_eq!(d.client.as_ref(), Some(&s.client.thumbprint), "{name}");
            assert!(d.target.starts_with("/callback?batchTag="), "{}", d.target);
        }
        assert_eq!(
            r.requests().len(),
            20,
            "{name}: no failed or repeated attempt"
        );
    }
}

/// A receiver answering 500 three times then 200 gets everything in order; one that never
/// answers is suspended after the configured retries (the operator event is logged), gets
/// nothing more, and after a new PUT receives what it missed, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receivers_are_retried_then_suspended_and_a_put_resumes() {
    let logs = log_buffer();
    let s = setup(
        &Backend::Memory,
        &["DE", "FR"],
        &[
            ("callback.max_retries", "3"),
            ("callback.timeout_secs", "1"),
            ("callback.lease_secs", "2"),
        ],
    )
    .await;
    let fed = &s.fed;
    let flaky = receiver(&s, LOCAL, &["127.0.0.1"], "DE").await;
    flaky.script([Answer::Status(500); 3]);
    let silent = receiver(&s, LOCAL, &["127.0.0.1"], "FR").await;
    silent.set_default(Answer::Hang);
    put(fed, "DE", "flaky", &flaky.url("127.0.0.1")).await;
    put(fed, "FR", "silent-one", &silent.url("127.0.0.1")).await;
    let mut cuts = Vec::new();
    for n in 0..3 {
        cuts.push(cut(fed, 100 + n).await.0);
    }
    until(Duration::from_secs(15), "flaky receiver catches up", || {
        flaky.deliveries().len() >= 3
    })
    .await;
    assert_eq!(
        flaky.delivered_tags(),
        cuts,
        "in order after three failures"
    );
    let attempts: Vec<Option<String>> = flaky.requests().into_iter().map(|r| r.batch_tag).collect();
    assert_eq!(
        attempts[..4],
        vec![Some(cuts[0].clone()); 4][..],
        "the first batch is retried; later batches wait"
    );
    // The silent one: 1 attempt + 3 retries, 1 s apart, each timing out after 1 s.
    let start = Instant::now();
    while fed.store().list_subscriptions("FR").await.unwrap()[0]
        .suspended_at
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "not suspended in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sub = &fed.store().list_subscriptions("FR").await.unwrap()[0];
    assert!(sub.suspended_at.is_some(), "suspended, not deleted");
    assert_eq!(sub.retries, 4);
    assert_eq!(silent.requests().len(), 4);
    assert!(silent.deliveries().is_empty());
    let log = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        log.lines().any(|l| l.contains("callback.suspended")
            && l.contains("silent-one")
            && l.contains("WARN")),
        "operator event logged: {log}"
    );
    // Suspended: nothing more is attempted.
    let _ = cut(fed, 110).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        silent.requests().len(),
        4,
        "a suspended subscription gets nothing"
    );
    // A new PUT re-activates it; it receives what it missed, in order.
    silent.set_default(Answer::Status(202));
    put(fed, "FR", "silent-one", &silent.url("127.0.0.1")).await;
    until(
        Duration::from_secs(10),
        "silent receiver catches up",
        || silent.deliveries().len() >= 4,
    )
    .await;
    let flaky_all = {
        until(Duration::from_secs(10), "flaky gets the fourth", || {
            flaky.deliveries().len() >= 4
        })
        .await;
        flaky.delivered_tags()
    };
    assert_eq!(
        silent.delivered_tags(),
        flaky_all,
        "everything missed, in cut order"
    );
    let sub = &fed.store().list_subscriptions("FR").await.unwrap()[0];
    assert_eq!((sub.suspended_at, sub.retries), (None, 0));
}

/// Receivers presenting an unregistered certificate, a revoked one, one of another country,
/// or one for another host name receive nothing; a correctly registered receiver (the
/// control) gets the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_with_wrong_certificates_receive_nothing() {
    let s = setup(&Backend::Memory, &["DE", "FR"], &[]).await;
    let fed = &s.fed;
    for name in [
        "good.test",
        "unregistered.test",
        "revoked.test",
        "foreign.test",
        "wrong-host.test",
    ] {
        s.resolver.set(name, &[IpAddr::V4(LOCAL)]);
    }
    let good = receiver(&s, LOCAL, &["good.test"], "DE").await;
    let unregistered = Receiver::start(
        SocketAddr::new(IpAddr::V4(LOCAL), 0),
        receiver_cert(&["unregistered.test"], "DE", fed.now()).unwrap(),
    )
    .await
    .unwrap();
    let revoked = receiver(&s, LOCAL, &["revoked.test"], "DE").await;
    fed.revoke(&revoked.cert().thumbprint).await.unwrap();
    // Registered, but as FR's certificate while DE subscribes.
    let foreign = receiver(&s, LOCAL, &["foreign.test"], "FR").await;
    // Registered for DE, but its certificate names another host.
    let wrong_host = receiver(&s, LOCAL, &["other.test"], "DE").await;
    put(
        fed,
        "DE",
        "unregistered",
        &unregistered.url("unregistered.test"),
    )
    .await;
    put(fed, "DE", "revoked", &revoked.url("revoked.test")).await;
    put(fed, "DE", "foreign", &foreign.url("foreign.test")).await;
    put(fed, "DE", "wrong-host", &wrong_host.url("wrong-host.test")).await;
    control_receives_a_batch(fed, &good, 200).await;
    // Give the others a retry too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (name, r) in [
        ("unregistered", &unregistered),
        ("revoked", &revoked),
        ("foreign", &foreign),
        ("wrong host", &wrong_host),
    ] {
        assert!(r.connections() >= 1, "{name}: the gateway tried");
        assert!(r.requests().is_empty(), "{name}: no request reached it");
    }
}

/// The policy again at delivery, on the stored URL itself: subscriptions that a PUT would
/// refuse (written straight into the store, as an older gateway or a narrowed allow-list would
/// leave them) all point at a receiver on 127.0.0.3, outside the allow-list, in every form
/// the policy must refuse; none of them makes the gateway connect, while a control on the
/// allowed address receives the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refuses_stored_urls_again_at_delivery() {
    let s = setup(&Backend::Memory, &["DE"], &[("callback.max_retries", "1")]).await;
    let fed = &s.fed;
    let good = receiver(&s, LOCAL, &["good.test"], "DE").await;
    s.resolver.set("good.test", &[IpAddr::V4(LOCAL)]);
    // The target: registered for every name a refused URL uses, listening on 127.0.0.3.
    let names = ["refused.test", "localhost", "mixed.test"];
    let target = receiver(&s, REFUSED, &names, "DE").await;
    s.resolver.set("refused.test", &[IpAddr::V4(REFUSED)]);
    s.resolver.set("localhost", &[IpAddr::V4(REFUSED)]);
    s.resolver
        .set("mixed.test", &[IpAddr::V4(LOCAL), IpAddr::V4(REFUSED)]);
    let port = target.addr().port();
    let refused = [
        format!("http://127.0.0.3:{port}/cb"),
        format!("https://127.0.0.3:{port}/cb"),
        format!("https://127.0.0.3:{port}/cb?x=1"),
        format!("https://0177.0.0.3:{port}/cb"),
        format!("https://2130706435:{port}/cb"),
        format!("https://0x7f.0.0.3:{port}/cb"),
        format!("https://[::ffff:127.0.0.3]:{port}/cb"),
        format!("https://localhost:{port}/cb"),
        format!("https://refused.test:{port}/cb"),
        format!("https://mixed.test:{port}/cb"),
    ];
    for (i, url) in refused.iter().enumerate() {
        let _ = fed
            .store()
            .upsert_subscription("DE", &format!("r{i}"), url, fed.now())
            .await
            .unwrap();
    }
    control_receives_a_batch(fed, &good, 400).await;
    // Every refused subscription is attempted (and fails) before the end of its retries.
    let start = Instant::now();
    loop {
        let subs = fed.store().list_subscriptions("DE").await.unwrap();
        let pending: Vec<_> = subs
            .iter()
            .filter(|x| x.callback_id != "good" && x.retries == 0 && x.suspended_at.is_none())
            .map(|x| x.url.clone())
            .collect();
        if pending.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not attempted: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        target.connections(),
        0,
        "no refused URL made the gateway connect"
    );
    assert!(target.requests().is_empty());
}

/// The policy again at delivery, on every address, connecting only to a checked address:
/// a name that resolves first to an allowed and a refused address, then to the refused one
/// only, then to the allowed one, is resolved once per attempt, refused twice, and delivered
/// the third time; the receiver on the refused address never sees a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_changing_its_address_cannot_reach_a_refused_address() {
    let s = setup(&Backend::Memory, &["DE"], &[("callback.max_retries", "5")]).await;
    let fed = &s.fed;
    let good = receiver(&s, LOCAL, &["flip.test"], "DE").await;
    // The same port on the refused address, with a registered certificate for the name.
    let cert = receiver_cert(&["flip.test"], "DE", fed.now()).unwrap();
    register(fed, &cert, "DE", CertificateType::Callback).await;
    let evil = Receiver::start(
        SocketAddr::new(IpAddr::V4(REFUSED), good.addr().port()),
        cert,
    )
    .await
    .unwrap();
    s.resolver.set("flip.test", &[IpAddr::V4(LOCAL)]);
    put(fed, "DE", "flip", &good.url("flip.test")).await;
    let at_put = s.resolver.lookups();
    s.resolver.set_cycle(
        "flip.test",
        vec![
            vec![IpAddr::V4(LOCAL), IpAddr::V4(REFUSED)],
            vec![IpAddr::V4(REFUSED)],
            vec![IpAddr::V4(LOCAL)],
        ],
    );
    let (tag, _) = cut(fed, 300).await;
    until(
        Duration::from_secs(10),
        "delivered on the third attempt",
        || good.deliveries().len() == 1,
    )
    .await;
    assert_eq!(good.delivered_tags(), [tag]);
    assert_eq!(
        s.resolver.lookups() - at_put,
        3,
        "one resolution per attempt, none between check and connect"
    );
    assert_eq!(
        good.requests().len(),
        1,
        "the refused attempts connected nowhere"
    );
    assert_eq!(
        evil.connections(),
        0,
        "never connected to the refused address"
    );
    let sub = &fed.store().list_subscriptions("DE").await.unwrap()[0];
    assert_eq!(sub.retries, 0, "delivered: the retry count is reset");
}

/// Two instances on one PostgreSQL, one killed while a delivery hangs: the other takes the
/// task over after the lease, every task is delivered, and none twice to a receiver that
/// answered 2xx; afterwards two live instances share the work without duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_postgres_deliver_each_task_once_and_take_over_a_dead_one() {
    let Some(backend) = Backend::postgres("instances_deliver_each_task_once").await else {
        return;
    };
    let s = setup(
        &backend,
        &["DE"],
        &[("callback.timeout_secs", "3"), ("callback.lease_secs", "4")],
    )
    .await;
    let a = &s.fed;
    let mut receivers = Vec::new();
    for i in 0..4 {
        let r = receiver(&s, LOCAL, &["127.0.0.1"], "DE").await;
        put(a, "DE", &format!("r{i}"), &r.url("127.0.0.1")).await;
        receivers.push(r);
    }
    receivers[0].script([Answer::Hang]);
    let mut cuts = vec![cut(a, 400).await.0];
    until(
        Duration::from_secs(10),
        "instance A is mid-delivery",
        || {
            receivers[0].requests().len() == 1
                && receivers[1..].iter().all(|r| r.deliveries().len() == 1)
        },
    )
    .await;
    let b = a.instance().await.unwrap();
    let killed_at = Instant::now();
    // Kill A (no graceful shutdown) while its delivery to receiver 0 hangs.
    let Setup {
        fed: a,
        resolver: _resolver,
        client: _client,
        _dir,
    } = s;
    a.kill().await;
    until(Duration::from_secs(10), "B takes the task over", || {
        receivers[0].deliveries().len() == 1
    })
    .await;
    assert!(
        killed_at.elapsed() >= Duration::from_secs(1),
        "taken over only after the lease expired"
    );
    // Two live instances (B and C) deliver the following batches.
    let c = b.instance().await.unwrap();
    for n in 0..6 {
        let fed = if n % 2 == 0 { &b } else { &c };
        cuts.push(cut(fed, 401 + n).await.0);
    }
    for r in &receivers {
        until(Duration::from_secs(15), "every batch delivered", || {
            r.deliveries().len() >= cuts.len()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(
            r.delivered_tags(),
            cuts,
            "receiver {i}: each batch once, in order"
        );
    }
    drop(c);
    drop(b);
    backend.cleanup().await;
}
