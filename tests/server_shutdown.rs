//! Graceful shutdown: an in-flight request (a client still sending its body) finishes after the
//! shutdown starts, new connections are refused, `/readyz` turns 503 while draining; and the real
//! binary does the same on SIGTERM, exiting 0 within the grace period.

mod common;

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use gpu_admission_testkit::{Pod, Review};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Headers and the first half of a review; the second half is returned to send later.
/// `Expect: 100-continue` makes the server say when its handler has started reading the body.
fn split_request() -> (Vec<u8>, Vec<u8>) {
    let body = Review::create(&Pod::gpu(1).ns("ai").build())
        .uid("inflight")
        .build()
        .to_string()
        .into_bytes();
    let head = format!(
        "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (a, b) = body.split_at(body.len() / 2);
    ([head.as_bytes(), a].concat(), b.to_vec())
}

/// Sends the first part and waits for `100 Continue`: the request is in flight in the handler.
async fn start_in_flight(conn: &mut Conn, first: &[u8]) {
    conn.stream.write_all(first).await.unwrap();
    conn.stream.flush().await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(BOUND, conn.stream.read(&mut buf))
            .await
            .expect("100 Continue in time")
            .unwrap();
        assert!(n > 0, "connection closed before 100 Continue");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

async fn finish(mut conn: Conn, rest: &[u8]) -> Resp {
    conn.stream.write_all(rest).await.unwrap();
    conn.stream.flush().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, conn.stream.read_to_end(&mut out))
        .await
        .expect("response in time")
        .unwrap();
    parse_raw(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_request_finishes_after_shutdown_starts() {
    let (server, client) = serve(&Pki::new(), |_| {}).await;
    let (first, rest) = split_request();
    let mut conn = client.connect().await.unwrap();
    start_in_flight(&mut conn, &first).await;

    let handle = server.shutdown_handle();
    handle.trigger();
    let admin = server.admin_addr;
    eventually("readyz 503 while draining", || async {
        let r = admin_get(admin, "/readyz").await;
        (r.status == 503 && String::from_utf8_lossy(&r.body).contains("shutting down")).then_some(())
    })
    .await;
    eventually("new connections refused", || async {
        client.connect().await.is_err().then_some(())
    })
    .await;

    let resp = finish(conn, &rest).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["response"]["uid"], "inflight");
    assert_eq!(resp.json()["response"]["patchType"], "JSONPatch");
    tokio::time::timeout(BOUND, server.wait())
        .await
        .expect("server stopped after the drain");
}

/// The binary on ephemeral ports; its stderr (JSON logs) lines arrive on the channel.
struct Binary {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Binary {
    fn spawn(pki: &Pki, grace_ms: u64) -> Self {
        let mut child = serve_command(pki)
            .args(["--log-format", "json", "--shutdown-grace-ms", &grace_ms.to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the binary");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first log line containing `needle` (blocking, bounded).
    fn wait_line(&mut self, needle: &str) -> serde_json::Value {
        loop {
            let line = self
                .lines
                .recv_timeout(BOUND)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}; saw:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return serde_json::from_str(&line).unwrap_or_else(|e| panic!("log line not JSON ({e}): {line}"));
            }
        }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + BOUND;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the binary did not exit after SIGTERM; logs:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn addr_of(log: &serde_json::Value, field: &str) -> std::net::SocketAddr {
    log[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {log}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_drains_in_flight_requests_on_sigterm() {
    let pki = Pki::new();
    let mut bin = Binary::spawn(&pki, 10_000);
    let listening = tokio::task::block_in_place(|| bin.wait_line("listening"));
    let (addr, admin) = (addr_of(&listening, "addr"), addr_of(&listening, "admin_addr"));
    assert_eq!(admin_get(admin, "/readyz").await.status, 200);
    let client = Client::new(addr, pki.ca_pem());

    let (first, rest) = split_request();
    let mut conn = client.connect().await.unwrap();
    start_in_flight(&mut conn, &first).await;
    bin.sigterm();
    tokio::task::block_in_place(|| bin.wait_line("stopped accepting"));
    assert!(client.connect().await.is_err(), "accepted a connection after SIGTERM");

    let resp = finish(conn, &rest).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["response"]["uid"], "inflight");
    let review_line = tokio::task::block_in_place(|| bin.wait_line("\"review\""));
    assert_eq!(review_line["uid"], "inflight");
    for field in [
        "kind",
        "namespace",
        "name",
        "operation",
        "decision",
        "patch_bytes",
        "duration_us",
        "dry_run",
    ] {
        assert!(
            review_line.get(field).is_some(),
            "review log line lacks {field}: {review_line}"
        );
    }
    let status = tokio::task::block_in_place(|| bin.wait_exit());
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_exits_when_the_grace_period_is_over() {
    let pki = Pki::new();
    let mut bin = Binary::spawn(&pki, 300);
    let listening = tokio::task::block_in_place(|| bin.wait_line("listening"));
    let client = Client::new(addr_of(&listening, "addr"), pki.ca_pem());
    // A request whose body never completes (the body timeout is 10 s, the grace 0.3 s).
    let (first, _rest) = split_request();
    let mut conn = client.connect().await.unwrap();
    start_in_flight(&mut conn, &first).await;
    bin.sigterm();
    tokio::task::block_in_place(|| bin.wait_line("grace period over"));
    let status = tokio::task::block_in_place(|| bin.wait_exit());
    assert!(status.success(), "exit status {status}");
    drop(conn);
}
