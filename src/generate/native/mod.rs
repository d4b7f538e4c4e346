//! Native mode (`generate native`): the engine's rules as ValidatingAdmissionPolicies and a
//! MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.36+), with a params
//! ConfigMap for what CEL cannot compute. Pure: the policy and the facts in, objects out.
//!
//! The decisions are the engine's wherever CEL can take them; [`NOT_EXPRESSED`] lists the codes
//! it cannot, and `DIFFERENCES` where a native decision differs, each with the reason.

pub mod checks;
pub mod mutate;
pub mod params;
pub mod pod;
pub mod validate;

use serde_yaml_ng::{Mapping, Value};

use super::yaml::{ADMISSION_V1, labels, map, metadata, object, s};
use crate::engine::Effective;

/// Codes of the engine no native policy reports, and why.
pub const NOT_EXPRESSED: &[(&str, &str)] = &[
    (
        "FIELD_INVALID",
        "admission policies see the typed object: a field of the wrong type never decodes",
    ),
    (
        "NAMESPACE_MISMATCH",
        "kube-apiserver refuses an object whose namespace is not the request's before admission",
    ),
    (
        "OBJECT_INVALID",
        "a controller without a pod template is not matched (has-pod-spec); kube-apiserver's validation refuses it",
    ),
    (
        "CLUSTER_STATE_UNAVAILABLE",
        "the params are the facts: until serve --native-params writes them, the webhook's fallback numbers apply",
    ),
    (
        "NO_GPU_NODE_MATCHES",
        "needs the pod's candidate nodes: CEL cannot read Nodes",
    ),
    (
        "SLICES_NO_NODE_FITS",
        "needs the pod's candidate nodes: CEL cannot read Nodes",
    ),
    (
        "DRA_COUNT_EXCEEDED",
        "needs the pod's ResourceClaims and ResourceClaimTemplates: CEL cannot read them",
    ),
    (
        "DRA_COUNT_UNKNOWN",
        "needs the pod's ResourceClaims and ResourceClaimTemplates: CEL cannot read them",
    ),
];

/// Where a native decision is not the webhook's, and why.
const DIFFERENCES: &[(&str, &str)] = &[
    (
        "slice limits with cluster facts",
        "perContainer/perPod are the cluster-wide bounds (the most any GPU node allows); the webhook decides per candidate node",
    ),
    (
        "hostPath with `..`",
        "CEL cannot resolve `..`: such a path is HOSTPATH_NOT_ALLOWED natively, even when it resolves into an allowed path",
    ),
    (
        "DRA claims",
        "a pod whose only GPUs come from DRA claims is not a GPU workload natively (the claims cannot be read)",
    ),
    (
        "mutateTemplates: true",
        "the native policies patch Pods only: controllers' templates are warned about, never patched",
    ),
    (
        "messages",
        "the same codes; the message names the field without list indices, and kube-apiserver reports one policy's first failing check",
    ),
];

/// The native objects, as three files: the params, the validating and the mutating policies.
pub struct Native {
    pub params: Value,
    pub validating: Vec<Value>,
    pub mutating: Vec<Value>,
}

/// Everything `generate native` writes for `effective` (the policy, and the facts if any).
pub fn generate(effective: &Effective) -> Native {
    let policy = effective.policy();
    let mut data = Mapping::new();
    for (k, v) in params::data(effective) {
        data.insert(Value::String(k), Value::String(v));
    }
    let meta = map([
        ("name", s(params::NAME)),
        ("namespace", s(params::NAMESPACE)),
        ("labels", labels()),
    ]);
    let params = object("v1", "ConfigMap", meta, [("data", Value::Mapping(data))]);
    let mut validating = Vec::new();
    let mut families = validate::families(policy);
    families.push(validate::template_fixes(policy));
    for family in families.iter().filter(|f| !f.checks.is_empty()) {
        validating.extend(validate::policy_and_binding(policy, family));
    }
    let mutating = mutate::policy_and_binding(policy).into();
    Native {
        params,
        validating,
        mutating,
    }
}

/// A policy's `paramKind`: the params ConfigMap.
fn param_kind() -> Value {
    map([("apiVersion", s("v1")), ("kind", s("ConfigMap"))])
}

/// The `kind` binding of policy `name` to the params ConfigMap (`parameterNotFoundAction`
/// `not_found`), then the rest of its spec.
fn binding<const N: usize>(kind: &str, name: &str, not_found: &str, rest: [(&str, Value); N]) -> Value {
    let param_ref = map([
        ("name", s(params::NAME)),
        ("namespace", s(params::NAMESPACE)),
        ("parameterNotFoundAction", s(not_found)),
    ]);
    let mut spec = map([("policyName", s(name)), ("paramRef", param_ref)]);
    for (k, v) in rest {
        super::yaml::push(&mut spec, k, v);
    }
    object(ADMISSION_V1, kind, metadata(name), [("spec", spec)])
}

pub const PARAMS_HEADER: &str = "\
The params of gpu-admission's native policies (`gpu-admission generate native`), bound by every
binding's paramRef: what CEL cannot compute. perContainer.* and perPod.* are cluster-wide bounds
(the most any GPU node allows): the webhook decides per candidate node, CEL cannot read Nodes.
`serve --native-params` keeps this ConfigMap equal to what its watch caches compute.
";

/// The validating file's header: what the policies are, and what native mode does not do.
pub fn validating_header() -> String {
    let mut out = String::from(
        "gpu-admission's rules as ValidatingAdmissionPolicies (`gpu-admission generate native`): one per\nrule family and action, with the engine's stable codes in every message ([CODE] path: ...).\nControllers' templates are warned about (gpu-admission-template-fixes), as the webhook does.\n\nNot expressed natively:\n",
    );
    for (code, why) in NOT_EXPRESSED {
        out.push_str(&format!("- {code}: {why}\n"));
    }
    out.push_str("Where native decisions differ:\n");
    for (case, why) in DIFFERENCES {
        out.push_str(&format!("- {case}: {why}\n"));
    }
    out
}

pub const MUTATING_HEADER: &str = "\
gpu-admission's Pod mutations as a MutatingAdmissionPolicy (`gpu-admission generate native`):
JSON patches (tolerations and nodeSelector are atomic, which ApplyConfiguration refuses), each
adding only what is still missing, so a reinvocation (IfNeeded) adds nothing twice.
";

#[cfg(test)]
mod tests;
