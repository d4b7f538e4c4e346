//! Strict input: every field the rules read must have the JSON type Kubernetes gives it.
//!
//! The rules read what they need and pass over what they cannot read, so a pod spec whose
//! `containers` is a map, whose container is a string, or whose `resources.limits` is a list
//! would be looked at by none of them, and allowed by accident. This pass runs first: a covered
//! field of the wrong type is a `FIELD_INVALID` violation naming its path, and the object is not
//! evaluated further (denied by validation and `check`, left untouched by mutation, as an object
//! without a pod spec is). `null` is taken as absent, as the API server decodes it.
//!
//! Fields whose rule already reports `FIELD_INVALID` itself (`nodeSelector`, `tolerations`,
//! `priorityClassName`) are left to that rule.

use serde_json::{Map, Value};

use crate::k8s::json_type;

/// At most this many wrong fields are reported (a hostile list of a million strings must not
/// become a million violations); the walk stops at the next one, and the last says so.
pub const MAX_REPORTED: usize = 16;

/// The JSON type a field must have.
#[derive(Debug, Clone, Copy)]
enum Want {
    Str,
    Bool,
    Int,
    /// An object whose values are not checked here (`resources.limits`: quantities are the
    /// `slices` rule's).
    AnyMap,
    Object(&'static [Field]),
    ListOf(&'static Want),
}

type Field = (&'static str, Want);

const STRINGS: Want = Want::ListOf(&Want::Str);

const CONTAINER: &[Field] = &[
    ("name", Want::Str),
    ("image", Want::Str),
    ("restartPolicy", Want::Str),
    ("resources", Want::Object(RESOURCES)),
    ("env", Want::ListOf(&Want::Object(ENV_VAR))),
    ("volumeMounts", Want::ListOf(&Want::Object(&[("name", Want::Str)]))),
    ("securityContext", Want::Object(SECURITY_CONTEXT)),
];

const RESOURCES: &[Field] = &[
    ("limits", Want::AnyMap),
    ("requests", Want::AnyMap),
    ("claims", Want::ListOf(&Want::Object(&[("name", Want::Str)]))),
];

const ENV_VAR: &[Field] = &[("name", Want::Str), ("value", Want::Str), ("valueFrom", Want::AnyMap)];

const SECURITY_CONTEXT: &[Field] = &[
    ("privileged", Want::Bool),
    ("capabilities", Want::Object(&[("add", STRINGS)])),
];

const VOLUME: &[Field] = &[
    ("name", Want::Str),
    ("hostPath", Want::Object(&[("path", Want::Str), ("type", Want::Str)])),
];

const POD_CLAIM: &[Field] = &[
    ("name", Want::Str),
    ("resourceClaimName", Want::Str),
    ("resourceClaimTemplateName", Want::Str),
];

const SELECTOR_TERM: &[Field] = &[(
    "matchExpressions",
    Want::ListOf(&Want::Object(&[
        ("key", Want::Str),
        ("operator", Want::Str),
        ("values", STRINGS),
    ])),
)];

const AFFINITY: &[Field] = &[(
    "nodeAffinity",
    Want::Object(&[(
        "requiredDuringSchedulingIgnoredDuringExecution",
        Want::Object(&[("nodeSelectorTerms", Want::ListOf(&Want::Object(SELECTOR_TERM)))]),
    )]),
)];

/// The pod spec's fields the rules read.
const POD_SPEC: &[Field] = &[
    ("containers", Want::ListOf(&Want::Object(CONTAINER))),
    ("initContainers", Want::ListOf(&Want::Object(CONTAINER))),
    ("ephemeralContainers", Want::ListOf(&Want::Object(CONTAINER))),
    ("volumes", Want::ListOf(&Want::Object(VOLUME))),
    ("resourceClaims", Want::ListOf(&Want::Object(POD_CLAIM))),
    ("affinity", Want::Object(AFFINITY)),
    ("nodeName", Want::Str),
    ("priority", Want::Int),
    ("preemptionPolicy", Want::Str),
];

/// One field of the wrong type: its path (`spec.containers[0].resources`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub message: String,
}

/// Every covered field of the wrong type in `object` (its `metadata.namespace` and the pod spec
/// `spec` found at `spec_path`), at most [`MAX_REPORTED`].
pub fn check(object: &Value, spec: &Map<String, Value>, spec_path: &str) -> Vec<Mismatch> {
    let mut walk = Walk::default();
    match object.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(metadata)) => walk.fields(metadata, "metadata", &[("namespace", Want::Str)]),
        Some(other) => walk.wrong("metadata", "an object", other),
    }
    walk.fields(spec, spec_path, POD_SPEC);
    let mut found = walk.found;
    if walk.truncated
        && let Some(last) = found.last_mut()
    {
        last.message.push_str(&format!(
            " (only the first {MAX_REPORTED} fields of the wrong type are listed)"
        ));
    }
    found
}

#[derive(Default)]
struct Walk {
    found: Vec<Mismatch>,
    /// A field past [`MAX_REPORTED`] was wrong too: the walk stops.
    truncated: bool,
}

impl Walk {
    fn fields(&mut self, map: &Map<String, Value>, base: &str, fields: &[Field]) {
        for (name, want) in fields {
            if let Some(value) = map.get(*name) {
                self.value(value, &format!("{base}.{name}"), *want);
            }
        }
    }

    fn value(&mut self, value: &Value, path: &str, want: Want) {
        if value.is_null() || self.truncated {
            return;
        }
        match (want, value) {
            (Want::Str, Value::String(_)) | (Want::Bool, Value::Bool(_)) | (Want::AnyMap, Value::Object(_)) => {}
            (Want::Int, Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            (Want::Object(fields), Value::Object(map)) => self.fields(map, path, fields),
            (Want::ListOf(item), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate() {
                    if self.truncated {
                        break;
                    }
                    self.value(v, &format!("{path}[{i}]"), *item);
                }
            }
            (want, other) => self.wrong(path, want.name(), other),
        }
    }

    fn wrong(&mut self, path: &str, expected: &str, found: &Value) {
        if self.found.len() >= MAX_REPORTED {
            self.truncated = true;
            return;
        }
        self.found.push(Mismatch {
            path: path.to_string(),
            message: format!(
                "must be {expected}, found {}: an object with a field of the wrong type is not evaluated",
                json_type(found)
            ),
        });
    }
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Str => "a string",
            Want::Bool => "a boolean",
            Want::Int => "an integer",
            Want::AnyMap | Want::Object(_) => "an object",
            Want::ListOf(_) => "a list",
        }
    }
}
