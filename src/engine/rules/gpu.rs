//! What a pod spec asks of GPUs: per container, per pod (Kubernetes' effective request with
//! init containers and sidecars), and what could not be read.

use serde_json::{Map, Value};

use super::Subject;
use crate::k8s::quantity::{self, Count, QuantityError};

/// Which list a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Containers,
    InitContainers,
}

impl List {
    pub fn field(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::InitContainers => "initContainers",
        }
    }
}

/// One GPU resource asked for by one container.
#[derive(Debug, Clone)]
pub struct Ask {
    pub resource: String,
    pub count: Count,
    /// e.g. `spec.containers[0].resources.limits[nvidia.com/gpu]`.
    pub path: String,
}

/// A container's GPU asks.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub list: List,
    pub index: usize,
    pub name: String,
    /// A restartable init container (`restartPolicy: Always`): a sidecar.
    pub sidecar: bool,
    pub asks: Vec<Ask>,
}

impl ContainerUsage {
    pub fn count(&self, resource: &str) -> Count {
        self.asks
            .iter()
            .filter(|a| a.resource == resource)
            .map(|a| a.count)
            .sum()
    }
}

/// Everything the rules need to know about GPUs in one pod spec.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub containers: Vec<ContainerUsage>,
    /// Quantities that are not whole non-negative numbers, with their field path.
    pub invalid: Vec<(String, QuantityError)>,
    /// Vendor resources (under `gpu.vendorPrefixes`) that are not GPU resources, with their path.
    pub unknown: Vec<(String, String)>,
    /// Pod claims (DRA) that ask for GPUs, or whose claim cannot be found (with cluster facts).
    pub dra: Vec<DraUse>,
}

/// A pod's DRA claim, seen through its ResourceClaim or ResourceClaimTemplate.
#[derive(Debug, Clone)]
pub struct DraUse {
    /// The pod's name for the claim (`spec.resourceClaims[].name`).
    pub claim: String,
    /// `spec.resourceClaims[i]`.
    pub path: String,
    /// Whether it asks for a GPU device class (false: not found, so unknown).
    pub gpu: bool,
    /// GPUs it asks for, when every GPU request has a count.
    pub count: Option<u64>,
    /// Why the count is not known at admission.
    pub unknown: Option<String>,
}

// === impl Usage ===

impl Usage {
    pub fn of(subject: &Subject<'_>) -> Self {
        let prefixes = &subject.policy.spec().gpu.vendor_prefixes;
        let names = gpu_resources(subject);
        let mut usage = Usage {
            dra: dra_uses(subject),
            ..Usage::default()
        };
        for list in [List::InitContainers, List::Containers] {
            let Some(Value::Array(items)) = subject.spec.get(list.field()) else {
                continue;
            };
            for (index, container) in items.iter().enumerate() {
                let Some(container) = container.as_object() else {
                    continue;
                };
                let base = subject.field(&format!("{}[{index}].resources", list.field()));
                let resources = container.get("resources").and_then(Value::as_object);
                let limits = resources.and_then(|r| r.get("limits")).and_then(Value::as_object);
                let requests = resources.and_then(|r| r.get("requests")).and_then(Value::as_object);
                let mut asks = Vec::new();
                for name in &names {
                    // Extended resources: requests default to limits and must equal them.
                    let found = lookup(limits, name, "limits").or_else(|| lookup(requests, name, "requests"));
                    let Some((value, field)) = found else { continue };
                    let path = format!("{base}.{field}[{name}]");
                    match quantity::whole_count(value) {
                        Ok(count) => asks.push(Ask {
                            resource: name.clone(),
                            count,
                            path,
                        }),
                        Err(e) => usage.invalid.push((path, e)),
                    }
                }
                for (field, map) in [("limits", limits), ("requests", requests)] {
                    for key in map.into_iter().flat_map(|m| m.keys()) {
                        let vendor = prefixes.iter().any(|p| key.starts_with(p.as_str()));
                        let seen = usage.unknown.iter().any(|(_, k)| k == key);
                        if vendor && !names.contains(key) && !seen {
                            usage.unknown.push((format!("{base}.{field}[{key}]"), key.clone()));
                        }
                    }
                }
                if uses_gpu_claim(container, &usage.dra) {
                    asks.push(Ask {
                        resource: DRA_RESOURCE.to_string(),
                        count: 0,
                        path: format!("{base}.claims"),
                    });
                }
                let sidecar = list == List::InitContainers
                    && container.get("restartPolicy").and_then(Value::as_str) == Some("Always");
                let name = container.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                usage.containers.push(ContainerUsage {
                    list,
                    index,
                    name,
                    sidecar,
                    asks,
                });
            }
        }
        usage
    }

