//! Rule `placement`: GPU workloads run on the GPU nodes (`nodeSelector node-type: gpu-worker`).
//!
//! A required node affinity whose every term rules the GPU node label out is a conflict too: with
//! the selector added, such a pod could never be scheduled.
//!
//! Codes: `PLACEMENT_MISSING` (fixed by a patch), `PLACEMENT_CONFLICT`, `FIELD_INVALID`.

use serde_json::{Value, json};

use super::{Findings, Fix, Rule, Subject, add};
use crate::decision::Action;
use crate::k8s::json_type;

pub const NAME: &str = "placement";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: true,
    codes: &["FIELD_INVALID", "PLACEMENT_CONFLICT", "PLACEMENT_MISSING"],
    spec: |rules| &rules.placement,
    check,
};

fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.placement;
    let (key, want) = (&rules.node_selector.key, &rules.node_selector.value);
    affinity_conflict(subject, out, action, key, want);
    let summary = format!("nodeSelector {key}={want}");
    match subject.spec.get("nodeSelector") {
        None | Some(Value::Null) => out.fixes.push(Fix {
            code: "PLACEMENT_MISSING",
            rule: NAME,
            path: subject.field("nodeSelector"),
            summary,
            ops: vec![add(subject.pointer(&["nodeSelector"]), json!({ key.as_str(): want }))],
            action,
        }),
        Some(Value::Object(selector)) => match selector.get(key.as_str()) {
            None => out.fixes.push(Fix {
                code: "PLACEMENT_MISSING",
                rule: NAME,
                path: subject.field(&format!("nodeSelector.{key}")),
                summary,
                ops: vec![add(subject.pointer(&["nodeSelector", key]), json!(want))],
                action,
            }),
            Some(Value::String(found)) if found == want => {}
            Some(found) => {
                let message = format!(
                    "GPU workloads must run on `{key}={want}` nodes, found `{key}={}`: set it to `{want}` or remove it",
                    found.as_str().map_or_else(|| found.to_string(), str::to_string)
                );
                out.violation(
                    action,
                    NAME,
                    "PLACEMENT_CONFLICT",
                    subject.field(&format!("nodeSelector.{key}")),
                    message,
                );
            }
        },
        Some(other) => {
            let message = format!("nodeSelector must be a map of labels, found {}", json_type(other));
            out.violation(action, NAME, "FIELD_INVALID", subject.field("nodeSelector"), message);
        }
    }
}

/// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`: the terms are
/// ORed, the expressions of a term ANDed. A term is ruled out for GPU nodes when an expression on
/// `key` excludes `want` (`In` without it, `NotIn` with it, `DoesNotExist`).
fn affinity_conflict(subject: &Subject<'_>, out: &mut Findings, action: crate::engine::Action, key: &str, want: &str) {
    const REQUIRED: &str = "/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms";
    let Some(Value::Array(terms)) = subject.spec.get("affinity").and_then(|a| a.pointer(REQUIRED)) else {
        return;
    };
    let excludes = |e: &Value| -> bool {
        if e.get("key").and_then(Value::as_str) != Some(key) {
            return false;
        }
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        match e.get("operator").and_then(Value::as_str) {
            Some("In") => !values.contains(&want),
            Some("NotIn") => values.contains(&want),
            Some("DoesNotExist") => true,
            _ => false,
        }
    };
    let ruled_out = |term: &Value| {
        term.get("matchExpressions")
            .and_then(Value::as_array)
            .is_some_and(|exprs| exprs.iter().any(excludes))
    };
    if !terms.is_empty() && terms.iter().all(ruled_out) {
        let message = format!(
            "GPU workloads must run on `{key}={want}` nodes, but the required node affinity rules them out: allow `{want}` for `{key}` in at least one nodeSelectorTerm, or drop the term"
        );
        let path =
            subject.field("affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
        out.violation(action, NAME, "PLACEMENT_CONFLICT", path, message);
    }
}
