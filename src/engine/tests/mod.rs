//! Table-driven tests of the engine, one module per rule, plus stage and property tests.

use serde_json::{Value, json};

use super::{Action, Context, Decision, Effective, Operation, Outcome, Stage, evaluate};
use crate::policy::Policy;
use gpu_admission_testkit::build::GPU;
use gpu_admission_testkit::{Container, Pod, Workload};

mod cluster;
mod codes;
mod dra;
mod host_path;
mod placement;
mod priority;
mod properties;
mod sharing;
mod slices;
mod stages;
mod strict;
mod tolerations;
mod visibility;

// === fixtures ===

pub fn default_policy() -> Effective {
    Effective::new(Policy::embedded_default().expect("embedded default policy loads"))
}

/// The default policy with `edit` applied to its YAML form.
pub fn policy_with(edit: impl FnOnce(&mut Value)) -> Effective {
    let mut spec = serde_json::to_value(default_policy().policy().spec()).unwrap();
    edit(&mut spec);
    let spec = serde_json::from_value(spec).unwrap();
    Effective::new(Policy::from_spec(spec, "test").expect("test policy is valid"))
}

// Objects come from the test kit (`gpu_admission_testkit`); these name the shapes the tables use.

/// Pod `ns/p` with `spec`.
pub fn pod(ns: &str, spec: Value) -> Value {
    Pod::with_spec(spec).ns(ns).build()
}

/// Deployment `ns/d` with the pod template `pod_spec`.
pub fn deployment(ns: &str, pod_spec: Value) -> Value {
    Workload::deployment("d").ns(ns).template(pod_spec).build()
}

/// A container asking for `count` of `nvidia.com/gpu` in its limits.
pub fn gpu(count: Value) -> Value {
    Container::new("c", "img").limit(GPU, count).build()
}

pub fn named(mut container: Value, name: &str) -> Value {
    container["name"] = json!(name);
    container
}

/// A GPU pod spec that already satisfies placement, tolerations and priority.
pub fn compliant_spec(containers: Value) -> Value {
    Pod::with_spec(json!({"containers": containers}))
        .complete("medium-priority")
        .into_spec()
}

pub fn run(policy: &Effective, object: &Value, stage: Stage) -> Decision {
    run_op(policy, object, stage, Operation::Create)
}

/// Evaluates `object` in its own namespace (`default` when it names none), as `check` does.
pub fn run_op(policy: &Effective, object: &Value, stage: Stage, operation: Operation) -> Decision {
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    evaluate(
        policy,
        object,
        &Context {
            operation,
            ..Context::create(namespace, stage)
        },
    )
}

pub fn codes(d: &Decision) -> Vec<&'static str> {
    d.violations.iter().map(|v| v.code).collect()
}

/// Applies the decision's patch to a copy of the object.
pub fn patched(object: &Value, d: &Decision) -> Value {
    let mut out = object.clone();
    json_patch::patch(&mut out, &d.patch).expect("patch applies");
    out
}

#[test]
fn outcome_follows_violations_and_patch() {
    let p = default_policy();
    let denied = run(
        &p,
        &pod("default", json!({"containers": [gpu(json!(9))]})),
        Stage::Offline,
    );
    assert_eq!(denied.outcome(), Outcome::Denied);
    let mutated = run(
        &p,
        &pod("default", json!({"containers": [gpu(json!(1))]})),
        Stage::Offline,
    );
    assert_eq!(mutated.outcome(), Outcome::Mutated);
    let allowed = run(
        &p,
        &pod("default", compliant_spec(json!([gpu(json!(1))]))),
        Stage::Offline,
    );
    assert_eq!(allowed.outcome(), Outcome::Allowed, "{allowed:?}");
    assert!(allowed.violations.iter().all(|v| v.action != Action::Deny));
}
