//! Serving infrastructure over plain TCP: HTTP/1.1, h2c, body limits, timeouts, connection
//! limit, graceful shutdown. Each test runs a real server on 127.0.0.1:0.

use std::time::{Duration, Instant};

use super::*;
use bytes::Bytes;
use http_body_util::StreamBody;
use tokio::io::AsyncWriteExt as _;

const MB: u64 = 1024 * 1024;

#[tokio::test]
async fn http1_request_succeeds_and_sees_remote_address() {
    let server = TestServer::start(None, test_limits()).await;
    let mut c = h1_client(connect(server.addr).await).await;
    let resp = c.send_request(get("/hello")).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(
        body_string(resp).await,
        (http::StatusCode::OK, "hello".into())
    );
    let resp = c.send_request(get("/info")).await.unwrap();
    assert_eq!(body_string(resp).await.1, "127.0.0.1 none");
    server.shutdown().await;
}

#[tokio::test]
async fn h2c_prior_knowledge_request_succeeds() {
    let server = TestServer::start(None, test_limits()).await;
    let mut c = h2_client(connect(server.addr).await).await;
    let resp = c.send_request(get(&server.url("/hello"))).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        body_string(resp).await,
        (http::StatusCode::OK, "hello".into())
    );
    // Several streams on one connection.
    let (a, b) = tokio::join!(
        c.send_request(get(&server.url("/info"))),
        c.send_request(post(&server.url("/upload"), vec![1u8; 1000]))
    );
    assert_eq!(body_string(a.unwrap()).await.1, "127.0.0.1 none");
    assert_eq!(body_string(b.unwrap()).await.1, "1000");
    server.shutdown().await;
}

#[tokio::test]
async fn body_within_limit_is_read_whole() {
    let server = TestServer::start(None, test_limits()).await;
    let mut c = h1_client(connect(server.addr).await).await;
    let body = vec![7u8; ROUTE_BODY_LIMIT as usize];
    let resp = c.send_request(post("/upload", body)).await.unwrap();
    assert_eq!(
        body_string(resp).await,
        (http::StatusCode::OK, ROUTE_BODY_LIMIT.to_string())
    );
    server.shutdown().await;
}

