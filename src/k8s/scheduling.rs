//! The scheduler's own node filter, as far as labels, taints and the node name decide it:
//! `nodeSelector`, required node affinity, `nodeName` and tolerations, matched as
//! `k8s.io/component-helpers/scheduling/corev1` matches them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The prefix of the taints the node lifecycle controller sets from node conditions.
pub const CONDITION_TAINT_PREFIX: &str = "node.kubernetes.io/";

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: String,
}

/// What the filter looks at on a node.
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub name: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub taints: &'a [Taint],
}

/// Why a node is not a candidate for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// `spec.nodeName` names another node.
    NodeName,
    /// A `nodeSelector` label the node does not carry.
    NodeSelector(String),
    /// No term of the required node affinity matches.
    NodeAffinity,
    /// A `NoSchedule`/`NoExecute` taint no toleration tolerates.
    Taint(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::NodeName => f.write_str("spec.nodeName names another node"),
            Mismatch::NodeSelector(l) => write!(f, "no label {l}"),
            Mismatch::NodeAffinity => f.write_str("the required node affinity excludes it"),
            Mismatch::Taint(t) => write!(f, "taint {t} not tolerated"),
        }
    }
}

/// Whether the scheduler (or, with `nodeName`, the kubelet) would let the pod onto `node`.
///
/// `extra_selector` and `extra_tolerations` are what the webhook itself adds to the pod.
pub fn filter(
    spec: &Map<String, Value>,
    node: NodeView<'_>,
    extra_selector: &[(&str, &str)],
    extra_tolerations: &[Value],
) -> Result<(), Mismatch> {
    let node_name = spec.get("nodeName").and_then(Value::as_str).filter(|n| !n.is_empty());
    if node_name.is_some_and(|n| n != node.name) {
        return Err(Mismatch::NodeName);
    }
    let selector = spec.get("nodeSelector").and_then(Value::as_object);
    let pairs = selector
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
        .chain(extra_selector.iter().copied());
    for (key, want) in pairs {
        if node.labels.get(key).map(String::as_str) != Some(want) {
            return Err(Mismatch::NodeSelector(format!("{key}={want}")));
        }
    }
    if !required_affinity_matches(spec, node) {
        return Err(Mismatch::NodeAffinity);
    }
    // A pod bound by nodeName skips the scheduler: the kubelet checks NoExecute taints only.
    // The node lifecycle's condition taints (`node.kubernetes.io/not-ready`, `unreachable`,
    // `unschedulable`, pressure) come and go with the node's state: they make a pod wait, not
    // a policy denial.
    let blocking = |t: &Taint| {
        !t.key.starts_with(CONDITION_TAINT_PREFIX)
            && (t.effect == "NoExecute" || (node_name.is_none() && t.effect == "NoSchedule"))
    };
    let tolerations = spec.get("tolerations").and_then(Value::as_array);
    let all: Vec<&Value> = tolerations.into_iter().flatten().chain(extra_tolerations).collect();
    for taint in node.taints.iter().filter(|t| blocking(t)) {
        if !all.iter().any(|t| tolerates(t, taint)) {
            return Err(Mismatch::Taint(format!(
                "{}={}:{}",
                taint.key, taint.value, taint.effect
            )));
        }
    }
    Ok(())
}

/// `Toleration.ToleratesTaint`: empty effect matches every effect, empty key (with `Exists`)
/// every key; `Equal` (or no operator) compares the value.
pub fn tolerates(toleration: &Value, taint: &Taint) -> bool {
    let field = |name: &str| toleration.get(name).and_then(Value::as_str).unwrap_or("");
    let (key, effect) = (field("key"), field("effect"));
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match field("operator") {
        "" | "Equal" => field("value") == taint.value,
        "Exists" => true,
        _ => false,
    }
}

/// `requiredDuringSchedulingIgnoredDuringExecution`: terms OR'd, expressions and fields AND'd.
fn required_affinity_matches(spec: &Map<String, Value>, node: NodeView<'_>) -> bool {
    let terms = spec
        .get("affinity")
        .and_then(|a| a.get("nodeAffinity"))
        .and_then(|a| a.get("requiredDuringSchedulingIgnoredDuringExecution"))
        .and_then(|r| r.get("nodeSelectorTerms"))
        .and_then(Value::as_array);
    let Some(terms) = terms else { return true };
    terms.iter().any(|term| term_matches(term, node))
}

fn term_matches(term: &Value, node: NodeView<'_>) -> bool {
    let list = |name: &str| term.get(name).and_then(Value::as_array).filter(|l| !l.is_empty());
    let (expressions, fields) = (list("matchExpressions"), list("matchFields"));
    if expressions.is_none() && fields.is_none() {
        return false; // an empty term selects no node
    }
    let labels_ok = expressions
        .into_iter()
        .flatten()
        .all(|e| requirement_matches(e, |key| node.labels.get(key).map(String::as_str)));
    let fields_ok = fields.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str);
        let op = e.get("operator").and_then(Value::as_str);
        let values = e.get("values").and_then(Value::as_array).filter(|v| v.len() == 1);
        // Only metadata.name, In/NotIn with exactly one value: anything else is a parse error.
        key == Some("metadata.name")
            && matches!(op, Some("In" | "NotIn"))
            && values.is_some()
            && requirement_matches(e, |_| Some(node.name))
    });
    labels_ok && fields_ok
}

