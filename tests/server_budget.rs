//! Bounded work (issue 15, item 1): large reviews take permits for their body bytes before they
//! are read, so while one holds the budget another waits (then gets 503 `overloaded`), small
//! reviews have a pool of their own and are served, and the admin port answers.

mod common;

use std::time::Duration;

use common::*;
use gpu_admission_testkit::{Pod, Review};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MIB: usize = 1024 * 1024;

/// Headers of a `len`-byte review with `Expect: 100-continue`.
fn large_head(len: usize) -> String {
    format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_review_holding_the_budget_holds_up_large_ones_only() {
    let (server, client) = serve(&Pki::new(), |c| {
        c.max_body_bytes = 2 * MIB;
        c.max_inflight_body_bytes = 2 * MIB;
        c.body_timeout = Duration::from_millis(1500);
    })
    .await;
    // The first large review has its permits: the server asks for its body (100 Continue).
    let mut first = client.connect().await.unwrap();
    first
        .stream
        .write_all(large_head(3 * MIB / 2).as_bytes())
        .await
        .unwrap();
    let mut got = [0u8; 64];
    let n = tokio::time::timeout(BOUND, first.stream.read(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(
        got[..n].starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&got[..n])
    );

    // Meanwhile: a small review is served, the admin port answers...
    let small = Review::create(&Pod::gpu(1).ns("ai").build()).uid("small").to_string();
    let resp = client.post("/validate", small).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(admin_get(server.admin_addr, "/readyz").await.status, 200);
    // ...and a second large one waits for the budget, then is refused (never read).
    let second = client.connect().await.unwrap();
    let raw = second.raw(large_head(MIB).as_bytes()).await;
    let resp = parse_raw(&raw);
    assert_eq!(resp.status, 503, "{}", String::from_utf8_lossy(&raw));
    assert_eq!(resp.json()["code"], "overloaded");
    assert!(!String::from_utf8_lossy(&raw).contains("100 Continue"));
    // A Content-Length past what is drained (4x the limit) is 413 at once: it never waits for
    // the budget the first one holds.
    let third = client.connect().await.unwrap();
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        8 * MIB + 1
    );
    // (Waiting for the budget would have ended in 503 `overloaded`, so the status tells.)
    let resp = parse_raw(&third.raw(head.as_bytes()).await);
    assert_eq!(resp.status, 413);
    assert_eq!(resp.json()["code"], "body_too_large");

    let text = metrics_text(&server).await;
    assert_errors_counted(&text, &[("overloaded", 1.0)]);
    drop(first);
    server.shutdown().await;
}
