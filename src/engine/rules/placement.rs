//! Rule `placement`: GPU workloads run on the GPU nodes (`nodeSelector node-type: gpu-worker`).
//!
//! Codes: `PLACEMENT_MISSING` (fixed by a patch), `PLACEMENT_CONFLICT`, `FIELD_INVALID`.

use serde_json::{Value, json};

use super::{Findings, Fix, Subject, add};
use crate::workload::json_type;

pub const RULE: &str = "placement";

pub fn check(subject: &Subject<'_>, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.placement;
    let Some(action) = subject.active(rules.action, &rules.exempt_namespaces) else {
        return;
    };
    let (key, want) = (&rules.node_selector.key, &rules.node_selector.value);
    let summary = format!("nodeSelector {key}={want}");
    match subject.spec.get("nodeSelector") {
        None | Some(Value::Null) => out.fixes.push(Fix {
            code: "PLACEMENT_MISSING",
            rule: RULE,
            path: subject.field("nodeSelector"),
            summary,
            ops: vec![add(subject.pointer(&["nodeSelector"]), json!({ key.as_str(): want }))],
            action,
        }),
        Some(Value::Object(selector)) => match selector.get(key.as_str()) {
            None => out.fixes.push(Fix {
                code: "PLACEMENT_MISSING",
                rule: RULE,
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
                    RULE,
                    "PLACEMENT_CONFLICT",
                    subject.field(&format!("nodeSelector.{key}")),
                    message,
                );
            }
        },
        Some(other) => {
            let message = format!("nodeSelector must be a map of labels, found {}", json_type(other));
            out.violation(action, RULE, "FIELD_INVALID", subject.field("nodeSelector"), message);
        }
    }
}
