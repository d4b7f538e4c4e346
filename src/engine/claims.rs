//! ResourceClaimTemplates and ResourceClaims (`resource.k8s.io/v1`) on their own, as `check`
//! meets them in manifests: a GPU request over one node's GPUs is refused before any pod uses
//! it; a count admission cannot know is warned.

use serde_json::Value;

use crate::cluster::dra::DraClaim;
use crate::decision::{Action, Decision, Violation, warning_for};
use crate::policy::Policy;

/// The kinds read here, with where their claim spec sits.
const KINDS: &[(&str, &[&str])] = &[
    ("ResourceClaimTemplate", &["spec", "spec"]),
    ("ResourceClaim", &["spec"]),
];

/// `Some` for a `resource.k8s.io/v1` claim or template (its decision), `None` for anything else.
pub(super) fn evaluate(policy: &Policy, object: &Value, namespace: &str) -> Option<Decision> {
    if object.get("apiVersion").and_then(Value::as_str) != Some("resource.k8s.io/v1") {
        return None;
    }
    let kind = object.get("kind").and_then(Value::as_str)?;
    let (_, segments) = KINDS.iter().find(|(k, _)| *k == kind)?;
    let rules = &policy.spec().rules.slices;
    let exempt = |list: &[String]| list.iter().any(|n| n == namespace);
    let spec = segments.iter().try_fold(object, |v, s| v.get(s));
    let claim = DraClaim::read(spec);
    let gpu = &policy.spec().gpu;
    let base = segments.join(".");
    let mut decision = Decision::default();
    for (i, request) in claim.requests.iter().enumerate() {
        if !request.classes.iter().any(|c| gpu.dra_device_classes.contains(c)) {
            continue;
        }
        let path = format!("{base}.devices.requests[{i}]");
        let (action, code, message) = match (request.count, request.unknown) {
            (Some(count), _) if count > u64::from(gpu.gpus_per_node) => (
                rules.action,
                "DRA_COUNT_EXCEEDED",
                format!(
                    "request `{}` asks for {count} GPUs; a GPU node has {} (gpu.gpusPerNode): no pod using it could be scheduled",
                    request.name, gpu.gpus_per_node
                ),
            ),
            (None, Some(why)) => (
                rules.unknown_resource_action,
                "DRA_COUNT_UNKNOWN",
                format!(
                    "request `{}`: {why}: the GPUs it gets cannot be counted at admission",
                    request.name
                ),
            ),
            _ => continue,
        };
        if action == Action::Off || exempt(&rules.exempt_namespaces) {
            continue;
        }
        decision.violations.push(Violation {
            code,
            rule: "slices",
            path,
            message,
            action,
        });
    }
    let warned = decision.violations.iter().filter(|v| v.action == Action::Warn);
    decision.warnings = warned.map(warning_for).collect();
    Some(decision)
}
