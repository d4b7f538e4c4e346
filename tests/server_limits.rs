//! Connection limits and timeouts for every protocol (issue 15, item 2). Each test holds an
//! abusive client open (a few connections, 127.0.0.1 only, bounded by [`BOUND`]), shows that the
//! server closes it, and that a healthy client is served meanwhile.

mod common;

use std::time::Duration;

use common::*;
use gpu_admission::server::RunningServer;
use gpu_admission_testkit::{Pod, Review};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt as _;
use tokio::task::JoinHandle;

fn body() -> String {
    Review::create(&Pod::gpu(1).ns("ai").build()).uid("limits").to_string()
}

async fn healthy(client: &Client) {
    let resp = client
        .post("/mutate", body())
        .await
        .expect("a healthy client is served");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["response"]["uid"], "limits");
}

async fn counted(server: &RunningServer, cause: &str) -> f64 {
    errors_counted(&metrics_text(server).await, cause)
}

async fn wait_counted(server: &RunningServer, cause: &str) {
    eventually(cause, || async { (counted(server, cause).await >= 1.0).then_some(()) }).await;
}

fn h2_client(server: &RunningServer, pki: &Pki) -> Client {
    Client::with_alpn(server.addr, pki.ca_pem(), vec![b"h2".to_vec()])
}

/// An HTTP/2 connection (ALPN h2, hyper's handshake), driven by a task of its own: the sender
/// and the task (it ends with the connection).
async fn h2_conn(server: &RunningServer, pki: &Pki) -> (SendRequest<Full<Bytes>>, JoinHandle<hyper::Result<()>>) {
    let io = TokioIo::new(h2_client(server, pki).connect().await.unwrap().stream);
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    (send, tokio::spawn(conn))
}

fn h2_request(extra_header: Option<usize>) -> hyper::Request<Full<Bytes>> {
    let mut req = hyper::Request::post("https://localhost/mutate").header("content-type", "application/json");
    if let Some(n) = extra_header {
        req = req.header("x-pad", "p".repeat(n));
    }
    req.body(Full::new(Bytes::from(body()))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_connection_limit_new_connections_are_closed_at_accept() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.max_connections = 3).await;
    // Three TCP connections that never start TLS fill the limit.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    eventually("the three held", || async {
        // The fourth is closed at once, before any TLS byte: read sees the end.
        let mut fourth = tokio::net::TcpStream::connect(server.addr).await.ok()?;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(BOUND, fourth.read(&mut buf)).await.ok()?;
        matches!(n, Ok(0) | Err(_)).then_some(())
    })
    .await;
    assert!(counted(&server, "connection_limit").await >= 1.0);
    // The admin port has its own limit: the probes still answer.
    assert_eq!(admin_get(server.admin_addr, "/readyz").await.status, 200);
    // The held connections go: the webhook serves again.
    drop(held);
    eventually("served again", || async {
        client.post("/mutate", body()).await.ok().filter(|r| r.status == 200)
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_never_sends_the_preface_or_a_request_is_closed() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.header_timeout = Duration::from_millis(800)).await;
    let h2 = h2_client(&server, &pki);

    // TLS with ALPN h2, then nothing at all.
    let mut silent = h2.connect().await.unwrap();
    assert_eq!(silent.alpn.as_deref(), Some(&b"h2"[..]));
    // The preface and SETTINGS (hyper's handshake), pings answered, but no request.
    let (_send, preface_only) = h2_conn(&server, &pki).await;

    healthy(&client).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, silent.stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "a silent h2 connection was held");
    let ended = tokio::time::timeout(BOUND, preface_only).await;
    assert!(ended.is_ok(), "a connection with the preface and no request was held");
    eventually("both counted", || async {
        (counted(&server, "first_request_timeout").await >= 2.0).then_some(())
    })
    .await;
    healthy(&client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2_client_that_answers_pings_gets_a_goaway() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| {
        c.idle_timeout = Duration::from_millis(800);
        c.keepalive_interval = Duration::from_millis(100);
    })
    .await;
    let (mut send, conn) = h2_conn(&server, &pki).await; // driven: pings are answered
    let resp = send.send_request(h2_request(None)).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    healthy(&client).await;
    // Idle from now on: the server says GOAWAY and the connection ends cleanly.
    let ended = tokio::time::timeout(BOUND, conn)
        .await
        .expect("an idle h2 connection was held");
    assert!(ended.unwrap().is_ok());
    wait_counted(&server, "idle_timeout").await;
    healthy(&client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_never_answers_pings_is_closed() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| {
        c.keepalive_interval = Duration::from_millis(200);
        c.keepalive_timeout = Duration::from_millis(300);
    })
    .await;
    // Raw frames (hyper's and h2's clients answer pings by themselves): the preface and an
    // empty SETTINGS frame, then only reading.
    let mut conn = h2_client(&server, &pki).connect().await.unwrap();
    assert_eq!(conn.alpn.as_deref(), Some(&b"h2"[..]));
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    tokio::io::AsyncWriteExt::write_all(&mut conn.stream, &hello)
        .await
        .unwrap();
    healthy(&client).await;
    let mut seen = Vec::new();
    let read = tokio::time::timeout(BOUND, conn.stream.read_to_end(&mut seen)).await;
    assert!(read.is_ok(), "a client that never answers pings was held");
    // The server pinged (frame type 6) before it gave up.
    assert!(frames(&seen).contains(&6), "no PING among {:?}", frames(&seen));
    drop(conn);
    healthy(&client).await;
    server.shutdown().await;
}

