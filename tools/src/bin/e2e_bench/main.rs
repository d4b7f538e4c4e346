//! End-to-end benchmark through a real kube-apiserver (issue 6, part 3; `scripts/bench-e2e.sh`
//! runs it, BENCHMARKS.md has the figures).
//!
//! Server dry-run creates of a GPU pod (`POST /api/v1/namespaces/ai/pods?dryRun=All`) from N
//! concurrent clients, in three set-ups on one control plane (the e2e harness' etcd +
//! kube-apiserver, `gpu_admission_testkit::e2e::harness`):
//!
//! 1. `none`: no policy;
//! 2. `cel-vap`: the validation subset of the rules as a ValidatingAdmissionPolicy (CEL, in the
//!    API server's process) with a `Deny` binding: what a user would pick instead;
//! 3. `gpu-admission`: the release `gpu-admission serve`, registered with the mutating and
//!    validating webhook configurations of `deploy/overlays/local` (`gpu_admission_testkit::e2e::webhook`);
//! 4. `floor webhook` (with `--floor-bin`, a diagnostic): the floor server (`tools/src/bin/floor.rs`)
//!    (reads the review, answers allowed) behind the same configurations: the cost of being a
//!    webhook at all, apart from gpu-admission's own.
//!
//! Each client is its own HTTPS connection (HTTP/2 as client-go uses, or `--http1`) with the
//! harness' admin client certificate. A load (`--loads`) is N clients at full speed (each sends
//! its next request when its answer arrives) or N clients sharing a fixed rate. Every run is
//! bounded: a fixed number of requests after a warm-up, each request at most 30 s, every address
//! 127.0.0.1. Set-ups run in rounds, their order rotated each round (A B C, B C A, C A B, ...), so
//! drift hits all of them; the report gives medians of rounds, overheads paired within a round.
//! Within a round, the three set-ups of one load run back to back, seconds apart.
//!
//! Each set-up is checked to enforce what it should: before measuring, requests that the rules deny
//! are denied by set-ups 2 and 3 and allowed by set-up 1; after each run, a pod mounting `/` still
//! is; during each run gpu-admission's own counters must show that it reviewed every request of
//! set-up 3 and none of the others.
//!
//! Run it with `scripts/bench-e2e.sh`: it builds the release binary this runs
//! (`target/release/gpu-admission`).

mod client;
mod pods;
mod procs;
mod report;
mod server_metrics;

#[allow(unused_imports)]
use client::*;
#[allow(unused_imports)]
use pods::*;
#[allow(unused_imports)]
use procs::*;
#[allow(unused_imports)]
use report::*;
#[allow(unused_imports)]
use server_metrics::*;

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use gpu_admission_testkit::e2e::harness;
use gpu_admission_testkit::e2e::webhook::{self, Webhook, WebhookOptions, metric_sum};

/// The namespace of the load (the Coral's `/dev/bus/usb` is allowed there).
const NS: &str = "ai";
const VAP_NAME: &str = "gpu-rules.bench.gpu-admission.io";
const VALIDATE_PODS: &str = "pods.validate.gpu-admission.io";
const MUTATE_PODS: &str = "pods.mutate.gpu-admission.io";
/// Longest one request may take (the webhooks' own timeouts are 5 and 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one measured run may take, whatever is asked.
const MAX_RUN: Duration = Duration::from_secs(600);
/// Longest a set-up may take to become (in)active.
const SWITCH_WAIT: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(about = "gpu-admission end-to-end benchmark through kube-apiserver (see BENCHMARKS.md)")]
struct Args {
    /// Loads, one run each: `N` is N concurrent clients (one connection each), each sending its
    /// next request as soon as its answer arrives (closed loop, full speed); `N@R` is N clients
    /// sharing R requests/s on a fixed schedule (open loop; latency counted from each request's
    /// scheduled time).
    #[arg(long, value_delimiter = ',', default_value = "16,64,16@100")]
    loads: Vec<Load>,
    /// Measured requests per closed-loop run.
    #[arg(long, default_value_t = 3000)]
    requests: u64,
    /// Measured requests per fixed-rate run.
    #[arg(long, default_value_t = 1500)]
    paced_requests: u64,
    /// Unmeasured requests before each run (same connections).
    #[arg(long, default_value_t = 300)]
    warmup: u64,
    /// Rounds; each runs every set-up (order rotated) at every client count.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// HTTP/1.1 keep-alive connections instead of HTTP/2 (one connection per client either way).
    #[arg(long)]
    http1: bool,
    /// Also write the report (Markdown) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write a CPU profile of kube-apiserver (`/debug/pprof/profile`, `--pprof-seconds` long)
    /// taken during round 1's first run of each set-up here, as `<set-up>.pb.gz`
    /// (`go tool pprof -top FILE` reads it).
    #[arg(long)]
    pprof: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pprof_seconds: u32,
    /// Also run set-up 4: the floor server (`floor`: reads the review, answers
    /// allowed) behind the same webhook configurations as gpu-admission, to tell the cost of
    /// being a webhook at all from gpu-admission's own.
    #[arg(long)]
    floor_bin: Option<PathBuf>,
}

