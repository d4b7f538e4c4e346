//! Kubernetes helpers: reading objects the way the API server and the device plugin read them.
//!
//! Depends only on the [`decision`](crate::decision) vocabulary. Nothing here knows the policy:
//! workload extraction, quantities, host-path normalisation, the device-plugin config, YAML
//! manifests and JSON type names.

pub(crate) mod device_plugin;
pub mod discover;
pub(crate) mod host_path;
pub mod manifests;
pub(crate) mod quantity;
pub(crate) mod scheduling;
pub(crate) mod workload;
pub(crate) mod yaml_edit;
pub(crate) mod yaml_pos;

use serde_json::Value;

/// A short name for a JSON value's type, for messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
