//! Penetration suite, connections (issue 9 points 2 and 8): slowly sent bodies and headers,
//! responses that are never read (pipelined downloads), and 1,000 idle or stalled
//! connections, in both auth modes, while a well-behaved member state (DE, from 127.0.0.2)
//! downloads and audits within 2 s.
//!
//! The cases run one at a time (`attack::HEAVY`). Each prints a `PENTEST` line with the good
//! client's p50/p99 latency and the process's peak RSS (VmHWM: the server runs in this
//! process).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use efgs_core::callback_url::IpCidr;
use support::Backend;
use support::attack::{
    Client, HEAVY, JSON_V1, Mode, PB_V1, Scene, Snapshot, peak_base, peak_growth, peak_rss_kib,
    read_all, vm_kib,
};
use tokio::io::{AsyncWriteExt as _, split};

http_tests!(
    slow_body_and_headers_408_or_closed_proxy,
    slow_body_and_headers_408_or_closed_mtls,
    never_read_responses_dropped_proxy,
    never_read_responses_dropped_mtls,
    h2_zero_window_dropped_proxy,
    h2_zero_window_dropped_mtls,
    idle_connections_1000_through_trusted_proxy,
    idle_connections_1000_direct_proxy_mode,
    idle_connections_1000_mtls,
);

/// Slow clients at once.
const SLOW_CLIENTS: usize = 16;

/// What one slow client saw: the status (if any), whether the server closed, and when.
type SlowOutcome = (Option<u16>, bool, Duration);

