//! The engine's rules as CEL validations, one list per rule family (and per second action).
//!
//! Every expression is true when the object passes; `variables.*` are declared by
//! [`super::pod::variables`] and [`super::validate`]. Each check names one engine code; what
//! no check expresses is listed in [`super::NOT_EXPRESSED`].

use super::pod::{VISIBLE_DEVICES, count, gets_gpu, tolerates, val, valid};
use crate::generate::cel::{any_of, or_empty, quote, quote_list, vendor_prefixed};
use crate::policy::Policy;

/// One validation: the code it reports, when it passes, and its message (a CEL expression).
pub struct Check {
    pub code: &'static str,
    pub passes: String,
    pub message: String,
}

fn check(code: &'static str, passes: String, text: &str) -> Check {
    Check {
        code,
        passes,
        message: format!("'[{code}] ' + variables.path + {}", quote(text)),
    }
}

const POD: &str = "object.kind == 'Pod'";

/// The objects a check is for: Pods, or (a template's warning) every other kind.
fn kind(pods: bool) -> String {
    if pods { POD.to_string() } else { format!("!({POD})") }
}

/// Whether the default class of the request's namespace is known (`PRIORITY_CLASS_NOT_FOUND`
/// otherwise) and which it is.
pub const DEFAULT_CLASS: &str = "(('defaultClass.' + request.namespace) in params.data ? params.data['defaultClass.' + request.namespace] : params.data.defaultClass)";

pub fn placement(policy: &Policy, pods: bool) -> Vec<Check> {
    let sel = &policy.spec().rules.placement.node_selector;
    let (k, v) = (quote(&sel.key), quote(&sel.value));
    let p = "variables.spec";
    let has_key = format!("(has({p}.nodeSelector) && {k} in {p}.nodeSelector)");
    let kind = kind(pods);
    let missing = check(
        "PLACEMENT_MISSING",
        format!("!({kind}) || !variables.gpu || {has_key}"),
        &format!(
            ": expected nodeSelector {}={}: the mutating admission policy sets it on Pod CREATE",
            sel.key, sel.value
        ),
    );
    if !pods {
        return vec![missing];
    }
    let terms = format!("{p}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms");
    let ruled_out = format!(
        "(has({p}.affinity) && has({p}.affinity.nodeAffinity) &&\n has({p}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) &&\n size({terms}) > 0 &&\n {terms}.all(term, has(term.matchExpressions) && term.matchExpressions.exists(e, e.key == {k} &&\n   ((e.operator == 'In' && !(has(e.values) && {v} in e.values)) ||\n    (e.operator == 'NotIn' && has(e.values) && {v} in e.values) || e.operator == 'DoesNotExist'))))"
    );
    vec![
        missing,
        check(
            "PLACEMENT_CONFLICT",
            format!("!variables.gpu || !{has_key} || {p}.nodeSelector[{k}] == {v}"),
            &format!(
                ".nodeSelector: GPU workloads must run on `{}={}` nodes: set it or remove it",
                sel.key, sel.value
            ),
        ),
        check(
            "PLACEMENT_CONFLICT",
            format!("!variables.gpu || !{ruled_out}"),
            &format!(
                ".affinity: the required node affinity rules `{}={}` nodes out",
                sel.key, sel.value
            ),
        ),
    ]
}

pub fn tolerations(policy: &Policy, pods: bool) -> Vec<Check> {
    let p = "variables.spec";
    let kind = kind(pods);
    let taint = policy.gpu_taint();
    vec![check(
        "TOLERATION_MISSING",
        format!(
            "!({kind}) || !variables.gpu ||\n(has({p}.tolerations) && {p}.tolerations.exists(t, {}))",
            tolerates(policy, "t")
        ),
        &format!(
            ".tolerations: expected toleration {}:{} (operator Exists)",
            taint.key, taint.effect
        ),
    )]
}

pub fn priority(pods: bool) -> Vec<Check> {
    let p = "variables.spec";
    let name = format!("{p}.priorityClassName");
    let set = format!("(has({name}) && {name} != '')");
    let kind = kind(pods);
    let known = |n: &str| format!("({n} in variables.knownClasses)");
    let mut out = vec![
        check(
            "PRIORITY_MISSING",
            format!("!({kind}) || !variables.gpu || {set} || !{}", known(DEFAULT_CLASS)),
            ".priorityClassName: expected a priority class: the mutating admission policy sets the namespace's default",
        ),
        check(
            "PRIORITY_CLASS_NOT_FOUND",
            format!("!({kind}) || !variables.gpu || {set} || {}", known(DEFAULT_CLASS)),
            ".priorityClassName: the namespace's default PriorityClass does not exist in the cluster",
        ),
    ];
    if !pods {
        return out;
    }
    let allowed = format!("({name} in variables.allowedClasses)");
    out.extend([
        check(
            "PRIORITY_CLASS_NOT_ALLOWED",
            format!("!variables.gpu || !{set} || {allowed}"),
            ".priorityClassName: this priority class is not allowed for GPU workloads",
        ),
        check(
            "PRIORITY_CLASS_NOT_FOUND",
            format!("!variables.gpu || !{set} || !{allowed} || {}", known(&name)),
            ".priorityClassName: this PriorityClass does not exist in the cluster",
        ),
        check(
            "PRIORITY_VALUE_MISMATCH",
            format!(
                "!({POD}) || !variables.gpu || !{set} || !{allowed} || !{} ||\n((!has({p}.priority) || {p}.priority == int(params.data['classValue.' + {name}])) &&\n (!has({p}.preemptionPolicy) || {p}.preemptionPolicy == params.data['classPreemption.' + {name}]))",
                known(&name)
            ),
            ".priority: priority and preemptionPolicy must be the class's",
        ),
    ]);
    out
}

