//! Part of the e2e benchmark (tools/src/bin/e2e_bench/main.rs).

#[allow(unused_imports)]
use super::*;

// === the pods ===

/// The load: a GPU pod that every set-up admits unchanged (placement, toleration and priority
/// already there, one GPU, no hostPath), as `gpu-admission check --fix` leaves it.
pub(crate) fn gpu_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench-vllm", "namespace": NS, "labels": {"app": "bench-vllm"}},
        "spec": {
            "priorityClassName": "high-priority",
            "nodeSelector": {"node-type": "gpu-worker"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "vllm",
                "image": "vllm/vllm-openai:v0.6.3",
                "args": ["--model", "mistralai/Mistral-7B-Instruct-v0.3", "--gpu-memory-utilization", "0.9"],
                "ports": [{"name": "http", "containerPort": 8000}],
                "env": [{"name": "HF_HOME", "value": "/models"}],
                "resources": {
                    "limits": {"nvidia.com/gpu": "1", "memory": "16Gi"},
                    "requests": {"nvidia.com/gpu": "1", "cpu": "2", "memory": "16Gi"}
                },
                "readinessProbe": {"httpGet": {"path": "/health", "port": 8000}, "periodSeconds": 10},
                "volumeMounts": [{"name": "models", "mountPath": "/models"}]
            }],
            "volumes": [{"name": "models", "emptyDir": {}}]
        }
    })
}

/// `gpu_pod` changed by `f`, in namespace `ns`.
pub(crate) fn variant(ns: &str, f: impl FnOnce(&mut Value)) -> Value {
    let mut pod = gpu_pod();
    pod["metadata"]["namespace"] = json!(ns);
    f(&mut pod);
    pod
}

