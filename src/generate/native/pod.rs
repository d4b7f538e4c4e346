//! CEL over the pod spec for the native policies: the engine's readings of a pod (GPU asks,
//! tolerations, the GPU node label), written once for the validating and mutating policies.
//!
//! The policies declare the variables of [`variables`]; these functions read them.

use serde_yaml_ng::Value;

use crate::generate::cel::{or_empty, quote};
use crate::generate::yaml::named;
use crate::policy::Policy;

/// The variable NVIDIA's container runtime reads.
pub const VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// Resource `r`'s quantity in container `c`: limits, else requests (extended resources), else '0'.
pub fn val(c: &str, r: &str) -> String {
    format!(
        "(has({c}.resources) && has({c}.resources.limits) && {r} in {c}.resources.limits ? string({c}.resources.limits[{r}]) :\n (has({c}.resources) && has({c}.resources.requests) && {r} in {c}.resources.requests ? string({c}.resources.requests[{r}]) : '0'))"
    )
}

/// A whole, non-negative count (`SLICES_INVALID_QUANTITY` otherwise).
pub fn valid(x: &str) -> String {
    format!("(isQuantity({x}) && quantity({x}).isInteger() && !quantity({x}).isLessThan(quantity('0')))")
}

/// The count, 0 when it is not valid.
pub fn count(x: &str) -> String {
    format!("({} ? quantity({x}).asInteger() : 0)", valid(x))
}

/// Container `c` gets a GPU (a GPU resource with a count above 0).
pub fn gets_gpu(c: &str) -> String {
    let v = val(c, "r");
    format!("variables.gpuResources.exists(r, {} > 0)", count(&v))
}

/// `t` tolerates the GPU taint, as Kubernetes matches tolerations.
pub fn tolerates(policy: &Policy, t: &str) -> String {
    let taint = policy.gpu_taint();
    format!(
        "((!has({t}.effect) || {t}.effect == '' || {t}.effect == {e}) &&\n (!has({t}.key) || {t}.key == '' || {t}.key == {k}) &&\n ((!has({t}.operator) || {t}.operator == '' || {t}.operator == 'Equal') ? (has({t}.value) ? {t}.value : '') == {v} :\n  {t}.operator == 'Exists'))",
        e = quote(&taint.effect),
        k = quote(&taint.key),
        v = quote(&taint.value)
    )
}

/// The pod's nodeSelector, required affinity or nodeName select GPU nodes (the visibility rule's
/// reading; nodeName against the GPU nodes of the params).
fn selects_gpu_nodes(policy: &Policy) -> String {
    let sel = &policy.spec().rules.placement.node_selector;
    let (k, v) = (quote(&sel.key), quote(&sel.value));
    let p = "variables.spec";
    format!(
        "(has({p}.nodeSelector) && {k} in {p}.nodeSelector && {p}.nodeSelector[{k}] == {v}) ||\n(has({p}.nodeName) && {p}.nodeName in variables.gpuNodes) ||\n(has({p}.affinity) && has({p}.affinity.nodeAffinity) &&\n has({p}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) &&\n {p}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.exists(term,\n   has(term.matchExpressions) && term.matchExpressions.exists(e, e.key == {k} &&\n     ((e.operator == 'In' && has(e.values) && {v} in e.values) || e.operator == 'Exists'))))"
    )
}

/// A ConfigMap list parameter, split on commas, empty entries dropped.
pub fn param_list(key: &str) -> String {
    format!("params.data[{}].split(',').filter(x, x != '')", quote(key))
}

/// The variables both kinds of policy declare (`spec` is the pod spec).
pub fn variables(policy: &Policy, spec: &str) -> Vec<Value> {
    let gpu_ask = {
        let x = val("c", "r");
        format!(
            "variables.containers.exists(c, variables.gpuResources.exists(r, !{} || {} > 0))",
            valid(&x),
            count(&x)
        )
    };
    let lands = format!(
        "variables.gpu ||\n(has(variables.spec.tolerations) && variables.spec.tolerations.exists(t, {})) ||\n{}",
        tolerates(policy, "t"),
        selects_gpu_nodes(policy)
    );
    let p = "variables.spec";
    let containers = format!("{} +\n{}", or_empty(p, "initContainers"), or_empty(p, "containers"));
    vec![
        named("spec", spec),
        named("containers", &containers),
        named("gpuResources", &param_list("gpuResources")),
        named("offeredResources", &param_list("offeredResources")),
        named("gpuNodes", &param_list("gpuNodes")),
        named("gpu", &gpu_ask),
        named("lands", &lands),
    ]
}
