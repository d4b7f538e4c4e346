//! Cluster facts from Nodes, the device-plugin ConfigMap, PriorityClasses and Namespaces.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dra::DraClaim;
use crate::k8s::device_plugin::{CONFIG_LABEL, DeviceConfig, SharingMode, fallback_config};
use crate::k8s::quantity;
use crate::k8s::scheduling::{NodeView, Taint};
use crate::policy::PolicySpec;

/// A PriorityClass as the Priority plugin will resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityClassFact {
    pub value: i32,
    pub preemption_policy: String,
}

/// A node that matches the policy's GPU node selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuNode {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Device-plugin config key the node uses (its label, or the default).
    pub profile: Option<String>,
    /// Allocatable extended resources under the policy's vendor prefixes, as whole counts.
    pub allocatable: BTreeMap<String, u64>,
}

/// Everything the engine may learn from the cluster. Built whole, swapped whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterFacts {
    /// Device-plugin configs by key, parsed; and errors by key (a broken key is reported, never
    /// silently dropped).
    pub configs: BTreeMap<String, Result<DeviceConfig, String>>,
    /// The key nodes without the profile label use.
    pub default_config: Option<String>,
    pub gpu_nodes: Vec<GpuNode>,
    pub priority_classes: BTreeMap<String, PriorityClassFact>,
    /// Namespace labels by namespace.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Whether every source has synced at least once.
    pub synced: bool,
    /// Every vendor resource some GPU node has allocatable (> 0), computed once when the facts
    /// are built, not per request.
    pub offered: Vec<String>,
    /// ResourceClaimTemplates and ResourceClaims by (namespace, name).
    pub claim_templates: BTreeMap<(String, String), DraClaim>,
    pub claims: BTreeMap<(String, String), DraClaim>,
    /// Whether the device-plugin ConfigMap was among the objects (without it, per-node
    /// time-slicing is unknown and nodes are judged by their allocatable alone).
    pub device_plugin_config_found: bool,
}

/// Limits for one GPU resource across the GPU nodes, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLimits {
    pub per_container: u64,
    pub per_container_reason: String,
    pub per_pod: u64,
    pub per_pod_reason: String,
}

// === impl ClusterFacts ===