/// N clients at full speed, or sharing a fixed rate.
#[derive(Clone, Copy, PartialEq, Debug)]
struct Load {
    clients: usize,
    rate: Option<f64>,
}

impl std::str::FromStr for Load {
    type Err = String;
    fn from_str(s: &str) -> Result<Load, String> {
        let (n, rate) = match s.split_once('@') {
            Some((n, r)) => (n, Some(r.parse::<f64>().map_err(|e| format!("{s}: rate: {e}"))?)),
            None => (s, None),
        };
        let clients = n.parse::<usize>().map_err(|e| format!("{s}: clients: {e}"))?;
        if !(1..=512).contains(&clients) {
            return Err(format!("{s}: 1 to 512 clients"));
        }
        if rate.is_some_and(|r| !(r > 0.0 && r <= 10_000.0)) {
            return Err(format!("{s}: a rate from 1 to 10000 requests/s"));
        }
        Ok(Load { clients, rate })
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rate {
            None => write!(f, "{} clients, full speed", self.clients),
            Some(r) => write!(f, "{} clients, {r} req/s", self.clients),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    None,
    Vap,
    Webhook,
    /// Diagnostic: the floor server behind gpu-admission's webhook configurations.
    Floor,
}

const ALL_SETUPS: [Setup; 4] = [Setup::None, Setup::Vap, Setup::Webhook, Setup::Floor];

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::None => "1. none",
            Setup::Vap => "2. cel-vap",
            Setup::Webhook => "3. gpu-admission",
            Setup::Floor => "4. floor webhook",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("[e2e-bench] FAILED: see the errors and checks above");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("[e2e-bench] error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn log(msg: &str) {
    eprintln!("[e2e-bench] {msg}");
}

// === one run ===

struct Run {
    round: usize,
    setup: Setup,
    load: Load,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    seconds: f64,
    latency: Histogram<u64>,
    cpu: Cpu,
    /// Most connections from the API server to gpu-admission at once (sampled every 100 ms).
    max_webhook_conns: usize,
    /// Connections from the API server to gpu-admission opened during the run.
    new_webhook_conns: usize,
    before: Counters,
    after: Counters,
}

impl Run {
    fn p(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1e3
    }
    fn rps(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    /// CPU ms per request.
    fn cpu_per_req(&self, ticks: u64, hz: f64) -> f64 {
        ticks as f64 / hz * 1e3 / self.ok.max(1) as f64
    }
    fn served(&self, i: usize) -> f64 {
        self.after.served[i].1 - self.before.served[i].1
    }
    fn webhook_calls(&self, i: usize) -> f64 {
        self.after.webhooks[i].1 - self.before.webhooks[i].1
    }
}

struct Phase {
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

/// `total` requests from the clients' connections, closed loop or at `rate`; latency in µs.
async fn phase(
    target: &Target,
    conns: &mut [Conn],
    body: &Bytes,
    total: u64,
    rate: Option<f64>,
) -> Result<Phase, String> {
    let next = Cell::new(0u64);
    let start = Instant::now();
    let clients = conns.iter_mut().map(|conn| {
        let next = &next;
        async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds");
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut reconnects = 0;
            loop {
                let n = next.get();
                if n >= total {
                    break;
                }
                next.set(n + 1);
                let t0 = match rate {
                    None => Instant::now(),
                    Some(r) => {
                        // Request n is due at n / rate; a late one is sent at once, and its
                        // latency still counts from when it was due.
                        let due = start + Duration::from_secs_f64(n as f64 / r);
                        tokio::time::sleep_until(due).await;
                        due
                    }
                };
                let result = target.create_dry_run(conn, NS, body.clone()).await;
                let micros = t0.elapsed().as_micros() as u64;
                match result {
                    Ok(a) if a.status == 201 => {
                        ok += 1;
                        h.saturating_record(micros.max(1));
                    }
                    Ok(a) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("HTTP {}: {}", a.status, a.text()));
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| e.clone());
                        reconnects += 1;
                        if reconnects > 20 {
                            break;
                        }
                        if let Ok(c) = target.connect().await {
                            *conn = c;
                        }
                    }
                }
            }
            (h, ok, errors, first_error)
        }
    });
    let results = futures_util::future::join_all(clients).await;
    let mut out = Phase {
        ok: 0,
        errors: 0,
        first_error: None,
        latency: Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())?,
    };
    for (h, ok, errors, first) in results {
        out.latency.add(&h).map_err(|e| e.to_string())?;
        out.ok += ok;
        out.errors += errors;
        if out.first_error.is_none() {
            out.first_error = first;
        }
    }
    Ok(out)
}

