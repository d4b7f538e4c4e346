//! The Mutating and Validating webhook configurations, from the policy (`generate webhooks`).
//!
//! One webhook per place a kind keeps its pod spec (Pods; controllers at `spec.template.spec`;
//! CronJobs). Each sends only what some rule that is on would look at: the namespaceSelector
//! leaves out the policy's exempt namespaces, the namespaces every rule the webhook serves
//! skips, and `gpu-admission.io/ignore=true`; the matchConditions send a pod only for a rule
//! that is on in its namespace (`request.namespace`) and that its spec can trigger.

use serde_yaml_ng::Value;

use super::cel::{self, SpecPath};
use super::exempt::{self, Active, Trigger};
use super::yaml::{ADMISSION_V1, int, list, map, metadata, named, object, push, s, strs};
use crate::k8s::workload::{KINDS, KindInfo};
use crate::policy::Policy;

/// Where kube-apiserver reaches the webhook: the Service of `deploy/base`.
#[derive(Debug, Clone)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

impl Default for Service {
    fn default() -> Self {
        Self {
            namespace: "gpu-admission".into(),
            name: "gpu-admission".into(),
            port: 443,
        }
    }
}

/// The mutating webhook patches only what it adds; the validating one denies a GPU pod that
/// reached it without it, so failing open loses no enforcement.
const MUTATE_FAILURE_POLICY: &str = "Ignore";
const MUTATE_TIMEOUT_SECONDS: i64 = 5;
/// The enforcement point: failing open would let anyone bypass it by overloading the webhook.
const VALIDATE_FAILURE_POLICY: &str = "Fail";
const VALIDATE_TIMEOUT_SECONDS: i64 = 10;

/// The kinds that keep their pod spec at one place, under one webhook.
pub struct Target {
    /// `pods`, `workloads`, `cronjobs`: the first label of the webhook's name.
    pub name: &'static str,
    pub path: SpecPath,
    pub kinds: Vec<&'static KindInfo>,
}

// === impl Target ===

impl Target {
    fn is_pods(&self) -> bool {
        self.name == "pods"
    }

    /// `rules` (or `resourceRules`): one entry per API group, in the order of [`KINDS`].
    pub fn rules(&self, operations: &[&str]) -> Value {
        let mut groups: Vec<(&str, &str, Vec<String>)> = Vec::new();
        for k in &self.kinds {
            let (group, version) = k.api_version.rsplit_once('/').unwrap_or(("", k.api_version));
            let plural = format!("{}s", k.kind.to_lowercase());
            match groups.iter_mut().find(|(g, _, _)| *g == group) {
                Some((_, _, resources)) => resources.push(plural),
                None => groups.push((group, version, vec![plural])),
            }
        }
        list(groups.into_iter().map(|(group, version, resources)| {
            map([
                ("apiGroups", strs([group])),
                ("apiVersions", strs([version])),
                ("operations", strs(operations)),
                ("resources", strs(resources)),
                ("scope", s("Namespaced")),
            ])
        }))
    }

    pub fn operations(&self) -> &'static [&'static str] {
        if self.is_pods() {
            &["CREATE"]
        } else {
            &["CREATE", "UPDATE"]
        }
    }

    /// An UPDATE that leaves the pod template alone is not sent (scaling, labels, finalizers):
    /// objects stored before a policy change can still be scaled and deleted.
    fn template_changed(&self) -> Option<Value> {
        let expression = self.template_changed_expr()?;
        Some(named("template-changed", &expression))
    }

    /// The CEL of `template_changed`.
    pub fn template_changed_expr(&self) -> Option<String> {
        let field = self.path.segments.get(1).filter(|_| !self.is_pods())?;
        let (o, old) = (format!("object.spec.{field}"), format!("oldObject.spec.{field}"));
        Some(format!(
            "request.operation != 'UPDATE' ||\n!has(object.spec) || !has(oldObject.spec) ||\n!has({o}) || !has({old}) ||\n{o} != {old}"
        ))
    }

    /// `object.kind in ['Deployment', ...]`.
    pub fn kind_test(&self) -> String {
        format!("object.kind in {}", cel::quote_list(self.kinds.iter().map(|k| k.kind)))
    }
}

