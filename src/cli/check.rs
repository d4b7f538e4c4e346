//! `gpu-admission check`: the engine over manifests in files, as CI runs it.
//!
//! Exit codes: 0 nothing denied, 1 something denied, 2 unreadable input or a bad policy.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use crate::engine::{self, Context, Decision, Operation, Outcome, Stage, Violation};
use crate::manifests::{self as input, InputError, Manifest, ObjectRef, SourceFile};
use crate::policy::Policy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Policy file (default: the embedded default policy).
    #[arg(long, env = "GPU_ADMISSION_POLICY")]
    pub policy: Option<PathBuf>,
    /// Read time-slicing from a device-plugin ConfigMap, GPU Operator Helm values or config.
    #[arg(long, env = "GPU_ADMISSION_TIME_SLICING")]
    pub time_slicing: Option<PathBuf>,
    /// Take limits, priority classes and Coral namespaces from cluster objects dumped as YAML
    /// (`kubectl get nodes,configmaps,priorityclasses,namespaces -A -o yaml`), as `serve --cluster`.
    #[arg(long)]
    pub cluster_state: Option<PathBuf>,
    /// Namespace for objects that have none.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Write the fixed manifests as YAML to stdout (the report goes to stderr).
    #[arg(long)]
    pub fix: bool,
    /// Files, directories (read recursively) or `-` for stdin.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

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
pub fn check_manifest(policy: &Policy, manifest: &Manifest, default_namespace: &str) -> Option<(Report, Decision)> {
    let at = ObjectRef {
        document: manifest.document,
        item: manifest.item,
        object: &manifest.object,
    };
    check_object(policy, &manifest.file, at, default_namespace)
}

/// Evaluates one object of `file` offline; `None` for objects that are not workloads.
pub fn check_object(
    policy: &Policy,
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
    let ctx = Context {
        namespace,
        operation: Operation::Create,
        stage: Stage::Offline,
    };
    let decision = engine::evaluate(policy, object, &ctx);
    if !decision.covered {
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

pub fn run(args: CheckArgs) -> ExitCode {
    let policy = match Policy::load_files(args.policy.as_deref(), args.time_slicing.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: bad policy: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = match &args.cluster_state {
        None => policy,
        Some(dir) => match crate::cluster::state_dir::load(policy.spec(), dir) {
            Ok(facts) => policy.with_cluster(std::sync::Arc::new(facts)),
            Err(errors) => {
                for e in errors {
                    eprintln!("error: cluster state: {e}");
                }
                return ExitCode::from(2);
            }
        },
    };
    let (files, mut errors) = input::expand_paths(&args.paths);
    let mut reports = Vec::new();
    let mut skipped = 0usize;
    let mut fixed_docs: Vec<String> = Vec::new();
    for path in &files {
        let source = match input::read_file(path) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match check_source(&policy, source, &args.namespace, args.fix, &mut reports, &mut skipped) {
            Ok(fixed) => fixed_docs.extend(fixed),
            Err(e) => errors.push(e),
        }
    }
    let denied = reports.iter().any(|r| r.decision == Outcome::Denied);
    // Write errors (a closed pipe: `check … | head`) end the output quietly, never in a panic.
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    if args.fix {
        let _ = stdout.write_all(fixed_docs.join("").as_bytes());
    }
    let report = match args.output {
        OutputFormat::Json => {
            let json = serde_json::to_string_pretty(&reports).unwrap_or_else(|e| format!("\"cannot render: {e}\""));
            format!("{json}\n")
        }
        OutputFormat::Text => render_text(&reports, skipped, files.len(), &errors),
    };
    let out: &mut dyn Write = if args.fix { &mut stderr } else { &mut stdout };
    let _ = out.write_all(report.as_bytes()).and_then(|()| out.flush());
    for e in &errors {
        let _ = writeln!(stderr, "error: {e}");
    }
    if !errors.is_empty() {
        ExitCode::from(2)
    } else if denied {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Checks every object of a file; returns its documents as fixed YAML (for `--fix`).
/// Checks every object of a file; with `fix`, returns its documents as fixed YAML. (Nothing is
/// copied or rendered for `--fix` unless it was asked for: `check` on 10,000 objects spent most
/// of its time there.)
fn check_source(
    policy: &Policy,
    mut source: SourceFile,
    ns: &str,
    fix: bool,
    reports: &mut Vec<Report>,
    skipped: &mut usize,
) -> Result<Vec<String>, InputError> {
    let mut fixes = Vec::new();
    for at in input::objects(&source)? {
        let Some((report, decision)) = check_object(policy, &source.file, at, ns) else {
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

fn render_text(reports: &[Report], skipped: usize, files: usize, errors: &[InputError]) -> String {
    let mut out = String::new();
    let mut counts = [0usize; 3];
    for r in reports {
        let item = r.item.map(|i| format!(" items[{i}]")).unwrap_or_default();
        out.push_str(&format!(
            "{} doc {}{item}: {} {}/{}: {}\n",
            r.file,
            r.document,
            r.kind,
            r.namespace,
            r.name,
            outcome_word(r.decision)
        ));
        for v in &r.violations {
            let action = if v.action == engine::Action::Warn {
                "warn"
            } else {
                "deny"
            };
            out.push_str(&format!("    {action} {} {}: {}\n", v.code, v.path, v.message));
        }
        let from_violations: Vec<String> = r.violations.iter().map(engine::rules::warning_for).collect();
        for w in r.warnings.iter().filter(|w| !from_violations.contains(w)) {
            out.push_str(&format!("    fix  {w}\n"));
        }
        counts[r.decision as usize] += 1;
    }
    out.push_str(&format!(
        "{} objects checked: {} allowed, {} mutated, {} denied; {skipped} skipped (not workloads); {files} files; {} errors\n",
        reports.len(),
        counts[Outcome::Allowed as usize],
        counts[Outcome::Mutated as usize],
        counts[Outcome::Denied as usize],
        errors.len()
    ));
    out
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Allowed => "allowed",
        Outcome::Mutated => "mutated",
        Outcome::Denied => "denied",
    }
}