struct Ctx<'a> {
    args: &'a Args,
    target: Target,
    webhook: &'a Webhook,
    pids: Pids,
}

async fn measure(
    ctx: &Ctx<'_>,
    round: usize,
    setup: Setup,
    load: Load,
    profile: Option<PathBuf>,
) -> Result<Run, String> {
    let body = Bytes::from(gpu_pod().to_string());
    let mut conns = Vec::with_capacity(load.clients);
    for _ in 0..load.clients {
        conns.push(ctx.target.connect().await?);
    }
    let warm = phase(&ctx.target, &mut conns, &body, ctx.args.warmup, None).await?;
    if warm.errors > 0 {
        return Err(format!(
            "{} warm-up: {} errors, first: {}",
            setup.name(),
            warm.errors,
            warm.first_error.unwrap_or_default()
        ));
    }
    let before = counters(&ctx.target, ctx.webhook).await?;
    let cpu0 = cpu_now(ctx.pids);
    let done = Cell::new(false);
    let t0 = Instant::now();
    let running = async {
        let total = if load.rate.is_some() {
            ctx.args.paced_requests
        } else {
            ctx.args.requests
        };
        let r = tokio::time::timeout(MAX_RUN, phase(&ctx.target, &mut conns, &body, total, load.rate)).await;
        done.set(true);
        (r, t0.elapsed().as_secs_f64(), cpu_now(ctx.pids))
    };
    let (_, earlier) = webhook_sockets(ctx.webhook.port);
    let sampler = async {
        let (mut max, mut seen) = (0, HashSet::<u16>::new());
        while !done.get() {
            let (established, ports) = webhook_sockets(ctx.webhook.port);
            max = max.max(established);
            seen.extend(ports.difference(&earlier));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, ports) = webhook_sockets(ctx.webhook.port);
        seen.extend(ports.difference(&earlier));
        (max, seen.len())
    };
    let profiler = async {
        let Some(path) = profile else { return Ok(()) };
        let mut conn = ctx.target.connect().await?;
        let url = format!("/debug/pprof/profile?seconds={}", ctx.args.pprof_seconds);
        let a = ctx.target.request(&mut conn, "GET", &url, Bytes::new()).await?;
        if a.status != 200 {
            return Err(format!("GET {url}: HTTP {}: {}", a.status, a.text()));
        }
        std::fs::write(&path, &a.body).map_err(|e| format!("{}: {e}", path.display()))
    };
    let ((result, seconds, cpu1), (max_webhook_conns, new_webhook_conns), profiled) =
        tokio::join!(running, sampler, profiler);
    profiled?;
    let measured = result.map_err(|_| format!("{} run longer than {MAX_RUN:?}", setup.name()))??;
    let after = counters(&ctx.target, ctx.webhook).await?;
    Ok(Run {
        round,
        setup,
        load,
        ok: measured.ok,
        errors: measured.errors,
        first_error: measured.first_error,
        seconds,
        latency: measured.latency,
        cpu: Cpu {
            apiserver: cpu1.apiserver - cpu0.apiserver,
            etcd: cpu1.etcd - cpu0.etcd,
            webhook: cpu1.webhook - cpu0.webhook,
            floor: cpu1.floor - cpu0.floor,
            client: cpu1.client - cpu0.client,
        },
        max_webhook_conns,
        new_webhook_conns,
        before,
        after,
    })
}