#[tokio::test]
async fn content_length_over_limit_gets_413_without_reading_body() {
    let server = TestServer::start(None, test_limits()).await;
    let mut tcp = connect(server.addr).await;
    let total = 100 * MB;
    tcp.write_all(
        format!("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0u64;
        while sent < total {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let head = read_head(&mut rd, Duration::from_secs(10))
        .await
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let (_, closed) = read_until_closed(&mut rd, Duration::from_secs(10)).await;
    assert!(closed, "connection should be closed after the 413");
    drop(rd);
    let sent = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("writer blocked: the server neither read nor closed")
        .unwrap();
    assert!(
        sent < 32 * MB,
        "server consumed {sent} bytes of a refused body"
    );
    server.shutdown().await;
}

/// Writes a chunked 100 MB upload; returns the response head and the bytes written before the
/// server closed the connection.
async fn chunked_upload(server: &TestServer, path: &str) -> (String, u64) {
    let mut tcp = connect(server.addr).await;
    tcp.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![b'a'; 64 * 1024];
        let size = format!("{:x}\r\n", chunk.len());
        let mut sent = 0u64;
        while sent < 100 * MB {
            if wr.write_all(size.as_bytes()).await.is_err()
                || wr.write_all(&chunk).await.is_err()
                || wr.write_all(b"\r\n").await.is_err()
            {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let head = read_head(&mut rd, Duration::from_secs(10))
        .await
        .expect("a response");
    let (_, closed) = read_until_closed(&mut rd, Duration::from_secs(10)).await;
    assert!(closed, "connection should be closed after the refusal");
    drop(rd);
    let sent = tokio::time::timeout(Duration::from_secs(20), writer)
        .await
        .expect("writer blocked: the server neither read nor closed")
        .unwrap();
    (head, sent)
}

#[tokio::test]
async fn chunked_body_over_route_limit_gets_413_early() {
    let server = TestServer::start(None, test_limits()).await;
    let (head, sent) = chunked_upload(&server, "/upload").await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        sent < 32 * MB,
        "server consumed {sent} bytes of a refused body"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chunked_body_over_connection_cap_gets_413_early() {
    // The route sets no limit of its own; the connection-level cap (4 MiB) applies.
    let server = TestServer::start(None, test_limits()).await;
    let (head, sent) = chunked_upload(&server, "/upload-unlimited").await;
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(
        sent < 40 * MB,
        "server consumed {sent} bytes of a refused body"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn h2_streamed_body_over_limit_gets_413_and_stops_the_sender() {
    let server = TestServer::start(None, test_limits()).await;
    let mut c = h2_client(connect(server.addr).await).await;
    let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let p = std::sync::Arc::clone(&produced);
    let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
    let stream = futures_util::stream::iter(0..1600).map(move |_| {
        p.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone()))
    });
    let req = http::Request::post(server.url("/upload"))
        .body(StreamBody::new(stream))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let produced = produced.load(std::sync::atomic::Ordering::SeqCst);
    assert!(produced < 32 * MB, "client produced {produced} bytes");
    server.shutdown().await;
}

use futures_util::StreamExt as _;

#[tokio::test]
async fn stalled_body_gets_408() {
    let mut limits = test_limits();
    limits.body_read_timeout = Duration::from_millis(300);
    let server = TestServer::start(None, limits).await;
    let mut tcp = connect(server.addr).await;
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        .await
        .unwrap();
    let head = read_head(&mut tcp, Duration::from_secs(5))
        .await
        .expect("a response");
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    server.shutdown().await;
}

#[tokio::test]
async fn header_timeout_closes_incomplete_header_block() {
    let mut limits = test_limits();
    limits.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start(None, limits).await;
    let mut tcp = connect(server.addr).await;
    tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (data, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "connection still open after the header timeout");
    assert!(t.elapsed() >= Duration::from_millis(250));
    let text = String::from_utf8_lossy(&data);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(server.hits.get(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn header_timeout_closes_silent_connection() {
    let mut limits = test_limits();
    limits.header_read_timeout = Duration::from_millis(300);
    let server = TestServer::start(None, limits).await;
    let mut tcp = connect(server.addr).await;
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "silent connection still open");
    assert!(t.elapsed() >= Duration::from_millis(250));
    server.shutdown().await;
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed() {
    let mut limits = test_limits();
    limits.idle_timeout = Duration::from_millis(300);
    let server = TestServer::start(None, limits).await;
    let mut tcp = connect(server.addr).await;
    tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut tcp, Duration::from_secs(5)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed);
    // h2: GOAWAY after the idle timeout ends the client connection.
    let tcp = connect(server.addr).await;
    let (mut c, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let resp = c.send_request(get(&server.url("/hello"))).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    drop(resp);
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("h2 connection not closed after idle timeout")
        .unwrap()
        .ok();
    server.shutdown().await;
}

#[tokio::test]
async fn connection_limit_makes_extra_connections_wait() {
    let mut limits = test_limits();
    limits.max_connections = 1;
    let server = TestServer::start(None, limits).await;
    let tcp_a = connect(server.addr).await;
    let (mut a, conn_a) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp_a))
            .await
            .unwrap();
    let conn_a = tokio::spawn(conn_a);
    let resp = a.send_request(get("/hello")).await.unwrap();
    assert_eq!(body_string(resp).await.1, "hello");

    let mut b = connect(server.addr).await; // completes: the kernel backlog holds it
    b.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_head(&mut b, Duration::from_millis(500))
            .await
            .is_none(),
        "second connection served while the first holds the only slot"
    );
    assert_eq!(server.hits.get(), 1);
    drop(a);
    conn_a.abort();
    let _ = conn_a.await;
    let head = read_head(&mut b, Duration::from_secs(5))
        .await
        .expect("served after the slot freed");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_request() {
    let mut server = TestServer::start(None, test_limits()).await;
    let mut c = h1_client(connect(server.addr).await).await;
    let in_flight = tokio::spawn(async move { c.send_request(get("/slow")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = server.addr;
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting after shutdown began"
    );
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(
        body_string(resp).await,
        (http::StatusCode::OK, "slow done".into())
    );
    server
        .wait()
        .await
        .expect("server did not stop after the request finished");
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_upload() {
    let mut server = TestServer::start(None, test_limits()).await;
    let mut tcp = connect(server.addr).await;
    let piece = vec![b'x'; 100_000];
    tcp.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n")
        .await
        .unwrap();
    tcp.write_all(&piece).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.begin_shutdown();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tcp.write_all(&piece).await.unwrap();
    }
    let (data, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("300000"), "{text}");
    server.wait().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_gives_up_after_grace_period() {
    let mut limits = test_limits();
    limits.shutdown_grace = Duration::from_millis(200);
    let mut server = TestServer::start(None, limits).await;
    let mut c = h1_client(connect(server.addr).await).await;
    let in_flight = tokio::spawn(async move { c.send_request(get("/slow")).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    server.begin_shutdown();
    server.wait().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(800),
        "{:?}",
        t.elapsed()
    );
    assert!(in_flight.await.unwrap().is_err());
}

/// A client that pipelines requests for large responses and never reads keeps its request in
/// flight; the response deadline drops it, so the only slot frees for the next client.
#[tokio::test]
async fn client_that_never_reads_loses_its_connection_at_the_response_deadline() {
    let mut limits = test_limits();
    limits.max_connections = 1;
    limits.response_timeout = Duration::from_millis(500);
    let server = TestServer::start(None, limits).await;
    let mut stalled = connect(server.addr).await;
    stalled
        .write_all(&b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = std::time::Instant::now();
    let mut next = connect(server.addr).await;
    next.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut next, Duration::from_secs(5))
        .await
        .expect("the next client was not served: the stalled one keeps the slot");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (_, closed) = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
    assert!(closed, "the stalled connection is still open");
    drop(stalled);
    server.shutdown().await;
}

/// A request whose handler takes longer than the request deadline loses its connection.
#[tokio::test]
async fn request_over_the_request_deadline_is_dropped() {
    let mut limits = test_limits();
    limits.request_timeout = Duration::from_millis(300);
    let server = TestServer::start(None, limits).await;
    let mut tcp = connect(server.addr).await;
    tcp.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (got, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed);
    assert!(got.is_empty(), "a response arrived after the deadline");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_per_address_are_limited_unless_exempt() {
    let mut limits = test_limits();
    limits.max_connections_per_address = 2;
    let server = TestServer::start(None, limits.clone()).await;
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect(server.addr).await;
        tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut tcp, Duration::from_secs(5)).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200"));
        open.push(tcp);
    }
    let mut third = connect(server.addr).await;
    let _ = third
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (got, closed) = read_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(
        closed && got.is_empty(),
        "a third connection from one address was served"
    );
    // A closed connection frees its slot.
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = connect(server.addr).await;
    again
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        read_head(&mut again, Duration::from_secs(5))
            .await
            .is_some()
    );
    server.shutdown().await;

    // Exempt addresses (the trusted proxies) are not limited.
    limits.per_address_exempt = vec![efgs_core::callback_url::IpCidr::LOOPBACK_V4];
    let server = TestServer::start(None, limits).await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut tcp = connect(server.addr).await;
        tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(read_head(&mut tcp, Duration::from_secs(5)).await.is_some());
        open.push(tcp);
    }
    drop(open);
    server.shutdown().await;
}

/// After a 403 the connection is closed (HTTP/1.1 and HTTP/2).
#[tokio::test]
async fn connection_is_closed_after_a_403() {
    let server = TestServer::start(None, test_limits()).await;
    let mut tcp = connect(server.addr).await;
    tcp.write_all(b"GET /forbidden HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut tcp, Duration::from_secs(5)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "keep-alive after a 403");

    let tcp = connect(server.addr).await;
    let (mut c, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let conn = tokio::spawn(conn);
    let resp = c
        .send_request(get(&server.url("/forbidden")))
        .await
        .unwrap();
    assert_eq!(resp.status(), http::StatusCode::FORBIDDEN);
    drop(resp);
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("h2 connection not closed after a 403")
        .unwrap()
        .ok();
    server.shutdown().await;
}
