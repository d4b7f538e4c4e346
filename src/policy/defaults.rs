//! The defaults of the policy file: the seed's cluster. `policies/default.yaml` spells them all
//! out.

use std::collections::BTreeMap;

#[allow(clippy::wildcard_imports)]
use super::file::*;
use crate::decision::Action;

pub(super) fn deny() -> Action {
    Action::Deny
}
pub(super) fn warn() -> Action {
    Action::Warn
}
pub(super) fn default_exempt_namespaces() -> Vec<String> {
    strings(&["kube-system", "gpu-operator", "gpu-admission"])
}
pub(super) fn default_resource_name() -> String {
    "nvidia.com/gpu".into()
}
pub(super) fn default_gpus_per_node() -> u32 {
    2
}
pub(super) fn default_vendor_prefixes() -> Vec<String> {
    strings(&["nvidia.com/"])
}
pub(super) fn default_node_selector() -> KeyValue {
    KeyValue {
        key: "node-type".into(),
        value: "gpu-worker".into(),
    }
}
pub(super) fn default_classes() -> Vec<PriorityClassSpec> {
    vec![
        PriorityClassSpec {
            name: "high-priority".into(),
            value: 1_000_000,
            preemption_policy: default_preemption_policy(),
        },
        PriorityClassSpec {
            name: "medium-priority".into(),
            value: 100_000,
            preemption_policy: default_preemption_policy(),
        },
    ]
}
pub(super) fn default_allowed_classes() -> Vec<String> {
    strings(&["high-priority", "medium-priority"])
}
pub(super) fn default_class() -> String {
    "medium-priority".into()
}
pub(super) fn default_namespace_defaults() -> BTreeMap<String, String> {
    BTreeMap::from([("ai".to_string(), "high-priority".to_string())])
}
pub(super) fn default_preemption_policy() -> String {
    "PreemptLowerPriority".into()
}
pub(super) fn default_host_path_exempt() -> Vec<String> {
    strings(&["monitoring"])
}
pub(super) fn default_host_path_allowed() -> Vec<HostPathAllowSpec> {
    vec![HostPathAllowSpec {
        path: "/dev/bus/usb".into(),
        namespaces: strings(&["ai"]),
        image_pattern: None,
        namespace_label: Some(KeyValue {
            key: "gpu-admission/coral".into(),
            value: "enabled".into(),
        }),
    }]
}
pub(super) fn default_device_plugin_config() -> ObjectRef {
    ObjectRef {
        namespace: "gpu-operator".into(),
        name: "time-slicing-config".into(),
    }
}
pub(super) fn default_unsynced() -> UnsyncedAction {
    UnsyncedAction::Fallback
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            device_plugin_config: default_device_plugin_config(),
            default_config: None,
            unsynced_action: default_unsynced(),
        }
    }
}
pub(super) fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// === impl Default ===

impl Default for GpuSpec {
    fn default() -> Self {
        Self {
            resource_name: default_resource_name(),
            gpus_per_node: default_gpus_per_node(),
            dra_device_classes: default_dra_device_classes(),
            time_slicing: TimeSlicingSpec::default(),
            vendor_prefixes: default_vendor_prefixes(),
        }
    }
}

impl Default for PlacementSpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: Vec::new(),
            node_selector: default_node_selector(),
        }
    }
}

impl Default for TaintSpec {
    fn default() -> Self {
        Self {
            key: "nvidia.com/gpu".into(),
            value: String::new(),
            effect: "NoSchedule".into(),
        }
    }
}

impl Default for TolerationsSpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: Vec::new(),
            taint: TaintSpec::default(),
        }
    }
}

impl Default for PrioritySpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: Vec::new(),
            classes: default_classes(),
            allowed: default_allowed_classes(),
            default_class: default_class(),
            namespace_defaults: default_namespace_defaults(),
        }
    }
}

impl Default for SlicesSpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: Vec::new(),
            unknown_resource_action: warn(),
            no_node_matches_action: deny(),
        }
    }
}

impl Default for HostPathSpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: default_host_path_exempt(),
            allowed: default_host_path_allowed(),
        }
    }
}

pub(super) fn default_dra_device_classes() -> Vec<String> {
    strings(&["gpu.nvidia.com", "mig.nvidia.com"])
}
pub(super) fn default_visibility_exempt() -> Vec<String> {
    // The monitoring stack (node-exporter tolerates every taint; dcgm-exporter needs the GPUs).
    strings(&["monitoring"])
}
pub(super) fn default_privileged_namespaces() -> Vec<String> {
    strings(&["ai"])
}

impl Default for VisibilitySpec {
    fn default() -> Self {
        Self {
            action: deny(),
            exempt_namespaces: default_visibility_exempt(),
            privileged_action: warn(),
            privileged_namespaces: default_privileged_namespaces(),
        }
    }
}