/// Checks that the run had no errors, that gpu-admission reviewed every request of set-up 3 and
/// none of the others, and that the API server called the pod webhooks for every request of
/// set-ups 3 and 4 and none of the others. (kube-apiserver 1.34 counts a ValidatingAdmissionPolicy's denials and
/// errors, not its admissions: set-up 2 is checked by a denied request before and after the run.)
fn check_run(r: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let n = r.ok as f64;
    let what = format!("{}, {}, round {}", r.setup.name(), r.load, r.round);
    if r.errors > 0 {
        problems.push(format!(
            "{what}: {} errors, first: {}",
            r.errors,
            r.first_error.clone().unwrap_or_default()
        ));
    }
    let (mutate, validate) = (r.served(0), r.served(1));
    let want = if r.setup == Setup::Webhook { n } else { 0.0 };
    // No other request reaches gpu-admission while a run is measured.
    if mutate != want || validate != want {
        problems.push(format!(
            "{what}: gpu-admission answered {mutate} mutate and {validate} validate reviews for {n} requests"
        ));
    }
    // The API server's count of its calls of the two pod webhooks (whoever answers them).
    let (mutate, validate) = (r.webhook_calls(0), r.webhook_calls(1));
    let want = if matches!(r.setup, Setup::Webhook | Setup::Floor) {
        n
    } else {
        0.0
    };
    if mutate != want || validate != want {
        problems.push(format!(
            "{what}: the API server called the pod webhooks {mutate} (mutate) and {validate} (validate) times for {n} requests"
        ));
    }
    problems
}

// === switching set-ups ===

async fn wait_until<F>(target: &Target, what: &str, ns: &str, pod: &Value, mut pred: F) -> Result<(), String>
where
    F: FnMut(&Answer) -> bool,
{
    let deadline = Instant::now() + SWITCH_WAIT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match target.create_once(ns, pod).await {
            Ok(a) if pred(&a) => return Ok(()),
            Ok(a) => last = format!("HTTP {}: {}", a.status, a.text()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("{what}: not within {SWITCH_WAIT:?}; last answer: {last}"))
}

fn hostpath_root_pod() -> Value {
    variant(NS, |p| host_path(p, "/"))
}

fn denied_by_vap(a: &Answer) -> bool {
    a.status >= 400 && a.text().contains(&format!("ValidatingAdmissionPolicy '{VAP_NAME}'"))
}

fn denied_by_webhook(a: &Answer) -> bool {
    a.status >= 400
        && a.text()
            .contains(&format!("admission webhook \\\"{VALIDATE_PODS}\\\" denied"))
}

/// Whether the answer's pod got the GPU toleration (gpu-admission's mutating webhook).
fn got_toleration(a: &Answer) -> bool {
    serde_json::from_slice::<Value>(&a.body).is_ok_and(|v| {
        v["spec"]["tolerations"]
            .as_array()
            .is_some_and(|ts| ts.iter().any(|t| t["key"] == "nvidia.com/gpu"))
    })
}

/// The set-up denies (2, 3) or admits (1) a pod mounting the host's `/`, now.
fn still_active(rt: &tokio::runtime::Runtime, ctx: &Ctx<'_>, setup: Setup) -> Result<(), String> {
    let a = rt.block_on(ctx.target.create_once(NS, &hostpath_root_pod()))?;
    let ok = match setup {
        // The floor allows everything; its runs are checked by the API server's call counts.
        Setup::None | Setup::Floor => a.status == 201,
        Setup::Vap => denied_by_vap(&a),
        Setup::Webhook => denied_by_webhook(&a),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "after the run, a pod mounting / got HTTP {}: {}",
            a.status,
            a.text()
        ))
    }
}

