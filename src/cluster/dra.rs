//! Dynamic Resource Allocation (`resource.k8s.io/v1`): what ResourceClaims and
//! ResourceClaimTemplates ask for, as far as admission can know it.

use serde_json::Value;

/// One request of a claim: the device classes it may be served from, and how many devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraRequest {
    pub name: String,
    /// `exactly.deviceClassName`, or every `firstAvailable[].deviceClassName`.
    pub classes: Vec<String>,
    /// Devices asked for; `None` when admission cannot know (`All`, `firstAvailable`).
    pub count: Option<u64>,
    /// Why the count is unknown.
    pub unknown: Option<&'static str>,
}

/// A claim's (or a template's claim's) requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DraClaim {
    pub requests: Vec<DraRequest>,
}

// === impl DraClaim ===

impl DraClaim {
    /// Reads a ResourceClaimSpec (`ResourceClaim.spec`, `ResourceClaimTemplate.spec.spec`).
    pub fn read(spec: Option<&Value>) -> Self {
        let requests = spec
            .and_then(|s| s.pointer("/devices/requests"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(read_request)
            .collect();
        Self { requests }
    }

    /// The requests served from one of `classes`.
    pub fn gpu_requests<'a>(&'a self, classes: &'a [String]) -> impl Iterator<Item = &'a DraRequest> {
        self.requests
            .iter()
            .filter(|r| r.classes.iter().any(|c| classes.contains(c)))
    }
}

fn read_request(request: &Value) -> DraRequest {
    let name = request.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let class = |v: &Value| v.get("deviceClassName").and_then(Value::as_str).map(str::to_string);
    if let Some(exactly) = request.get("exactly").filter(|e| e.is_object()) {
        let mode = exactly
            .get("allocationMode")
            .and_then(Value::as_str)
            .unwrap_or("ExactCount");
        let (count, unknown) = match mode {
            "All" => (None, Some("allocationMode All takes every matching device on the node")),
            _ => (Some(exactly.get("count").and_then(Value::as_u64).unwrap_or(1)), None),
        };
        return DraRequest {
            name,
            classes: class(exactly).into_iter().collect(),
            count,
            unknown,
        };
    }
    let subrequests = request.get("firstAvailable").and_then(Value::as_array);
    DraRequest {
        name,
        classes: subrequests.into_iter().flatten().filter_map(class).collect(),
        count: None,
        unknown: Some("firstAvailable: which subrequest is served is decided at allocation"),
    }
}
