//! The policy file as written by users (`policies/*.yaml`): plain serde structs.
//!
//! Every struct denies unknown fields, so a typo is an error with its path, never ignored.
//! Defaults here are the seed's cluster; `policies/default.yaml` spells them all out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[allow(clippy::wildcard_imports)]
use super::defaults::*;
pub use super::rule_spec::RuleSpec;
use crate::decision::Action;
pub use crate::k8s::device_plugin::TimeSlicingSpec;

pub const API_VERSION: &str = "gpu-admission.io/v1alpha1";
pub const KIND: &str = "Policy";

/// The whole policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Must be `gpu-admission.io/v1alpha1`.
    pub api_version: String,
    /// Must be `Policy`.
    pub kind: String,
    /// Namespaces no rule applies to.
    #[serde(default = "default_exempt_namespaces")]
    pub exempt_namespaces: Vec<String>,
    /// Whether the mutating webhook patches Deployment-style templates (off for GitOps).
    #[serde(default)]
    pub mutate_templates: bool,
    #[serde(default)]
    pub gpu: GpuSpec,
    #[serde(default)]
    pub rules: RulesSpec,
    /// Where cluster facts come from when the server runs with `--cluster`, or `check` with
    /// `--cluster-state`.
    #[serde(default)]
    pub cluster: ClusterSpec,
}

/// Reading limits from the cluster instead of this file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSpec {
    /// The NVIDIA device-plugin ConfigMap (all its keys are read; nodes pick one with the
    /// `nvidia.com/device-plugin.config` label).
    #[serde(default = "default_device_plugin_config")]
    pub device_plugin_config: ObjectRef,
    /// The key nodes without that label use (the GPU Operator's `devicePlugin.config.default`);
    /// unset: as the device plugin falls back, the key named `default`, else the only key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<String>,
    /// Before the caches first sync: `deny` GPU workloads, or `fallback` to this file's numbers.
    #[serde(default = "default_unsynced")]
    pub unsynced_action: UnsyncedAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnsyncedAction {
    Deny,
    Fallback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    pub namespace: String,
    pub name: String,
}

/// What counts as a GPU and how it is shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GpuSpec {
    /// The resource the device plugin advertises for whole GPUs.
    #[serde(default = "default_resource_name")]
    pub resource_name: String,
    /// Physical GPUs per GPU node.
    #[serde(default = "default_gpus_per_node")]
    pub gpus_per_node: u32,
    /// DeviceClasses whose DRA claims are GPUs (the NVIDIA DRA driver's).
    #[serde(default = "default_dra_device_classes")]
    pub dra_device_classes: Vec<String>,
    /// Time-slicing, as configured in the device plugin.
    #[serde(default)]
    pub time_slicing: TimeSlicingSpec,
    /// Resource-name prefixes that belong to GPU vendors: a name under one of them that no node
    /// offers (e.g. HAMi's `nvidia.com/gpumem`) is reported by the `unknownResource` check.
    #[serde(default = "default_vendor_prefixes")]
    pub vendor_prefixes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RulesSpec {
    #[serde(default)]
    pub placement: PlacementSpec,
    #[serde(default)]
    pub tolerations: TolerationsSpec,
    #[serde(default)]
    pub priority: PrioritySpec,
    #[serde(default)]
    pub slices: SlicesSpec,
    #[serde(default)]
    pub host_path: HostPathSpec,
    #[serde(default)]
    pub visibility: VisibilitySpec,
}

/// Device visibility: what `NVIDIA_VISIBLE_DEVICES` may say, and who may run privileged, in pods
/// that can land on a GPU node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VisibilitySpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default = "default_visibility_exempt")]
    pub exempt_namespaces: Vec<String>,
    /// A privileged container (or one adding `SYS_ADMIN`) sees every GPU of its node.
    #[serde(default = "warn")]
    pub privileged_action: Action,
    /// Namespaces whose pods may run privileged on GPU nodes (the Coral's).
    #[serde(default = "default_privileged_namespaces")]
    pub privileged_namespaces: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementSpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    /// The label GPU nodes carry; GPU pods get it as `nodeSelector`.
    #[serde(default = "default_node_selector")]
    pub node_selector: KeyValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TolerationsSpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    /// The taint GPU nodes carry; GPU pods must tolerate it.
    #[serde(default)]
    pub taint: TaintSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default)]
    pub value: String,
    pub effect: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrioritySpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    /// The PriorityClasses of the cluster, with the values a bare Pod's `priority` must carry.
    #[serde(default = "default_classes")]
    pub classes: Vec<PriorityClassSpec>,
    /// Classes GPU workloads may use.
    #[serde(default = "default_allowed_classes")]
    pub allowed: Vec<String>,
    /// Class given to GPU workloads without one, unless `namespaceDefaults` names another.
    #[serde(default = "default_class")]
    pub default_class: String,
    /// Per-namespace default class.
    #[serde(default = "default_namespace_defaults")]
    pub namespace_defaults: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityClassSpec {
    pub name: String,
    pub value: i32,
    #[serde(default = "default_preemption_policy")]
    pub preemption_policy: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlicesSpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default)]
    pub exempt_namespaces: Vec<String>,
    /// What to do with a vendor resource (see `gpu.vendorPrefixes`) that no node offers.
    #[serde(default = "warn")]
    pub unknown_resource_action: Action,
    /// With cluster facts: what to do with a GPU workload that no GPU node can take (its
    /// nodeSelector, required affinity, nodeName or tolerations rule every one out).
    #[serde(default = "deny")]
    pub no_node_matches_action: Action,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathSpec {
    #[serde(default = "deny")]
    pub action: Action,
    #[serde(default = "default_host_path_exempt")]
    pub exempt_namespaces: Vec<String>,
    /// The only host paths that may be mounted, and where.
    #[serde(default = "default_host_path_allowed")]
    pub allowed: Vec<HostPathAllowSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathAllowSpec {
    /// An absolute, normalised path; it and everything below it are allowed.
    pub path: String,
    /// Namespaces where this path may be mounted (for the Coral: where Coral is enabled).
    pub namespaces: Vec<String>,
    /// Optional regex every container mounting the volume must match with its `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pattern: Option<String>,
    /// With cluster facts: a namespace carrying this label is allowed too (Coral switched on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_label: Option<KeyValue>,
}
