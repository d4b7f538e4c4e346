//! Kubernetes objects for tests, as `serde_json::Value` (what the webhook receives).
//!
//! ```
//! use gpu_admission_testkit::{Container, Pod, Workload};
//!
//! let pod = Pod::gpu(1).name("trainer").ns("ai").tolerated().build();
//! assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"], "1");
//!
//! let spec = Pod::new().container(Container::new("c", "img").limit("nvidia.com/gpu", 2)).placed();
//! let deployment = Workload::deployment("llm").ns("ml").template(spec).build();
//! assert_eq!(deployment["spec"]["template"]["spec"]["nodeSelector"]["node-type"], "gpu-worker");
//! ```

use serde_json::{Map, Value, json};

/// The GPU resource of the NVIDIA device plugin.
pub const GPU: &str = "nvidia.com/gpu";
/// The image of [`Container::gpu`].
pub const CUDA_IMAGE: &str = "nvcr.io/nvidia/cuda:12.4.0-base-ubuntu22.04";
/// The node label value GPU workloads are placed on (`node-type=gpu-worker`).
pub const GPU_NODE_TYPE: &str = "gpu-worker";

/// A resource quantity: numbers become the strings the API server stores (`1` → `"1"`); a
/// `Value` is taken as it is (to test quantities of the wrong type).
pub trait Quantity {
    fn quantity(self) -> Value;
}

macro_rules! quantity_as_string {
    ($($t:ty),*) => {$(
        impl Quantity for $t {
            fn quantity(self) -> Value {
                Value::String(self.to_string())
            }
        }
    )*};
}
quantity_as_string!(i32, i64, u32, u64, usize, &str, String, &String);

impl Quantity for Value {
    fn quantity(self) -> Value {
        self
    }
}

/// The toleration of the GPU nodes' taint (`nvidia.com/gpu:NoSchedule`, operator `Exists`).
pub fn gpu_toleration() -> Value {
    json!({"key": GPU, "operator": "Exists", "effect": "NoSchedule"})
}

fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    v.as_object_mut().expect("a JSON object")
}

fn push(v: &mut Value, key: &str, item: Value) {
    let slot = object_mut(v).entry(key).or_insert_with(|| json!([]));
    slot.as_array_mut().expect("a JSON array").push(item);
}

// === containers ===

/// A container: `{"name", "image"}` and what the methods add.
#[derive(Clone, Debug)]
pub struct Container(Value);

impl Container {
    pub fn new(name: &str, image: &str) -> Self {
        Container(json!({"name": name, "image": image}))
    }

    /// `main`, a CUDA image, asking for `n` of `nvidia.com/gpu` in its limits and requests.
    pub fn gpu(n: impl Quantity) -> Self {
        let n = n.quantity();
        Container::new("main", CUDA_IMAGE).limit(GPU, n.clone()).request(GPU, n)
    }

    /// `resources.limits[resource] = q`.
    pub fn limit(self, resource: &str, q: impl Quantity) -> Self {
        self.resource("limits", resource, q.quantity())
    }

    /// `resources.requests[resource] = q`.
    pub fn request(self, resource: &str, q: impl Quantity) -> Self {
        self.resource("requests", resource, q.quantity())
    }

    fn resource(mut self, which: &str, resource: &str, q: Value) -> Self {
        self.0["resources"][which][resource] = q;
        self
    }

    /// Mounts volume `volume` at `path`.
    pub fn mount(mut self, volume: &str, path: &str) -> Self {
        push(&mut self.0, "volumeMounts", json!({"name": volume, "mountPath": path}));
        self
    }

    pub fn name(self, name: &str) -> Self {
        self.set("name", json!(name))
    }

    pub fn image(self, image: &str) -> Self {
        self.set("image", json!(image))
    }

    /// Any other field (`securityContext`, `command`, ...).
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.0[key] = value;
        self
    }

    pub fn build(self) -> Value {
        self.0
    }
}

impl From<Container> for Value {
    fn from(c: Container) -> Value {
        c.0
    }
}

// === pods ===

/// A Pod: name (`p` unless set), namespace (none unless set) and a pod spec.
#[derive(Clone, Debug)]
pub struct Pod {
    name: String,
    namespace: Option<String>,
    spec: Value,
}

impl Default for Pod {
    fn default() -> Self {
        Pod::new()
    }
}

impl Pod {
    /// A pod named `p` with an empty spec (add containers).
    pub fn new() -> Self {
        Pod::with_spec(json!({}))
    }

    /// A pod named `p` with this spec (any JSON: a malformed one too; the methods that add to
    /// the spec need an object).
    pub fn with_spec(spec: Value) -> Self {
        Pod {
            name: "p".into(),
            namespace: None,
            spec,
        }
    }

    /// A pod whose one container, [`Container::gpu`], asks for `n` GPUs (nothing else set).
    pub fn gpu(n: impl Quantity) -> Self {
        Pod::new().container(Container::gpu(n))
    }

