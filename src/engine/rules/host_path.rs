//! Rule `hostPath`: no hostPath volume, except an allowed path (the Coral's `/dev/bus/usb` and
//! below it) in the namespaces allowed for it, optionally only for matching images.
//!
//! Applies to every pod, GPU or not. Paths are normalised first (`//`, `.`, `..`, trailing `/`),
//! so `/dev/bus/usb/../../etc` is judged as `/dev/etc`; a parent such as `/dev` or `/` never
//! matches; a path holding a NUL or other control character is invalid, whatever it starts
//! with. Codes: `HOSTPATH_NOT_ALLOWED`, `HOSTPATH_NAMESPACE_NOT_ALLOWED`,
//! `HOSTPATH_IMAGE_NOT_ALLOWED`, `HOSTPATH_INVALID`.

use serde_json::Value;

use super::{Findings, Rule, Subject};
use crate::decision::Action;
use crate::k8s::host_path::{covers, normalize};
use crate::policy::HostPathAllow;

pub const NAME: &str = "hostPath";

pub const RULE: Rule = Rule {
    name: NAME,
    gpu_only: false,
    codes: &[
        "HOSTPATH_IMAGE_NOT_ALLOWED",
        "HOSTPATH_INVALID",
        "HOSTPATH_NAMESPACE_NOT_ALLOWED",
        "HOSTPATH_NOT_ALLOWED",
    ],
    spec: |rules| &rules.host_path,
    check,
};

fn check(subject: &Subject<'_>, action: Action, out: &mut Findings) {
    let Some(Value::Array(volumes)) = subject.spec.get("volumes") else {
        return;
    };
    for (i, volume) in volumes.iter().enumerate() {
        let Some(host_path) = volume.get("hostPath").filter(|h| !h.is_null()) else {
            continue;
        };
        let field = subject.field(&format!("volumes[{i}].hostPath.path"));
        let raw = host_path.get("path").and_then(Value::as_str).unwrap_or("");
        if raw.chars().any(char::is_control) {
            let message = format!(
                "hostPath path {:?} contains a NUL or other control character: no such path can be allowed",
                raw
            );
            out.violation(action, NAME, "HOSTPATH_INVALID", field, message);
            continue;
        }
        let Some(path) = normalize(raw) else {
            let message = format!("hostPath path `{raw}` is not an absolute path");
            out.violation(action, NAME, "HOSTPATH_INVALID", field, message);
            continue;
        };
        let shown = if path == raw {
            format!("`{raw}`")
        } else {
            format!("`{raw}` (that is `{path}`)")
        };
        let allowed = subject.policy.host_path_allowed();
        let Some(allow) = allowed.iter().find(|a| covers(&a.path, &path)) else {
            let only: Vec<&str> = allowed.iter().map(|a| a.path.as_str()).collect();
            let message = if only.is_empty() {
                format!(
                    "hostPath {shown} is not allowed; no host path may be mounted: use a PersistentVolumeClaim, ConfigMap or emptyDir"
                )
            } else {
                format!(
                    "hostPath {shown} is not allowed; only {} may be mounted from the host: use a PersistentVolumeClaim, ConfigMap or emptyDir",
                    only.join(", ")
                )
            };
            out.violation(action, NAME, "HOSTPATH_NOT_ALLOWED", field, message);
            continue;
        };
        let labelled = allow.namespace_label.as_ref().is_some_and(|l| {
            subject
                .effective
                .cluster()
                .is_some_and(|f| f.namespace_has_label(subject.namespace, &l.key, &l.value))
        });
        if !allow.namespaces.contains(subject.namespace) && !labelled {
            let ns: Vec<&str> = allow.namespaces.iter().map(String::as_str).collect();
            let label = allow
                .namespace_label
                .as_ref()
                .map(|l| format!(" or labelled {}={}", l.key, l.value))
                .unwrap_or_default();
            let message = format!(
                "hostPath {shown} is allowed only in namespaces [{}]{label} (Coral enabled), not in `{}`: run this pod in one of them",
                ns.join(", "),
                subject.namespace
            );
            out.violation(action, NAME, "HOSTPATH_NAMESPACE_NOT_ALLOWED", field, message);
            continue;
        }
        let name = volume.get("name").and_then(Value::as_str).unwrap_or("");
        check_images(subject, out, action, allow, name, &path);
    }
}

/// Every container that mounts the volume must run an image matching the allow entry's pattern.
fn check_images(
    subject: &Subject<'_>,
    out: &mut Findings,
    action: Action,
    allow: &HostPathAllow,
    volume: &str,
    path: &str,
) {
    let Some(pattern) = &allow.image_pattern else { return };
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        let Some(Value::Array(containers)) = subject.spec.get(list) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let mounts = container.get("volumeMounts").and_then(Value::as_array);
            let mounts_it =
                mounts.is_some_and(|m| m.iter().any(|m| m.get("name").and_then(Value::as_str) == Some(volume)));
            if !mounts_it {
                continue;
            }
            let image = container.get("image").and_then(Value::as_str).unwrap_or("");
            if !pattern.is_match(image) {
                let message = format!(
                    "image `{image}` may not mount hostPath `{path}`: only images matching `{}` may",
                    pattern.as_str().trim_start_matches("^(?:").trim_end_matches(")$")
                );
                out.violation(
                    action,
                    NAME,
                    "HOSTPATH_IMAGE_NOT_ALLOWED",
                    subject.field(&format!("{list}[{i}].image")),
                    message,
                );
            }
        }
    }
}
