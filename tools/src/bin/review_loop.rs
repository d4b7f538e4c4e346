//! Runs one fixture through the review path (decode, evaluate, encode) a fixed number of times,
//! for profilers: `perf record`, or callgrind, whose instruction counts do not depend on what else
//! runs on the machine (BENCHMARKS.md, "Profiling"):
//!
//! ```text
//! cargo build --release -p gpu-admission-tools --bin review_loop
//! valgrind --tool=callgrind target/release/review_loop gpu-pod-unpatched mutate 1100
//! valgrind --tool=callgrind target/release/review_loop gpu-pod-unpatched mutate 100
//! # instructions per review = (Ir of the first - Ir of the second) / 1000
//! ```
//!
//! `floor` instead of the endpoint does what the floor server does with the body.
//!
//! Fixtures: testkit/src/fixtures.rs (`plain-pod`, `gpu-pod`, `gpu-pod-unpatched`,
//! `gpu-deployment`, `pod-30`, `big-update`).

use std::hint::black_box;
use std::process::ExitCode;

use gpu_admission::admission::{self, Endpoint};
use gpu_admission::engine::Effective;
use gpu_admission::policy::Policy;
use gpu_admission_testkit::fixtures as support;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(fixture), Some(endpoint), Some(n)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: review_loop FIXTURE mutate|validate|floor ITERATIONS");
        return ExitCode::from(2);
    };
    let Some((_, body)) = support::FIXTURES.iter().find(|(name, _)| name == fixture) else {
        eprintln!("no fixture `{fixture}`");
        return ExitCode::from(2);
    };
    let endpoint = match endpoint.as_str() {
        "mutate" => Some(Endpoint::Mutate),
        "validate" => Some(Endpoint::Validate),
        "floor" => None,
        other => {
            eprintln!("endpoint `{other}`: mutate, validate or floor");
            return ExitCode::from(2);
        }
    };
    let Ok(n) = n.parse::<u64>() else {
        eprintln!("ITERATIONS: a number");
        return ExitCode::from(2);
    };
    let policy = Effective::new(Policy::embedded_default().expect("the embedded policy loads"));
    for _ in 0..n.min(10_000_000) {
        match endpoint {
            Some(endpoint) => {
                let (review, _) = admission::review(&policy, endpoint, black_box(body)).expect("a valid review");
                black_box(admission::encode(&review));
            }
            // What the floor server does with the body (tools/src/bin/floor.rs).
            None => {
                let v: serde_json::Value = serde_json::from_slice(black_box(body)).expect("JSON");
                let uid = v.pointer("/request/uid").and_then(serde_json::Value::as_str);
                let answer = serde_json::json!({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {"uid": uid.unwrap_or(""), "allowed": true},
                });
                black_box(serde_json::to_vec(&answer).expect("encodes"));
            }
        }
    }
    ExitCode::SUCCESS
}
