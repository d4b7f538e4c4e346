//! Memory bombs against the release server (issue 15, item 1; BENCHMARKS.md, "Bounded work"):
//! N concurrent worst-case reviews (a pod whose spec holds one long array of zeros, `--bytes`
//! each) on their own connections, while a healthy client sends small reviews and a prober asks
//! `/readyz`, both every 20 ms. Reports the server's peak RSS (`VmHWM`), the bombs' answers, and
//! the healthy client's and `/readyz`'s latency and failures. Loopback only, bounded in count and
//! time; the server it starts is killed at the end.
//!
//! ```text
//! cargo build --release -p gpu-admission -p gpu-admission-tools
//! target/release/bomb --server-bin target/release/gpu-admission --bombs 100 --bytes 8388000
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use gpu_admission_tools::load::{self, Client, Request};
use gpu_admission_tools::proc::{free_port, make_certs, serve_command, status_kib};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "target/release/gpu-admission")]
    server_bin: PathBuf,
    /// Concurrent worst-case reviews (each on its own connection).
    #[arg(long, default_value_t = 100)]
    bombs: usize,
    /// Size of each worst-case review body.
    #[arg(long, default_value_t = 8_388_000)]
    bytes: usize,
    #[arg(long, default_value = "target/bomb")]
    work_dir: PathBuf,
    /// Extra flags for `serve` (e.g. `--max-inflight-body-bytes=16777216`).
    #[arg(long, allow_hyphen_values = true)]
    serve_arg: Vec<String>,
}

/// The whole run ends after this, whatever happens.
const MAX_RUN: Duration = Duration::from_secs(300);

/// A CREATE review of a pod whose spec holds `[0,0,...]`, `bytes` long in all.
fn bomb_body(bytes: usize) -> Bytes {
    let head = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"bomb","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ai","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bomb","namespace":"ai"},"spec":{"containers":[{"name":"c","image":"busybox"}],"x":[0"#;
    let tail = "]}}}}";
    let zeros = bytes.saturating_sub(head.len() + tail.len()) / 2;
    let mut body = String::with_capacity(bytes);
    body.push_str(head);
    for _ in 0..zeros {
        body.push_str(",0");
    }
    body.push_str(tail);
    Bytes::from(body)
}

fn small_body() -> Bytes {
    Bytes::from(
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"healthy","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"ai","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"h","namespace":"ai"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
    )
}

async fn readyz(admin: SocketAddr) -> bool {
    let Ok(mut tcp) = tokio::net::TcpStream::connect(admin).await else {
        return false;
    };
    let req = b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if tcp.write_all(req).await.is_err() {
        return false;
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    read.is_ok() && out.starts_with(b"HTTP/1.1 200")
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.bombs == 0 || args.bombs > 500 || args.bytes > 64 << 20 {
        eprintln!("error: --bombs 1..500, --bytes at most 64 MiB");
        return ExitCode::from(2);
    }
    let certs = args.work_dir.join("certs");
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    if let Err(e) = make_certs(&args.server_bin, &certs) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = std::fs::File::create(args.work_dir.join("server.log")).expect("log file");
    let mut child = serve_command(&args.server_bin, &certs, addr, admin, log)
        .args(&args.serve_arg)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("the server starts");
    let pid = child.id();
    let client = Client::new(&certs.join("ca.crt"), None).expect("TLS client");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = runtime.block_on(async { tokio::time::timeout(MAX_RUN, run(&args, client, addr, admin, pid)).await });
    let _ = child.kill();
    let _ = child.wait();
    match report {
        Ok(Ok(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: the run took longer than {MAX_RUN:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args, client: Client, addr: SocketAddr, admin: SocketAddr, pid: u32) -> Result<String, String> {
    let healthy = Request {
        path: "/validate".into(),
        body: small_body(),
        expect_status: 200,
        expect_body: br#""uid":"healthy""#.to_vec(),
    };
    load::wait_until_ok(&client, addr, &healthy, Duration::from_secs(20)).await?;
    let idle_kib = status_kib(pid, "VmRSS").unwrap_or(0);
    let bomb = Request {
        path: "/validate".into(),
        body: bomb_body(args.bytes),
        expect_status: 200,
        expect_body: Vec::new(),
    };
    let done = Arc::new(AtomicBool::new(false));
    let healthy_task = {
        let (client, done, healthy) = (client.clone(), done.clone(), healthy.clone());
        tokio::spawn(async move {
            let (mut h, mut failed) = (load::histogram(), 0u64);
            let mut sender = client.connect(addr).await.ok();
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match sender.as_mut() {
                    Some(s) => load::send(s, &healthy).await.is_ok(),
                    None => false,
                };
                if ok {
                    let _ = h.record(t.elapsed().as_nanos() as u64);
                } else {
                    failed += 1;
                    sender = client.connect(addr).await.ok();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (h, failed)
        })
    };
    let probe_task = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut h, mut failed) = (load::histogram(), 0u64);
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                if readyz(admin).await {
                    let _ = h.record(t.elapsed().as_nanos() as u64);
                } else {
                    failed += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (h, failed)
        })
    };
    let started = Instant::now();
    let bombs: Vec<_> = (0..args.bombs)
        .map(|_| {
            let (client, bomb) = (client.clone(), bomb.clone());
            tokio::spawn(async move {
                let mut sender = client.connect(addr).await.map_err(|_| load::ErrorKind::Connect)?;
                load::send(&mut sender, &bomb).await
            })
        })
        .collect();
    let mut peak_kib = 0;
    let mut answers = [0usize; load::ERROR_KINDS.len() + 1];
    for b in bombs {
        while !b.is_finished() {
            peak_kib = peak_kib.max(status_kib(pid, "VmRSS").unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match b.await.map_err(|e| e.to_string())? {
            Ok(()) => answers[0] += 1,
            Err(kind) => answers[1 + kind as usize] += 1,
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (healthy_h, healthy_failed) = healthy_task.await.map_err(|e| e.to_string())?;
    let (probe_h, probe_failed) = probe_task.await.map_err(|e| e.to_string())?;
    let hwm_kib = status_kib(pid, "VmHWM").unwrap_or(peak_kib);
    let mut text = format!(
        "{} bombs of {} bytes in {:.1} s: {} answered 200",
        args.bombs,
        args.bytes,
        elapsed.as_secs_f64(),
        answers[0]
    );
    for (i, kind) in load::ERROR_KINDS.iter().enumerate() {
        if answers[i + 1] > 0 {
            text.push_str(&format!(", {} {kind}", answers[i + 1]));
        }
    }
    text.push_str(&format!(
        "\npeak RSS {:.1} MiB (VmHWM; idle {:.1} MiB)\n/readyz: {} probes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed\nhealthy /validate: {} reviews, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed",
        hwm_kib as f64 / 1024.0,
        idle_kib as f64 / 1024.0,
        probe_h.len(),
        load::ms(&probe_h, 0.5),
        load::ms(&probe_h, 0.99),
        probe_h.max() as f64 / 1e6,
        probe_failed,
        healthy_h.len(),
        load::ms(&healthy_h, 0.5),
        load::ms(&healthy_h, 0.99),
        healthy_h.max() as f64 / 1e6,
        healthy_failed
    ));
    Ok(text)
}
