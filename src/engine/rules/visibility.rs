//! Rule `visibility`: no container reaches a GPU except through the device plugin.
//!
//! The seed's GPU workers run containerd with the `nvidia` runtime as default, so any container
//! there that says `NVIDIA_VISIBLE_DEVICES=all` sees every GPU without asking for a slice (CUDA
//! base images set it themselves), and a privileged container sees every `/dev/nvidia*`. In a pod
//! that can land on a GPU node (it asks for a GPU, tolerates the GPU taint, explicitly or with a
//! wildcard, or selects GPU nodes):
//! - a container that asks for no GPU gets `NVIDIA_VISIBLE_DEVICES=void` on Pod CREATE
//!   (`VISIBILITY_VOID_MISSING`, fixed by a patch; the toolkit then leaves it alone, and an
//!   explicit `env` entry wins over the image's and over `envFrom`);
//! - such a container that sets the variable to anything but `void`/`none`, or through
//!   `valueFrom` (which cannot be checked), is denied (`VISIBILITY_DEVICES_REQUESTED`);
//! - a GPU container that sets the variable at all is denied: the device plugin owns it
//!   (`VISIBILITY_SET_BY_GPU_CONTAINER`);
//! - a privileged container, or one adding `SYS_ADMIN`, is reported (`PRIVILEGED_ON_GPU_NODE`,
//!   `privilegedAction`, `warn` by default) outside `privilegedNamespaces`.
//!
//! `NVIDIA_DRIVER_CAPABILITIES` is not judged: the container toolkit reads it only when devices
//! are requested, so with the variable `void` it has no effect.

use serde_json::{Map, Value, json};

use super::gpu::List;
use super::{Findings, Fix, Rule, Subject, add};
use crate::decision::Action;
use crate::k8s::scheduling::tolerates;

pub const NAME: &str = "visibility";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: false,
    codes: &[
        "PRIVILEGED_ON_GPU_NODE",
        "VISIBILITY_DEVICES_REQUESTED",
        "VISIBILITY_SET_BY_GPU_CONTAINER",
        "VISIBILITY_VOID_MISSING",
    ],
    spec: |rules| &rules.visibility,
    check,
};

/// The variable the NVIDIA container runtime reads.
pub const VISIBLE_DEVICES: &str = "NVIDIA_VISIBLE_DEVICES";

/// Values that give a container no GPU.
const NO_DEVICES: &[&str] = &["void", "none", ""];

fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    if !can_land_on_gpu_node(subject) {
        return;
    }
    let rules = &subject.policy.spec().rules.visibility;
    let privileged = subject.active(rules.privileged_action, &rules.privileged_namespaces);
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(containers)) = subject.spec.get(list) else {
            continue;
        };
        for (index, container) in containers.iter().enumerate() {
            let Some(container) = container.as_object() else {
                continue;
            };
            let which = if list == "initContainers" {
                List::InitContainers
            } else {
                List::Containers
            };
            let asks_gpu = subject.gpu.container_gets_gpu(which, index);
            let at = Place { list, index, container };
            if action != Action::Off {
                variable(subject, out, action, &at, asks_gpu);
            }
            if let Some(privileged_action) = privileged {
                privileged_container(subject, out, privileged_action, &at);
            }
        }
    }
}

/// One container and where it sits.
struct Place<'a> {
    list: &'static str,
    index: usize,
    container: &'a Map<String, Value>,
}

impl Place<'_> {
    fn name(&self) -> &str {
        self.container.get("name").and_then(Value::as_str).unwrap_or("")
    }
}

/// Whether the scheduler could put the pod on a GPU node (before any cluster facts: by the
/// policy's GPU node label and taint).
pub fn can_land_on_gpu_node(subject: &Subject<'_>) -> bool {
    if subject.gpu.is_gpu_workload() {
        return true;
    }
    let rules = &subject.policy.spec().rules;
    let taint = subject.policy.gpu_taint();
    let tolerated = subject
        .spec
        .get("tolerations")
        .and_then(Value::as_array)
        .is_some_and(|ts| ts.iter().any(|t| tolerates(t, taint)));
    let selector = &rules.placement.node_selector;
    let selected = subject
        .spec
        .get("nodeSelector")
        .and_then(|s| s.get(&selector.key))
        .and_then(Value::as_str)
        == Some(selector.value.as_str());
    let bound = subject
        .spec
        .get("nodeName")
        .and_then(Value::as_str)
        .is_some_and(|name| {
            subject
                .effective
                .cluster()
                .is_some_and(|f| f.gpu_nodes.iter().any(|n| n.name == name))
        });
    tolerated || selected || bound || affinity_selects(subject.spec, &selector.key, &selector.value)
}