/// Pods; the controllers with `spec.template.spec`; CronJobs.
pub fn targets() -> Vec<Target> {
    let mut out: Vec<Target> = Vec::new();
    for k in KINDS {
        match out.iter_mut().find(|t| t.path.segments == k.spec_segments) {
            Some(t) => t.kinds.push(k),
            None => {
                let name = match k.kind {
                    "Pod" => "pods",
                    "CronJob" => "cronjobs",
                    _ => "workloads",
                };
                out.push(Target {
                    name,
                    path: SpecPath {
                        segments: k.spec_segments,
                    },
                    kinds: vec![k],
                });
            }
        }
    }
    out
}

/// Every trigger: the webhook mode.
pub const ALL_TRIGGERS: &[Trigger] = &[Trigger::HostPath, Trigger::Lands, Trigger::GpuAsk];

/// Hybrid mode: the webhook only for what needs the cluster's nodes and DRA objects (GPU
/// workloads and pods with claims); the native policies take the rest.
const HYBRID_TRIGGERS: &[Trigger] = &[Trigger::GpuAsk];

/// The matchCondition sending a pod spec to `rules` for the triggers in `only`, except where
/// each rule skips it (`leave_out`: namespaces the namespaceSelector already leaves out), as
/// its name and its CEL. `None`: no rule is on.
pub fn sends(
    policy: &Policy,
    rules: &[Active],
    path: &SpecPath,
    leave_out: &[String],
    only: &[Trigger],
) -> Option<(String, String)> {
    let p = path.expr();
    let mut clauses = Vec::new();
    let mut names = Vec::new();
    for (trigger, name) in [
        (Trigger::HostPath, "mounts-hostpath"),
        (Trigger::Lands, "can-land-on-gpu-nodes"),
        (Trigger::GpuAsk, "asks-for-gpu"),
    ] {
        if !only.contains(&trigger) {
            continue;
        }
        let by: Vec<&Active> = rules.iter().filter(|a| a.send.triggers.contains(&trigger)).collect();
        if by.is_empty() {
            continue;
        }
        let mut skip = exempt::common(by);
        skip.retain(|ns| !leave_out.contains(ns));
        let text = match trigger {
            Trigger::HostPath => cel::mounts_host_path(&p),
            Trigger::Lands => format!(
                "{} ||\n{}",
                cel::may_tolerate_gpu_taint(policy, &p),
                cel::may_select_gpu_nodes(policy, &p)
            ),
            Trigger::GpuAsk => format!("{} ||\n{}", cel::has_claims(&p), cel::asks_vendor_resource(policy, &p)),
        };
        clauses.push(cel::outside(&skip, &text));
        names.push(name);
    }
    if clauses.is_empty() {
        return None;
    }
    names.reverse();
    let expression = format!("{} &&\n({})", path.guard(), cel::indent(&clauses.join(" ||\n")));
    Some((names.join("-or-"), expression))
}

/// The rules one configuration serves, and the namespaces its namespaceSelector leaves out.
fn served(policy: &Policy, mutating: bool) -> (Vec<Active>, Vec<String>) {
    let rules = exempt::active(policy, mutating);
    let leave_out = exempt::union(policy, &exempt::common(&rules));
    (rules, leave_out)
}

/// The matchConditions of one webhook serving `rules` (see [`served`]).
fn conditions(policy: &Policy, target: &Target, rules: &[Active], leave_out: &[String], only: &[Trigger]) -> Value {
    let mut conditions: Vec<Value> = target.template_changed().into_iter().collect();
    let sent = sends(policy, rules, &target.path, leave_out, only);
    conditions.push(match sent {
        Some((name, expression)) => named(&name, &expression),
        None => named("no-rule-is-on", "false"),
    });
    list(conditions)
}

