//! Benchmark driver (BENCHMARKS.md; `scripts/bench.sh` runs it):
//!
//! - `benchkit load`: starts `gpu-admission serve` (release build, certificates from
//!   `gpu-admission certs`) and the floor server (`floor`) side by side on 127.0.0.1,
//!   replays recorded AdmissionReview bodies over HTTPS keep-alive (HTTP/1.1, as kube-apiserver
//!   calls webhooks) from N connections, at full speed and at fixed rates, and reports
//!   throughput, latency percentiles (HdrHistogram), errors, each server's CPU
//!   (`/proc/PID/stat`) and peak RSS (`VmHWM`), and gpu-admission's ratios to the floor.
//! - `benchkit check-bin`: writes a 10,000-object manifest file and times the real
//!   `gpu-admission check` over it.
//!
//! The load generator is not gpu-admission: hyper's HTTP/1.1 client over tokio-rustls (ring).
//! Loops are bounded in time and count; every address is loopback.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use gpu_admission_testkit::fixtures as support;
use gpu_admission_tools::load::{self, Client, MAX_RUN, Outcome, Request};
use gpu_admission_tools::proc::{free_port, make_certs, serve_command, status_kib};

#[derive(Parser)]
#[command(about = "gpu-admission benchmark driver (BENCHMARKS.md)")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// HTTPS load: gpu-admission and the floor server, side by side.
    Load(LoadArgs),
    /// The real `gpu-admission check` over a generated manifest file.
    CheckBin(CheckBinArgs),
}

#[derive(Parser)]
struct LoadArgs {
    /// The gpu-admission binary (a release build).
    #[arg(long, default_value = "target/release/gpu-admission")]
    server_bin: PathBuf,
    /// The floor server binary (`cargo build --release -p gpu-admission-tools`).
    #[arg(long, default_value = "target/release/floor")]
    floor_bin: PathBuf,
    /// Certificates and server logs go here.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Measured seconds per run (at most 120).
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// Rounds; each round runs every scenario against each server (order alternating).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Scenarios `FIXTURE@ENDPOINT:RATE`, RATE `max` (full speed) or reviews per second.
    /// Fixtures: see testkit/src/fixtures.rs.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gpu-pod@validate:max,gpu-pod@validate:2000,gpu-pod-unpatched@mutate:max,big-update@validate:max,big-update@validate:500"
    )]
    scenarios: Vec<String>,
    /// Threads of the load generator's runtime (1: current-thread runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Also run gpu-admission with RUST_LOG=warn (no per-review log line), to show the cost of
    /// the review log.
    #[arg(long)]
    quiet_variant: bool,
    /// Also run another gpu-admission build side by side (a branch, another allocator), under
    /// NAME (repeatable).
    #[arg(long, value_name = "NAME=BIN")]
    compare: Vec<String>,
    /// Write every run as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Parser)]
struct CheckBinArgs {
    #[arg(long, default_value = "target/release/gpu-admission")]
    server_bin: PathBuf,
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    objects: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Output formats to time (`text` is the default report).
    #[arg(long, value_delimiter = ',', default_value = "text,json,junit,sarif,github")]
    formats: Vec<String>,
    /// Another build to time in the same run, interleaved run by run, for a ratio (only in the
    /// formats it has: text and json for builds before issue 13).
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::Load(args) => load(args),
        Cmd::CheckBin(args) => check_bin(args),
    }
}

// === processes ===

/// A server under test, started by us (stopped by pid on drop).
struct Server {
    name: String,
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file")
}

