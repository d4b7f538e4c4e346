//! Rule `tolerations`: GPU workloads tolerate the GPU nodes' taint (`nvidia.com/gpu:NoSchedule`).
//!
//! Codes: `TOLERATION_MISSING` (fixed by a patch), `FIELD_INVALID`.

use serde_json::{Value, json};

use super::{Findings, Fix, Rule, Subject, add};
use crate::decision::Action;
use crate::k8s::json_type;
use crate::k8s::scheduling;

pub const NAME: &str = "tolerations";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: true,
    codes: &["FIELD_INVALID", "TOLERATION_MISSING"],
    spec: |rules| &rules.tolerations,
    check,
};

fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.tolerations;
    let taint = &rules.taint;
    let wanted = json!({ "key": taint.key, "operator": "Exists", "effect": taint.effect });
    let summary = format!("toleration {}:{} (operator Exists)", taint.key, taint.effect);
    let (path, op) = match subject.spec.get("tolerations") {
        None | Some(Value::Null) => (
            subject.field("tolerations"),
            add(subject.pointer(&["tolerations"]), json!([wanted])),
        ),
        Some(Value::Array(items)) => {
            if items
                .iter()
                .any(|t| t.is_object() && scheduling::tolerates(t, subject.policy.gpu_taint()))
            {
                return;
            }
            (
                subject.field("tolerations"),
                add(subject.pointer(&["tolerations", "-"]), wanted),
            )
        }
        Some(other) => {
            let message = format!("tolerations must be a list, found {}", json_type(other));
            out.violation(action, NAME, "FIELD_INVALID", subject.field("tolerations"), message);
            return;
        }
    };
    out.fixes.push(Fix {
        code: "TOLERATION_MISSING",
        rule: NAME,
        path,
        summary,
        ops: vec![op],
        action,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::scheduling::Taint;

    #[test]
    fn kubernetes_matching_table() {
        let taint = Taint {
            key: "nvidia.com/gpu".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        };
        let tolerates = scheduling::tolerates;
        let cases = [
            (
                json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "nvidia.com/gpu", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"operator": "Exists", "effect": "NoSchedule"}), true),
            (json!({"operator": "Exists", "effect": "NoExecute"}), false),
            (json!({"key": "nvidia.com/gpu", "effect": "NoSchedule"}), true),
            (json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": ""}), true),
            (
                json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"}),
                false,
            ),
            (
                json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "PreferNoSchedule"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "nvidia.com/gpu", "operator": "Lt", "value": "1"}), false),
        ];
        for (tol, want) in cases {
            assert_eq!(tolerates(&tol, &taint), want, "{tol}");
        }
        let valued = Taint {
            value: "present".into(),
            ..taint
        };
        let eq = json!({"key": "nvidia.com/gpu", "operator": "Equal", "value": "present"});
        assert!(tolerates(&eq, &valued));
    }
}
