//! `gpu-admission check` over 10,000 objects (the mix in `testkit/src/fixtures.rs`), in process.
//! Time per object (divan prints items/s) and allocations per run (divide by 10,000).
//!
//! `cargo bench --bench check` (BENCHMARKS.md). The run of the real binary over a 10,000-object
//! file is `benchkit check-bin` (scripts/bench.sh).
//!
//! - `engine_only`: `offline::evaluate_manifest` over manifests already in memory.
//! - `yaml_to_reports`: the file's text through YAML parsing (`manifests::parse_documents`),
//!   `manifests::objects` and `evaluate_object`: what `check` does before printing.
//! - `yaml_parse`: the YAML parsing alone, for the split.

use divan::counter::ItemsCount;
use divan::{AllocProfiler, Bencher, black_box};
use gpu_admission::engine::Effective;
use gpu_admission::k8s::manifests::{self, SourceFile};
use gpu_admission::offline::{evaluate_manifest, evaluate_object};
use gpu_admission::policy::Policy;

use gpu_admission_testkit::fixtures as support;

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

const OBJECTS: usize = 10_000;

fn main() {
    divan::main();
}

fn source(text: &str) -> SourceFile {
    SourceFile::parse("bench.yaml", text.to_string()).expect("generated YAML parses")
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn engine_only(bencher: Bencher) {
    let policy = Effective::new(Policy::embedded_default().expect("the embedded policy loads"));
    let objects = manifests::manifests(&source(&support::manifests_yaml(OBJECTS))).expect("objects");
    assert_eq!(objects.len(), OBJECTS);
    bencher.counter(ItemsCount::new(OBJECTS)).bench(|| {
        let mut checked = 0usize;
        for m in &objects {
            if let Some(report) = evaluate_manifest(&policy, black_box(m), "default") {
                checked += black_box(report).violations.len() + 1;
            }
        }
        checked
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn yaml_to_reports(bencher: Bencher) {
    let policy = Effective::new(Policy::embedded_default().expect("the embedded policy loads"));
    let text = support::manifests_yaml(OBJECTS);
    bencher.counter(ItemsCount::new(OBJECTS)).bench(|| {
        let source = source(black_box(&text));
        let objects = manifests::objects(&source).expect("objects").refs;
        objects
            .into_iter()
            .filter_map(|at| evaluate_object(&policy, &source.file, at, "default"))
            .collect::<Vec<_>>()
    });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn yaml_parse(bencher: Bencher) {
    let text = support::manifests_yaml(OBJECTS);
    bencher
        .counter(ItemsCount::new(OBJECTS))
        .bench(|| source(black_box(&text)));
}