fn start_gpu_admission(args: &LoadArgs, bin: &Path, certs: &Path, name: &str, quiet: bool) -> Server {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = log_file(&args.work_dir, name);
    let mut cmd = serve_command(bin, certs, addr, admin, log);
    if quiet {
        cmd.env("RUST_LOG", "warn");
    } else {
        cmd.env_remove("RUST_LOG");
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    Server {
        name: name.into(),
        child,
        addr,
    }
}

fn start_floor(args: &LoadArgs, certs: &Path) -> Server {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = log_file(&args.work_dir, "floor");
    let child = Command::new(&args.floor_bin)
        .args(["--listen", &addr.to_string()])
        .arg("--tls-cert")
        .arg(certs.join("tls.crt"))
        .arg("--tls-key")
        .arg(certs.join("tls.key"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", args.floor_bin.display()));
    Server {
        name: "floor".into(),
        child,
        addr,
    }
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (field(11) + field(12)) / ticks // utime is field 14, stime field 15 (1-based)
}

/// CPU seconds the whole machine spent busy (all CPUs: everything but idle and iowait).
fn machine_busy_seconds(ticks: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let v: Vec<f64> = cpu.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = v
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, x)| x)
        .sum();
    busy / ticks
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// === one run ===

#[derive(Clone)]
struct Scenario {
    label: String,
    fixture: &'static str,
    request: Request,
    /// Reviews per second; `None`: full speed.
    rate: Option<f64>,
}

fn parse_scenario(spec: &str) -> Result<Scenario, String> {
    let (target, rate) = spec.rsplit_once(':').ok_or("expected FIXTURE@ENDPOINT:RATE")?;
    let (fixture, endpoint) = target.split_once('@').ok_or("expected FIXTURE@ENDPOINT:RATE")?;
    let (fixture, body) = support::FIXTURES
        .iter()
        .find(|(n, _)| *n == fixture)
        .ok_or_else(|| format!("no fixture `{fixture}`"))?;
    if !matches!(endpoint, "validate" | "mutate") {
        return Err(format!("endpoint `{endpoint}`: validate or mutate"));
    }
    let rate = match rate {
        "max" => None,
        r => Some(
            r.parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && *r <= 200_000.0)
                .ok_or("RATE: max or 1..200000")?,
        ),
    };
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let uid = value["request"]["uid"].as_str().ok_or("fixture without uid")?;
    Ok(Scenario {
        label: spec.to_string(),
        fixture,
        request: Request {
            path: format!("/{endpoint}"),
            body: Bytes::from_static(body),
            expect_status: 200,
            // A review answer for this request (allowed or not: both are answers).
            expect_body: format!("\"uid\":\"{uid}\"").into_bytes(),
        },
        rate,
    })
}

struct RunResult {
    server: String,
    scenario: String,
    round: usize,
    outcome: Outcome,
    cpu_seconds: f64,
    /// The load generator's own CPU over the run (it shares the machine with the server).
    client_cpu_seconds: f64,
    /// CPU used by everything else on the machine during the run (other users' work: noise).
    other_cpu_seconds: f64,
    hwm_kib: u64,
    rss_kib: u64,
}

impl RunResult {
    fn cpu_us_per_review(&self) -> f64 {
        if self.outcome.ok == 0 {
            0.0
        } else {
            self.cpu_seconds * 1e6 / self.outcome.ok as f64
        }
    }
    fn to_json(&self) -> Value {
        let o = &self.outcome;
        let errors: BTreeMap<&str, u64> = load::ERROR_KINDS.iter().copied().zip(o.errors).collect();
        json!({
            "server": self.server, "scenario": self.scenario, "round": self.round,
            "ok": o.ok, "errors": errors, "seconds": o.seconds,
            "throughput": o.throughput(),
            "p50_ms": o.p(0.5), "p90_ms": o.p(0.9), "p99_ms": o.p(0.99),
            "p999_ms": o.p(0.999), "max_ms": o.latency.max() as f64 / 1e6,
            "corrected_p99_ms": o.corrected_p(0.99),
            "server_cpu_seconds": self.cpu_seconds,
            "server_cpu_percent": 100.0 * self.cpu_seconds / o.seconds,
            "server_cpu_us_per_review": self.cpu_us_per_review(),
            "client_cpu_percent": 100.0 * self.client_cpu_seconds / o.seconds,
            "other_cpu_percent": 100.0 * self.other_cpu_seconds / o.seconds,
            "vm_hwm_kib": self.hwm_kib, "vm_rss_kib": self.rss_kib,
        })
    }
}

async fn run_once(
    client: &Client,
    server: &Server,
    scenario: &Scenario,
    conns: usize,
    duration: Duration,
) -> RunResult {
    let ticks = clock_ticks();
    let pid = server.child.id();
    let mut before = (0.0, 0.0, 0.0);
    let window_starts = || {
        before = (
            cpu_seconds(pid, ticks),
            cpu_seconds(std::process::id(), ticks),
            machine_busy_seconds(ticks),
        );
    };
    let outcome = load::run(
        client,
        server.addr,
        &scenario.request,
        conns,
        duration,
        scenario.rate,
        window_starts,
    )
    .await;
    let cpu = cpu_seconds(pid, ticks) - before.0;
    let client_cpu = cpu_seconds(std::process::id(), ticks) - before.1;
    let busy = machine_busy_seconds(ticks) - before.2;
    RunResult {
        server: server.name.clone(),
        scenario: scenario.label.clone(),
        round: 0,
        cpu_seconds: cpu,
        client_cpu_seconds: client_cpu,
        other_cpu_seconds: (busy - cpu - client_cpu).max(0.0),
        outcome,
        hwm_kib: status_kib(pid, "VmHWM").unwrap_or(0),
        rss_kib: status_kib(pid, "VmRSS").unwrap_or(0),
    }
}

// === load ===

fn load(args: LoadArgs) -> ExitCode {
    let scenarios: Vec<Scenario> = match args.scenarios.iter().map(|s| parse_scenario(s)).collect() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --scenarios: {e}");
            return ExitCode::from(2);
        }
    };
    if args.connections == 0 || args.connections > 1000 || args.rounds == 0 || args.rounds > 20 {
        eprintln!("error: --connections 1..1000, --rounds 1..20");
        return ExitCode::from(2);
    }
    let duration = Duration::from_secs_f64(args.duration.clamp(0.5, MAX_RUN.as_secs_f64()));
    let certs = args.work_dir.join("certs");
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    if let Err(e) = make_certs(&args.server_bin, &certs) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let client = match Client::new(&certs.join("ca.crt"), None) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };

    let runtime = if args.client_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");

    let mut servers = vec![
        start_floor(&args, &certs),
        start_gpu_admission(&args, &args.server_bin, &certs, "gpu-admission", false),
    ];
    if args.quiet_variant {
        servers.push(start_gpu_admission(
            &args,
            &args.server_bin,
            &certs,
            "gpu-admission-quiet",
            true,
        ));
    }
    for spec in &args.compare {
        let Some((name, bin)) = spec.split_once('=').filter(|(n, b)| !n.is_empty() && !b.is_empty()) else {
            eprintln!("error: --compare {spec}: expected NAME=BIN");
            return ExitCode::from(2);
        };
        servers.push(start_gpu_admission(&args, Path::new(bin), &certs, name, false));
    }
    for server in &mut servers {
        let ready = load::wait_until_ok(&client, server.addr, &scenarios[0].request, Duration::from_secs(30));
        if let Err(e) = runtime.block_on(ready) {
            let e = match server.child.try_wait() {
                Ok(Some(status)) => format!("exited ({status})"),
                _ => e,
            };
            let log = args.work_dir.join(format!("{}.log", server.name));
            eprintln!("error: {}: {e} (log: {})", server.name, log.display());
            return ExitCode::from(1);
        }
    }
    println!(
        "load: {} connections, {:.1} s per run, {} rounds, client runtime {} thread(s), servers: {}",
        args.connections,
        duration.as_secs_f64(),
        args.rounds,
        args.client_threads.max(1),
        servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    println!(
        "{:<32} {:<22} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>6} {:>6} {:>6} {:>8}",
        "scenario",
        "server",
        "reviews/s",
        "p50 ms",
        "p99 ms",
        "p99.9ms",
        "cor.p99",
        "errors",
        "cpu us/r",
        "srv %",
        "cli %",
        "oth %",
        "HWM MiB"
    );
    let mut results: Vec<RunResult> = Vec::new();
    for round in 0..args.rounds {
        for scenario in &scenarios {
            let mut order: Vec<usize> = (0..servers.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let mut r = runtime.block_on(run_once(&client, &servers[i], scenario, args.connections, duration));
                r.round = round;
                let corrected = if scenario.rate.is_some() {
                    format!("{:.3}", r.outcome.corrected_p(0.99))
                } else {
                    "-".into()
                };
                println!(
                    "{:<32} {:<22} {:>9.0} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>7} {:>9.1} {:>6.0} {:>6.0} {:>6.0} {:>8.1}",
                    r.scenario,
                    r.server,
                    r.outcome.throughput(),
                    r.outcome.p(0.5),
                    r.outcome.p(0.99),
                    r.outcome.p(0.999),
                    corrected,
                    r.outcome.error_total(),
                    r.cpu_us_per_review(),
                    100.0 * r.cpu_seconds / r.outcome.seconds,
                    100.0 * r.client_cpu_seconds / r.outcome.seconds,
                    100.0 * r.other_cpu_seconds / r.outcome.seconds,
                    r.hwm_kib as f64 / 1024.0
                );
                results.push(r);
            }
        }
    }
    let summary = summarize(&scenarios, &servers, &results);
    print!("{summary}");
    if let Some(path) = &args.json {
        let doc = json!({
            "connections": args.connections, "seconds_per_run": duration.as_secs_f64(),
            "rounds": args.rounds, "client_threads": args.client_threads.max(1),
            "runs": results.iter().map(RunResult::to_json).collect::<Vec<_>>(),
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            eprintln!("error: {}: {e}", path.display());
        }
    }
    drop(servers);
    ExitCode::SUCCESS
}

/// Medians over rounds, ratios to the floor, and the targets.
/// A run is quiet when the rest of the machine used less than this share of one CPU meanwhile.
const QUIET_OTHER_CPU: f64 = 0.25;

fn quiet(r: &RunResult) -> bool {
    r.other_cpu_seconds / r.outcome.seconds < QUIET_OTHER_CPU
}

/// Every run, then (if some rounds were quiet and some not) only the rounds of a scenario in which
/// every server's run was quiet; RSS; the targets, judged on the quiet rounds when there are any.
fn summarize(scenarios: &[Scenario], servers: &[Server], results: &[RunResult]) -> String {
    let (mut out, all_misses) = table("all rounds", scenarios, servers, &results.iter().collect::<Vec<_>>());
    let quiet_runs: Vec<&RunResult> = results
        .iter()
        .filter(|r| {
            results
                .iter()
                .filter(|o| o.scenario == r.scenario && o.round == r.round)
                .all(quiet)
        })
        .collect();
    let mut misses = all_misses;
    if !quiet_runs.is_empty() && quiet_runs.len() < results.len() {
        let title = format!(
            "quiet rounds only (the rest of the machine used < {:.0}% of a CPU during every run of the round)",
            QUIET_OTHER_CPU * 100.0
        );
        let (quiet_out, quiet_misses) = table(&title, scenarios, servers, &quiet_runs);
        out.push_str(&quiet_out);
        // A scenario with quiet rounds is judged on them for speed; errors count in every round.
        let has_quiet = |m: &str| {
            scenarios
                .iter()
                .any(|s| m.contains(&s.label) && quiet_runs.iter().any(|r| r.scenario == s.label))
        };
        misses.retain(|m| m.ends_with(" errors") || !has_quiet(m));
        misses.extend(
            quiet_misses
                .into_iter()
                .filter(|m| !m.ends_with(" errors"))
                .map(|m| format!("{m} [quiet rounds]")),
        );
    }
    let _ = writeln!(out, "\npeak RSS (VmHWM over all runs):");
    for server in servers {
        let hwm = results
            .iter()
            .filter(|r| r.server == server.name)
            .map(|r| r.hwm_kib)
            .max()
            .unwrap_or(0);
        let _ = writeln!(out, "  {:<22} {:>6.1} MiB", server.name, hwm as f64 / 1024.0);
        if server.name != "floor" && hwm > 32 * 1024 {
            misses.push(format!(
                "{}: peak RSS {:.1} MiB (target < 32 MiB)",
                server.name,
                hwm as f64 / 1024.0
            ));
        }
    }
    if misses.is_empty() {
        let _ = writeln!(
            out,
            "targets: all met (>= 0.8 of floor throughput, p99 < 2 ms at 2,000/s, RSS < 32 MiB, no errors)"
        );
    } else {
        let _ = writeln!(out, "targets missed:");
        for m in misses {
            let _ = writeln!(out, "  - {m}");
        }
    }
    out
}

/// Medians over the given runs, ratios paired within rounds, and the targets they miss.
fn table(title: &str, scenarios: &[Scenario], servers: &[Server], results: &[&RunResult]) -> (String, Vec<String>) {
    let mut out = String::new();
    let runs = |scenario: &str, server: &str| -> Vec<&RunResult> {
        results
            .iter()
            .copied()
            .filter(|r| r.scenario == scenario && r.server == server)
            .collect()
    };
    let med = |runs: &[&RunResult], f: &dyn Fn(&RunResult) -> f64| load::median(runs.iter().map(|r| f(r)).collect());
    let _ = writeln!(
        out,
        "\n{title}: medians over rounds; ratio = server / floor within each round, median over rounds\n(throughput: higher is better; p99 and CPU per review: lower is better)"
    );
    let _ = writeln!(
        out,
        "{:<32} {:<22} {:>9} {:>7} {:>8} {:>7} {:>9} {:>7} {:>7}",
        "scenario", "server", "reviews/s", "ratio", "p99 ms", "ratio", "cpu us/r", "ratio", "errors"
    );
    let mut misses = Vec::new();
    for s in scenarios {
        let floor = runs(&s.label, "floor");
        // Ratios are paired within a round (the floor's run next to the server's), then the median
        // over rounds: drift on a shared machine hits both sides of a pair alike.
        let paired = |rs: &[&RunResult], f: &dyn Fn(&RunResult) -> f64| {
            load::median(
                rs.iter()
                    .filter_map(|r| {
                        let base = floor.iter().find(|b| b.round == r.round)?;
                        Some(f(r) / f(base))
                    })
                    .collect(),
            )
        };
        for server in servers {
            let rs = runs(&s.label, &server.name);
            let tp = med(&rs, &|r| r.outcome.throughput());
            let p99 = med(&rs, &|r| r.outcome.p(0.99));
            let cpu = med(&rs, &RunResult::cpu_us_per_review);
            let tp_ratio = paired(&rs, &|r| r.outcome.throughput());
            let errors: u64 = rs.iter().map(|r| r.outcome.error_total()).sum();
            let _ = writeln!(
                out,
                "{:<32} {:<22} {:>9.0} {:>7.2} {:>8.3} {:>7.2} {:>9.1} {:>7.2} {:>7}",
                s.label,
                server.name,
                tp,
                tp_ratio,
                p99,
                paired(&rs, &|r| r.outcome.p(0.99)),
                cpu,
                paired(&rs, &RunResult::cpu_us_per_review),
                errors
            );
            if server.name == "floor" {
                continue;
            }
            if errors > 0 {
                misses.push(format!("{} {}: {errors} errors", server.name, s.label));
            }
            if s.rate.is_none() && tp_ratio < 0.8 {
                misses.push(format!(
                    "{} {}: {tp_ratio:.2} of the floor's throughput (target >= 0.8)",
                    server.name, s.label
                ));
            }
            if s.rate == Some(2000.0) && s.fixture == "gpu-pod" && p99 >= 2.0 {
                misses.push(format!("{} {}: p99 {p99:.3} ms (target < 2 ms)", server.name, s.label));
            }
        }
    }
    (out, misses)
}

// === check-bin ===

/// One `check` run of `bin` over `file`: (seconds, peak RSS in KiB).
fn time_check(bin: &std::path::Path, extra: &[&str], file: &std::path::Path) -> Result<(f64, u64), String> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg("check")
        .args(extra)
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id();
    let mut hwm = 0;
    // Poll the peak RSS while it runs (VmHWM only grows; the last read is close to the peak).
    let status = loop {
        if let Some(kib) = status_kib(pid, "VmHWM") {
            hwm = hwm.max(kib);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e.to_string()),
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    // 1: some objects are denied (the mix has denials on purpose); 2 would be an error.
    if status.code() != Some(1) {
        return Err(format!(
            "{} check {extra:?} exited with {status} (expected 1: the mix has denials)",
            bin.display()
        ));
    }
    Ok((elapsed, hwm))
}

fn check_bin(args: CheckBinArgs) -> ExitCode {
    if args.objects == 0 || args.objects > 1_000_000 || args.runs == 0 || args.runs > 50 {
        eprintln!("error: --objects 1..1000000, --runs 1..50");
        return ExitCode::from(2);
    }
    std::fs::create_dir_all(&args.work_dir).expect("work dir");
    let file = args.work_dir.join(format!("check-{}.yaml", args.objects));
    std::fs::write(&file, support::manifests_yaml(args.objects)).expect("manifest file");
    println!(
        "check-bin: `{} check {}` ({} objects, {} MB), {} runs, output to /dev/null",
        args.server_bin.display(),
        file.display(),
        args.objects,
        std::fs::metadata(&file).map(|m| m.len() / 1_000_000).unwrap_or(0),
        args.runs
    );
    for format in &args.formats {
        let extra = ["--output", format.as_str()];
        let mut bins = vec![("", &args.server_bin)];
        if let Some(base) = &args.baseline_bin
            && matches!(format.as_str(), "text" | "json")
        {
            bins.push(("baseline ", base));
        }
        let mut times = vec![Vec::new(); bins.len()];
        let mut hwm = vec![0; bins.len()];
        for _ in 0..args.runs {
            for (i, (_, bin)) in bins.iter().enumerate() {
                match time_check(bin, &extra, &file) {
                    Ok((t, kib)) => {
                        times[i].push(t);
                        hwm[i] = hwm[i].max(kib);
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
        }
        let rates: Vec<f64> = times
            .iter()
            .map(|t| args.objects as f64 / load::median(t.clone()))
            .collect();
        for (i, (who, _)) in bins.iter().enumerate() {
            let t = args.objects as f64 / rates[i];
            let label = format!("{who}--output {format}");
            let ratio = if i == 0 && rates.len() > 1 {
                format!("  {:.2}x the baseline", rates[0] / rates[1])
            } else {
                String::new()
            };
            println!(
                "  {label:<26} median {:>7.1} ms  {:>8.0} objects/s  {:>6.2} us/object  peak RSS ~{:.0} MiB{ratio}",
                t * 1e3,
                rates[i],
                t * 1e6 / args.objects as f64,
                hwm[i] as f64 / 1024.0,
            );
        }
    }
    ExitCode::SUCCESS
}
