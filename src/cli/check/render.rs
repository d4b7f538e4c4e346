//! `check --output text|json|github`.

use std::fmt::Write as _;

use serde_json::json;

use super::{CheckRun, EditStatus};
use crate::decision::{Action, Outcome};

/// One block per object, then one summary line.
pub fn text(run: &CheckRun) -> String {
    let mut out = String::with_capacity(run.reports.len() * 96);
    for r in &run.reports {
        let _ = write!(out, "{}", r.file);
        if let Some(line) = r.line {
            let _ = write!(out, ":{line}");
        }
        let _ = write!(out, ": doc {}", r.document);
        if let Some(i) = r.item {
            let _ = write!(out, " items[{i}]");
        }
        let _ = writeln!(out, ": {} {}/{}: {}", r.kind, r.namespace, r.name, r.decision.as_str());
        for v in &r.violations {
            let action = if v.action == Action::Warn { "warn" } else { "deny" };
            let _ = write!(out, "    {action} {} {}", v.code, v.path);
            if let Some(line) = v.line {
                let _ = write!(out, " (line {line})");
            }
            let _ = writeln!(out, ": {}", v.message);
        }
        let who = if r.kind == "Pod" { "pod gets" } else { "pods get" };
        for f in &r.fixes {
            let _ = write!(out, "    fix  {} {}", f.code, f.path);
            if let Some(line) = f.line {
                let _ = write!(out, " (line {line})");
            }
            let _ = writeln!(out, ": {who} {}", f.summary);
        }
    }
    for e in &run.edits {
        match &e.status {
            EditStatus::Written => {
                let _ = writeln!(out, "fixed {}", e.file);
            }
            EditStatus::Printed => {}
            EditStatus::Unchanged(reason) => {
                let _ = writeln!(out, "not fixed {}: {reason} (the file is left unchanged)", e.file);
            }
        }
    }
    let s = &run.skips;
    let f = &run.file_skips;
    let _ = writeln!(
        out,
        "{} objects checked: {} allowed, {} mutated, {} denied; skipped: {} not Kubernetes objects, {} not workloads, {} by --skip-kind; {} files ({} ignored, {} symlink loops, {} duplicates); {} errors",
        run.reports.len(),
        run.count(Outcome::Allowed),
        run.count(Outcome::Mutated),
        run.count(Outcome::Denied),
        s.not_kubernetes,
        s.not_workloads,
        s.skipped_kind,
        run.files,
        f.ignored,
        f.symlink_loops,
        f.duplicates,
        run.errors.len()
    );
    out
}

/// One object: `results`, `errors`, `fixes` (what --fix did) and `summary`.
pub fn json(run: &CheckRun) -> String {
    // Serialized in place, not through a `Value` copy of every report.
    #[derive(serde::Serialize)]
    struct Out<'a> {
        results: &'a [crate::offline::Report],
        errors: &'a [crate::k8s::manifests::InputError],
        fixes: &'a [super::Edit],
        summary: serde_json::Value,
    }
    let doc = Out {
        results: &run.reports,
        errors: &run.errors,
        fixes: &run.edits,
        summary: summary(run),
    };
    let mut out =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"cannot render: {e}\"}}"));
    out.push('\n');
    out
}

fn summary(run: &CheckRun) -> serde_json::Value {
    json!({
        "objects": run.reports.len(),
        "allowed": run.count(Outcome::Allowed),
        "mutated": run.count(Outcome::Mutated),
        "denied": run.count(Outcome::Denied),
        "failing": run.reports.iter().filter(|r| run.fails(r)).count(),
        "files": run.files,
        "errors": run.errors.len(),
        "skipped": {
            "not_kubernetes": run.skips.not_kubernetes,
            "not_workloads": run.skips.not_workloads,
            "skipped_kind": run.skips.skipped_kind,
            "ignored_files": run.file_skips.ignored,
            "symlink_loops": run.file_skips.symlink_loops,
            "duplicate_files": run.file_skips.duplicates,
        },
    })
}

/// GitHub Actions workflow commands: an annotation per finding and per input error.
pub fn github(run: &CheckRun) -> String {
    let mut out = String::new();
    for r in &run.reports {
        let who = r.object();
        for v in &r.violations {
            let level = if v.action == Action::Warn { "warning" } else { "error" };
            command(
                &mut out,
                level,
                &r.file,
                v.line.or(r.line),
                v.code,
                &format!("{who}: {} ({})", v.message, v.path),
            );
        }
        for f in &r.fixes {
            let message = format!("{who}: {} gets {} (gpu-admission check --fix)", f.path, f.summary);
            command(&mut out, "notice", &r.file, f.line.or(r.line), f.code, &message);
        }
    }
    for e in &run.errors {
        let title = "input error";
        command(&mut out, "error", &e.file, e.line, title, &e.message);
    }
    for e in &run.edits {
        if let EditStatus::Unchanged(reason) = &e.status {
            command(&mut out, "warning", &e.file, None, "not fixed", reason);
        }
    }
    let denied = run.count(Outcome::Denied);
    let _ = writeln!(
        out,
        "gpu-admission: {} objects checked, {} denied, {} mutated, {} errors",
        run.reports.len(),
        denied,
        run.count(Outcome::Mutated),
        run.errors.len()
    );
    out
}

fn command(out: &mut String, level: &str, file: &str, line: Option<usize>, title: &str, message: &str) {
    let _ = write!(out, "::{level} file={}", property(file));
    if let Some(line) = line {
        let _ = write!(out, ",line={line}");
    }
    let _ = writeln!(out, ",title={}::{}", property(title), data(message));
}

/// Escaping of a workflow command's message.
fn data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escaping of a workflow command's property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(super::data("50%\nnext"), "50%25%0Anext");
        assert_eq!(super::property("a:b,c"), "a%3Ab%2Cc");
    }
}
