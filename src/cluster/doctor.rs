//! `gpu-admission doctor`: what each GPU node's device plugin is configured to give, and what
//! does not add up. Pure: cluster facts in, a report out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ClusterFacts, GpuNode};
use crate::k8s::device_plugin::{CONFIG_LABEL, MigStrategy, SharingMode};

/// GPU Feature Discovery's labels.
const GFD_COUNT: &str = "nvidia.com/gpu.count";
const GFD_REPLICAS: &str = "nvidia.com/gpu.replicas";
const GFD_PRODUCT: &str = "nvidia.com/gpu.product";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `namespace/name` of the device-plugin ConfigMap.
    pub config_map: String,
    pub config_map_found: bool,
    /// The ConfigMap's keys and whether each parses.
    pub configs: BTreeMap<String, ConfigSummary>,
    pub default_config: Option<String>,
    pub nodes: Vec<NodeReport>,
    /// Problems not tied to one node.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigSummary {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

/// One GPU node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    pub name: String,
    /// The config key it resolves to (its label, or the default).
    pub config: Option<String>,
    pub sharing: Option<SharingMode>,
    pub mig_strategy: Option<MigStrategy>,
    /// Advertised shared resources and their replicas.
    pub replicas: BTreeMap<String, u32>,
    /// Allocatable vendor resources.
    pub allocatable: BTreeMap<String, u64>,
    pub problems: Vec<String>,
}

// === impl Report ===

impl Report {
    pub fn problem_count(&self) -> usize {
        self.problems.len() + self.nodes.iter().map(|n| n.problems.len()).sum::<usize>()
    }
}

/// Diagnoses the facts. `config_map` names the ConfigMap for messages.
pub fn diagnose(facts: &ClusterFacts, config_map: &str) -> Report {
    let mut problems = Vec::new();
    if !facts.device_plugin_config_found {
        problems.push(format!(
            "the device-plugin ConfigMap {config_map} is missing: no node's time-slicing can be known"
        ));
    }
    let configs = facts
        .configs
        .iter()
        .map(|(key, parsed)| {
            let summary = match parsed {
                Ok(c) => ConfigSummary {
                    ok: true,
                    error: None,
                    warnings: c.warnings.clone(),
                },
                Err(e) => ConfigSummary {
                    ok: false,
                    error: Some(e.clone()),
                    warnings: Vec::new(),
                },
            };
            (key.clone(), summary)
        })
        .collect();
    if facts.gpu_nodes.is_empty() {
        problems.push("no node carries the policy's GPU node label".to_string());
    }
    Report {
        config_map: config_map.to_string(),
        config_map_found: facts.device_plugin_config_found,
        configs,
        default_config: facts.default_config.clone(),
        nodes: facts.gpu_nodes.iter().map(|n| node_report(facts, n)).collect(),
        problems,
    }
}

fn node_report(facts: &ClusterFacts, node: &GpuNode) -> NodeReport {
    let mut problems = Vec::new();
    if facts.profile_missing(node) {
        let label = node.labels.get(CONFIG_LABEL).cloned().unwrap_or_default();
        problems.push(format!(
            "label {CONFIG_LABEL}={label} names a config the ConfigMap lacks: the plugin's config-manager fails and keeps its previous config"
        ));
    }
    if let Some(Err(e)) = node.profile.as_ref().and_then(|p| facts.configs.get(p)) {
        problems.push(format!(
            "its config does not parse, so the device plugin does not start: {e}"
        ));
    }
    let config = facts.node_config(node);
    if let Some(c) = config {
        problems.extend(c.warnings.iter().cloned());
    }
    let replicas: BTreeMap<String, u32> = config
        .map(|c| c.resources.iter().map(|r| (r.advertised.clone(), r.replicas)).collect())
        .unwrap_or_default();
    gfd_checks(node, config, &mut problems);
    NodeReport {
        name: node.name.clone(),
        config: node.profile.clone(),
        sharing: config.map(|c| c.mode),
        mig_strategy: config.map(|c| c.mig_strategy),
        replicas,
        allocatable: node.allocatable.clone(),
        problems,
    }
}

/// GFD's labels against the config and allocatable: `gpu.replicas` is the replicas per GPU,
/// `gpu.count` the physical GPUs, allocatable their product, `gpu.product` ends in `-SHARED`
/// when GPUs are shared without `renameByDefault`.
fn gfd_checks(node: &GpuNode, config: Option<&crate::k8s::device_plugin::DeviceConfig>, problems: &mut Vec<String>) {
    let label = |k: &str| node.labels.get(k).map(String::as_str);
    let whole = config.and_then(|c| {
        c.resources
            .iter()
            .find(|r| r.name == "nvidia.com/gpu")
            .map(|r| (r, c.rename_by_default))
    });
    let want_replicas = whole.map_or(1, |(r, _)| r.replicas);
    if let Some(found) = label(GFD_REPLICAS)
        && found != "0"
        && found.parse::<u32>().ok() != Some(want_replicas)
    {
        problems.push(format!(
            "label {GFD_REPLICAS}={found}, but its config gives {want_replicas} replicas per GPU"
        ));
    }
    if let Some(count) = label(GFD_COUNT).and_then(|c| c.parse::<u64>().ok()) {
        let name = whole.map_or("nvidia.com/gpu".to_string(), |(r, _)| r.advertised.clone());
        let expected = count.saturating_mul(u64::from(want_replicas));
        match node.allocatable.get(&name) {
            Some(&have) if have != expected => problems.push(format!(
                "allocatable {name}={have}, but {GFD_COUNT}={count} x {want_replicas} replicas = {expected}"
            )),
            None if expected > 0 => problems.push(format!(
                "allocatable has no {name}, but {GFD_COUNT}={count} x {want_replicas} replicas = {expected}"
            )),
            _ => {}
        }
    }
    if let Some(product) = label(GFD_PRODUCT) {
        let shared = whole.is_some_and(|(_, renamed)| !renamed) && config.is_some_and(|c| c.mode != SharingMode::None);
        match (product.ends_with("-SHARED"), shared) {
            (true, false) => problems.push(format!(
                "label {GFD_PRODUCT}={product} says shared, but its config does not share nvidia.com/gpu under that name"
            )),
            (false, true) => problems.push(format!(
                "label {GFD_PRODUCT}={product} lacks -SHARED, but its config shares nvidia.com/gpu"
            )),
            _ => {}
        }
    }
}

