//! Reading manifests from files, directories and stdin: multi-document YAML, JSON, `kind: List`.
//!
//! Every document is accounted for: an object, an empty document (comments only), or an error
//! that names the file and the document. Nothing is skipped silently.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub file: String,
    pub document: Option<usize>,
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.document {
            Some(d) => write!(f, "{}: document {d}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// One input file as read: its documents in order (`None` for an empty document).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub file: String,
    pub documents: Vec<Option<Value>>,
}

/// Expands PATHs into files: a directory is read recursively for `*.yaml`, `*.yml`, `*.json`
/// (sorted, so output is stable); `-` is stdin.
pub fn expand_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<InputError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" || !path.is_dir() {
            files.push(path.clone());
        } else if let Err(e) = walk(path, &mut files) {
            errors.push(InputError {
                file: path.display().to_string(),
                document: None,
                message: format!("cannot read directory: {e}"),
            });
        }
    }
    (files, errors)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads one file (or stdin for `-`) into its documents.
pub fn read_file(path: &Path) -> Result<SourceFile, InputError> {
    let file = if path.as_os_str() == "-" {
        "-".to_string()
    } else {
        path.display().to_string()
    };
    let err = |document, message| InputError {
        file: file.clone(),
        document,
        message,
    };
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| err(None, format!("cannot read: {e}")))?;
    let documents = parse_documents(&text).map_err(|(doc, message)| err(Some(doc), message))?;
    Ok(SourceFile { file, documents })
}

/// Splits text into YAML documents (JSON is YAML too). Errors carry the document index.
pub fn parse_documents(text: &str) -> Result<Vec<Option<Value>>, (usize, String)> {
    let mut documents = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| (index, format!("not valid YAML: {e}")))?;
        documents.push(match value {
            Value::Null => None,
            v => Some(v),
        });
    }
    Ok(documents)
}

/// The objects of a file: each document, with `kind: List` expanded into its items.
pub fn manifests(source: &SourceFile) -> Result<Vec<Manifest>, InputError> {
    Ok(objects(source)?
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

/// The objects of a file without copying them: each document, `kind: List` expanded.
pub fn objects(source: &SourceFile) -> Result<Vec<ObjectRef<'_>>, InputError> {
    let mut out = Vec::new();
    for (document, value) in source.documents.iter().enumerate() {
        let Some(value) = value else { continue };
        let err = |message: String| InputError {
            file: source.file.clone(),
            document: Some(document),
            message,
        };
        require_object_type(value).map_err(err)?;
        if is_list(value) {
            let items = value
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| err("a List needs `items`".into()))?;
            for (i, item) in items.iter().enumerate() {
                require_object_type(item).map_err(|m| err(format!("items[{i}]: {m}")))?;
                out.push(ObjectRef {
                    document,
                    item: Some(i),
                    object: item,
                });
            }
        } else {
            out.push(ObjectRef {
                document,
                item: None,
                object: value,
            });
        }
    }
    Ok(out)
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