    /// A pod whose container `main` (busybox) mounts `path` from the host at `/host`.
    pub fn host_path(path: &str) -> Self {
        Pod::new()
            .container(Container::new("main", "busybox").mount("host", "/host"))
            .host_path_volume("host", path)
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    pub fn ns(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn container(mut self, c: impl Into<Value>) -> Self {
        push(&mut self.spec, "containers", c.into());
        self
    }

    pub fn init_container(mut self, c: impl Into<Value>) -> Self {
        push(&mut self.spec, "initContainers", c.into());
        self
    }

    /// Appends a volume (any JSON).
    pub fn volume(mut self, volume: Value) -> Self {
        push(&mut self.spec, "volumes", volume);
        self
    }

    /// Appends volume `name` of `hostPath: {path}`.
    pub fn host_path_volume(self, name: &str, path: &str) -> Self {
        self.volume(json!({"name": name, "hostPath": {"path": path}}))
    }

    /// `nodeSelector: {node-type: gpu-worker}`, as the mutating webhook sets it.
    pub fn placed(self) -> Self {
        self.set("nodeSelector", json!({"node-type": GPU_NODE_TYPE}))
    }

    /// `tolerations: [nvidia.com/gpu:NoSchedule Exists]`, as the mutating webhook sets it.
    pub fn tolerated(self) -> Self {
        self.set("tolerations", json!([gpu_toleration()]))
    }

    /// `priorityClassName`.
    pub fn class(self, class: &str) -> Self {
        self.set("priorityClassName", json!(class))
    }

    /// Placed, tolerated and of `class`: everything the mutating webhook would add.
    pub fn complete(self, class: &str) -> Self {
        self.placed().tolerated().class(class)
    }

    /// `restartPolicy: Never` (a pod that runs once).
    pub fn restart_never(self) -> Self {
        self.set("restartPolicy", json!("Never"))
    }

    /// Any other spec field.
    pub fn set(mut self, key: &str, value: Value) -> Self {
        self.spec[key] = value;
        self
    }

    pub fn spec(&self) -> &Value {
        &self.spec
    }

    pub fn into_spec(self) -> Value {
        self.spec
    }

    pub fn build(self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(ns) = self.namespace {
            metadata["namespace"] = json!(ns);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": self.spec})
    }
}

impl From<Pod> for Value {
    fn from(p: Pod) -> Value {
        p.build()
    }
}

/// A pod spec: from a [`Pod`] (its spec) or any JSON.
pub struct PodSpec(Value);

impl From<Pod> for PodSpec {
    fn from(p: Pod) -> Self {
        PodSpec(p.spec)
    }
}

impl From<Value> for PodSpec {
    fn from(v: Value) -> Self {
        PodSpec(v)
    }
}

// === workloads ===

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `spec.selector` + `spec.template` labelled `app: <name>`.
    Selector,
    /// `spec.template` (a Job).
    Template,
    /// `spec.jobTemplate.spec.template` (a CronJob).
    JobTemplate,
}

/// A workload with a pod template: Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
/// CronJob. Controllers select their pods with `app: <name>`.
#[derive(Clone, Debug)]
pub struct Workload {
    api_version: &'static str,
    kind: &'static str,
    shape: Shape,
    name: String,
    namespace: Option<String>,
    replicas: Option<u32>,
    template: Value,
}

impl Workload {
    fn new(api_version: &'static str, kind: &'static str, shape: Shape, name: &str) -> Self {
        Workload {
            api_version,
            kind,
            shape,
            name: name.into(),
            namespace: None,
            replicas: None,
            template: json!({}),
        }
    }

    pub fn deployment(name: &str) -> Self {
        Self::new("apps/v1", "Deployment", Shape::Selector, name)
    }

    pub fn stateful_set(name: &str) -> Self {
        Self::new("apps/v1", "StatefulSet", Shape::Selector, name)
    }

    pub fn daemon_set(name: &str) -> Self {
        Self::new("apps/v1", "DaemonSet", Shape::Selector, name)
    }

    pub fn replica_set(name: &str) -> Self {
        Self::new("apps/v1", "ReplicaSet", Shape::Selector, name)
    }

    pub fn job(name: &str) -> Self {
        Self::new("batch/v1", "Job", Shape::Template, name)
    }

    /// Scheduled every minute.
    pub fn cron_job(name: &str) -> Self {
        Self::new("batch/v1", "CronJob", Shape::JobTemplate, name)
    }

    pub fn ns(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn replicas(mut self, n: u32) -> Self {
        self.replicas = Some(n);
        self
    }

    /// The pod template's spec.
    pub fn template(mut self, spec: impl Into<PodSpec>) -> Self {
        self.template = spec.into().0;
        self
    }

    pub fn build(self) -> Value {
        let mut metadata = json!({"name": self.name});
        if let Some(ns) = &self.namespace {
            metadata["namespace"] = json!(ns);
        }
        let mut spec = match self.shape {
            Shape::Selector => json!({
                "selector": {"matchLabels": {"app": self.name}},
                "template": {"metadata": {"labels": {"app": self.name}}, "spec": self.template},
            }),
            Shape::Template => json!({"template": {"spec": self.template}}),
            Shape::JobTemplate => json!({
                "schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": {"spec": self.template}}},
            }),
        };
        if let Some(n) = self.replicas {
            spec["replicas"] = json!(n);
        }
        json!({"apiVersion": self.api_version, "kind": self.kind, "metadata": metadata, "spec": spec})
    }
}

impl From<Workload> for Value {
    fn from(w: Workload) -> Value {
        w.build()
    }
}
