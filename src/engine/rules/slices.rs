//! Rule `slices`: nobody asks for more GPU slices than time-slicing can give.
//!
//! Limits come from the policy file (`gpu.timeSlicing`, `gpu.gpusPerNode`), or, with cluster
//! facts, from the device-plugin profile of each GPU node and its allocatable resources.
//! Codes: `SLICES_INVALID_QUANTITY`, `SLICES_CONTAINER_EXCEEDED`, `SLICES_POD_EXCEEDED`,
//! `GPU_RESOURCE_NOT_OFFERED`, `CLUSTER_STATE_UNAVAILABLE`.

use super::{Findings, Rule, Subject};
use crate::cluster::NodeLimits as Limits;
use crate::decision::Action;

pub const NAME: &str = "slices";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: false,
    codes: &[
        "CLUSTER_STATE_UNAVAILABLE",
        "GPU_RESOURCE_NOT_OFFERED",
        "SLICES_CONTAINER_EXCEEDED",
        "SLICES_INVALID_QUANTITY",
        "SLICES_POD_EXCEEDED",
    ],
    spec: |rules| &rules.slices,
    check,
};

/// Limits from the policy's `gpu` section, for its time-sliced resource.
pub fn policy_limits(subject: &Subject<'_>) -> Limits {
    let gpu = &subject.policy.spec().gpu;
    let ts = &gpu.time_slicing;
    let replicas = u64::from(ts.replicas);
    let gpus = u64::from(gpu.gpus_per_node);
    let (per_container, per_container_reason) = if replicas <= 1 {
        (gpus, format!("a node has {gpus} GPUs and no time-slicing"))
    } else if ts.fail_requests_greater_than_one {
        (1, "time-slicing has failRequestsGreaterThanOne: true".to_string())
    } else {
        (replicas, format!("time-slicing gives {replicas} slices per GPU"))
    };
    Limits {
        per_container,
        per_container_reason,
        per_pod: replicas.saturating_mul(gpus),
        per_pod_reason: format!("one node has {gpus} GPUs x {replicas} replicas"),
    }
}

/// Limits for `resource`, or `None` when no GPU node offers it.
fn limits_for(subject: &Subject<'_>, resource: &str) -> Option<Limits> {
    match subject.effective.cluster() {
        Some(facts) => facts.limits(resource),
        None => (resource == subject.policy.shared_resource_name()).then(|| policy_limits(subject)),
    }
}

/// Called when either action is on: `action` (the slice limits) may be `off` while
/// `unknownResourceAction` is not.
fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    let usage = &subject.gpu;
    let cluster = subject.effective.cluster();
    if action != Action::Off {
        if cluster.is_some_and(|f| !f.synced) && usage.is_gpu_workload() {
            let message = "the cluster's GPU nodes and device-plugin config have not been read yet, and cluster.unsyncedAction is deny: retry shortly".to_string();
            out.violation(action, NAME, "CLUSTER_STATE_UNAVAILABLE", subject.field(""), message);
            return;
        }
        for (path, err) in &usage.invalid {
            let message = format!("{err}; a GPU count must be a whole, non-negative number such as 1 or \"2\"");
            out.violation(action, NAME, "SLICES_INVALID_QUANTITY", path.clone(), message);
        }
        for resource in subject.policy.gpu_resource_names() {
            let asks = || usage.containers.iter().flat_map(|c| c.asks.iter().map(move |a| (c, a)));
            let mut asked = asks().filter(|(_, a)| a.resource == resource && a.count > 0).peekable();
            if asked.peek().is_none() {
                continue;
            }
            let Some(limits) = limits_for(subject, &resource) else {
                for (_, ask) in asked {
                    not_offered(subject, out, ask.path.clone(), &resource);
                }
                continue;
            };
            for (c, ask) in asked.filter(|(_, a)| a.count > limits.per_container) {
                let message = format!(
                    "container `{}` asks for {} {}; at most {} per container ({}): ask for {} or fewer",
                    c.name,
                    ask.count,
                    ask.resource,
                    limits.per_container,
                    limits.per_container_reason,
                    limits.per_container
                );
                out.violation(action, NAME, "SLICES_CONTAINER_EXCEEDED", ask.path.clone(), message);
            }
            let pod = usage.effective_pod_request(&resource);
            if pod > limits.per_pod {
                let message = format!(
                    "the pod's effective request is {pod} {resource} (app containers plus sidecars, or the largest init container); at most {} fit on one node ({}): split the work across pods",
                    limits.per_pod, limits.per_pod_reason
                );
                out.violation(action, NAME, "SLICES_POD_EXCEEDED", subject.field(""), message);
            }
        }
    }
    for (path, name) in &usage.unknown {
        if !cluster.is_some_and(|f| f.offers(name)) {
            not_offered(subject, out, path.clone(), name);
        }
    }
}

fn not_offered(subject: &Subject<'_>, out: &mut Findings, path: String, name: &str) {
    let rules = &subject.policy.spec().rules.slices;
    let Some(action) = subject.active(rules.unknown_resource_action, &rules.exempt_namespaces) else {
        return;
    };
    let offered = match subject.effective.cluster() {
        Some(facts) => {
            let mut names: Vec<&str> = facts
                .gpu_nodes
                .iter()
                .flat_map(|n| n.allocatable.keys().map(String::as_str))
                .collect();
            names.sort_unstable();
            names.dedup();
            names.join(", ")
        }
        None => subject.policy.shared_resource_name(),
    };
    let message = format!("no GPU node offers `{name}` (only {offered}): the pod would stay Pending");
    out.violation(action, NAME, "GPU_RESOURCE_NOT_OFFERED", path, message);
}
