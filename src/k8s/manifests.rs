//! Reading manifests from files and stdin: multi-document YAML, JSON, `kind: List`.
//!
//! Every document is accounted for: an object, an empty document (comments only), a document
//! that is not a Kubernetes object (no `apiVersion` or `kind`: a Helm `values.yaml`, a
//! `talconfig.yaml`), or an error that names the file, the document and the line. Nothing is
//! skipped silently. Directories are walked by [`super::discover`].

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One object read from a file.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file (`-` for stdin).
    pub file: String,
    /// Index of the YAML document in the file (0-based).
    pub document: usize,
    /// Index in `items` when the document is a `kind: List`.
    pub item: Option<usize>,
    pub object: Value,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputError {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The line (1-based) where the parser knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub message: String,
}

impl InputError {
    pub fn new(file: impl Into<String>, document: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            document,
            line: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One input file as read: its text and its documents in order (`None` for an empty document).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub file: String,
    pub text: String,
    pub documents: Vec<Option<Value>>,
}

// === impl SourceFile ===

impl SourceFile {
    /// Parses `text` (read from `file`) into its documents.
    pub fn parse(file: impl Into<String>, text: String) -> Result<Self, InputError> {
        let file = file.into();
        match parse_documents(&text) {
            Ok(documents) => Ok(Self { file, text, documents }),
            Err(e) => Err(InputError {
                file,
                document: Some(e.document),
                line: e.line,
                message: e.message,
            }),
        }
    }
}

/// Reads one file (or stdin for `-`) into its documents.
pub fn read_file(path: &Path) -> Result<SourceFile, InputError> {
    let (file, text) = read_text(path)?;
    SourceFile::parse(file, text)
}

/// Reads one file (or stdin for `-`): its name as reports print it, and its text.
pub fn read_text(path: &Path) -> Result<(String, String), InputError> {
    let file = display(path);
    let mut text = String::new();
    let read = if is_stdin(path) {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| InputError::new(file.clone(), None, format!("cannot read: {e}")))?;
    Ok((file, text))
}

/// A YAML parse error: the document, the line where the parser stopped, the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub document: usize,
    pub line: Option<usize>,
    pub message: String,
}

/// Splits text into YAML documents (JSON is YAML too).
pub fn parse_documents(text: &str) -> Result<Vec<Option<Value>>, ParseError> {
    let mut documents = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| ParseError {
            document: index,
            line: e.location().map(|l| l.line()),
            message: format!("not valid YAML: {e}"),
        })?;
        documents.push(match value {
            Value::Null => None,
            v => Some(v),
        });
    }
    Ok(documents)
}

/// The objects of a file: each document, with `kind: List` expanded into its items. A document
/// that is not a Kubernetes object is an error here (cluster-state dumps hold nothing else).
pub fn manifests(source: &SourceFile) -> Result<Vec<Manifest>, InputError> {
    let found = objects(source)?;
    if let Some(&document) = found.not_kubernetes.first() {
        let why = not_kubernetes_reason(source.documents[document].as_ref());
        return Err(InputError::new(source.file.clone(), Some(document), why));
    }
    Ok(found
        .refs
        .into_iter()
        .map(|o| Manifest {
            file: source.file.clone(),
            document: o.document,
            item: o.item,
            object: o.object.clone(),
        })
        .collect())
}

/// An object of a file, borrowed from its document (see [`objects`]).
#[derive(Debug, Clone, Copy)]
pub struct ObjectRef<'a> {
    pub document: usize,
    pub item: Option<usize>,
    pub object: &'a Value,
}

/// The objects of a file, and the documents that are not Kubernetes objects.
#[derive(Debug, Clone, Default)]
pub struct Objects<'a> {
    pub refs: Vec<ObjectRef<'a>>,
    /// Documents without `apiVersion` or `kind` (or not a mapping at all).
    pub not_kubernetes: Vec<usize>,
}

/// The objects of a file without copying them: each document, `kind: List` expanded. A document
/// with `apiVersion` and `kind` of the wrong type, or a List item that is not an object, is an
/// error.
pub fn objects(source: &SourceFile) -> Result<Objects<'_>, InputError> {
    let mut out = Objects::default();
    for (document, value) in source.documents.iter().enumerate() {
        let Some(value) = value else { continue };
        let err = |message: String| InputError::new(source.file.clone(), Some(document), message);
        if !looks_like_object(value) {
            out.not_kubernetes.push(document);
            continue;
        }
        require_object_type(value).map_err(err)?;
        if is_list(value) {
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| err("a List needs `items`".into()))?;
            for (i, item) in items.iter().enumerate() {
                require_object_type(item).map_err(|m| err(format!("items[{i}]: {m}")))?;
                out.refs.push(ObjectRef {
                    document,
                    item: Some(i),
                    object: item,
                });
            }
        } else {
            out.refs.push(ObjectRef {
                document,
                item: None,
                object: value,
            });
        }
    }
    Ok(out)
}

/// Why a document is not taken as a Kubernetes object.
pub fn not_kubernetes_reason(value: Option<&Value>) -> String {
    match value {
        Some(Value::Object(map)) => {
            let missing: Vec<&str> = ["apiVersion", "kind"]
                .into_iter()
                .filter(|f| !map.contains_key(*f))
                .collect();
            format!("not a Kubernetes object: `{}` is missing", missing.join("` and `"))
        }
        Some(v) => format!("not a Kubernetes object: the document is {}", super::json_type(v)),
        None => "an empty document".into(),
    }
}

/// A mapping with both `apiVersion` and `kind` (of whatever type).
fn looks_like_object(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key("apiVersion") && m.contains_key("kind"))
}

/// `kind: List` (or `FooList`) with `items`.
pub fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some()
}

fn require_object_type(value: &Value) -> Result<(), String> {
    let Some(map) = value.as_object() else {
        return Err(format!(
            "expected a Kubernetes object, found {}",
            super::json_type(value)
        ));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(_) => return Err(format!("`{field}` must be a non-empty string")),
            None => return Err(format!("`{field}` is missing")),
        }
    }
    Ok(())
}

/// Paths as given: a file, or `-` for stdin (directories: [`super::discover::discover`]).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// `path` as it is printed in reports.
pub fn display(path: &Path) -> String {
    if is_stdin(path) {
        "-".into()
    } else {
        path.display().to_string()
    }
}