impl ClusterFacts {
    /// Builds the facts from objects of any of the four kinds (others are ignored).
    pub fn from_objects<'a>(spec: &PolicySpec, objects: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut facts = ClusterFacts {
            synced: true,
            ..Default::default()
        };
        let cm = &spec.cluster.device_plugin_config;
        let mut nodes = Vec::new();
        for object in objects {
            let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
            let name = meta(object, "name").unwrap_or_default();
            match kind {
                "Node" => nodes.push(object),
                "PriorityClass" => {
                    let value = object
                        .get("value")
                        .and_then(Value::as_i64)
                        .and_then(|v| i32::try_from(v).ok());
                    let policy = object
                        .get("preemptionPolicy")
                        .and_then(Value::as_str)
                        .unwrap_or("PreemptLowerPriority");
                    if let Some(value) = value {
                        let fact = PriorityClassFact {
                            value,
                            preemption_policy: policy.to_string(),
                        };
                        facts.priority_classes.insert(name.to_string(), fact);
                    }
                }
                "Namespace" => {
                    facts.namespaces.insert(name.to_string(), labels(object));
                }
                "ResourceClaimTemplate" | "ResourceClaim" => {
                    let key = (
                        meta(object, "namespace").unwrap_or("default").to_string(),
                        name.to_string(),
                    );
                    if kind == "ResourceClaim" {
                        facts.claims.insert(key, DraClaim::read(object.get("spec")));
                    } else {
                        let spec = object.get("spec").and_then(|s| s.get("spec"));
                        facts.claim_templates.insert(key, DraClaim::read(spec));
                    }
                }
                "ConfigMap" if name == cm.name && meta(object, "namespace") == Some(cm.namespace.as_str()) => {
                    facts.read_config_map(object);
                }
                _ => {}
            }
        }
        facts.default_config = spec
            .cluster
            .default_config
            .clone()
            .or_else(|| fallback_config(facts.configs.keys()));
        let selector = &spec.rules.placement.node_selector;
        for node in nodes {
            let node_labels = labels(node);
            if node_labels.get(&selector.key) != Some(&selector.value) {
                continue;
            }
            let allocatable = node
                .pointer("/status/allocatable")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter(|(k, _)| spec.gpu.vendor_prefixes.iter().any(|p| k.starts_with(p.as_str())))
                .filter_map(|(k, v)| quantity::whole_count(v).ok().map(|n| (k.clone(), n)))
                .collect();
            let profile = node_labels
                .get(CONFIG_LABEL)
                .cloned()
                .or_else(|| facts.default_config.clone());
            facts.gpu_nodes.push(GpuNode {
                name: meta(node, "name").unwrap_or_default().to_string(),
                labels: node_labels,
                taints: taints(node),
                profile,
                allocatable,
            });
        }
        facts.gpu_nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut offered: Vec<String> = facts
            .gpu_nodes
            .iter()
            .flat_map(|n| n.allocatable.iter().filter(|(_, c)| **c > 0).map(|(k, _)| k.clone()))
            .collect();
        offered.sort_unstable();
        offered.dedup();
        facts.offered = offered;
        facts
    }

    fn read_config_map(&mut self, object: &Value) {
        self.device_plugin_config_found = true;
        let Some(data) = object.get("data").and_then(Value::as_object) else {
            return;
        };
        for (key, text) in data {
            let parsed = text.as_str().ok_or_else(|| "not a string".to_string()).and_then(|t| {
                DeviceConfig::from_yaml_str(t).map_err(|(path, message)| match path.is_empty() {
                    true => format!("ConfigMap data.{key}: {message}"),
                    false => format!("ConfigMap data.{key}: field `{path}`: {message}"),
                })
            });
            self.configs.insert(key.clone(), parsed);
        }
    }

    /// Whether a vendor resource is offered by any GPU node.
    pub fn offers(&self, resource: &str) -> bool {
        self.offered.binary_search_by(|o| o.as_str().cmp(resource)).is_ok()
    }

    /// Whether the node's profile label names a config the ConfigMap does not hold. The
    /// config-manager then fails and the plugin keeps whatever it had: the node is judged by
    /// the default config, never by something more permissive, and reported.
    pub fn profile_missing(&self, node: &GpuNode) -> bool {
        node.profile.as_ref().is_some_and(|key| !self.configs.contains_key(key))
    }

    /// The device-plugin config a node uses, if its profile (or, for a missing profile, the
    /// default) parses.
    pub fn node_config(&self, node: &GpuNode) -> Option<&DeviceConfig> {
        let key = if self.profile_missing(node) {
            self.default_config.as_ref()?
        } else {
            node.profile.as_ref()?
        };
        self.configs.get(key)?.as_ref().ok()
    }

    /// Limits for `resource`: per container from the nodes' device-plugin profiles, per pod the
    /// largest allocatable among GPU nodes. `None` when no GPU node offers it. The cluster-wide
    /// bound; the engine decides per candidate node with [`ClusterFacts::node_limits`].
    pub fn limits(&self, resource: &str) -> Option<NodeLimits> {
        self.limits_among(&self.gpu_nodes, resource)
    }

    /// [`ClusterFacts::limits`] over some of the GPU nodes: each bound from the node that is most
    /// permissive in it, so a pod over a bound fits none of them.
    pub fn limits_among<'a>(&self, nodes: impl IntoIterator<Item = &'a GpuNode>, resource: &str) -> Option<NodeLimits> {
        let mut best: Option<NodeLimits> = None;
        for candidate in nodes.into_iter().filter_map(|n| self.node_limits(n, resource)) {
            best = Some(match best {
                None => candidate,
                Some(b) => NodeLimits {
                    per_container: b.per_container.max(candidate.per_container),
                    per_container_reason: if candidate.per_container > b.per_container {
                        candidate.per_container_reason
                    } else {
                        b.per_container_reason
                    },
                    per_pod: b.per_pod.max(candidate.per_pod),
                    per_pod_reason: if candidate.per_pod > b.per_pod {
                        candidate.per_pod_reason
                    } else {
                        b.per_pod_reason
                    },
                },
            });
        }
        best
    }

    /// One node's limits for `resource`: per container from its device-plugin profile, per pod
    /// its allocatable. `None` when the node does not offer it.
    pub fn node_limits(&self, node: &GpuNode, resource: &str) -> Option<NodeLimits> {
        let &allocatable = node.allocatable.get(resource).filter(|c| **c > 0)?;
        let mut profile = format!("`{}`", node.profile.as_deref().unwrap_or("none"));
        if self.profile_missing(node) {
            let default = self.default_config.as_deref().unwrap_or("none");
            profile = format!("{profile} (missing from the ConfigMap; judged by the default `{default}`)");
        }
        let config = self.node_config(node);
        let shared = config.and_then(|c| c.shared(resource).map(|r| (c, r)));
        let (per_container, per_container_reason) = match shared {
            Some((c, _)) if c.fail_requests_greater_than_one => (
                1,
                format!(
                    "node {} uses device-plugin config {profile} with {}failRequestsGreaterThanOne",
                    node.name,
                    if c.mode == SharingMode::Mps { "MPS and " } else { "" }
                ),
            ),
            Some((_, r)) => (
                u64::from(r.replicas),
                format!(
                    "node {} uses device-plugin config {profile}: {} slices per GPU",
                    node.name, r.replicas
                ),
            ),
            _ => (
                allocatable,
                format!(
                    "node {} has {allocatable} whole {resource} (no time-slicing)",
                    node.name
                ),
            ),
        };
        Some(NodeLimits {
            per_container: per_container.min(allocatable),
            per_container_reason,
            per_pod: allocatable,
            per_pod_reason: format!("node {} has {allocatable} {resource} allocatable", node.name),
        })
    }

    /// What the scheduler's filter looks at on `node`.
    pub fn view(node: &GpuNode) -> NodeView<'_> {
        NodeView {
            name: &node.name,
            labels: &node.labels,
            taints: &node.taints,
        }
    }

    /// Whether `namespace` carries `key=value`.
    pub fn namespace_has_label(&self, namespace: &str, key: &str, value: &str) -> bool {
        self.namespaces
            .get(namespace)
            .and_then(|l| l.get(key))
            .is_some_and(|v| v == value)
    }
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object
        .get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn taints(node: &Value) -> Vec<Taint> {
    let text = |t: &Value, f: &str| t.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    node.pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| Taint {
            key: text(t, "key"),
            value: text(t, "value"),
            effect: text(t, "effect"),
        })
        .collect()
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config(replicas: u32) -> Value {
        json!(format!(
            "version: v1\nsharing:\n  timeSlicing:\n    resources: [{{name: nvidia.com/gpu, replicas: {replicas}}}]\n"
        ))
    }

    fn facts(data: Value, default_config: Option<&str>) -> ClusterFacts {
        let mut spec = crate::policy::Policy::embedded_default().unwrap().spec().clone();
        spec.cluster.default_config = default_config.map(str::to_string);
        let objects = [
            json!({"kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"}, "data": data}),
            json!({"kind": "Node", "metadata": {"name": "n", "labels": {"node-type": "gpu-worker"}},
                   "status": {"allocatable": {"nvidia.com/gpu": "8"}}}),
        ];
        ClusterFacts::from_objects(&spec, &objects)
    }

    /// An unlabelled node uses the config the device plugin picks: the policy's default, else
    /// the key named `default`, else the only key, else none (no time-slicing).
    #[test]
    fn default_config_is_chosen_as_the_device_plugin_chooses_it() {
        let two = json!({"default": config(2), "strict": config(4)});
        let f = facts(two.clone(), None);
        assert_eq!(f.default_config.as_deref(), Some("default"));
        assert_eq!(f.gpu_nodes[0].profile.as_deref(), Some("default"));
        assert_eq!(f.limits("nvidia.com/gpu").unwrap().per_container, 2);

        let f = facts(two, Some("strict"));
        assert_eq!(f.gpu_nodes[0].profile.as_deref(), Some("strict"));
        assert_eq!(f.limits("nvidia.com/gpu").unwrap().per_container, 4);

        let f = facts(json!({"any": config(3)}), None);
        assert_eq!(f.gpu_nodes[0].profile.as_deref(), Some("any"));
        assert_eq!(f.limits("nvidia.com/gpu").unwrap().per_container, 3);

        let f = facts(json!({"a": config(3), "b": config(2)}), None);
        assert_eq!(f.gpu_nodes[0].profile, None);
        let limits = f.limits("nvidia.com/gpu").unwrap();
        assert_eq!(limits.per_container, 8, "{limits:?}");
        assert!(limits.per_container_reason.contains("no time-slicing"), "{limits:?}");
    }
}