fn webhook(policy: &Policy, svc: &Service, target: &Target, mutating: bool) -> Value {
    let (rules, leave_out) = served(policy, mutating);
    let (verb, endpoint, failure, timeout) = if mutating {
        ("mutate", "/mutate", MUTATE_FAILURE_POLICY, MUTATE_TIMEOUT_SECONDS)
    } else {
        (
            "validate",
            "/validate",
            VALIDATE_FAILURE_POLICY,
            VALIDATE_TIMEOUT_SECONDS,
        )
    };
    let mut w = map([
        ("name", s(&format!("{}.{verb}.gpu-admission.io", target.name))),
        ("admissionReviewVersions", strs(["v1"])),
        ("sideEffects", s("None")),
        ("timeoutSeconds", int(timeout)),
        ("failurePolicy", s(failure)),
    ]);
    if mutating {
        // Another mutating webhook may add a GPU resource after this one: be called again.
        push(&mut w, "reinvocationPolicy", s("IfNeeded"));
    }
    push(&mut w, "matchPolicy", s("Equivalent"));
    let service = map([
        ("name", s(&svc.name)),
        ("namespace", s(&svc.namespace)),
        ("path", s(endpoint)),
        ("port", int(i64::from(svc.port))),
    ]);
    push(&mut w, "clientConfig", map([("service", service)]));
    push(&mut w, "rules", target.rules(target.operations()));
    push(&mut w, "namespaceSelector", exempt::namespace_selector(&leave_out));
    push(
        &mut w,
        "matchConditions",
        conditions(policy, target, &rules, &leave_out, ALL_TRIGGERS),
    );
    w
}

/// Hybrid mode (deploy/components/hybrid): the JSON patch (RFC 6902) that narrows the
/// validating configuration's matchConditions to GPU workloads and pods with DRA claims, whose
/// decisions need the candidate nodes and the claims; the native policies decide the rest, and
/// the mutating configuration is dropped (the MutatingAdmissionPolicy patches).
pub fn hybrid_patch(policy: &Policy) -> Value {
    let (rules, leave_out) = served(policy, false);
    list(targets().iter().enumerate().map(|(i, target)| {
        map([
            ("op", s("replace")),
            ("path", s(&format!("/webhooks/{i}/matchConditions"))),
            ("value", conditions(policy, target, &rules, &leave_out, HYBRID_TRIGGERS)),
        ])
    }))
}

fn configuration(kind: &str, webhooks: Vec<Value>) -> Value {
    object(
        ADMISSION_V1,
        kind,
        metadata("gpu-admission"),
        [("webhooks", list(webhooks))],
    )
}

/// The MutatingWebhookConfiguration (Pods; controllers too with `mutateTemplates: true`) and the
/// ValidatingWebhookConfiguration (every covered kind).
pub fn configurations(policy: &Policy, svc: &Service) -> [Value; 2] {
    let targets = targets();
    let mutated = targets
        .iter()
        .filter(|t| t.is_pods() || policy.spec().mutate_templates)
        .map(|t| webhook(policy, svc, t, true))
        .collect();
    let validated = targets.iter().map(|t| webhook(policy, svc, t, false)).collect();
    [
        configuration("MutatingWebhookConfiguration", mutated),
        configuration("ValidatingWebhookConfiguration", validated),
    ]
}

/// What the generated file says about itself.
pub const HEADER: &str = "\
Generated by `gpu-admission generate webhooks` from the policy (README \"Webhook
configurations\"): do not edit. A test fails when this file differs from what the default
policy generates; regenerate it with
  cargo run -- generate webhooks > deploy/webhooks/webhooks.yaml

Which requests reach gpu-admission, and what the API server does when it cannot answer:
- mutating (Pods, CREATE): failurePolicy Ignore, timeout 5 s. The patch only adds what a GPU pod
  needs; the validating webhook denies a GPU pod that reached it without them, so failing open
  loses no enforcement.
- validating: failurePolicy Fail, timeout 10 s. It is the enforcement point (hostPath `/`,
  slices); failing open would let anyone bypass it by overloading the webhook.

namespaceSelector: not the policy's exemptNamespaces, not the namespaces that every rule the
webhook serves skips (rules.<rule>.exemptNamespaces), and not a namespace labelled
gpu-admission.io/ignore=true. Whoever may patch Namespaces can set that label, so granting a
team that right grants it the exemption.

matchConditions send only pod specs that some rule that is on in the request's namespace would
look at: a vendor resource (gpu.vendorPrefixes) or a DRA claim (GPU rules); a toleration of the
GPU taint, the GPU node label, a node affinity or a nodeName (visibility); a hostPath volume
(hostPath). Every field is guarded with has(): an expression error counts as a webhook failure.
";
