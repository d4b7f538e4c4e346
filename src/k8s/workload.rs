//! Any supported object → its pod spec and where it lives (JSON pointer and field path).
//!
//! Supported: `v1` Pod and ReplicationController; `apps/v1` Deployment, ReplicaSet,
//! StatefulSet, DaemonSet; `batch/v1` Job and CronJob. Anything else is not a workload.

use serde_json::{Map, Value};

use super::json_type;

/// Where a kind keeps its pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    pub api_version: &'static str,
    pub kind: &'static str,
    /// Path segments from the object root to the pod spec.
    pub spec_segments: &'static [&'static str],
}

const TEMPLATE: &[&str] = &["spec", "template", "spec"];

/// Every kind the policy covers.
pub const KINDS: &[KindInfo] = &[
    KindInfo {
        api_version: "v1",
        kind: "Pod",
        spec_segments: &["spec"],
    },
    KindInfo {
        api_version: "v1",
        kind: "ReplicationController",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "Deployment",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "ReplicaSet",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "StatefulSet",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "apps/v1",
        kind: "DaemonSet",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "batch/v1",
        kind: "Job",
        spec_segments: TEMPLATE,
    },
    KindInfo {
        api_version: "batch/v1",
        kind: "CronJob",
        spec_segments: &["spec", "jobTemplate", "spec", "template", "spec"],
    },
];

/// A workload object, seen through its pod spec.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    pub info: &'static KindInfo,
    pub namespace: Option<&'a str>,
    /// The pod spec, or why it could not be reached (`spec.template` missing, not an object).
    pub pod_spec: Result<&'a Map<String, Value>, String>,
}

impl Workload<'_> {
    pub fn is_pod(&self) -> bool {
        self.info.kind == "Pod"
    }

    /// `spec.template.spec` style path of the pod spec.
    pub fn spec_path(&self) -> String {
        self.info.spec_segments.join(".")
    }
}

/// `apiVersion` and `kind` of an object, if both are strings.
pub fn type_of(object: &Value) -> (Option<&str>, Option<&str>) {
    (
        object.get("apiVersion").and_then(Value::as_str),
        object.get("kind").and_then(Value::as_str),
    )
}

/// The kind info for an apiVersion/kind pair, if the policy covers it.
pub fn kind_info(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.api_version == api_version && k.kind == kind)
}

/// Whether `object` names a covered kind (in any letter case) under another group or version
/// than the one covered (`apps/v1beta1` Deployment, a `v2` Pod, kind `pod`): never evaluated as
/// if it were the served kind.
pub fn unserved_version(object: &Value) -> bool {
    let (api_version, Some(kind)) = type_of(object) else {
        return false;
    };
    KINDS
        .iter()
        .any(|k| k.kind.eq_ignore_ascii_case(kind) && (k.kind != kind || Some(k.api_version) != api_version))
}

/// Sees `object` as a workload; `None` when it is not one the policy covers.
pub fn extract(object: &Value) -> Option<Workload<'_>> {
    let (Some(api_version), Some(kind)) = type_of(object) else {
        return None;
    };
    let info = kind_info(api_version, kind)?;
    let metadata = object.get("metadata");
    let namespace = metadata.and_then(|m| m.get("namespace")).and_then(Value::as_str);
    let mut node = object;
    let mut walked: Vec<&str> = Vec::new();
    let mut pod_spec = Err(String::new());
    for (i, seg) in info.spec_segments.iter().enumerate() {
        walked.push(seg);
        match node.get(seg) {
            Some(next) if next.is_object() => node = next,
            Some(Value::Null) | None => {
                pod_spec = Err(format!("`{}` is missing", walked.join(".")));
                break;
            }
            Some(other) => {
                pod_spec = Err(format!(
                    "`{}` must be an object, found {}",
                    walked.join("."),
                    json_type(other)
                ));
                break;
            }
        }
        if i + 1 == info.spec_segments.len() {
            pod_spec = node.as_object().ok_or_else(String::new);
        }
    }
    Some(Workload {
        info,
        namespace,
        pod_spec,
    })
}
