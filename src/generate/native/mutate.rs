//! The MutatingAdmissionPolicy for Pods (CREATE): what the mutating webhook patches, as JSON
//! patches (`tolerations` and `nodeSelector` are atomic in the Pod schema, which
//! ApplyConfiguration refuses). Each patch first checks that its field is still missing, so a
//! reinvocation (`IfNeeded`) adds nothing twice.

use serde_yaml_ng::Value;

use super::checks::DEFAULT_CLASS;
use super::pod::{self, VISIBLE_DEVICES, gets_gpu, tolerates};
use crate::decision::Action;
use crate::generate::cel::{quote, quote_list};
use crate::generate::exempt;
use crate::generate::yaml::{ADMISSION_V1, list, map, metadata, named, object, s};
use crate::policy::Policy;

pub const NAME: &str = "gpu-admission-pods";

fn outside(exempt: &[String], expr: String) -> String {
    if exempt.is_empty() {
        expr
    } else {
        format!("request.namespace in {} ? [] :\n({expr})", quote_list(exempt))
    }
}

fn patch(op_path: &str, value: &str) -> String {
    format!("JSONPatch{{op: 'add', path: {op_path}, value: {value}}}")
}

/// The JSON-patch expressions, in the engine's rule order.
pub fn mutations(policy: &Policy) -> Vec<String> {
    let r = &policy.spec().rules;
    let p = "object.spec";
    let mut out = Vec::new();
    if r.placement.action != Action::Off {
        let sel = &r.placement.node_selector;
        let (k, v) = (quote(&sel.key), quote(&sel.value));
        out.push(outside(
            &r.placement.exempt_namespaces,
            format!(
                "!variables.gpu ? [] :\n!has({p}.nodeSelector) ? [{}] :\n!({k} in {p}.nodeSelector) ? [{}] : []",
                patch("'/spec/nodeSelector'", &format!("{{{k}: {v}}}")),
                patch(&format!("'/spec/nodeSelector/' + jsonpatch.escapeKey({k})"), &v)
            ),
        ));
    }
    if r.tolerations.action != Action::Off {
        let t = &r.tolerations.taint;
        let tol = format!(
            "{{'key': {}, 'operator': 'Exists', 'effect': {}}}",
            quote(&t.key),
            quote(&t.effect)
        );
        out.push(outside(
            &r.tolerations.exempt_namespaces,
            format!(
                "!variables.gpu ? [] :\n!has({p}.tolerations) ? [{}] :\n{p}.tolerations.exists(t, {}) ? [] : [{}]",
                patch("'/spec/tolerations'", &format!("[{tol}]")),
                tolerates(policy, "t"),
                patch("'/spec/tolerations/-'", &tol)
            ),
        ));
    }
    if r.priority.action != Action::Off {
        let name = format!("{p}.priorityClassName");
        let value = |n: &str| format!("int(params.data['classValue.' + {n}])");
        let preempt = |n: &str| format!("params.data['classPreemption.' + {n}]");
        let missing = format!(
            "[{}, {}, {}]",
            patch("'/spec/priorityClassName'", DEFAULT_CLASS),
            patch("'/spec/priority'", &value(DEFAULT_CLASS)),
            patch("'/spec/preemptionPolicy'", &preempt(DEFAULT_CLASS))
        );
        let mismatch = format!(
            "((has({p}.priority) && {p}.priority != {v}) ? [{}] : []) +\n((has({p}.preemptionPolicy) && {p}.preemptionPolicy != {e}) ? [{}] : [])",
            patch("'/spec/priority'", &value(&name)),
            patch("'/spec/preemptionPolicy'", &preempt(&name)),
            v = value(&name),
            e = preempt(&name)
        );
        out.push(outside(
            &r.priority.exempt_namespaces,
            format!(
                "!variables.gpu ? [] :\n(!has({name}) || {name} == '') ? ({DEFAULT_CLASS} in variables.knownClasses ? {missing} : []) :\n({name} in variables.allowedClasses && {name} in variables.knownClasses) ?\n({mismatch}) : []"
            ),
        ));
    }
    if r.visibility.action != Action::Off {
        let var = quote(VISIBLE_DEVICES);
        let entry = format!("{{'name': {var}, 'value': 'void'}}");
        let per_list = |field: &str| {
            let c = format!("{p}.{field}[i]");
            let at = format!("'/spec/{field}/' + string(i) + '/env'");
            format!(
                "(has({p}.{field}) ? lists.range(size({p}.{field})).filter(i,\n   !({}) && !(has({c}.env) && {c}.env.exists(e, e.name == {var}))).map(i,\n   has({c}.env) ? {} : {}) : [])",
                gets_gpu(&c),
                patch(&format!("{at} + '/-'"), &entry),
                patch(&at, &format!("[{entry}]"))
            )
        };
        out.push(outside(
            &r.visibility.exempt_namespaces,
            format!(
                "!variables.lands ? [] :\n{} +\n{}",
                per_list("initContainers"),
                per_list("containers")
            ),
        ));
    }
    out
}

/// The policy and its binding.
pub fn policy_and_binding(policy: &Policy) -> [Value; 2] {
    let rules = exempt::active(policy, true);
    let leave_out = exempt::union(policy, &exempt::common(&rules));
    let mut variables = pod::variables(policy, "object.spec");
    variables.push(named("allowedClasses", &pod::param_list("allowedClasses")));
    variables.push(named("knownClasses", &pod::param_list("knownClasses")));
    let mutations = mutations(policy).into_iter().map(|e| {
        map([
            ("patchType", s("JSONPatch")),
            ("jsonPatch", map([("expression", s(&e))])),
        ])
    });
    let pods_create = map([
        ("apiGroups", list([s("")])),
        ("apiVersions", list([s("v1")])),
        ("operations", list([s("CREATE")])),
        ("resources", list([s("pods")])),
        ("scope", s("Namespaced")),
    ]);
    let spec = map([
        ("failurePolicy", s("Ignore")),
        ("reinvocationPolicy", s("IfNeeded")),
        ("paramKind", super::param_kind()),
        (
            "matchConstraints",
            map([
                ("namespaceSelector", exempt::namespace_selector(&leave_out)),
                ("resourceRules", list([pods_create])),
            ]),
        ),
        ("matchConditions", list([named("has-pod-spec", "has(object.spec)")])),
        ("variables", list(variables)),
        ("mutations", list(mutations)),
    ]);
    let map_policy = object(
        ADMISSION_V1,
        "MutatingAdmissionPolicy",
        metadata(NAME),
        [("spec", spec)],
    );
    let binding = super::binding("MutatingAdmissionPolicyBinding", NAME, "Allow", []);
    [map_policy, binding]
}