/// The report as text, one block per node.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let found = if report.config_map_found { "" } else { " (missing)" };
    out.push_str(&format!("device-plugin ConfigMap {}{found}\n", report.config_map));
    for (key, c) in &report.configs {
        let state = c.error.as_deref().map_or("ok".to_string(), |e| format!("error: {e}"));
        out.push_str(&format!("  config `{key}`: {state}\n"));
    }
    if let Some(d) = &report.default_config {
        out.push_str(&format!("  default: `{d}`\n"));
    }
    for p in &report.problems {
        out.push_str(&format!("  problem: {p}\n"));
    }
    for n in &report.nodes {
        let config = n.config.as_deref().unwrap_or("none");
        let sharing = n
            .sharing
            .map_or("unknown".to_string(), |s| format!("{s:?}").to_lowercase());
        out.push_str(&format!("node {}: config `{config}`, sharing {sharing}\n", n.name));
        for (name, r) in &n.replicas {
            out.push_str(&format!("  {name}: {r} replicas per device\n"));
        }
        for (name, count) in &n.allocatable {
            out.push_str(&format!("  allocatable {name}: {count}\n"));
        }
        for p in &n.problems {
            out.push_str(&format!("  problem: {p}\n"));
        }
    }
    let n = report.problem_count();
    out.push_str(&format!("{} GPU nodes, {n} problems\n", report.nodes.len()));
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::policy::Policy;

    fn node(name: &str, labels: Value, allocatable: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "status": {"allocatable": allocatable}})
    }

    fn report(objects: &[Value]) -> Report {
        let policy = Policy::embedded_default().unwrap();
        diagnose(
            &ClusterFacts::from_objects(policy.spec(), objects),
            "gpu-operator/time-slicing-config",
        )
    }

    fn config_map() -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "time-slicing-config", "namespace": "gpu-operator"},
               "data": {
                   "default": "version: v1\nsharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 4}]\n",
                   "mps": "version: v1\nflags: {renameByDefault: true}\nsharing:\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n"}})
    }

    #[test]
    fn two_differently_configured_nodes() {
        let objects = [
            node(
                "ts",
                json!({"node-type": "gpu-worker", "nvidia.com/gpu.count": "2", "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090-SHARED"}),
                json!({"nvidia.com/gpu": "8"}),
            ),
            node(
                "mps",
                json!({"node-type": "gpu-worker", "nvidia.com/device-plugin.config": "mps", "nvidia.com/gpu.count": "2", "nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3090-SHARED"}),
                json!({"nvidia.com/gpu": "8"}),
            ),
            config_map(),
        ];
        let r = report(&objects);
        let ts = r.nodes.iter().find(|n| n.name == "ts").unwrap();
        assert_eq!(
            (ts.config.as_deref(), ts.sharing),
            (Some("default"), Some(SharingMode::TimeSlicing))
        );
        assert!(ts.problems.is_empty(), "{:?}", ts.problems);
        let mps = r.nodes.iter().find(|n| n.name == "mps").unwrap();
        assert_eq!(mps.sharing, Some(SharingMode::Mps));
        let text = mps.problems.join("\n");
        assert!(text.contains("renameByDefault under flags"), "{text}");
        assert!(
            text.contains("nvidia.com/gpu.replicas=4, but its config gives 2"),
            "{text}"
        );
        assert!(
            text.contains("allocatable nvidia.com/gpu=8, but nvidia.com/gpu.count=2 x 2 replicas = 4"),
            "{text}"
        );
        assert_eq!(r.problem_count(), 3);
        assert!(render_text(&r).ends_with("2 GPU nodes, 3 problems\n"));
    }

    #[test]
    fn a_missing_config_map_and_a_label_naming_a_missing_key_are_problems() {
        let r = report(&[node(
            "gpu-0",
            json!({"node-type": "gpu-worker", "nvidia.com/device-plugin.config": "nope"}),
            json!({"nvidia.com/gpu": "2"}),
        )]);
        assert!(
            r.problems[0].contains("ConfigMap gpu-operator/time-slicing-config is missing"),
            "{:?}",
            r.problems
        );
        assert!(
            r.nodes[0].problems[0].contains("names a config the ConfigMap lacks"),
            "{:?}",
            r.nodes[0].problems
        );
    }
}
