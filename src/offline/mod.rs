//! The offline evaluation behind `gpu-admission check`: manifests in, one report per object.
//!
//! Pure apart from what it is given: the CLI reads the files and prints; the benchmarks and
//! tests call these functions directly.

use serde::Serialize;
use serde_json::Value;

use crate::decision::{Decision, Fix, Outcome, SkipReason, Violation};
use crate::engine::{self, Context, Effective, Stage};
use crate::k8s::manifests::{self as input, InputError, Manifest, ObjectRef, SourceFile};
use crate::k8s::yaml_pos::{self, DocIndex};

pub mod fix;
mod lines;
mod parallel;

pub use parallel::check_text;

/// One object's result, as printed by `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub file: String,
    pub document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The line where the object starts (1-based), where the YAML parser knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub decision: Outcome,
    pub violations: Vec<Finding>,
    pub fixes: Vec<FixFinding>,
    pub warnings: Vec<String>,
    pub patch: json_patch::Patch,
}

// === impl Report ===

impl Report {
    /// `Kind namespace/name`, as every output format names the object.
    pub fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A finding with the line of its field (or of the nearest field above it that is in the
/// text): printed as the finding's own fields plus `line`.
#[derive(Debug, Clone, Serialize)]
pub struct Located<T> {
    #[serde(flatten)]
    pub item: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

impl<T> Located<T> {
    fn unplaced(item: T) -> Self {
        Self { item, line: None }
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.item
    }
}

/// A violation and its line.
pub type Finding = Located<Violation>;

/// A fix (`{code, rule, path, summary, patch}`) and the line of the field it adds to.
pub type FixFinding = Located<Fix>;

/// Evaluates one manifest offline; `None` for objects that are not workloads.
pub fn evaluate_manifest(effective: &Effective, manifest: &Manifest, default_namespace: &str) -> Option<Report> {
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
) -> Option<Report> {
    let object = at.object;
    let metadata = object.get("metadata");
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(default_namespace);
    let ctx = Context::create(namespace, Stage::Offline);
    let decision: Decision = engine::evaluate(effective, object, &ctx);
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
    // Moved, not copied: `check` holds a report per object of files of any size.
    let decision_outcome = decision.outcome();
    let Decision {
        violations,
        warnings,
        patch,
        fixes,
        ..
    } = decision;
    Some(Report {
        file: file.to_string(),
        document: at.document,
        item: at.item,
        kind: object.get("kind").and_then(Value::as_str).unwrap_or("").to_string(),
        namespace: namespace.to_string(),
        name,
        decision: decision_outcome,
        line: None,
        violations: violations.into_iter().map(Located::unplaced).collect(),
        fixes: fixes.into_iter().map(Located::unplaced).collect(),
        warnings,
        patch,
    })
}

/// How `check` reads a file's objects.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    /// For objects that have none.
    pub namespace: &'a str,
    /// Kinds not evaluated (`--skip-kind`, compared without case).
    pub skip_kinds: &'a [String],
    /// Documents that are not Kubernetes objects are errors (`--strict`), not skips.
    pub strict: bool,
    /// Compute the fixed text (`--fix`).
    pub fix: bool,
}

/// `--skip-kind`: whether `kind` is one of `skip_kinds` (compared without case).
pub fn skips_kind(skip_kinds: &[String], kind: &str) -> bool {
    skip_kinds.iter().any(|k| k.eq_ignore_ascii_case(kind))
}

/// Objects (or documents) of a file that got no report, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ObjectSkips {
    /// YAML without `apiVersion` or `kind`: Helm values, `Chart.yaml`, `talconfig.yaml`.
    pub not_kubernetes: usize,
    /// `--skip-kind`.
    pub skipped_kind: usize,
    /// Objects the rules do not cover (Services, ConfigMaps, …) or under a version the API
    /// server does not serve for their kind.
    pub not_workloads: usize,
}

impl std::ops::AddAssign for ObjectSkips {
    fn add_assign(&mut self, o: Self) {
        self.not_kubernetes += o.not_kubernetes;
        self.skipped_kind += o.skipped_kind;
        self.not_workloads += o.not_workloads;
    }
}

/// One file's results.
#[derive(Debug, Default)]
pub struct FileCheck {
    pub reports: Vec<Report>,
    pub skips: ObjectSkips,
    /// Documents refused under `strict`.
    pub errors: Vec<InputError>,
    /// With `fix`, when something is mutated: the edited text, or why it cannot be edited.
    pub fix: Option<Result<String, String>>,
}

/// Checks every object of a file: a report per workload, with the lines of the objects and of
/// their findings; with `fix`, the file's text with the fixes inserted (see [`fix::fix_text`]).
pub fn check_source(
    effective: &Effective,
    source: &SourceFile,
    opts: CheckOptions<'_>,
) -> Result<FileCheck, InputError> {
    let found = input::objects(source)?;
    let mut out = FileCheck::default();
    for &document in &found.not_kubernetes {
        if opts.strict {
            let why = input::not_kubernetes_reason(source.documents[document].as_ref());
            out.errors
                .push(InputError::new(source.file.clone(), Some(document), why));
        } else {
            out.skips.not_kubernetes += 1;
        }
    }
    for at in found.refs {
        let kind = at.object.get("kind").and_then(Value::as_str).unwrap_or("");
        if skips_kind(opts.skip_kinds, kind) {
            out.skips.skipped_kind += 1;
            continue;
        }
        match evaluate_object(effective, &source.file, at, opts.namespace) {
            Some(report) => out.reports.push(report),
            None => out.skips.not_workloads += 1,
        }
    }
    let docs = lines::positions(source, &out.reports, opts.fix);
    for r in &mut out.reports {
        if let Some(doc) = &docs[r.document] {
            locate(r, doc);
        }
    }
    if opts.fix && out.reports.iter().any(|r| r.decision == Outcome::Mutated) {
        out.fix = Some(fix::fix_text(source, &docs, &out.reports));
    }
    Ok(out)
}

/// Puts the lines on a report: the object's, its violations' and its fixes'.
fn locate(report: &mut Report, doc: &DocIndex) {
    let base = match report.item {
        Some(i) => format!("/items/{i}"),
        None => String::new(),
    };
    report.line = match report.item {
        Some(i) => doc.item_lines.get(i).copied(),
        None => Some(doc.line),
    };
    let line_of = |path: &str| doc.line_of(&format!("{base}{}", yaml_pos::pointer_of_path(path)));
    for v in &mut report.violations {
        v.line = line_of(&v.item.path);
    }
    for f in &mut report.fixes {
        f.line = line_of(&f.item.path);
    }
}