/// The sum of `f(c)` over the list `l` (0 when empty).
fn sum(l: &str, f: &str) -> String {
    format!("([0] + {l}.map(c, {f})).sum()")
}

fn sidecar(c: &str) -> String {
    format!("(has({c}.restartPolicy) && {c}.restartPolicy == 'Always')")
}

/// Kubernetes' effective pod request for resource `r` (`PodRequests`): the larger of app
/// containers + sidecars and, per init container, its own request plus the sidecars before it.
fn effective_request(r: &str) -> String {
    let p = "variables.spec";
    let apps = or_empty(p, "containers");
    let inits = or_empty(p, "initContainers");
    let n = |c: &str| count(&val(c, r));
    let sidecars = sum(&format!("{inits}.filter(c, {})", sidecar("c")), &n("c"));
    let before = format!(
        "([0] + lists.range(i).filter(j, {}).map(j, {})).sum()",
        sidecar(&format!("{inits}[j]")),
        n(&format!("{inits}[j]"))
    );
    let peaks = format!(
        "lists.range(size({inits})).filter(i, !{}).map(i, {} + {before})",
        sidecar(&format!("{inits}[i]")),
        n(&format!("{inits}[i]"))
    );
    format!("([{} + {sidecars}] + {peaks}).max()", sum(&apps, &n("c")))
}

pub fn slices() -> Vec<Check> {
    let per = |what: &str| format!("int(params.data['{what}.' + r.replace('/', '_')])");
    vec![
        check(
            "SLICES_INVALID_QUANTITY",
            format!(
                "variables.containers.all(c, variables.gpuResources.all(r, {}))",
                valid(&val("c", "r"))
            ),
            ".containers[*].resources: a GPU count must be a whole, non-negative number such as 1 or \"2\"",
        ),
        check(
            "SLICES_CONTAINER_EXCEEDED",
            format!(
                "variables.containers.all(c, variables.offeredResources.all(r,\n  {} <= {}))",
                count(&val("c", "r")),
                per("perContainer")
            ),
            ".containers[*].resources: a container asks for more GPU slices than one container may have (params perContainer.*; the webhook decides per candidate node)",
        ),
        check(
            "SLICES_POD_EXCEEDED",
            format!(
                "variables.offeredResources.all(r, {} <= {})",
                effective_request("r"),
                per("perPod")
            ),
            ": the pod's effective GPU request is more than one node has (params perPod.*; the webhook decides per candidate node): split the work across pods",
        ),
    ]
}

pub fn unknown_resource(policy: &Policy) -> Vec<Check> {
    let vendor = any_of(vendor_prefixed(policy, "k"));
    let ok = format!(
        "(k in variables.offeredResources ||\n (k in variables.gpuResources ? {} == 0 : !({vendor})))",
        count(&val("c", "k"))
    );
    vec![check(
        "GPU_RESOURCE_NOT_OFFERED",
        format!(
            "variables.containers.all(c, !has(c.resources) ||\n ((!has(c.resources.limits) || c.resources.limits.all(k, {ok})) &&\n  (!has(c.resources.requests) || c.resources.requests.all(k, {ok}))))"
        ),
        ".containers[*].resources: no GPU node offers a vendor resource asked for: the pod would stay Pending",
    )]
}

