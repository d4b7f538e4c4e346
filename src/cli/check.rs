//! `gpu-admission check`: the engine over manifests in files, as CI runs it.
//!
//! Exit codes: 0 nothing denied, 1 something denied, 2 unreadable input or a bad policy.

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, Done, PolicyFlags};
use crate::decision::{Action, Outcome, warning_for};
use crate::k8s::manifests::{self as input, InputError};
use crate::offline::{Report, check_source};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub policy: PolicyFlags,
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

pub fn run(args: CheckArgs) -> Result<Done, CliError> {
    let effective = args.policy.load_effective(args.cluster_state.as_deref())?;
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
        match check_source(
            &effective,
            source,
            &args.namespace,
            args.fix,
            &mut reports,
            &mut skipped,
        ) {
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
        let n = errors.len();
        Err(CliError::Input(format!(
            "{n} input error(s); nothing was decided for them"
        )))
    } else if denied {
        Ok(Done::Findings)
    } else {
        Ok(Done::Clean)
    }
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
            let action = if v.action == Action::Warn { "warn" } else { "deny" };
            out.push_str(&format!("    {action} {} {}: {}\n", v.code, v.path, v.message));
        }
        let from_violations: Vec<String> = r.violations.iter().map(warning_for).collect();
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
