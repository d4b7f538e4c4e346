//! Rule `priority`: GPU workloads carry an allowed priority class; a namespace default otherwise.
//!
//! Codes: `PRIORITY_MISSING` and `PRIORITY_VALUE_MISMATCH` (fixed by a patch),
//! `PRIORITY_CLASS_NOT_ALLOWED`, `FIELD_INVALID`.
//!
//! kube-apiserver's Priority plugin runs before mutating webhooks and again after them: a bare
//! Pod already carries the `priority` computed from its (missing) class. Adding only
//! `priorityClassName` would get the Pod rejected, so a Pod also gets `priority` and
//! `preemptionPolicy` set to the class's values. Templates only get the class name: their pods
//! go through the plugin when they are created.

use serde_json::{Value, json};

use super::{Findings, Fix, Rule, Subject, add};
use crate::decision::Action;
use crate::k8s::json_type;
use crate::policy::ResolvedClass;

pub const NAME: &str = "priority";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: true,
    codes: &[
        "FIELD_INVALID",
        "PRIORITY_CLASS_NOT_ALLOWED",
        "PRIORITY_CLASS_NOT_FOUND",
        "PRIORITY_MISSING",
        "PRIORITY_VALUE_MISMATCH",
    ],
    spec: |rules| &rules.priority,
    check,
};

fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    let rules = &subject.policy.spec().rules.priority;
    match subject.spec.get("priorityClassName") {
        None | Some(Value::Null) => missing(subject, out, action),
        Some(Value::String(name)) if name.is_empty() => missing(subject, out, action),
        Some(Value::String(name)) => {
            if !rules.allowed.contains(name) {
                let message = format!(
                    "priority class `{name}` is not allowed for GPU workloads; use one of {} (namespace `{}` defaults to `{}`)",
                    rules.allowed.join(", "),
                    subject.namespace,
                    subject.policy.default_priority_class(subject.namespace)
                );
                out.violation(
                    action,
                    NAME,
                    "PRIORITY_CLASS_NOT_ALLOWED",
                    subject.field("priorityClassName"),
                    message,
                );
            } else {
                match subject.effective.resolve_priority_class(name) {
                    None => not_found(subject, out, action, name),
                    Some(class) if subject.is_pod => mismatched_values(subject, out, action, &class),
                    Some(_) => {}
                }
            }
        }
        Some(other) => {
            let message = format!("priorityClassName must be a string, found {}", json_type(other));
            out.violation(
                action,
                NAME,
                "FIELD_INVALID",
                subject.field("priorityClassName"),
                message,
            );
        }
    }
}

fn missing(subject: &Subject<'_>, out: &mut Findings, action: Action) {
    let name = subject.policy.default_priority_class(subject.namespace);
    let Some(class) = subject.effective.resolve_priority_class(name) else {
        return not_found(subject, out, action, name);
    };
    let mut ops = vec![add(subject.pointer(&["priorityClassName"]), json!(class.name))];
    let mut summary = format!("priorityClassName {}", class.name);
    if subject.is_pod {
        ops.push(add(subject.pointer(&["priority"]), json!(class.value)));
        ops.push(add(
            subject.pointer(&["preemptionPolicy"]),
            json!(class.preemption_policy),
        ));
        summary.push_str(&format!(" (priority {})", class.value));
    }
    out.fixes.push(Fix {
        code: "PRIORITY_MISSING",
        rule: NAME,
        path: subject.field("priorityClassName"),
        summary,
        ops,
        action,
    });
}

/// The class does not exist in the cluster: the Priority plugin would refuse the pod later, with
/// a less helpful message.
fn not_found(subject: &Subject<'_>, out: &mut Findings, action: Action, name: &str) {
    let message = format!(
        "PriorityClass `{name}` does not exist in the cluster: create it (deploy/ ships the seed's classes) or use an existing allowed class"
    );
    out.violation(
        action,
        NAME,
        "PRIORITY_CLASS_NOT_FOUND",
        subject.field("priorityClassName"),
        message,
    );
}

/// A Pod whose class is right but whose resolved values are not (the Priority plugin would
/// refuse it): set them to the class's.
fn mismatched_values(subject: &Subject<'_>, out: &mut Findings, action: Action, class: &ResolvedClass) {
    let mut ops = Vec::new();
    let present = |field: &str| subject.spec.get(field).filter(|v| !v.is_null());
    if present("priority").is_some_and(|found| found.as_i64() != Some(i64::from(class.value))) {
        ops.push(add(subject.pointer(&["priority"]), json!(class.value)));
    }
    if present("preemptionPolicy").is_some_and(|found| found.as_str() != Some(class.preemption_policy.as_str())) {
        ops.push(add(
            subject.pointer(&["preemptionPolicy"]),
            json!(class.preemption_policy),
        ));
    }
    if !ops.is_empty() {
        let summary = format!(
            "priority {} and preemptionPolicy {} of class {}",
            class.value, class.preemption_policy, class.name
        );
        out.fixes.push(Fix {
            code: "PRIORITY_VALUE_MISMATCH",
            rule: NAME,
            path: subject.field("priority"),
            summary,
            ops,
            action,
        });
    }
}
