//! One device-plugin config (`version: v1`), read as `NVIDIA/k8s-device-plugin`
//! (`api/config/v1`) reads it: `sharing.timeSlicing` or `sharing.mps` (MPS wins when both are
//! there), `renameByDefault` (`<name>.shared`), `failRequestsGreaterThanOne` (true by default for
//! MPS since plugin v0.20.0, false for time-slicing), `flags.migStrategy` (under `mixed`, MIG
//! devices are advertised as `nvidia.com/mig-<profile>` and may be time-sliced too).
//!
//! What the plugin drops with a warning (a per-resource `rename` or `devices`, custom top-level
//! `resources`, `renameByDefault` under `flags`) is dropped here with a warning too; what makes the
//! plugin refuse the config (no resources, no name, replicas below 2, MPS with `mixed`) is an
//! error.

use serde::Serialize;
use serde_json::Value;

use super::Located;

/// How a config shares its GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SharingMode {
    None,
    TimeSlicing,
    Mps,
}

/// `flags.migStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MigStrategy {
    None,
    Single,
    Mixed,
}

/// A shared resource: `replicas` slices per device, advertised as `advertised`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedResource {
    /// The resource as the plugin names devices (`nvidia.com/gpu`, `nvidia.com/mig-1g.5gb`).
    pub name: String,
    /// What nodes advertise: `name`, or `name.shared` with `renameByDefault`.
    pub advertised: String,
    pub replicas: u32,
}

/// A device-plugin config as the plugin applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConfig {
    pub mode: SharingMode,
    pub rename_by_default: bool,
    /// Effective: a container may ask for at most one shared device.
    pub fail_requests_greater_than_one: bool,
    pub resources: Vec<SharedResource>,
    pub mig_strategy: MigStrategy,
    /// What the plugin ignores in this config, as it warns about it.
    pub warnings: Vec<String>,
    /// Where the sharing block sits (`sharing.timeSlicing`), for messages.
    pub field: String,
}

// === impl DeviceConfig ===

impl DeviceConfig {
    /// The shared resource nodes advertise as `advertised`, if this config shares it.
    pub fn shared(&self, advertised: &str) -> Option<&SharedResource> {
        self.resources.iter().find(|r| r.advertised == advertised)
    }

