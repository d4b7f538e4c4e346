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