fn install(rt: &tokio::runtime::Runtime, ctx: &Ctx<'_>, setup: Setup, configs: &Configs) -> Result<(), String> {
    let t = &ctx.target;
    match setup {
        Setup::None => Ok(()),
        Setup::Floor => {
            // Waits until the API server uses exactly these configurations (the floor's port
            // and CA).
            webhook::apply_webhook_configurations(configs.floor.as_ref().ok_or("no floor server")?);
            Ok(())
        }
        Setup::Vap => {
            harness::kubectl(&["apply", "-f", "-"], Some(&vap().to_string())).assert_success();
            rt.block_on(wait_until(
                t,
                "the policy denies",
                NS,
                &hostpath_root_pod(),
                denied_by_vap,
            ))
        }
        Setup::Webhook => {
            // Waits until the API server uses exactly these configurations.
            webhook::apply_webhook_configurations(&configs.gpu_admission);
            rt.block_on(wait_until(
                t,
                "gpu-admission denies",
                NS,
                &hostpath_root_pod(),
                denied_by_webhook,
            ))?;
            rt.block_on(wait_until(t, "gpu-admission mutates", NS, &unpatched_pod(), |a| {
                a.status == 201 && got_toleration(a)
            }))
        }
    }
}

fn uninstall(rt: &tokio::runtime::Runtime, ctx: &Ctx<'_>, setup: Setup) -> Result<(), String> {
    let t = &ctx.target;
    match setup {
        Setup::None => Ok(()),
        Setup::Vap => {
            harness::kubectl(
                &[
                    "delete",
                    "validatingadmissionpolicybinding,validatingadmissionpolicy",
                    VAP_NAME,
                    "--ignore-not-found",
                ],
                None,
            )
            .assert_success();
            rt.block_on(wait_until(t, "the policy is gone", NS, &hostpath_root_pod(), |a| {
                a.status == 201
            }))
        }
        Setup::Floor => {
            webhook::delete_webhook_configurations();
            // Gone once a pod create no longer counts a call of the mutating pod webhook.
            let deadline = Instant::now() + SWITCH_WAIT;
            loop {
                let calls = |c: Counters| c.webhooks[0].1;
                let before = calls(rt.block_on(counters(t, ctx.webhook))?);
                rt.block_on(t.create_once(NS, &gpu_pod()))?;
                if calls(rt.block_on(counters(t, ctx.webhook))?) == before {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(format!("the floor webhook is still called after {SWITCH_WAIT:?}"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Setup::Webhook => {
            webhook::delete_webhook_configurations();
            rt.block_on(wait_until(
                t,
                "the validating webhook is gone",
                NS,
                &hostpath_root_pod(),
                |a| a.status == 201,
            ))?;
            rt.block_on(wait_until(
                t,
                "the mutating webhook is gone",
                NS,
                &unpatched_pod(),
                |a| a.status == 201 && !got_toleration(a),
            ))
        }
    }
}

/// The set-up (installed) admits and denies what it should. Returns Markdown rows.
fn sanity(rt: &tokio::runtime::Runtime, ctx: &Ctx<'_>, setup: Setup) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for c in cases() {
        let a = rt.block_on(ctx.target.create_once(c.ns, &c.pod))?;
        let want_denied = c.denied && matches!(setup, Setup::Vap | Setup::Webhook);
        let ok = match (setup, want_denied) {
            (_, false) => a.status == 201,
            (Setup::Vap, true) => denied_by_vap(&a),
            (Setup::Webhook, true) => denied_by_webhook(&a),
            (Setup::None | Setup::Floor, true) => unreachable!(),
        };
        let got = if a.status == 201 {
            "allowed".to_string()
        } else {
            format!("denied ({})", a.status)
        };
        rows.push(format!(
            "| {} | {} ({}) | {} | {got} |",
            setup.name(),
            c.what,
            c.ns,
            if want_denied { "denied" } else { "allowed" }
        ));
        if !ok {
            bad.push(format!(
                "{}: {} -> HTTP {}: {}",
                setup.name(),
                c.what,
                a.status,
                a.text()
            ));
        }
    }
    // Set-up 3 also patches: a GPU pod without the toleration gets it.
    let a = rt.block_on(ctx.target.create_once(NS, &unpatched_pod()))?;
    let patched = a.status == 201 && got_toleration(&a);
    let want_patched = setup == Setup::Webhook;
    rows.push(format!(
        "| {} | GPU pod without the toleration ({NS}) | {} | {} |",
        setup.name(),
        if want_patched {
            "allowed, toleration added"
        } else {
            "allowed as is"
        },
        match (a.status, patched) {
            (201, true) => "allowed, toleration added".to_string(),
            (201, false) => "allowed as is".to_string(),
            (s, _) => format!("denied ({s})"),
        }
    ));
    if a.status != 201 || patched != want_patched {
        bad.push(format!(
            "{}: unpatched pod -> HTTP {}: {}",
            setup.name(),
            a.status,
            a.text()
        ));
    }
    if bad.is_empty() {
        Ok(rows)
    } else {
        Err(format!(
            "set-up {} does not enforce as it should:\n{}",
            setup.name(),
            bad.join("\n")
        ))
    }
}

// === the whole run ===

/// The webhook configurations of `deploy/overlays/local`, pointed at gpu-admission and (set-up 4)
/// at the floor server.
struct Configs {
    gpu_admission: Value,
    floor: Option<Value>,
}

/// The floor server (`floor`), killed on drop and by the harness' reaper.
struct Floor {
    child: std::process::Child,
    port: u16,
    ca_pem: String,
}

impl Floor {
    fn start(cp: &'static harness::ControlPlane, bin: &Path) -> Result<Floor, String> {
        use std::os::unix::process::CommandExt as _;
        let dir = cp.dir().join("floor");
        let certs = webhook::CertSet::new_ca(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = std::fs::File::create(dir.join("floor.log")).map_err(|e| e.to_string())?;
        let child = Command::new(bin)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--tls-cert={}", dir.join("tls.crt").display()))
            .arg(format!("--tls-key={}", dir.join("tls.key").display()))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let mut floor = Floor {
            child,
            port,
            ca_pem: certs.ca_pem(),
        };
        cp.register_process_group(floor.child.id())?;
        let deadline = std::time::Instant::now() + SWITCH_WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = floor.child.try_wait() {
                return Err(format!("{} exited: {status}", bin.display()));
            }
            if std::time::Instant::now() > deadline {
                return Err(format!("{} does not listen on {port}", bin.display()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(floor)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn first_line(cmd: &Path, arg: &str) -> String {
    Command::new(cmd)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpus} CPUs, {model}")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(args: &Args) -> Result<bool, String> {
    let bounded = |n: u64| (1..=200_000).contains(&n);
    if args.loads.is_empty()
        || !bounded(args.requests)
        || !bounded(args.paced_requests)
        || args.warmup > 100_000
        || !(1..=20).contains(&args.rounds)
    {
        return Err(
            "bounds: at least one load, --requests and --paced-requests 1..=200000, --warmup <= 100000, --rounds 1..=20"
                .into(),
        );
    }
    if !webhook::bin().is_file() {
        return Err(format!(
            "{} is missing: build it first (cargo build --release; scripts/bench-e2e.sh does)",
            webhook::bin().display()
        ));
    }
    let load_start = loadavg();
    log("starting etcd + kube-apiserver (gpu_admission_testkit::e2e::harness)");
    let cp = harness::shared();
    webhook::ensure_namespaces(&[NS]);
    log(&format!("starting {} serve", webhook::bin().display()));
    let w = Webhook::start(WebhookOptions::default());
    let floor = match &args.floor_bin {
        Some(bin) => {
            log(&format!("starting {}", bin.display()));
            Some(Floor::start(cp, bin)?)
        }
        None => None,
    };
    let configs = Configs {
        gpu_admission: webhook::render_local_overlay(w.port, &w.certs.ca_pem()),
        floor: floor.as_ref().map(|f| webhook::render_local_overlay(f.port, &f.ca_pem)),
    };
    let setups: Vec<Setup> = ALL_SETUPS
        .into_iter()
        .filter(|&s| s != Setup::Floor || floor.is_some())
        .collect();
    // The PriorityClasses of deploy/components/priorityclasses, for every set-up (the Priority plugin resolves
    // the pod's class in all three), and one class that the rules do not allow.
    let mut classes: Vec<Value> = configs.gpu_admission["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| i["kind"] == "PriorityClass")
        .cloned()
        .collect();
    classes.push(json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                        "metadata": {"name": "low-priority"}, "value": 1000}));
    let list = json!({"apiVersion": "v1", "kind": "List", "items": classes}).to_string();
    harness::kubectl(&["apply", "-f", "-"], Some(&list)).assert_success();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let pids = find_pids(cp);
    if pids.apiserver == 0 || pids.etcd == 0 || pids.webhook == 0 {
        return Err(format!("cannot find the processes in {}/pgids", cp.dir().display()));
    }
    let ctx = Ctx {
        args,
        target: Target::new(cp, args.http1)?,
        webhook: &w,
        pids,
    };
    let hz = clock_ticks();

    let mut sanity_rows = Vec::new();
    let mut runs: Vec<Run> = Vec::new();
    let mut problems = Vec::new();
    // Each set-up was checked (sanity) once, the first time it was installed.
    let mut checked = Vec::new();
    for round in 1..=args.rounds {
        // For each load, the three set-ups back to back (the order rotated each round), so that
        // a run and its baseline are seconds apart.
        for (l, &load) in args.loads.iter().enumerate() {
            for k in 0..setups.len() {
                let setup = setups[(k + round + l - 1) % setups.len()];
                install(&rt, &ctx, setup, &configs)?;
                if !checked.contains(&setup) {
                    sanity_rows.extend(sanity(&rt, &ctx, setup)?);
                    checked.push(setup);
                }
                let profile = match &args.pprof {
                    Some(dir) if round == 1 && l == 0 => {
                        let file = setup.name().replace(". ", "-").replace(' ', "-");
                        Some(dir.join(format!("{file}.pb.gz")))
                    }
                    _ => None,
                };
                let r = rt.block_on(measure(&ctx, round, setup, load, profile))?;
                log(&format!(
                    "round {round}/{} {:<17} {:<24} {:>6.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}",
                    args.rounds,
                    setup.name(),
                    load.to_string(),
                    r.rps(),
                    r.p(0.5),
                    r.p(0.99),
                    r.errors
                ));
                problems.extend(check_run(&r));
                // Still enforcing (or still not) after the run.
                if let Err(e) = still_active(&rt, &ctx, setup) {
                    problems.push(format!("{}, {load}, round {round}: {e}", setup.name()));
                }
                runs.push(r);
                uninstall(&rt, &ctx, setup)?;
            }
        }
    }
    let bins = cp.binaries();
    let versions = [
        first_line(&bins.kube_apiserver, "--version"),
        first_line(&bins.etcd, "--version"),
        first_line(webhook::bin(), "--version"),
    ];
    let report = report(
        args,
        &setups,
        &runs,
        &sanity_rows,
        &problems,
        hz,
        &versions,
        &load_start,
    );
    println!("{report}");
    if let Some(path) = &args.report {
        std::fs::write(path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    drop(floor);
    drop(w);
    Ok(problems.is_empty())
}
