//! Graceful shutdown under HTTP/1.1 keep-alive load loses nothing (issue 15, item 5): after the
//! shutdown starts, each keep-alive connection's next response carries `Connection: close`, every
//! request sent on an open connection is answered, and the server then exits.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use gpu_admission_testkit::{Pod, Review};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// Keep-alive connections sending in a loop.
const CONNECTIONS: usize = 8;
/// Requests answered before the shutdown starts.
const BEFORE: usize = 2000;
/// Requests per connection at most (the loop is bounded whatever happens).
const PER_CONNECTION_MAX: usize = 5000;

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    /// Sent on an open connection, and no answer: what must be 0.
    lost: AtomicUsize,
    /// Answers with `Connection: close` (after the shutdown started).
    closes: AtomicUsize,
    /// Connections that ended by an error rather than by `Connection: close`.
    broken: AtomicUsize,
}

async fn keep_alive_loop(client: Client, tally: Arc<Tally>, stopping: Arc<AtomicBool>) {
    let body = Bytes::from(Review::create(&Pod::gpu(1).ns("ai").build()).uid("drain").to_string());
    let mut sent = 0;
    'connections: while sent < PER_CONNECTION_MAX {
        let Ok(conn) = client.connect().await else {
            // Refused once the listener is gone: nothing was sent.
            if stopping.load(Ordering::Relaxed) {
                return;
            }
            continue;
        };
        let Ok((mut send, driver)) = hyper::client::conn::http1::handshake(TokioIo::new(conn.stream)).await else {
            continue;
        };
        tokio::spawn(driver);
        while sent < PER_CONNECTION_MAX {
            if send.ready().await.is_err() {
                // Closed while idle, before anything was written on it: not a lost request.
                if stopping.load(Ordering::Relaxed) {
                    tally.broken.fetch_add(1, Ordering::Relaxed);
                }
                continue 'connections;
            }
            let req = hyper::Request::post("/mutate")
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(body.clone()))
                .unwrap();
            sent += 1;
            let answer = async {
                let resp = send.send_request(req).await.ok()?;
                let close = resp.headers().get("connection").is_some_and(|v| v == "close");
                let ok = resp.status() == 200;
                resp.into_body().collect().await.ok()?;
                Some((ok, close))
            };
            match answer.await {
                Some((true, close)) => {
                    tally.answered.fetch_add(1, Ordering::Relaxed);
                    if close {
                        tally.closes.fetch_add(1, Ordering::Relaxed);
                        continue 'connections;
                    }
                }
                _ => {
                    tally.lost.fetch_add(1, Ordering::Relaxed);
                    continue 'connections;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_load_loses_nothing_on_shutdown() {
    let (server, client) = serve(&Pki::new(), |_| {}).await;
    let tally = Arc::new(Tally::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(keep_alive_loop(client.clone(), tally.clone(), stopping.clone())))
        .collect();
    eventually("load before the shutdown", || async {
        (tally.answered.load(Ordering::Relaxed) >= BEFORE).then_some(())
    })
    .await;
    let before = tally.answered.load(Ordering::Relaxed);
    stopping.store(true, Ordering::Relaxed);
    let handle = server.shutdown_handle();
    handle.trigger();
    for l in loops {
        tokio::time::timeout(BOUND, l)
            .await
            .expect("the client loop ends")
            .unwrap();
    }
    tokio::time::timeout(BOUND, server.wait())
        .await
        .expect("the server stops");

    let (answered, lost) = (
        tally.answered.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
    );
    let closes = tally.closes.load(Ordering::Relaxed);
    assert_eq!(
        lost,
        0,
        "{lost} of {} requests sent on open connections were lost",
        answered + lost
    );
    assert!(answered >= before, "{answered} answered");
    // Every connection (all busy at the shutdown) was told to close by its last response.
    assert_eq!(
        closes, CONNECTIONS,
        "responses with Connection: close ({answered} answered)"
    );
    eprintln!(
        "drain: {answered} answered ({before} before the shutdown), {lost} lost, {closes} Connection: close, {} closed idle",
        tally.broken.load(Ordering::Relaxed)
    );
}