/// One `NodeSelectorRequirement` (`In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`).
fn requirement_matches<'a>(req: &Value, label: impl Fn(&str) -> Option<&'a str>) -> bool {
    let Some(key) = req.get("key").and_then(Value::as_str) else {
        return false;
    };
    let values: Vec<&str> = req
        .get("values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let found = label(key);
    let int = |s: &str| s.parse::<i64>().ok();
    match req.get("operator").and_then(Value::as_str) {
        Some("In") => !values.is_empty() && found.is_some_and(|f| values.contains(&f)),
        Some("NotIn") => !values.is_empty() && found.is_none_or(|f| !values.contains(&f)),
        Some("Exists") => values.is_empty() && found.is_some(),
        Some("DoesNotExist") => values.is_empty() && found.is_none(),
        Some(op @ ("Gt" | "Lt")) => {
            let (Some(want), Some(have)) = (values.first().and_then(|v| int(v)), found.and_then(int)) else {
                return false;
            };
            values.len() == 1 && if op == "Gt" { have > want } else { have < want }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node<'a>(labels: &'a BTreeMap<String, String>, taints: &'a [Taint]) -> NodeView<'a> {
        NodeView {
            name: "gpu-0",
            labels,
            taints,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn gpu_taint() -> Vec<Taint> {
        vec![Taint {
            key: "nvidia.com/gpu".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        }]
    }

    fn spec(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn affinity(exprs: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn operators_match_as_the_scheduler_does() {
        let l = labels(&[("zone", "a"), ("gpus", "2")]);
        let n = node(&l, &[]);
        let cases = [
            (json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}]), true),
            (json!([{"key": "zone", "operator": "In", "values": ["b"]}]), false),
            (json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}]), true),
            (json!([{"key": "other", "operator": "NotIn", "values": ["b"]}]), true),
            (json!([{"key": "zone", "operator": "Exists"}]), true),
            (json!([{"key": "zone", "operator": "DoesNotExist"}]), false),
            (json!([{"key": "gpus", "operator": "Gt", "values": ["1"]}]), true),
            (json!([{"key": "gpus", "operator": "Lt", "values": ["2"]}]), false),
            (json!([{"key": "zone", "operator": "Gt", "values": ["1"]}]), false),
            (
                json!([{"key": "zone", "operator": "Exists"}, {"key": "gpus", "operator": "In", "values": ["3"]}]),
                false,
            ),
        ];
        for (exprs, want) in cases {
            assert_eq!(
                filter(&spec(affinity(exprs.clone())), n, &[], &[]).is_ok(),
                want,
                "{exprs}"
            );
        }
    }

    #[test]
    fn terms_are_ored_and_empty_terms_match_nothing() {
        let l = labels(&[("zone", "a")]);
        let terms = |t: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": t}}}});
        let n = node(&l, &[]);
        let no = json!({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]});
        let yes = json!({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-0"]}]});
        assert!(filter(&spec(terms(json!([no.clone(), yes]))), n, &[], &[]).is_ok());
        assert!(filter(&spec(terms(json!([no]))), n, &[], &[]).is_err());
        assert!(filter(&spec(terms(json!([{}]))), n, &[], &[]).is_err());
        let two = json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-0", "gpu-1"]}]}]);
        assert!(
            filter(&spec(terms(two)), n, &[], &[]).is_err(),
            "matchFields needs exactly one value"
        );
    }

    #[test]
    fn taints_and_tolerations() {
        let l = labels(&[]);
        let t = gpu_taint();
        let n = node(&l, &t);
        let with = |tol: Value| spec(json!({"tolerations": [tol]}));
        assert_eq!(
            filter(&spec(json!({})), n, &[], &[]),
            Err(Mismatch::Taint("nvidia.com/gpu=:NoSchedule".into()))
        );
        assert!(
            filter(&with(json!({"operator": "Exists"})), n, &[], &[]).is_ok(),
            "wildcard"
        );
        assert!(
            filter(
                &with(json!({"key": "nvidia.com/gpu", "operator": "Exists"})),
                n,
                &[],
                &[]
            )
            .is_ok()
        );
        assert!(
            filter(
                &with(json!({"key": "nvidia.com/gpu", "effect": "NoExecute", "operator": "Exists"})),
                n,
                &[],
                &[]
            )
            .is_err()
        );
        assert!(filter(&with(json!({"key": "nvidia.com/gpu", "value": "x"})), n, &[], &[]).is_err());
        let added = json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"});
        assert!(
            filter(&spec(json!({})), n, &[], &[added]).is_ok(),
            "the webhook's own toleration"
        );
        // Condition taints are transient: not a reason to rule the node out.
        let not_ready = [Taint {
            key: "node.kubernetes.io/not-ready".into(),
            value: String::new(),
            effect: "NoExecute".into(),
        }];
        assert!(filter(&spec(json!({})), node(&l, &not_ready), &[], &[]).is_ok());
        // Bound by nodeName: the kubelet ignores NoSchedule.
        assert!(filter(&spec(json!({"nodeName": "gpu-0"})), n, &[], &[]).is_ok());
        assert_eq!(
            filter(&spec(json!({"nodeName": "gpu-1"})), n, &[], &[]),
            Err(Mismatch::NodeName)
        );
    }

    #[test]
    fn node_selector_includes_the_webhooks_own() {
        let l = labels(&[("node-type", "gpu-worker")]);
        let n = node(&l, &[]);
        assert!(filter(&spec(json!({})), n, &[("node-type", "gpu-worker")], &[]).is_ok());
        assert!(filter(&spec(json!({"nodeSelector": {"zone": "a"}})), n, &[], &[]).is_err());
    }
}
