//! The micro-benchmark figures of BENCHMARKS.md in one table: time and allocations per review
//! (whole review, evaluate + encode, and what the floor server does with the same body), and
//! `check` over 10,000 objects. `scripts/bench.sh` runs it; `cargo bench --bench review` and
//! `--bench check` give divan's detailed distributions of the same code.
//!
//! Times are medians of 7 batches of about 50 ms each (min/max printed alongside: this
//! machine is shared, compare ratios within one run). Allocations are counted by this binary's
//! global allocator, a counter around the system allocator; the only `unsafe` of the benchmarks,
//! confined to this bench binary (the crate itself forbids unsafe code).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use gpu_admission::admission::{self, Endpoint};
use gpu_admission::engine::Effective;
use gpu_admission::k8s::manifests::{self, SourceFile};
use gpu_admission::offline::{evaluate_manifest, evaluate_object};
use gpu_admission::policy::Policy;

use gpu_admission_testkit::fixtures as support;

// === counting allocator ===

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations (and reallocations) made on each thread.
struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the thread-local counter is a
// const-initialized `Cell` (no allocation, no lazy initialization, no destructor), and `try_with`
// tolerates thread teardown.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// === measuring ===

/// Median, min and max time per iteration, and allocations per iteration.
struct Figure {
    median: Duration,
    min: Duration,
    max: Duration,
    allocs: f64,
}

const BATCHES: usize = 7;
const BATCH: Duration = Duration::from_millis(50);

/// Times `f` (and counts its allocations), each call on an input made just before it (outside the
/// timing, so the input is as warm in the cache as a freshly decoded body would be). Outputs are
/// dropped inside the timing.
fn measure<I, O>(mut input: impl FnMut() -> I, mut f: impl FnMut(I) -> O) -> Figure {
    let mut batch = |n: usize| {
        let (mut spent, mut allocs) = (Duration::ZERO, 0u64);
        for _ in 0..n {
            let i = input();
            let a = allocations();
            let t = Instant::now();
            black_box(f(black_box(i)));
            spent += t.elapsed();
            allocs += allocations() - a;
        }
        (spent, allocs)
    };
    // Calibrate: enough calls for a batch to spend BATCH in `f`.
    let mut n = 1usize;
    loop {
        let (spent, _) = batch(n);
        if spent >= BATCH / 4 || n >= 1 << 20 {
            n = (n as f64 * BATCH.as_secs_f64() / spent.as_secs_f64().max(1e-9)).ceil() as usize;
            break;
        }
        n *= 4;
    }
    let n = n.clamp(1, 1 << 20);
    let mut times = Vec::with_capacity(BATCHES);
    let mut allocs = 0u64;
    for _ in 0..BATCHES {
        let (spent, a) = batch(n);
        times.push(spent / n as u32);
        allocs += a;
    }
    times.sort();
    Figure {
        median: times[BATCHES / 2],
        min: times[0],
        max: times[BATCHES - 1],
        allocs: allocs as f64 / (BATCHES * n) as f64,
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let policy = Effective::new(Policy::embedded_default().expect("the embedded policy loads"));
    let cases: &[(&str, Endpoint)] = &[
        ("plain-pod", Endpoint::Validate),
        ("gpu-pod", Endpoint::Mutate),
        ("gpu-pod", Endpoint::Validate),
        ("gpu-pod-unpatched", Endpoint::Mutate),
        ("gpu-deployment", Endpoint::Validate),
        ("pod-30", Endpoint::Validate),
        ("big-update", Endpoint::Validate),
    ];
    println!("micro-benchmarks (in process, one thread; median of {BATCHES} batches, [min..max])");
    println!(
        "{:<28} {:>7} {:>22} {:>7} {:>13} {:>7} {:>11} {:>7} {:>7}",
        "review", "bytes", "whole review us", "allocs", "eval+enc us", "allocs", "floor us", "allocs", "/floor"
    );
    for &(fixture, endpoint) in cases {
        let body = support::fixture(fixture);
        let whole = measure(
            || (),
            |()| {
                let (review, _) = admission::review(&policy, endpoint, body).expect("a valid review");
                admission::encode(&review)
            },
        );
        let parsed = admission::parse(body).expect("a valid review");
        let after_decode = measure(
            || parsed.clone(),
            |p| {
                let (review, _) = admission::respond(&policy, endpoint, p);
                admission::encode(&review)
            },
        );
        let floor = measure(
            || (),
            |()| {
                let v: serde_json::Value = serde_json::from_slice(body).expect("JSON");
                let uid = v.pointer("/request/uid").and_then(serde_json::Value::as_str);
                serde_json::to_vec(&serde_json::json!({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": uid.unwrap_or(""), "allowed": true},
                }))
                .expect("encodes")
            },
        );
        println!(
            "{:<28} {:>7} {:>8.1} [{:>5.1}..{:>5.1}] {:>7.0} {:>13.1} {:>7.0} {:>11.1} {:>7.0} {:>7.2}",
            format!("{fixture}@{endpoint}"),
            body.len(),
            us(whole.median),
            us(whole.min),
            us(whole.max),
            whole.allocs,
            us(after_decode.median),
            after_decode.allocs,
            us(floor.median),
            floor.allocs,
            us(whole.median) / us(floor.median)
        );
    }
    println!("  eval+enc: evaluate + build the response + encode, after decoding (target < 20 us for gpu-deployment)");
    println!(
        "  floor: parse the body into serde_json::Value and encode a constant allowed review (tools/src/bin/floor.rs)"
    );

    const OBJECTS: usize = 10_000;
    let text = support::manifests_yaml(OBJECTS);
    let source = |text: &str| SourceFile::parse("bench.yaml", text.to_string()).expect("generated YAML parses");
    let objects = manifests::manifests(&source(&text)).expect("objects");
    let engine = measure(
        || (),
        |()| {
            objects
                .iter()
                .filter_map(|m| evaluate_manifest(&policy, m, "default"))
                .count()
        },
    );
    // What `check FILE` does before printing: parse, then evaluate each object where it lies.
    let with_yaml = measure(
        || (),
        |()| {
            let source = source(&text);
            let objects = manifests::objects(&source).expect("objects").refs;
            objects
                .into_iter()
                .filter_map(|at| evaluate_object(&policy, &source.file, at, "default"))
                .collect::<Vec<_>>()
        },
    );
    println!("\ncheck over {OBJECTS} objects (in process; the real binary: benchkit check-bin)");
    for (label, f) in [
        ("check_manifest (engine)", &engine),
        ("YAML text -> reports", &with_yaml),
    ] {
        let per = us(f.median) / OBJECTS as f64;
        println!(
            "  {label:<24} {:>8.1} ms  {:>9.0} objects/s  {:>6.2} us/object  {:>6.1} allocs/object  (target > 20,000 objects/s: {})",
            us(f.median) / 1e3,
            1e6 / per,
            per,
            f.allocs / OBJECTS as f64,
            if 1e6 / per > 20_000.0 { "met" } else { "MISSED" }
        );
    }
}