/// A required node-affinity term that asks for the GPU node label (`In` with its value, or
/// `Exists`).
fn affinity_selects(spec: &Map<String, Value>, key: &str, value: &str) -> bool {
    let terms = spec
        .get("affinity")
        .and_then(|a| a.pointer("/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms"))
        .and_then(Value::as_array);
    terms.into_iter().flatten().any(|term| {
        let exprs = term.get("matchExpressions").and_then(Value::as_array);
        exprs.into_iter().flatten().any(|e| {
            let has_value = e
                .get("values")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v.as_str() == Some(value)));
            e.get("key").and_then(Value::as_str) == Some(key)
                && match e.get("operator").and_then(Value::as_str) {
                    Some("In") => has_value,
                    Some("Exists") => true,
                    _ => false,
                }
        })
    })
}

fn variable(subject: &Subject<'_>, out: &mut Findings, action: Action, at: &Place<'_>, asks_gpu: bool) {
    let env = at.container.get("env").and_then(Value::as_array);
    let found = env
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, e)| e.get("name").and_then(Value::as_str) == Some(VISIBLE_DEVICES));
    let (list, index, name) = (at.list, at.index, at.name());
    match found {
        None if asks_gpu => {}
        Some((i, _)) if asks_gpu => {
            let message = format!(
                "container `{name}` asks for a GPU and sets {VISIBLE_DEVICES}: the device plugin sets it to the slices the container gets; remove it"
            );
            let path = subject.field(&format!("{list}[{index}].env[{i}]"));
            out.violation(action, NAME, "VISIBILITY_SET_BY_GPU_CONTAINER", path, message);
        }
        Some((i, entry)) => {
            let path = subject.field(&format!("{list}[{index}].env[{i}]"));
            let value = entry.get("value").and_then(Value::as_str);
            let message = match value {
                _ if entry.get("valueFrom").is_some_and(|v| !v.is_null()) => format!(
                    "container `{name}` asks for no GPU and takes {VISIBLE_DEVICES} from valueFrom, which cannot be checked: set it to `void` or remove it"
                ),
                Some(v) if NO_DEVICES.contains(&v.trim()) => return,
                None => return,
                Some(v) => format!(
                    "container `{name}` asks for no GPU but sets {VISIBLE_DEVICES}={v}, which would show it GPUs on a GPU node without a slice: ask for `nvidia.com/gpu` instead, or set it to `void`"
                ),
            };
            out.violation(action, NAME, "VISIBILITY_DEVICES_REQUESTED", path, message);
        }
        None => {
            let entry = json!({"name": VISIBLE_DEVICES, "value": "void"});
            let idx = index.to_string();
            let op = match at.container.get("env") {
                None | Some(Value::Null) => add(subject.pointer(&[list, &idx, "env"]), json!([entry])),
                Some(Value::Array(_)) => add(subject.pointer(&[list, &idx, "env", "-"]), entry),
                Some(_) => return, // not a list: the API server refuses the object itself
            };
            out.fixes.push(Fix {
                code: "VISIBILITY_VOID_MISSING",
                rule: NAME,
                path: subject.field(&format!("{list}[{index}].env")),
                summary: format!("{VISIBLE_DEVICES}=void in container `{name}`"),
                ops: vec![op],
                action,
            });
        }
    }
}

fn privileged_container(subject: &Subject<'_>, out: &mut Findings, action: Action, at: &Place<'_>) {
    let security = at.container.get("securityContext");
    let privileged = security.and_then(|s| s.get("privileged")).and_then(Value::as_bool) == Some(true);
    let sys_admin = security
        .and_then(|s| s.pointer("/capabilities/add"))
        .and_then(Value::as_array)
        .is_some_and(|caps| {
            caps.iter()
                .filter_map(Value::as_str)
                .any(|c| matches!(c, "SYS_ADMIN" | "CAP_SYS_ADMIN" | "ALL"))
        });
    if !(privileged || sys_admin) {
        return;
    }
    let what = if privileged { "is privileged" } else { "adds SYS_ADMIN" };
    let message = format!(
        "container `{}` {what} in a pod that can land on a GPU node, where it sees every GPU: drop it, or allow namespace `{}` in rules.visibility.privilegedNamespaces",
        at.name(),
        subject.namespace
    );
    let path = subject.field(&format!("{}[{}].securityContext", at.list, at.index));
    out.violation(action, NAME, "PRIVILEGED_ON_GPU_NODE", path, message);
}
