//! Rule `slices`: nobody asks for more GPU slices than time-slicing can give.
//!
//! Limits come from the policy file (`gpu.timeSlicing`, `gpu.gpusPerNode`), or, with cluster
//! facts, per candidate node: the GPU nodes the pod can land on (see [`super::candidates`]),
//! each with the limits of its own device-plugin profile and allocatable. The pod is allowed when
//! one candidate can host every container and the whole effective pod request.
//! Codes: `SLICES_INVALID_QUANTITY`, `SLICES_CONTAINER_EXCEEDED`, `SLICES_POD_EXCEEDED`,
//! `SLICES_NO_NODE_FITS`, `NO_GPU_NODE_MATCHES`, `GPU_RESOURCE_NOT_OFFERED`,
//! `CLUSTER_STATE_UNAVAILABLE`.

use super::{Findings, Rule, Subject, candidates};
use crate::cluster::{ClusterFacts, GpuNode, NodeLimits as Limits};
use crate::decision::Action;

pub const NAME: &str = "slices";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: false,
    codes: &[
        "CLUSTER_STATE_UNAVAILABLE",
        "DRA_COUNT_EXCEEDED",
        "DRA_COUNT_UNKNOWN",
        "GPU_RESOURCE_NOT_OFFERED",
        "NO_GPU_NODE_MATCHES",
        "SLICES_CONTAINER_EXCEEDED",
        "SLICES_INVALID_QUANTITY",
        "SLICES_NO_NODE_FITS",
        "SLICES_POD_EXCEEDED",
    ],
    spec: |rules| &rules.slices,
    check,
};

/// Limits from the policy's `gpu` section, for its time-sliced resource.
pub fn policy_limits(subject: &Subject<'_>) -> Limits {
    limits_from_policy(subject.policy)
}

/// [`policy_limits`] from the policy alone (the native params use the same numbers).
pub fn limits_from_policy(policy: &crate::policy::Policy) -> Limits {
    let gpu = &policy.spec().gpu;
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

/// Called when any of the rule's actions is on: `action` (the slice limits) may be `off` while
/// `unknownResourceAction` or `noNodeMatchesAction` is not.
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
    }
    // With cluster facts and GPU nodes: decide per candidate node.
    let per_node = cluster.filter(|f| usage.is_gpu_workload() && !f.gpu_nodes.is_empty());
    let candidates: Option<(&ClusterFacts, Vec<&GpuNode>)> = match per_node {
        None => None,
        Some(facts) => {
            let judged = candidates::judge(subject, facts);
            let fit: Vec<&GpuNode> = judged.iter().filter(|(_, v)| v.is_ok()).map(|(n, _)| *n).collect();
            if fit.is_empty() {
                no_node_matches(subject, out, &judged);
                return;
            }
            Some((facts, fit))
        }
    };
    if action != Action::Off {
        let before = out.violations.len();
        let mut asked_any = Vec::new();
        for resource in usage.resources() {
            let asks = || usage.containers.iter().flat_map(|c| c.asks.iter().map(move |a| (c, a)));
            let mut asked = asks().filter(|(_, a)| a.resource == resource && a.count > 0).peekable();
            if asked.peek().is_none() {
                continue;
            }
            let limits = match (&candidates, cluster) {
                (Some((facts, nodes)), _) => facts.limits_among(nodes.iter().copied(), &resource),
                (None, Some(facts)) => facts.limits(&resource),
                (None, None) => limits_for(subject, &resource),
            };
            let Some(limits) = limits else {
                for (_, ask) in asked {
                    not_offered(subject, out, ask.path.clone(), &resource);
                }
                continue;
            };
            asked_any.push(resource.clone());
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
        // Every bound holds on some candidate, but perhaps not all on the same one.
        if let Some((facts, nodes)) = &candidates
            && out.violations.len() == before
            && !asked_any.is_empty()
        {
            let why: Vec<String> = nodes
                .iter()
                .filter_map(|n| unfit(subject, facts, n, &asked_any))
                .collect();
            if why.len() == nodes.len() {
                let message = format!(
                    "no GPU node the pod can land on can host all of it: {}: ask for fewer slices, or pin the pod to a node that has them",
                    candidates::list(&why)
                );
                out.violation(action, NAME, "SLICES_NO_NODE_FITS", subject.field(""), message);
            }
        }
    }
    if cluster.is_some() {
        dra_unknown(subject, out);
    }
    if let Some((_, nodes)) = &candidates
        && action != Action::Off
    {
        dra_exceeded(subject, nodes, action, out);
    }
    for (path, name) in &usage.unknown {
        if !cluster.is_some_and(|f| f.offers(name)) {
            not_offered(subject, out, path.clone(), name);
        }
    }
}