pub fn host_path(policy: &Policy) -> Vec<Check> {
    let vols = "(has(variables.spec.volumes) ? variables.spec.volumes.filter(v, has(v.hostPath)) : [])";
    let path = "(has(v.hostPath.path) ? v.hostPath.path : '')";
    let valid_path = format!("({path}.startsWith('/') && !{path}.matches(r'[\\x00-\\x1f\\x7f-\\x{{9f}}]'))");
    let dotdot = format!("{path}.split('/').exists(s, s == '..')");
    let norm = format!("('/' + {path}.split('/').filter(s, s != '' && s != '.').join('/'))");
    let allowed = policy.host_path_allowed();
    let covers = |a: &str| {
        if a == "/" {
            "true".to_string()
        } else {
            format!("({norm} == {q} || {norm}.startsWith({q} + '/'))", q = quote(a))
        }
    };
    let covered_any = any_of(allowed.iter().map(|a| covers(&a.path)).collect());
    // The first entry covering the path decides, as in the engine.
    let first = |i: usize| {
        let mut parts = vec![covers(&allowed[i].path)];
        parts.extend((0..i).map(|j| format!("!{}", covers(&allowed[j].path))));
        format!("({})", parts.join(" && "))
    };
    let ns_ok = |i: usize| format!("(request.namespace in params.data['hostPathNamespaces.{i}'].split(','))");
    let judged = format!("!{valid_path} || {dotdot}");
    let mut out = vec![
        check(
            "HOSTPATH_INVALID",
            format!("{vols}.all(v, {valid_path})"),
            ".volumes[*].hostPath.path: a hostPath must be an absolute path without control characters",
        ),
        check(
            "HOSTPATH_NOT_ALLOWED",
            format!("{vols}.all(v, !{valid_path} || (!{dotdot} && ({covered_any})))"),
            &format!(
                ".volumes[*].hostPath.path: only {} may be mounted from the host (a path with `..` is refused natively): use a PersistentVolumeClaim, ConfigMap or emptyDir",
                if allowed.is_empty() {
                    "nothing".to_string()
                } else {
                    allowed.iter().map(|a| a.path.as_str()).collect::<Vec<_>>().join(", ")
                }
            ),
        ),
    ];
    if !allowed.is_empty() {
        let ns: Vec<String> = (0..allowed.len())
            .map(|i| format!("(!{} || {})", first(i), ns_ok(i)))
            .collect();
        out.push(check(
            "HOSTPATH_NAMESPACE_NOT_ALLOWED",
            format!("{vols}.all(v, {judged} || ({}))", ns.join(" && ")),
            ".volumes[*].hostPath.path: this host path is not allowed in this namespace",
        ));
    }
    let spec = "variables.spec";
    let containers = format!(
        "({} +\n {} +\n {})",
        or_empty(spec, "initContainers"),
        or_empty(spec, "containers"),
        or_empty(spec, "ephemeralContainers")
    );
    for (i, allow) in allowed.iter().enumerate() {
        let Some(pattern) = &allow.image_pattern else { continue };
        let regex = quote(pattern.as_str());
        out.push(check(
            "HOSTPATH_IMAGE_NOT_ALLOWED",
            format!(
                "{vols}.all(v, {judged} || !{} || !{} ||\n {containers}.all(c, !(has(c.volumeMounts) && c.volumeMounts.exists(m, m.name == v.name)) ||\n   (has(c.image) ? c.image : '').matches({regex})))",
                first(i),
                ns_ok(i)
            ),
            &format!(".volumes[*]: only images matching `{pattern}` may mount this host path"),
        ));
    }
    out
}

pub fn visibility(pods: bool) -> Vec<Check> {
    let var = quote(VISIBLE_DEVICES);
    let kind = kind(pods);
    let gpu = gets_gpu("c");
    let missing = check(
        "VISIBILITY_VOID_MISSING",
        format!(
            "!({kind}) || !variables.lands ||\nvariables.containers.all(c, {gpu} || (has(c.env) && c.env.exists(e, e.name == {var})))"
        ),
        &format!(": expected {VISIBLE_DEVICES}=void in every container that asks for no GPU"),
    );
    if !pods {
        return vec![missing];
    }
    let first = format!("c.env.filter(e, e.name == {var})");
    let ok =
        |e: &str| format!("(!has({e}.valueFrom) && (!has({e}.value) || {e}.value.trim() in ['void', 'none', '']))");
    vec![
        missing,
        check(
            "VISIBILITY_DEVICES_REQUESTED",
            format!(
                "!variables.lands ||\nvariables.containers.all(c, {gpu} || !has(c.env) || size({first}) == 0 || {})",
                ok(&format!("{first}[0]"))
            ),
            &format!(
                ".containers[*].env: a container that asks for no GPU may set {VISIBLE_DEVICES} only to `void` (not from valueFrom)"
            ),
        ),
        check(
            "VISIBILITY_SET_BY_GPU_CONTAINER",
            format!(
                "!variables.lands ||\nvariables.containers.all(c, !({gpu}) || !has(c.env) || !c.env.exists(e, e.name == {var}))"
            ),
            &format!(
                ".containers[*].env: a container that asks for a GPU may not set {VISIBLE_DEVICES}: the device plugin owns it"
            ),
        ),
    ]
}

pub fn privileged(policy: &Policy) -> Vec<Check> {
    let allowed = quote_list(&policy.spec().rules.visibility.privileged_namespaces);
    let privileged = "(has(c.securityContext) &&\n ((has(c.securityContext.privileged) && c.securityContext.privileged) ||\n  (has(c.securityContext.capabilities) && has(c.securityContext.capabilities.add) &&\n   c.securityContext.capabilities.add.exists(x, x in ['SYS_ADMIN', 'CAP_SYS_ADMIN', 'ALL']))))";
    vec![check(
        "PRIVILEGED_ON_GPU_NODE",
        format!("!variables.lands || request.namespace in {allowed} ||\nvariables.containers.all(c, !{privileged})"),
        ".containers[*].securityContext: a privileged container (or one adding SYS_ADMIN) in a pod that can land on a GPU node sees every GPU",
    )]
}
