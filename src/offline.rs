//! The offline evaluation behind `gpu-admission check`: manifests in, one report per object.
//!
//! Pure apart from what it is given: the CLI reads the files and prints; the benchmarks and
//! tests call these functions directly.

use serde::Serialize;
use serde_json::Value;

use crate::decision::{Decision, Outcome, SkipReason, Violation};
use crate::engine::{self, Context, Effective, Stage};
use crate::k8s::manifests::{self as input, InputError, Manifest, ObjectRef, SourceFile};

/// One object's result, as printed by `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub decision: Outcome,
    pub violations: Vec<Violation>,
    pub warnings: Vec<String>,
    pub patch: json_patch::Patch,
}

/// Evaluates one manifest offline; `None` for objects that are not workloads.
pub fn evaluate_manifest(
    effective: &Effective,
    manifest: &Manifest,
    default_namespace: &str,
) -> Option<(Report, Decision)> {
    let at = ObjectRef {
        document: manifest.document,
        item: manifest.item,
        object: &manifest.object,
    };
    evaluate_object(effective, &manifest.file, at, default_namespace)
}

/// Evaluates one object of `file` offline; `None` for objects that are not workloads.
pub fn evaluate_object(
    effective: &Effective,
    file: &str,
    at: ObjectRef<'_>,
    default_namespace: &str,
) -> Option<(Report, Decision)> {
    let object = at.object;
    let metadata = object.get("metadata");
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(default_namespace);
    let ctx = Context::create(namespace, Stage::Offline);
    let decision = engine::evaluate(effective, object, &ctx);
    if matches!(
        decision.skipped,
        Some(SkipReason::NotCovered | SkipReason::UnservedVersion)
    ) {
        return None;
    }
    let text = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = Some(text("name"))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| text("generateName"));
    let report = Report {
        file: file.to_string(),
        document: at.document,
        item: at.item,
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
        namespace: namespace.to_string(),
        name,
        decision: decision.outcome(),
        violations: decision.violations.clone(),
        warnings: decision.warnings.clone(),
        patch: decision.patch.clone(),
    };
    Some((report, decision))
}

/// Checks every object of a file (reports go to `reports`, objects that are not workloads are
/// counted in `skipped`); with `fix`, returns its documents as fixed YAML. (Nothing is
/// copied or rendered for `--fix` unless it was asked for: `check` on 10,000 objects spent most
/// of its time there.)
pub fn check_source(
    effective: &Effective,
    mut source: SourceFile,
    ns: &str,
    fix: bool,
    reports: &mut Vec<Report>,
    skipped: &mut usize,
) -> Result<Vec<String>, InputError> {
    let mut fixes = Vec::new();
    for at in input::objects(&source)? {
        let Some((report, decision)) = evaluate_object(effective, &source.file, at, ns) else {
            *skipped += 1;
            continue;
        };
        if fix && report.decision == Outcome::Mutated {
            fixes.push((at.document, at.item, decision.patch));
        }
        reports.push(report);
    }
    let documents = &mut source.documents;
    for (document, item, patch) in fixes {
        let target = documents[document].as_mut().and_then(|doc| match item {
            None => Some(doc),
            Some(i) => doc.get_mut("items").and_then(|items| items.get_mut(i)),
        });
        if let Some(target) = target {
            json_patch::patch(target, &patch).map_err(|e| InputError {
                file: source.file.clone(),
                document: Some(document),
                message: format!("internal error: the fix does not apply: {e}"),
            })?;
        }
    }
    let mut out = Vec::new();
    for doc in documents.iter().flatten().filter(|_| fix) {
        let yaml = serde_yaml_ng::to_string(doc).map_err(|e| InputError {
            file: source.file.clone(),
            document: None,
            message: format!("cannot render YAML: {e}"),
        })?;
        out.push(format!("# Source: {}\n---\n{yaml}", source.file));
    }
    Ok(out)
}
