//! One AdmissionReview through the pure path the server runs for every request:
//! decode (`admission::parse`), evaluate and build the response (`admission::respond`), encode
//! (`admission::encode`). Time and allocations per review.
//!
//! `cargo bench --bench review` (BENCHMARKS.md). Cases are `fixture@endpoint`; fixtures in
//! `benches/data/` (see `testkit/src/fixtures.rs`).
//!
//! - `full`: body bytes in, response bytes out: what a request costs beyond HTTP and TLS.
//! - `decode`: parsing the body (only the fields the decision needs).
//! - `evaluate_encode`: everything after decoding (the "evaluate + encode" target).
//! - `evaluate`: `engine::evaluate` on the already decoded object.
//! - `encode`: the response review to bytes.
//! - `floor`: what the floor server does with a body (parse into a `Value`, constant answer).

use divan::{AllocProfiler, Bencher, black_box};
use gpu_admission::admission::{self, Endpoint};
use gpu_admission::engine::Effective;
use gpu_admission::engine::{self, Context};
use gpu_admission::policy::Policy;
use kube::core::admission::Operation;

use gpu_admission_testkit::fixtures as support;

// Counts allocations per iteration (divan's wrapper around the system allocator; safe to use).
#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

/// A fixture answered at one endpoint.
#[derive(Clone, Copy)]
struct Case {
    fixture: &'static str,
    endpoint: Endpoint,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.fixture, self.endpoint)
    }
}

const fn case(fixture: &'static str, endpoint: Endpoint) -> Case {
    Case { fixture, endpoint }
}

const CASES: &[Case] = &[
    case("plain-pod", Endpoint::Mutate),
    case("plain-pod", Endpoint::Validate),
    case("gpu-pod", Endpoint::Mutate),
    case("gpu-pod", Endpoint::Validate),
    case("gpu-pod-unpatched", Endpoint::Mutate),
    case("gpu-deployment", Endpoint::Mutate),
    case("gpu-deployment", Endpoint::Validate),
    case("pod-30", Endpoint::Mutate),
    case("pod-30", Endpoint::Validate),
    case("big-update", Endpoint::Mutate),
    case("big-update", Endpoint::Validate),
];

fn policy() -> Effective {
    Effective::new(Policy::embedded_default().expect("the embedded policy loads"))
}

#[divan::bench(args = CASES)]
fn full(bencher: Bencher, case: Case) {
    let policy = policy();
    let body = support::fixture(case.fixture);
    bencher.counter(divan::counter::BytesCount::new(body.len())).bench(|| {
        let (review, _summary) = admission::review(&policy, case.endpoint, black_box(body)).expect("a valid review");
        admission::encode(&review)
    });
}

#[divan::bench(args = CASES)]
fn decode(bencher: Bencher, case: Case) {
    let body = support::fixture(case.fixture);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench(|| admission::parse(black_box(body)).expect("a valid review"));
}

#[divan::bench(args = CASES)]
fn evaluate_encode(bencher: Bencher, case: Case) {
    let policy = policy();
    let parsed = admission::parse(support::fixture(case.fixture)).expect("a valid review");
    bencher.with_inputs(|| parsed.clone()).bench_values(|parsed| {
        let (review, _summary) = admission::respond(&policy, case.endpoint, parsed);
        admission::encode(&review)
    });
}

#[divan::bench(args = CASES)]
fn evaluate(bencher: Bencher, case: Case) {
    let policy = policy();
    let parsed = admission::parse(support::fixture(case.fixture)).expect("a valid review");
    let object = parsed.object.expect("CREATE/UPDATE carry an object");
    let ctx = Context {
        namespace: &parsed.namespace,
        operation: match parsed.request.operation {
            Operation::Create => engine::Operation::Create,
            Operation::Update => engine::Operation::Update,
            Operation::Delete => engine::Operation::Delete,
            Operation::Connect => engine::Operation::Connect,
        },
        stage: case.endpoint.stage(),
        subresource: None,
    };
    bencher.bench(|| engine::evaluate(&policy, black_box(&object), &ctx));
}

#[divan::bench(args = CASES)]
fn encode(bencher: Bencher, case: Case) {
    let policy = policy();
    let parsed = admission::parse(support::fixture(case.fixture)).expect("a valid review");
    let (review, _summary) = admission::respond(&policy, case.endpoint, parsed);
    bencher.bench(|| admission::encode(black_box(&review)));
}

/// The floor server's work for one body (tools/src/bin/floor.rs): parse into `serde_json::Value`, echo
/// the uid in a constant allowed review. `full` over this is the in-process ratio to the floor.
#[divan::bench(args = CASES)]
fn floor(bencher: Bencher, case: Case) {
    let body = support::fixture(case.fixture);
    bencher.bench(|| {
        let value: serde_json::Value = serde_json::from_slice(black_box(body)).expect("JSON");
        let uid = value
            .pointer("/request/uid")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": uid, "allowed": true},
        }))
        .expect("encodes")
    });
}
