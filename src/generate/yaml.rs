//! Small builders for YAML values in the order Kubernetes documents fields, and the text they
//! render to. `serde_yaml_ng`'s mapping keeps insertion order; `serde_json`'s does not here.

use serde_yaml_ng::{Mapping, Value};

/// A mapping with the keys in the order given.
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Mapping(m)
}

/// Adds `key: value` at the end of a mapping (a no-op on anything else).
pub fn push(target: &mut Value, key: &str, value: Value) {
    if let Value::Mapping(m) = target {
        m.insert(Value::String(key.to_string()), value);
    }
}

pub fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

pub fn int(n: i64) -> Value {
    Value::Number(n.into())
}

pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
    Value::Sequence(items.into_iter().collect())
}

pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    list(items.into_iter().map(|i| s(i.as_ref())))
}

/// The API group of the webhook configurations and the admission policies.
pub const ADMISSION_V1: &str = "admissionregistration.k8s.io/v1";

/// The labels of every object gpu-admission generates or writes.
const LABELS: [(&str, &str); 1] = [("app.kubernetes.io/name", "gpu-admission")];

/// `LABELS` as a mapping.
pub fn labels() -> Value {
    map(LABELS.map(|(k, v)| (k, s(v))))
}

/// `LABELS` as owned strings (for typed objects).
pub fn label_strings() -> std::collections::BTreeMap<String, String> {
    LABELS.map(|(k, v)| (k.to_string(), v.to_string())).into()
}

/// `{name, labels}`: the metadata of a cluster-scoped object.
pub fn metadata(name: &str) -> Value {
    map([("name", s(name)), ("labels", labels())])
}

/// `{name, expression}`: a variable or a matchCondition.
pub fn named(name: &str, expression: &str) -> Value {
    map([("name", s(name)), ("expression", s(expression))])
}

/// `apiVersion`, `kind` and `metadata`, then the rest in the order given.
pub fn object<const N: usize>(api_version: &str, kind: &str, metadata: Value, rest: [(&str, Value); N]) -> Value {
    let mut out = map([
        ("apiVersion", s(api_version)),
        ("kind", s(kind)),
        ("metadata", metadata),
    ]);
    for (k, v) in rest {
        push(&mut out, k, v);
    }
    out
}

/// `header` as `# ` comment lines, then the documents separated by `---`.
pub fn render(header: &str, docs: &[Value]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for line in header.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&serde_yaml_ng::to_string(doc)?);
    }
    Ok(out)
}