    /// Every GPU resource some container asks for, each once, in the order first asked.
    pub fn resources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for ask in self.containers.iter().flat_map(|c| &c.asks).filter(|a| a.count > 0) {
            if !out.contains(&ask.resource) {
                out.push(ask.resource.clone());
            }
        }
        out
    }

    /// A GPU workload asks for at least one GPU (or for a GPU amount that cannot be read), by an
    /// extended resource or a DRA claim.
    pub fn is_gpu_workload(&self) -> bool {
        !self.invalid.is_empty()
            || self.dra.iter().any(|d| d.gpu)
            || self.containers.iter().any(|c| c.asks.iter().any(|a| a.count > 0))
    }

    /// Whether the container gets a GPU: an extended resource, or a claim on a GPU DRA claim.
    pub fn container_gets_gpu(&self, list: List, index: usize) -> bool {
        self.containers
            .iter()
            .filter(|c| c.list == list && c.index == index)
            .any(|c| c.asks.iter().any(|a| a.count > 0 || a.resource == DRA_RESOURCE))
    }

    /// Kubernetes' effective pod request for `resource` (`PodRequests` in
    /// k8s.io/component-helpers): the larger of (app containers + all sidecars) and, for each
    /// init container in order, its own request plus the sidecars started before it.
    pub fn effective_pod_request(&self, resource: &str) -> Count {
        let apps: Count = self
            .containers
            .iter()
            .filter(|c| c.list == List::Containers)
            .fold(0, |sum, c| sum.saturating_add(c.count(resource)));
        let mut sidecars: Count = 0;
        let mut init_peak: Count = 0;
        for c in self.containers.iter().filter(|c| c.list == List::InitContainers) {
            let ask = c.count(resource);
            let during = if c.sidecar {
                sidecars = sidecars.saturating_add(ask);
                sidecars
            } else {
                ask.saturating_add(sidecars)
            };
            init_peak = init_peak.max(during);
        }
        apps.saturating_add(sidecars).max(init_peak)
    }
}

/// The pseudo-resource of a container that uses a GPU DRA claim (count 0: counted per claim).
pub const DRA_RESOURCE: &str = "resource.k8s.io/claim";

/// The pod's DRA claims, with cluster facts (without them, a claim's contents are unknown).
fn dra_uses(subject: &Subject<'_>) -> Vec<DraUse> {
    let Some(facts) = subject.effective.cluster() else {
        return Vec::new();
    };
    let classes = &subject.policy.spec().gpu.dra_device_classes;
    let claims = subject.spec.get("resourceClaims").and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, claim) in claims.into_iter().flatten().enumerate() {
        let text = |f: &str| claim.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
        let name = text("name").unwrap_or("").to_string();
        let path = subject.field(&format!("resourceClaims[{i}]"));
        let key = |n: &str| (subject.namespace.to_string(), n.to_string());
        let (found, what) = match (text("resourceClaimTemplateName"), text("resourceClaimName")) {
            (Some(t), _) => (
                facts.claim_templates.get(&key(t)),
                format!("ResourceClaimTemplate `{t}`"),
            ),
            (None, Some(c)) => (facts.claims.get(&key(c)), format!("ResourceClaim `{c}`")),
            (None, None) => continue,
        };
        let Some(found) = found else {
            out.push(DraUse {
                claim: name,
                path,
                gpu: false,
                count: None,
                unknown: Some(format!(
                    "{what} does not exist in namespace `{}` (yet)",
                    subject.namespace
                )),
            });
            continue;
        };
        let requests: Vec<_> = found.gpu_requests(classes).collect();
        if requests.is_empty() {
            continue;
        }
        let unknown = requests
            .iter()
            .find_map(|r| r.unknown.map(|why| format!("{what} request `{}`: {why}", r.name)));
        let count = requests.iter().map(|r| r.count).sum::<Option<u64>>();
        out.push(DraUse {
            claim: name,
            path,
            gpu: true,
            count,
            unknown,
        });
    }
    out
}

/// Whether a container lists (in `resources.claims`) one of the pod's GPU claims.
fn uses_gpu_claim(container: &Map<String, Value>, dra: &[DraUse]) -> bool {
    container
        .get("resources")
        .and_then(|r| r.get("claims"))
        .and_then(Value::as_array)
        .is_some_and(|claims| {
            claims.iter().any(|c| {
                let name = c.get("name").and_then(Value::as_str);
                dra.iter().any(|d| d.gpu && Some(d.claim.as_str()) == name)
            })
        })
}

/// The resources that make a container a GPU workload: the policy's (`nvidia.com/gpu` and its
/// `.shared` name) and, with cluster facts, every vendor resource a GPU node offers (MIG devices
/// under the `mixed` strategy, `nvidia.com/mig-1g.5gb`).
fn gpu_resources(subject: &Subject<'_>) -> Vec<String> {
    let mut names: Vec<String> = subject.policy.gpu_resource_names().into();
    if let Some(facts) = subject.effective.cluster() {
        let extra: Vec<String> = facts.offered.iter().filter(|n| !names.contains(n)).cloned().collect();
        names.extend(extra);
    }
    names
}

fn lookup<'a>(
    map: Option<&'a Map<String, Value>>,
    name: &str,
    field: &'static str,
) -> Option<(&'a Value, &'static str)> {
    map.and_then(|m| m.get(name)).map(|v| (v, field))
}