/// DRA: the GPUs a pod's claims ask for, against the GPUs of its best candidate node (its
/// `nvidia.com/gpu.count` label, else `gpu.gpusPerNode`).
fn dra_exceeded(subject: &Subject<'_>, nodes: &[&GpuNode], action: Action, out: &mut Findings) {
    let usage = &subject.gpu;
    let counted: u64 = usage.dra.iter().filter(|d| d.gpu).filter_map(|d| d.count).sum();
    let per_node = |n: &GpuNode| {
        n.labels
            .get("nvidia.com/gpu.count")
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(u64::from(subject.policy.spec().gpu.gpus_per_node))
    };
    let Some(best) = nodes.iter().max_by_key(|n| per_node(n)) else {
        return;
    };
    let most = per_node(best);
    if counted > most {
        let message = format!(
            "the pod's DRA claims ask for {counted} GPUs; the GPU node it can land on with the most has {most} (node {}): ask for fewer",
            best.name
        );
        out.violation(
            action,
            NAME,
            "DRA_COUNT_EXCEEDED",
            subject.field("resourceClaims"),
            message,
        );
    }
}

/// DRA claims whose GPUs admission cannot count (or find): a warning.
fn dra_unknown(subject: &Subject<'_>, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.slices;
    let Some(action) = subject.active(rules.unknown_resource_action, &rules.exempt_namespaces) else {
        return;
    };
    for d in subject.gpu.dra.iter() {
        let Some(why) = d.unknown.as_deref() else { continue };
        let message = format!(
            "claim `{}`: {why}: the GPUs it gets cannot be counted at admission",
            d.claim
        );
        out.violation(action, NAME, "DRA_COUNT_UNKNOWN", d.path.clone(), message);
    }
}

/// Limits for `resource` from the policy's numbers, or `None` when it is not the shared resource.
fn limits_for(subject: &Subject<'_>, resource: &str) -> Option<Limits> {
    (resource == subject.policy.shared_resource_name()).then(|| policy_limits(subject))
}

/// Why `node` cannot host the pod, or `None` when it can.
fn unfit(subject: &Subject<'_>, facts: &ClusterFacts, node: &GpuNode, resources: &[String]) -> Option<String> {
    let usage = &subject.gpu;
    for resource in resources {
        let Some(limits) = facts.node_limits(node, resource) else {
            return Some(format!("{} offers no {resource}", node.name));
        };
        if let Some(c) = usage
            .containers
            .iter()
            .find(|c| c.count(resource) > limits.per_container)
        {
            return Some(format!(
                "{}: container `{}` asks for {} {resource}, at most {} per container",
                node.name,
                c.name,
                c.count(resource),
                limits.per_container
            ));
        }
        let pod = usage.effective_pod_request(resource);
        if pod > limits.per_pod {
            return Some(format!(
                "{}: the pod asks for {pod} {resource}, {} allocatable",
                node.name, limits.per_pod
            ));
        }
    }
    None
}

/// No GPU node can take the pod at all.
fn no_node_matches(
    subject: &Subject<'_>,
    out: &mut Findings,
    judged: &[(&GpuNode, Result<(), crate::k8s::scheduling::Mismatch>)],
) {
    let rules = &subject.policy.spec().rules.slices;
    let Some(action) = subject.active(rules.no_node_matches_action, &rules.exempt_namespaces) else {
        return;
    };
    let why: Vec<String> = judged
        .iter()
        .filter_map(|(n, v)| v.as_ref().err().map(|m| format!("{}: {m}", n.name)))
        .collect();
    let message = format!(
        "no GPU node can take this GPU workload ({}): fix its nodeSelector, node affinity, nodeName or tolerations",
        candidates::list(&why)
    );
    out.violation(action, NAME, "NO_GPU_NODE_MATCHES", subject.field(""), message);
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
