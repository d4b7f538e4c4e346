//! CEL text for what the webhooks' matchConditions and the native policies ask of a pod spec.
//!
//! Every field is guarded with `has()`: in a matchCondition an expression error counts as a
//! webhook failure (failurePolicy), in a policy as a policy failure.

use crate::policy::Policy;

/// A CEL string literal (single quotes, `\` and `'` escaped).
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A CEL list of string literals: `['a', 'b']`.
pub fn quote_list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    let parts: Vec<String> = items.into_iter().map(|i| quote(i.as_ref())).collect();
    format!("[{}]", parts.join(", "))
}

/// Where a kind keeps its pod spec, seen from CEL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecPath {
    /// From the object root: `["spec", "template", "spec"]`.
    pub segments: &'static [&'static str],
}

// === impl SpecPath ===

impl SpecPath {
    /// `object.spec.template.spec`.
    pub fn expr(&self) -> String {
        format!("object.{}", self.segments.join("."))
    }

    /// `has(object.spec) && has(object.spec.template) && has(object.spec.template.spec)`.
    pub fn guard(&self) -> String {
        let mut parts = Vec::new();
        let mut at = String::from("object");
        for seg in self.segments {
            at = format!("{at}.{seg}");
            parts.push(format!("has({at})"));
        }
        parts.join(" && ")
    }
}

/// The list field `field` of `p`, or `[]` when it is not set.
pub fn or_empty(p: &str, field: &str) -> String {
    format!("(has({p}.{field}) ? {p}.{field} : [])")
}

/// The containers and init containers of the pod spec `p`, as one list.
fn all_containers(p: &str) -> String {
    format!("({} +\n {})", or_empty(p, "containers"), or_empty(p, "initContainers"))
}

/// `a || b || ...`, `false` when there is none.
pub fn any_of(parts: Vec<String>) -> String {
    if parts.is_empty() {
        return "false".to_string();
    }
    parts.join(" || ")
}

/// `r.startsWith(prefix)` for each of the vendor prefixes of the policy.
pub fn vendor_prefixed(policy: &Policy, r: &str) -> Vec<String> {
    let prefixes = &policy.spec().gpu.vendor_prefixes;
    prefixes
        .iter()
        .map(|p| format!("{r}.startsWith({})", quote(p)))
        .collect()
}

/// Whether resource name `r` belongs to a GPU vendor or is a GPU resource of the policy.
fn vendor_resource(policy: &Policy, r: &str) -> String {
    let gpu = &policy.spec().gpu;
    let mut parts = vendor_prefixed(policy, r);
    for name in policy.gpu_resource_names() {
        if !gpu.vendor_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            parts.push(format!("{r} == {}", quote(&name)));
        }
    }
    any_of(parts)
}

/// Some container asks for a vendor resource (limits or requests): a GPU workload, or one the
/// slices rule reports (`GPU_RESOURCE_NOT_OFFERED`).
pub fn asks_vendor_resource(policy: &Policy, p: &str) -> String {
    let r = vendor_resource(policy, "r");
    format!(
        "{}.exists(c,\n  has(c.resources) &&\n  ((has(c.resources.limits) && c.resources.limits.exists(r, {r})) ||\n   (has(c.resources.requests) && c.resources.requests.exists(r, {r}))))",
        all_containers(p)
    )
}

/// The pod has DRA claims (with cluster facts, a claim on a GPU device class is a GPU workload).
pub fn has_claims(p: &str) -> String {
    format!("has({p}.resourceClaims)")
}

/// Some toleration could tolerate the GPU taint (its key or a wildcard, its effect or none).
/// Broader than Kubernetes matching: the engine decides.
pub fn may_tolerate_gpu_taint(policy: &Policy, p: &str) -> String {
    let taint = policy.gpu_taint();
    format!(
        "(has({p}.tolerations) && {p}.tolerations.exists(t,\n  (!has(t.effect) || t.effect == '' || t.effect == {}) &&\n  (!has(t.key) || t.key == '' || t.key == {})))",
        quote(&taint.effect),
        quote(&taint.key)
    )
}

/// The pod names the GPU node label, a node affinity or a node: it may select GPU nodes.
pub fn may_select_gpu_nodes(policy: &Policy, p: &str) -> String {
    let key = &policy.spec().rules.placement.node_selector.key;
    format!(
        "(has({p}.nodeSelector) && {} in {p}.nodeSelector) ||\n(has({p}.affinity) && has({p}.affinity.nodeAffinity)) ||\nhas({p}.nodeName)",
        quote(key)
    )
}

/// The pod mounts a hostPath volume.
pub fn mounts_host_path(p: &str) -> String {
    format!("(has({p}.volumes) && {p}.volumes.exists(v, has(v.hostPath)))")
}

/// `clause` only outside `namespaces` (`request.namespace`, which matchConditions can read).
pub fn outside(namespaces: &[String], clause: &str) -> String {
    if namespaces.is_empty() {
        return format!("({})", indent(clause));
    }
    format!(
        "(!(request.namespace in {}) &&\n ({}))",
        quote_list(namespaces),
        indent(clause)
    )
}

/// Every line after the first, two spaces further in.
pub fn indent(text: &str) -> String {
    text.replace('\n', "\n  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_cel_would_misread() {
        assert_eq!(quote("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(quote_list(["x", "y"]), "['x', 'y']");
    }

    #[test]
    fn spec_paths_are_guarded_segment_by_segment() {
        let p = SpecPath {
            segments: &["spec", "template", "spec"],
        };
        assert_eq!(p.expr(), "object.spec.template.spec");
        assert_eq!(
            p.guard(),
            "has(object.spec) && has(object.spec.template) && has(object.spec.template.spec)"
        );
    }
}
