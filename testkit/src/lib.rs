//! The test kit of gpu-admission, shared by its unit tests (`src/**/tests`), integration tests
//! (`tests/`), e2e tests, benches and tools (`tools/`). Dev-only: it is never a dependency of
//! the webhook itself, and it does not depend on gpu-admission, so it only speaks JSON.
//!
//! - [`build`]: Kubernetes objects ([`Pod`], [`Workload`], [`Container`]) as `serde_json::Value`.
//! - [`review`]: AdmissionReview v1 requests ([`Review`]) and reading responses (patches).
//! - [`wait`]: the one bounded poll ([`Wait`]), and [`unique_name`].
//! - [`process`]: running a command with stdin.
//! - [`paths`]: the repository, the corpus and the fixtures.
//! - [`fixtures`]: the recorded review bodies and the manifest generator of the benchmarks.
//! - [`e2e`]: a real etcd + kube-apiserver ([`e2e::harness`]), the real `gpu-admission serve`
//!   behind it ([`e2e::webhook`]) and the cluster scenarios' set-up ([`e2e::cluster`]).

pub mod build;
pub mod e2e;
pub mod fixtures;
pub mod paths;
pub mod process;
pub mod review;
pub mod wait;

pub use build::{Container, Pod, Workload};
pub use review::Review;
pub use wait::{Wait, unique_name};

/// Asserts that `text` contains `part`, printing `text` if not.
#[track_caller]
pub fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{part:?} not in:\n{text}");
}

/// For table tests that look at every case before failing: panics if there is any failure,
/// with their count and each one (`"<n> <what> wrong:"`, then one per paragraph).
#[track_caller]
pub fn assert_none_failed(what: &str, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} {what} wrong:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