pub(crate) fn host_path(pod: &mut Value, path: &str) {
    pod["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "host", "hostPath": {"path": path}}));
}

/// A GPU pod without the toleration: set-up 3's mutating webhook adds it.
pub(crate) fn unpatched_pod() -> Value {
    variant(NS, |p| {
        p["spec"].as_object_mut().expect("spec").remove("tolerations");
    })
}

pub(crate) struct Case {
    pub(crate) what: &'static str,
    pub(crate) ns: &'static str,
    pub(crate) pod: Value,
    /// Denied by the rules (set-ups 2 and 3); set-up 1 admits everything.
    pub(crate) denied: bool,
}

pub(crate) fn cases() -> Vec<Case> {
    let case = |what, ns: &'static str, denied, f: &dyn Fn(&mut Value)| Case {
        what,
        ns,
        pod: variant(ns, f),
        denied,
    };
    vec![
        case("the load's GPU pod", NS, false, &|_| {}),
        case("hostPath /dev/bus/usb in ai", NS, false, &|p| {
            host_path(p, "/dev/bus/usb")
        }),
        case("pod without GPU, nodeSelector or priority", "default", false, &|p| {
            let spec = p["spec"].as_object_mut().expect("spec");
            spec.remove("nodeSelector");
            spec.remove("priorityClassName");
            spec.remove("tolerations");
            let limits = p["spec"]["containers"][0]["resources"]["limits"]
                .as_object_mut()
                .expect("limits");
            limits.remove("nvidia.com/gpu");
            let requests = p["spec"]["containers"][0]["resources"]["requests"]
                .as_object_mut()
                .expect("requests");
            requests.remove("nvidia.com/gpu");
        }),
        case("hostPath /", NS, true, &|p| host_path(p, "/")),
        case("hostPath /dev/bus/usb outside ai", "default", true, &|p| {
            host_path(p, "/dev/bus/usb")
        }),
        case("nodeSelector node-type=cpu-worker", NS, true, &|p| {
            p["spec"]["nodeSelector"]["node-type"] = json!("cpu-worker");
        }),
        case("5 nvidia.com/gpu in one container", NS, true, &|p| {
            p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = json!("5");
            p["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = json!("5");
        }),
        case("priorityClassName low-priority (not allowed)", NS, true, &|p| {
            p["spec"]["priorityClassName"] = json!("low-priority");
        }),
    ]
}

/// The validation subset of the rules (policies/default.yaml) as a ValidatingAdmissionPolicy:
/// hostPath only `/dev/bus/usb` (or below it), only in namespace `ai` (`monitoring` exempt);
/// GPU pods on `node-type: gpu-worker`, with an allowed priority class, and at most 4
/// `nvidia.com/gpu` per container. Same resources, operations and namespaceSelector as the
/// webhook configuration `pods.validate.gpu-admission.io`. Like gpu-admission's validating
/// webhook (after its mutating one), it requires the nodeSelector and the priority class of a
/// GPU pod. Paths are judged as written (gpu-admission normalises `//`, `.` and `..` first; here
/// a `..` is refused).
pub(crate) fn vap() -> Value {
    let ns_selector = json!({"matchExpressions": [{
        "key": "kubernetes.io/metadata.name", "operator": "NotIn",
        "values": ["kube-system", "gpu-admission", "gpu-operator"]
    }]});
    let gpu_count_ok = |field: &str| {
        format!(
            "(!has(c.resources.{field}) || !('nvidia.com/gpu' in c.resources.{field}) || \
             !quantity(c.resources.{field}['nvidia.com/gpu']).isGreaterThan(quantity('4')))"
        )
    };
    json!({"apiVersion": "v1", "kind": "List", "items": [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": VAP_NAME},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                       "operations": ["CREATE"], "resources": ["pods"]}],
                    "namespaceSelector": ns_selector,
                },
                "variables": [
                    {"name": "containers", "expression":
                        "(has(object.spec.containers) ? object.spec.containers : []) + \
                         (has(object.spec.initContainers) ? object.spec.initContainers : [])"},
                    {"name": "gpu", "expression":
                        "variables.containers.exists(c, has(c.resources) && \
                         ((has(c.resources.limits) && c.resources.limits.exists(r, r.startsWith('nvidia.com/'))) || \
                          (has(c.resources.requests) && c.resources.requests.exists(r, r.startsWith('nvidia.com/')))))"},
                ],
                "validations": [
                    {"expression":
                        "request.namespace == 'monitoring' || !has(object.spec.volumes) || \
                         object.spec.volumes.all(v, !has(v.hostPath) || \
                           (request.namespace == 'ai' && !v.hostPath.path.contains('..') && \
                            (v.hostPath.path == '/dev/bus/usb' || v.hostPath.path.startsWith('/dev/bus/usb/'))))",
                     "message": "hostPath is not allowed; only /dev/bus/usb, in namespace ai",
                     "reason": "Forbidden"},
                    {"expression":
                        "!variables.gpu || (has(object.spec.nodeSelector) && \
                         'node-type' in object.spec.nodeSelector && \
                         object.spec.nodeSelector['node-type'] == 'gpu-worker')",
                     "message": "GPU pods need nodeSelector node-type=gpu-worker",
                     "reason": "Forbidden"},
                    {"expression":
                        "!variables.gpu || (has(object.spec.priorityClassName) && \
                         object.spec.priorityClassName in ['high-priority', 'medium-priority'])",
                     "message": "GPU pods need priorityClassName high-priority or medium-priority",
                     "reason": "Forbidden"},
                    {"expression": format!(
                        "variables.containers.all(c, !has(c.resources) || ({} && {}))",
                        gpu_count_ok("limits"), gpu_count_ok("requests")),
                     "message": "at most 4 nvidia.com/gpu per container (time-slicing gives 4 slices per GPU)",
                     "reason": "Forbidden"},
                ],
            }
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": VAP_NAME},
            "spec": {"policyName": VAP_NAME, "validationActions": ["Deny"]}
        }
    ]})
}