    /// Reads a parsed config; field paths in errors start with `prefix`.
    pub fn read(config: &Value, prefix: &str) -> Result<Self, Located> {
        let at = |p: &str| format!("{prefix}{p}");
        if let Some(version) = config.get("version").filter(|v| !matches!(v.as_str(), Some("v1" | ""))) {
            return Err((at("version"), format!("unsupported version {version}: expected `v1`")));
        }
        let mut warnings = Vec::new();
        let flags = config.get("flags");
        let mig_strategy = match flags.and_then(|f| f.get("migStrategy")) {
            None | Some(Value::Null) => MigStrategy::None,
            Some(Value::String(s)) if s == "none" => MigStrategy::None,
            Some(Value::String(s)) if s == "single" => MigStrategy::Single,
            Some(Value::String(s)) if s == "mixed" => MigStrategy::Mixed,
            Some(other) => {
                return Err((
                    at("flags.migStrategy"),
                    format!("{other} is not one of none, single, mixed"),
                ));
            }
        };
        if flags.and_then(|f| f.get("renameByDefault")).is_some() {
            warnings.push(format!(
                "{}: the device plugin ignores renameByDefault under flags; it belongs under sharing.timeSlicing",
                at("flags.renameByDefault")
            ));
        }
        if config.get("resources").is_some_and(|r| !r.is_null()) {
            warnings.push(format!(
                "{}: customizing resources is not supported by the device plugin; ignored",
                at("resources")
            ));
        }
        let sharing = config.get("sharing");
        let block = |name: &str| sharing.and_then(|s| s.get(name)).filter(|b| !b.is_null());
        let (mode, key, block) = match (block("mps"), block("timeSlicing")) {
            (Some(mps), ts) => {
                if ts.is_some() {
                    warnings.push(format!(
                        "{}: ignored, sharing.mps wins over it",
                        at("sharing.timeSlicing")
                    ));
                }
                (SharingMode::Mps, "mps", mps)
            }
            (None, Some(ts)) => (SharingMode::TimeSlicing, "timeSlicing", ts),
            (None, None) => {
                return Ok(Self {
                    mode: SharingMode::None,
                    rename_by_default: false,
                    fail_requests_greater_than_one: false,
                    resources: Vec::new(),
                    mig_strategy,
                    warnings,
                    field: at("sharing"),
                });
            }
        };
        let field = at(&format!("sharing.{key}"));
        if mode == SharingMode::Mps && mig_strategy == MigStrategy::Mixed {
            return Err((field, "MPS is not supported with flags.migStrategy: mixed".into()));
        }
        let flag = |name: &str| -> Result<Option<bool>, Located> {
            match block.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(other) => Err((
                    format!("{field}.{name}"),
                    format!("must be true or false, found {other}"),
                )),
            }
        };
        let rename_by_default = flag("renameByDefault")?.unwrap_or(false);
        let fail_requests_greater_than_one = flag("failRequestsGreaterThanOne")?.unwrap_or(mode == SharingMode::Mps);
        let items = block
            .get("resources")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .ok_or((
                format!("{field}.resources"),
                "missing or empty: list the shared resources".to_string(),
            ))?;
        let mut resources = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let here = format!("{field}.resources[{i}]");
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or((format!("{here}.name"), "missing".to_string()))?;
            let name = if name.contains('/') {
                name.to_string()
            } else {
                format!("nvidia.com/{name}")
            };
            let replicas = match item.get("replicas") {
                Some(Value::Number(n)) => n.as_u64().filter(|r| (2..=u64::from(u32::MAX)).contains(r)),
                _ => None,
            }
            .ok_or((
                format!("{here}.replicas"),
                "must be a whole number of at least 2 (the device plugin refuses fewer)".to_string(),
            ))?;
            if item.get("rename").is_some_and(|r| !r.is_null()) {
                warnings.push(format!(
                    "{here}.rename: the device plugin ignores a per-resource rename; use renameByDefault"
                ));
            }
            if item
                .get("devices")
                .is_some_and(|d| !d.is_null() && d.as_str() != Some("all"))
            {
                warnings.push(format!(
                    "{here}.devices: the device plugin ignores a device list and shares all devices"
                ));
            }
            let advertised = if rename_by_default {
                format!("{name}.shared")
            } else {
                name.clone()
            };
            resources.push(SharedResource {
                name,
                advertised,
                replicas: replicas as u32,
            });
        }
        Ok(Self {
            mode,
            rename_by_default,
            fail_requests_greater_than_one,
            resources,
            mig_strategy,
            warnings,
            field,
        })
    }

    /// Parses one config's YAML text (a ConfigMap `data` value).
    pub fn from_yaml_str(text: &str) -> Result<Self, Located> {
        let value: Value =
            serde_yaml_ng::from_str(text).map_err(|e| (String::new(), format!("not a device-plugin config: {e}")))?;
        let value = if value.is_null() {
            Value::Object(Default::default())
        } else {
            value
        };
        Self::read(&value, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<DeviceConfig, Located> {
        DeviceConfig::from_yaml_str(text)
    }

    #[test]
    fn mps_fails_requests_greater_than_one_unless_told_not_to() {
        let c = read("sharing:\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 4}]\n").unwrap();
        assert_eq!((c.mode, c.fail_requests_greater_than_one), (SharingMode::Mps, true));
        let c = read(
            "sharing:\n  mps:\n    failRequestsGreaterThanOne: false\n    resources: [{name: gpu, replicas: 4}]\n",
        )
        .unwrap();
        assert!(!c.fail_requests_greater_than_one);
        assert_eq!(
            c.resources[0].name, "nvidia.com/gpu",
            "a bare name gets the nvidia.com/ prefix"
        );
        let ts = read("sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 4}]\n").unwrap();
        assert!(!ts.fail_requests_greater_than_one, "time-slicing: false by default");
    }

    #[test]
    fn mps_wins_over_time_slicing_with_a_warning() {
        let c = read("sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 8}]\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n").unwrap();
        assert_eq!((c.mode, c.resources[0].replicas), (SharingMode::Mps, 2));
        assert!(c.warnings[0].contains("sharing.mps wins"), "{:?}", c.warnings);
    }

    #[test]
    fn mixed_mig_names_are_shared_and_renamed() {
        let c = read(
            "flags: {migStrategy: mixed}\nsharing:\n  timeSlicing:\n    renameByDefault: true\n    resources:\n      - {name: nvidia.com/mig-1g.5gb, replicas: 2}\n      - {name: nvidia.com/gpu, replicas: 4}\n",
        )
        .unwrap();
        assert_eq!(c.mig_strategy, MigStrategy::Mixed);
        assert_eq!(c.shared("nvidia.com/mig-1g.5gb.shared").map(|r| r.replicas), Some(2));
        assert_eq!(c.shared("nvidia.com/gpu.shared").map(|r| r.replicas), Some(4));
        assert!(
            c.shared("nvidia.com/gpu").is_none(),
            "renamed: the plain name is not shared"
        );
    }

    #[test]
    fn what_the_plugin_ignores_is_warned_and_what_it_refuses_is_an_error() {
        let c = read("flags: {renameByDefault: true}\nsharing:\n  timeSlicing:\n    resources:\n      - {name: nvidia.com/gpu, replicas: 4, rename: gpu-x, devices: [0]}\n").unwrap();
        assert_eq!(c.warnings.len(), 3, "{:?}", c.warnings);
        assert_eq!(c.resources[0].advertised, "nvidia.com/gpu", "the rename is dropped");
        for (text, field) in [
            (
                "sharing:\n  timeSlicing:\n    resources: [{name: nvidia.com/gpu, replicas: 1}]\n",
                "sharing.timeSlicing.resources[0].replicas",
            ),
            ("sharing:\n  mps:\n    resources: []\n", "sharing.mps.resources"),
            (
                "flags: {migStrategy: mixed}\nsharing:\n  mps:\n    resources: [{name: nvidia.com/gpu, replicas: 2}]\n",
                "sharing.mps",
            ),
            ("flags: {migStrategy: some}\n", "flags.migStrategy"),
            ("version: v2\n", "version"),
        ] {
            assert_eq!(read(text).unwrap_err().0, field, "{text}");
        }
        assert_eq!(
            read("").unwrap().mode,
            SharingMode::None,
            "an empty config shares nothing"
        );
    }
}