/// Sends `head`, then `body_len` bytes of `dribble`-sized pieces with `pause` between them,
/// reading at the same time; returns what the server answered, whether it closed, and after
/// how long (at most `give_up`).
async fn dribble(
    client: Client,
    head: Vec<u8>,
    piece: usize,
    pause: Duration,
    give_up: Duration,
) -> SlowOutcome {
    let io = client.connect().await.unwrap();
    let (mut rd, mut wr) = split(io);
    let t = Instant::now();
    let writer = tokio::spawn(async move {
        for part in head.chunks(piece) {
            if wr.write_all(part).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
        // Nothing more: a stalled body.
        std::future::pending::<()>().await;
    });
    let r = read_all(&mut rd, give_up).await;
    writer.abort();
    (r.status, r.closed, t.elapsed())
}

/// `http.body_read_timeout_secs = 1` and `http.header_timeout_secs = 1`: 16 uploads whose
/// bodies come 16 bytes every 1.5 s, and 16 requests whose header blocks come 8 bytes every
/// 0.5 s, at once. Each gets 408 or its connection closed within a few seconds; nothing
/// stored.
async fn slow_body_and_headers(b: Backend, mode: Mode) {
    let _heavy = HEAVY.lock().await;
    let scene = Scene::new(&b, mode, |f| {
        f.setting("http.body_read_timeout_secs", "1")
            .setting("http.header_timeout_secs", "1")
    })
    .await;
    let nl = Client::country(&scene.fed, "NL");
    let (headers, body) = scene.upload_parts("NL", "slow-1");
    let mut extra = Vec::new();
    for (k, v) in &headers {
        extra.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let request = nl.raw_request("POST", "/diagnosiskeys/upload", &extra, &body);
    let split_at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (head, body) = request.split_at(split_at);
    let ((bodies, headers_slow), stats) = scene
        .under_long_attack("slow bodies and headers", async {
            let mut bodies = Vec::new();
            let mut heads = Vec::new();
            for _ in 0..SLOW_CLIENTS {
                // The whole head at once, then the body slowly.
                let mut slow_body = head.to_vec();
                let first = body.len().min(16);
                slow_body.extend_from_slice(&body[..first]);
                let nl2 = nl.clone();
                let rest = body[first..].to_vec();
                bodies.push(tokio::spawn(async move {
                    let io = nl2.connect().await.unwrap();
                    let (mut rd, mut wr) = split(io);
                    let t = Instant::now();
                    let writer = tokio::spawn(async move {
                        if wr.write_all(&slow_body).await.is_err() {
                            return;
                        }
                        for part in rest.chunks(16) {
                            tokio::time::sleep(Duration::from_millis(1500)).await;
                            if wr.write_all(part).await.is_err() {
                                return;
                            }
                        }
                    });
                    let r = read_all(&mut rd, Duration::from_secs(8)).await;
                    writer.abort();
                    (r.status, r.closed, t.elapsed())
                }));
                heads.push(tokio::spawn(dribble(
                    nl.clone(),
                    head.to_vec(),
                    8,
                    Duration::from_millis(500),
                    Duration::from_secs(8),
                )));
            }
            let mut b = Vec::new();
            for h in bodies {
                b.push(h.await.unwrap());
            }
            let mut h = Vec::new();
            for x in heads {
                h.push(x.await.unwrap());
            }
            (b, h)
        })
        .await;
    let worst = |v: &[SlowOutcome]| v.iter().map(|o| o.2).max().unwrap_or_default();
    eprintln!(
        "PENTEST {}: {SLOW_CLIENTS} slow bodies refused after at most {:.0}ms, {SLOW_CLIENTS} slow headers after at most {:.0}ms; good client {}; VmHWM {} MiB",
        scene.label("slow clients"),
        worst(&bodies).as_secs_f64() * 1e3,
        worst(&headers_slow).as_secs_f64() * 1e3,
        stats.summary(),
        peak_rss_kib() / 1024
    );
    for (i, (status, closed, took)) in bodies.iter().enumerate() {
        assert!(
            *status == Some(408) || (status.is_none() && *closed),
            "slow body {i}: {status:?}, closed {closed}"
        );
        assert!(*took < Duration::from_secs(5), "slow body {i}: {took:?}");
    }
    for (i, (status, closed, took)) in headers_slow.iter().enumerate() {
        assert!(
            matches!(status, None | Some(408)) && *closed,
            "slow header {i}: {status:?}, closed {closed}"
        );
        assert!(*took < Duration::from_secs(5), "slow header {i}: {took:?}");
    }
}

async fn slow_body_and_headers_408_or_closed_proxy(b: Backend) {
    slow_body_and_headers(b, Mode::Proxy).await;
}

async fn slow_body_and_headers_408_or_closed_mtls(b: Backend) {
    slow_body_and_headers(b, Mode::Mtls).await;
}

/// `http.response_timeout_secs = 1`, a 5,000-key batch: 6 connections each pipeline 48 JSON
/// downloads (about 55 MB of answers) and read nothing for 2 s. The server drops each
/// connection before it has sent all the answers.
async fn never_read_responses(b: Backend, mode: Mode) {
    const CONNECTIONS: usize = 6;
    const PIPELINED: usize = 48;
    let _heavy = HEAVY.lock().await;
    let scene = Scene::with_seed(&b, mode, 5000, |f| {
        f.setting("http.response_timeout_secs", "1")
    })
    .await;
    let nl = Client::country(&scene.fed, "NL");
    let path = format!("/diagnosiskeys/download/{}", scene.fed.today());
    let one = nl
        .must("GET", &path, &[("accept", JSON_V1)], Vec::new())
        .await;
    assert_eq!(one.status, 200);
    let answer_len = one.body.len();
    let mut pipelined = Vec::new();
    for _ in 0..PIPELINED {
        let mut h = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: {JSON_V1}\r\n");
        for (k, v) in nl.identity_headers() {
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        h.push_str("\r\n");
        pipelined.extend_from_slice(h.as_bytes());
    }
    let (outcomes, stats) = scene
        .under_long_attack("never-read responses", async {
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                let mut io = nl.connect().await.unwrap();
                io.write_all(&pipelined).await.unwrap();
                conns.push(io);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut out = Vec::new();
            for mut io in conns {
                let r = read_all(&mut io, Duration::from_secs(5)).await;
                out.push((r.bytes.len(), r.closed));
            }
            out
        })
        .await;
    let total = answer_len * PIPELINED;
    eprintln!(
        "PENTEST {}: {CONNECTIONS} connections x {PIPELINED} pipelined downloads of {answer_len} bytes, unread for 2 s: read {:?} (bytes, closed) of {total}; good client {}; VmHWM {} MiB",
        scene.label("never-read responses"),
        outcomes,
        stats.summary(),
        peak_rss_kib() / 1024
    );
    for (i, (read, closed)) in outcomes.iter().enumerate() {
        assert!(*closed, "connection {i}: still open");
        assert!(
            *read < total,
            "connection {i}: every answer was sent ({read} bytes)"
        );
    }
}

async fn never_read_responses_dropped_proxy(b: Backend) {
    never_read_responses(b, Mode::Proxy).await;
}

async fn never_read_responses_dropped_mtls(b: Backend) {
    never_read_responses(b, Mode::Mtls).await;
}

/// HTTP/2 with a zero flow-control window (hardening issue: "over HTTP/2 a zero
/// flow-control window does the same"): `http.response_timeout_secs = 1`, a 5,000-key batch;
/// 4 connections (h2c with prior knowledge in proxy mode, h2 inside TLS in mtls mode) announce
/// `SETTINGS_INITIAL_WINDOW_SIZE = 0`, open 40 download streams each and never send a
/// WINDOW_UPDATE. The server can send the response headers but no body byte; it must drop
/// each connection once the response deadline passes, while the good client is served.
async fn h2_zero_window(b: Backend, mode: Mode) {
    const CONNECTIONS: usize = 4;
    const STREAMS: usize = 40;
    let _heavy = HEAVY.lock().await;
    let scene = Scene::with_seed(&b, mode, 5000, |f| {
        f.setting("http.response_timeout_secs", "1")
    })
    .await;
    let nl = Client::country(&scene.fed, "NL");
    let path = format!("/diagnosiskeys/download/{}", scene.fed.today());
    let authority = match mode {
        Mode::Proxy => "http://localhost",
        Mode::Mtls => "https://localhost",
    };
    let (outcomes, stats) = scene
        .under_long_attack("HTTP/2 zero window", async {
            let mut conns = Vec::new();
            for _ in 0..CONNECTIONS {
                let io = nl.connect().await.unwrap();
                let (client, connection) = h2::client::Builder::new()
                    .initial_window_size(0)
                    .handshake::<_, bytes::Bytes>(io)
                    .await
                    .unwrap();
                let started = Instant::now();
                let driver = tokio::spawn(async move {
                    let ended = connection.await;
                    (started.elapsed(), ended.is_err())
                });
                let mut client = client.ready().await.unwrap();
                let mut responses = Vec::new();
                for _ in 0..STREAMS {
                    let mut req =
                        hyper::Request::get(format!("{authority}{path}")).header("accept", PB_V1);
                    for (k, v) in nl.identity_headers() {
                        req = req.header(k.as_str(), v.as_str());
                    }
                    let (response, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
                    responses.push(response);
                    client = client.ready().await.unwrap();
                }
                conns.push((client, responses, driver));
            }
            let mut out = Vec::new();
            for (client, responses, driver) in conns {
                let mut heads = 0;
                let mut body_bytes = 0;
                for response in responses {
                    // Headers may arrive (they need no window); a body byte cannot.
                    if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(5), response).await
                    {
                        heads += 1;
                        assert_eq!(r.status(), 200);
                        let mut body = r.into_body();
                        while let Ok(Some(Ok(chunk))) =
                            tokio::time::timeout(Duration::from_millis(50), body.data()).await
                        {
                            body_bytes += chunk.len();
                        }
                    }
                }
                let ended = tokio::time::timeout(Duration::from_secs(10), driver).await;
                drop(client);
                out.push((heads, body_bytes, ended.map(|r| r.unwrap()).ok()));
            }
            out
        })
        .await;
    eprintln!(
        "PENTEST {}: {CONNECTIONS} HTTP/2 connections x {STREAMS} streams with a zero window: (headers, body bytes, (closed after, with error)) {:?}; good client {}; VmHWM {} MiB",
        scene.label("HTTP/2 zero window"),
        outcomes,
        stats.summary(),
        peak_rss_kib() / 1024
    );
    for (i, (_, body_bytes, ended)) in outcomes.iter().enumerate() {
        assert_eq!(*body_bytes, 0, "connection {i}: a zero window carried data");
        let (after, _) = ended.unwrap_or_else(|| panic!("connection {i}: still open after 10 s"));
        assert!(
            after < Duration::from_secs(15),
            "connection {i}: closed only after {after:?}"
        );
    }
}

async fn h2_zero_window_dropped_proxy(b: Backend) {
    h2_zero_window(b, Mode::Proxy).await;
}

async fn h2_zero_window_dropped_mtls(b: Backend) {
    h2_zero_window(b, Mode::Mtls).await;
}

/// Opens 1,000 connections from 127.0.0.1: half send nothing, half a partial request (a
/// header block cut in the middle; in mtls mode a TLS record header without the rest of the
/// ClientHello). Holds them while the good client (127.0.0.2) makes at least 40 requests. Prints
/// how many the server closed at once (per-address limit), the good client's latencies and the
/// peak RSS.
async fn idle_connections_1000(scene: &Scene, label: &str) {
    const IDLE: usize = 1000;
    let fed = &scene.fed;
    let attacker = Client::anonymous(fed);
    let stall: Vec<u8> = match scene.mode() {
        Mode::Proxy => format!(
            "GET /diagnosiskeys/download/{} HTTP/1.1\r\nHost: localhost\r\nAccept: {PB_V1}\r\nX-SSL-Client-DN: C=D",
            fed.today()
        )
        .into_bytes(),
        Mode::Mtls => vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00],
    };
    let base = peak_base();
    let before = Snapshot::take(fed).await;
    let t = Instant::now();
    let mut conns = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut tcp = attacker.connect_tcp().await.unwrap();
        if i % 2 == 1 {
            let _ = tcp.write_all(&stall).await;
        }
        conns.push(tcp);
    }
    let opened = t.elapsed();
    let good = support::attack::GoodLoop::start(scene);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut closed = 0;
    let mut buf = [0u8; 64];
    for c in &conns {
        match c.try_read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Ok(_) | Err(_) => closed += 1,
        }
    }
    let stats = good.finish(40).await;
    let label = scene.label(label);
    eprintln!(
        "PENTEST {label}: {IDLE} idle/stalled connections opened in {:.0}ms, {closed} closed by the server at once; good client {}; peak RSS (VmHWM) {} MiB, growth {} MiB, VmRSS {} MiB",
        opened.as_secs_f64() * 1e3,
        stats.summary(),
        peak_rss_kib() / 1024,
        peak_growth(base) / 1024,
        vm_kib("VmRSS:") / 1024
    );
    drop(conns);
    stats.assert_served(&label);
    Snapshot::take(fed).await.assert_same(&before, &label);
}

/// Proxy mode, the attackers' address a trusted proxy (all member states come through it, so
/// it is exempt from the per-address limit): 1,000 connections stay open.
async fn idle_connections_1000_through_trusted_proxy(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let scene = Scene::new(&b, Mode::Proxy, |f| f).await;
    idle_connections_1000(&scene, "1000 idle connections via the trusted proxy").await;
}

/// Proxy mode, only 127.0.0.2 a trusted proxy: the attackers at 127.0.0.1 reach the gateway
/// directly and the per-address limit applies.
async fn idle_connections_1000_direct_proxy_mode(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let scene = Scene::new(&b, Mode::Proxy, |f| {
        f.trusted_proxies(vec![IpCidr::parse("127.0.0.2/32").unwrap()])
    })
    .await;
    idle_connections_1000(&scene, "1000 idle connections direct").await;
}

/// mtls mode: 1,000 connections that never finish (or never start) the TLS handshake.
async fn idle_connections_1000_mtls(b: Backend) {
    let _heavy = HEAVY.lock().await;
    let scene = Scene::new(&b, Mode::Mtls, |f| f).await;
    idle_connections_1000(&scene, "1000 stalled TLS connections").await;
}