/// The types of the HTTP/2 frames in `bytes` (the server's side: no preface).
fn frames(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = (usize::from(bytes[at]) << 16) | (usize::from(bytes[at + 1]) << 8) | usize::from(bytes[at + 2]);
        types.push(bytes[at + 3]);
        at += 9 + len;
    }
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_holding_a_zero_window_is_closed() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.write_timeout = Duration::from_millis(500)).await;
    let io = TokioIo::new(h2_client(&server, &pki).connect().await.unwrap().stream);
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake(io)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    // The head arrives (HEADERS are not flow-controlled); the body never can.
    let resp = send.send_request(h2_request(None)).await.unwrap();
    assert_eq!(resp.status(), 200);
    healthy(&client).await;
    let body = tokio::time::timeout(BOUND, resp.into_body().collect()).await;
    assert!(matches!(body, Ok(Err(_))), "a stalled response was held: {body:?}");
    let _ = tokio::time::timeout(BOUND, conn).await.expect("the connection ends");
    wait_counted(&server, "write_stall").await;
    healthy(&client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_limit_is_the_same_for_http1_and_http2() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.max_header_bytes = 16 * 1024).await;
    let raw_h1 = |pad: usize| {
        format!(
            "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-Pad: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            "p".repeat(pad),
            body().len(),
            body()
        )
    };
    for (pad, fits) in [(12 * 1024, true), (20 * 1024, false), (64 * 1024, false)] {
        let raw = client
            .connect()
            .await
            .unwrap()
            .raw_lenient(raw_h1(pad).as_bytes())
            .await;
        let status = String::from_utf8_lossy(&raw[..raw.len().min(12)]).to_string();
        let want = if fits { "HTTP/1.1 200" } else { "HTTP/1.1 431" };
        assert_eq!(status, want, "HTTP/1.1 with a {pad}-byte header");

        let (mut send, _conn) = h2_conn(&server, &pki).await;
        let status = send
            .send_request(h2_request(Some(pad)))
            .await
            .map(|r| r.status().as_u16());
        if fits {
            assert_eq!(status.ok(), Some(200), "HTTP/2 with a {pad}-byte header");
        } else {
            assert!(
                status.is_err() || status.as_ref().ok() == Some(&431),
                "HTTP/2 {pad}: {status:?}"
            );
        }
    }
    healthy(&client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_over_the_limit_and_non_json_content_types_are_refused() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |_| {}).await;
    // 30 MB announced with Expect: 100-continue: 413 at once, never 100 Continue.
    let raw = client
        .connect()
        .await
        .unwrap()
        .raw(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 31457280\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert_eq!(parse_raw(&raw).json()["code"], "body_too_large");

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/yaml",
        "application/jsonx",
    ] {
        let raw = format!(
            "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            body().len(),
            body()
        );
        let resp = parse_raw(&client.connect().await.unwrap().raw(raw.as_bytes()).await);
        assert_eq!(resp.status, 415, "{content_type}");
        assert_eq!(resp.json()["code"], "unsupported_media_type");
    }
    // JSON with parameters, in any case, is fine.
    let raw = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: Application/JSON; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body().len(),
        body()
    );
    assert_eq!(
        parse_raw(&client.connect().await.unwrap().raw(raw.as_bytes()).await).status,
        200
    );
    healthy(&client).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listen_backlog_is_the_flag() {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |c| c.listen_backlog = 777).await;
    // `ss` shows a listening socket's backlog as its Send-Q.
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", server.addr.port())])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let send_q = text.split_whitespace().nth(2);
    assert_eq!(send_q, Some("777"), "{text}");
    healthy(&client).await;
    server.shutdown().await;
}
