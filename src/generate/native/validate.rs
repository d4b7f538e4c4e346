//! ValidatingAdmissionPolicies and their bindings: one per rule family (and per second action),
//! plus the warnings about controllers' templates, which native mode does not patch.

use serde_yaml_ng::Value;

use super::checks::{self, Check};
use super::pod;
use crate::decision::Action;
use crate::generate::exempt::{self, Active};
use crate::generate::webhooks::{ALL_TRIGGERS, Target, sends, targets};
use crate::generate::yaml::{ADMISSION_V1, labels, list, map, named, object, s, strs};
use crate::policy::Policy;

/// One policy: its name, the binding's action, the namespaces it skips besides the policy's,
/// and its checks.
pub struct Family {
    pub name: &'static str,
    /// The engine rules it expresses (their triggers narrow its matchConditions).
    pub rules: &'static [&'static str],
    pub action: Action,
    pub exempt: Vec<String>,
    pub checks: Vec<Check>,
}

/// Every family the policy turns on, in the engine's rule order.
pub fn families(policy: &Policy) -> Vec<Family> {
    let r = &policy.spec().rules;
    let mut out = vec![
        Family {
            name: "slices",
            rules: &["slices"],
            action: r.slices.action,
            exempt: r.slices.exempt_namespaces.clone(),
            checks: checks::slices(),
        },
        Family {
            name: "slices-unknown-resource",
            rules: &["slices"],
            action: r.slices.unknown_resource_action,
            exempt: r.slices.exempt_namespaces.clone(),
            checks: checks::unknown_resource(policy),
        },
        Family {
            name: "host-path",
            rules: &["hostPath"],
            action: r.host_path.action,
            exempt: r.host_path.exempt_namespaces.clone(),
            checks: checks::host_path(policy),
        },
        Family {
            name: "placement",
            rules: &["placement"],
            action: r.placement.action,
            exempt: r.placement.exempt_namespaces.clone(),
            checks: checks::placement(policy, true),
        },
        Family {
            name: "tolerations",
            rules: &["tolerations"],
            action: r.tolerations.action,
            exempt: r.tolerations.exempt_namespaces.clone(),
            checks: checks::tolerations(policy, true),
        },
        Family {
            name: "priority",
            rules: &["priority"],
            action: r.priority.action,
            exempt: r.priority.exempt_namespaces.clone(),
            checks: checks::priority(true),
        },
        Family {
            name: "visibility",
            rules: &["visibility"],
            action: r.visibility.action,
            exempt: r.visibility.exempt_namespaces.clone(),
            checks: checks::visibility(true),
        },
        Family {
            name: "visibility-privileged",
            rules: &["visibility"],
            action: r.visibility.privileged_action,
            exempt: r.visibility.exempt_namespaces.clone(),
            checks: checks::privileged(policy),
        },
    ];
    out.retain(|f| f.action != Action::Off);
    out
}

/// What a controller's pods will get (the webhook's warnings): one Warn policy, each check
/// guarded by its rule's own exempt namespaces.
pub fn template_fixes(policy: &Policy) -> Family {
    let r = &policy.spec().rules;
    let mut all = Vec::new();
    let mut add = |action: Action, exempt: &[String], checks: Vec<Check>| {
        if action == Action::Off {
            return;
        }
        for mut c in checks {
            if !exempt.is_empty() {
                c.passes = format!(
                    "request.namespace in {} ||\n{}",
                    crate::generate::cel::quote_list(exempt),
                    c.passes
                );
            }
            all.push(c);
        }
    };
    add(
        r.placement.action,
        &r.placement.exempt_namespaces,
        checks::placement(policy, false),
    );
    add(
        r.tolerations.action,
        &r.tolerations.exempt_namespaces,
        checks::tolerations(policy, false),
    );
    add(
        r.priority.action,
        &r.priority.exempt_namespaces,
        checks::priority(false),
    );
    add(
        r.visibility.action,
        &r.visibility.exempt_namespaces,
        checks::visibility(false),
    );
    Family {
        name: "template-fixes",
        rules: &["placement", "tolerations", "priority", "visibility"],
        action: Action::Warn,
        exempt: Vec::new(),
        checks: all,
    }
}

/// `object.kind in [...] ? a : (... ? b : c)` over the targets (the last one is the default).
fn by_kind(targets: &[Target], f: impl Fn(&Target) -> String) -> String {
    let mut iter = targets.iter().rev();
    let Some(last) = iter.next() else {
        return "false".into();
    };
    let mut out = f(last);
    for t in iter {
        out = format!("{} ? ({}) :\n({out})", t.kind_test(), f(t));
    }
    out
}

/// The policy and its binding.
pub fn policy_and_binding(policy: &Policy, family: &Family) -> [Value; 2] {
    let targets = targets();
    let name = format!("gpu-admission-{}", family.name);
    let rules: Vec<Value> = targets
        .iter()
        .flat_map(|t| match t.rules(t.operations()) {
            Value::Sequence(items) => items,
            _ => Vec::new(),
        })
        .collect();
    let has_spec = by_kind(&targets, |t| t.path.guard());
    // As narrow as the webhooks: only pod specs one of the family's rules could report on.
    let leave_out = exempt::union(policy, &family.exempt);
    let expressed: Vec<Active> = exempt::active(policy, false)
        .into_iter()
        .filter(|a| family.rules.contains(&a.send.rule))
        .collect();
    let triggered = by_kind(&targets, |t| {
        sends(policy, &expressed, &t.path, &leave_out, ALL_TRIGGERS).map_or_else(|| "false".into(), |(_, e)| e)
    });
    let changed = by_kind(&targets, |t| t.template_changed_expr().unwrap_or_else(|| "true".into()));
    let spec_of = by_kind(&targets, |t| t.path.expr());
    let path_of = by_kind(&targets, |t| crate::generate::cel::quote(&t.path.segments.join(".")));
    let mut variables = pod::variables(policy, &spec_of);
    variables.push(named("path", &path_of));
    variables.push(named("allowedClasses", &pod::param_list("allowedClasses")));
    variables.push(named("knownClasses", &pod::param_list("knownClasses")));
    let validations = family.checks.iter().map(|c| {
        map([
            ("expression", s(&c.passes)),
            ("messageExpression", s(&c.message)),
            ("reason", s("Forbidden")),
        ])
    });
    let mut codes: Vec<&str> = family.checks.iter().map(|c| c.code).collect();
    let mut seen = std::collections::BTreeSet::new();
    codes.retain(|c| seen.insert(*c));
    let meta = map([
        ("name", s(&name)),
        ("labels", labels()),
        ("annotations", map([("gpu-admission.io/codes", s(&codes.join(",")))])),
    ]);
    let spec = map([
        ("failurePolicy", s("Fail")),
        ("paramKind", super::param_kind()),
        (
            "matchConstraints",
            map([
                ("namespaceSelector", exempt::namespace_selector(&leave_out)),
                ("resourceRules", list(rules)),
            ]),
        ),
        (
            "matchConditions",
            list([
                named("has-pod-spec", &has_spec),
                named("template-changed", &changed),
                named("may-be-reported", &triggered),
            ]),
        ),
        ("variables", list(variables)),
        ("validations", list(validations)),
    ]);
    let vap = object(ADMISSION_V1, "ValidatingAdmissionPolicy", meta, [("spec", spec)]);
    let actions = match family.action {
        Action::Warn => "Warn",
        _ => "Deny",
    };
    let binding = super::binding(
        "ValidatingAdmissionPolicyBinding",
        &name,
        "Deny",
        [("validationActions", strs([actions]))],
    );
    [vap, binding]
}
