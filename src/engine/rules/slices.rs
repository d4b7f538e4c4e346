//! Rule `slices`: nobody asks for more GPU slices than time-slicing can give.
//!
//! Codes: `SLICES_INVALID_QUANTITY`, `SLICES_CONTAINER_EXCEEDED`, `SLICES_POD_EXCEEDED`,
//! `GPU_RESOURCE_NOT_OFFERED`.

use super::{Findings, Subject};

pub const RULE: &str = "slices";

/// The limits that time-slicing gives, with the reason for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub resource: String,
    pub per_container: u64,
    pub per_container_reason: String,
    pub per_pod: u64,
    pub per_pod_reason: String,
}

/// Limits from the policy's `gpu` section.
pub fn limits(subject: &Subject<'_>) -> Limits {
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
        resource: subject.policy.shared_resource_name(),
        per_container,
        per_container_reason,
        per_pod: replicas.saturating_mul(gpus),
        per_pod_reason: format!("one node has {gpus} GPUs x {replicas} replicas"),
    }
}

pub fn check(subject: &Subject<'_>, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.slices;
    let usage = &subject.gpu;
    if let Some(action) = subject.active(rules.action, &rules.exempt_namespaces) {
        for (path, err) in &usage.invalid {
            let message = format!("{err}; a GPU count must be a whole, non-negative number such as 1 or \"2\"");
            out.violation(action, RULE, "SLICES_INVALID_QUANTITY", path.clone(), message);
        }
        let limits = limits(subject);
        for c in &usage.containers {
            for ask in c
                .asks
                .iter()
                .filter(|a| a.resource == limits.resource && a.count > limits.per_container)
            {
                let message = format!(
                    "container `{}` asks for {} {}; at most {} per container ({}): ask for {} or fewer",
                    c.name,
                    ask.count,
                    ask.resource,
                    limits.per_container,
                    limits.per_container_reason,
                    limits.per_container
                );
                out.violation(action, RULE, "SLICES_CONTAINER_EXCEEDED", ask.path.clone(), message);
            }
        }
        let pod = usage.effective_pod_request(&limits.resource);
        if pod > limits.per_pod {
            let message = format!(
                "the pod's effective request is {pod} {} (app containers plus sidecars, or the largest init container); at most {} fit on one node ({}): split the work across pods",
                limits.resource, limits.per_pod, limits.per_pod_reason
            );
            out.violation(action, RULE, "SLICES_POD_EXCEEDED", subject.field(""), message);
        }
        for c in &usage.containers {
            for ask in c.asks.iter().filter(|a| a.resource != limits.resource && a.count > 0) {
                not_offered(subject, out, ask.path.clone(), &ask.resource, &limits.resource);
            }
        }
    }
    for (path, name) in &usage.unknown {
        not_offered(subject, out, path.clone(), name, &subject.policy.shared_resource_name());
    }
}

fn not_offered(subject: &Subject<'_>, out: &mut Findings, path: String, name: &str, offered: &str) {
    let rules = &subject.policy.spec().rules.slices;
    if let Some(action) = subject.active(rules.unknown_resource_action, &rules.exempt_namespaces) {
        let message = format!(
            "no GPU node offers `{name}` (they offer `{offered}`): the pod stays Pending unless another device plugin offers it"
        );
        out.violation(action, RULE, "GPU_RESOURCE_NOT_OFFERED", path, message);
    }
}
