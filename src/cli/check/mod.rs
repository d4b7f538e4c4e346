//! `gpu-admission check`: the engine over manifests in files (or a live cluster), as CI runs it.
//!
//! This module reads the inputs, runs [`crate::offline::check_source`] on each, applies
//! `--fix`, and hands one [`CheckRun`] to the renderer of `--output`. The exit code follows
//! `--fail-on` (see [`EXIT_CODES`]).

use std::io::Write;
use std::path::PathBuf;

use super::{CliError, Done, PolicyFlags};
use crate::decision::{Action, Outcome};
use crate::k8s::discover::{FileSkips, discover};
use crate::k8s::manifests::{self as input, InputError};
use crate::offline::{CheckOptions, ObjectSkips, Report, check_text};

mod junit;
mod live;
mod render;
mod sarif;

pub use live::LiveArgs;

/// `--help`'s account of the exit codes.
pub const EXIT_CODES: &str = "Exit codes:
  0  nothing at or above the --fail-on level
  1  findings at or above --fail-on: deny (default) a denial; warn also a warning;
     fix also a pending fix (a fix written by --fix --write is no longer pending)
  2  unusable input: a file that cannot be read or parsed, a bad policy or flag,
     a document that is not a Kubernetes object under --strict";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    Junit,
    Sarif,
    /// GitHub Actions workflow commands (`::error file=…,line=…::…`).
    Github,
}

/// What makes the exit code 1.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum FailOn {
    #[default]
    Deny,
    Warn,
    Fix,
}

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct CheckArgs {
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Take limits, priority classes and Coral namespaces from cluster objects dumped as YAML
    /// (`kubectl get nodes,configmaps,priorityclasses,namespaces -A -o yaml`), as `serve --cluster`.
    #[arg(long, conflicts_with = "live")]
    pub cluster_state: Option<PathBuf>,
    /// Namespace for objects that have none (with --live: the one namespace to read; default all).
    #[arg(long)]
    pub namespace: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// What makes the exit code 1.
    #[arg(long, value_enum, default_value = "deny")]
    pub fail_on: FailOn,
    /// Compute the fixes: the fixed files go to stdout (the report to stderr), unless --write or
    /// --diff. Only the added fields change: comments, key order and quoting stay.
    #[arg(long)]
    pub fix: bool,
    /// With --fix: write the fixed files in place.
    #[arg(long, requires = "fix", conflicts_with = "diff")]
    pub write: bool,
    /// With --fix: print a unified diff of the fixes (the report goes to stderr).
    #[arg(long, requires = "fix")]
    pub diff: bool,
    /// A document that is not a Kubernetes object (no `apiVersion` or `kind`) is an error, not a skip.
    #[arg(long)]
    pub strict: bool,
    /// Leave out files matching this glob (gitignore syntax, relative to each directory given).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Do not evaluate objects of this kind (repeatable, any case).
    #[arg(long, value_name = "KIND")]
    pub skip_kind: Vec<String>,
    #[command(flatten)]
    pub live: LiveArgs,
    /// Files, directories (walked: .git and .gitignore'd paths left out) or `-` for stdin.
    #[arg(required_unless_present = "live")]
    pub paths: Vec<PathBuf>,
}

/// Everything one `check` found, for the renderers.
#[derive(Debug, Default)]
pub struct CheckRun {
    pub reports: Vec<Report>,
    pub errors: Vec<InputError>,
    /// Files (or live object sets) read.
    pub files: usize,
    pub skips: ObjectSkips,
    pub file_skips: FileSkips,
    /// With --fix: per file, written / printed, or why it was left unchanged.
    pub edits: Vec<Edit>,
    pub fail_on: FailOn,
}

/// What `--fix` did with one file (`--output json`: `{file, status, reason}`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Edit {
    pub file: String,
    #[serde(flatten)]
    pub status: EditStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum EditStatus {
    /// `--fix --write`: written in place.
    Written,
    /// `--fix` or `--fix --diff`: printed.
    Printed,
    /// Left as it was, with the reason.
    Unchanged(String),
}

// === impl CheckRun ===

impl CheckRun {
    /// Whether a report fails the gate.
    pub fn fails(&self, r: &Report) -> bool {
        let level = self.fail_on;
        match r.decision {
            Outcome::Denied => true,
            _ if level >= FailOn::Warn && r.violations.iter().any(|v| v.action == Action::Warn) => true,
            Outcome::Mutated if level >= FailOn::Fix => !self.written(&r.file),
            _ => false,
        }
    }

    fn written(&self, file: &str) -> bool {
        self.edits
            .iter()
            .any(|e| e.file == file && e.status == EditStatus::Written)
    }

    pub fn count(&self, outcome: Outcome) -> usize {
        self.reports.iter().filter(|r| r.decision == outcome).count()
    }
}

pub fn run(args: CheckArgs) -> Result<Done, CliError> {
    if args.live.live {
        return live::run(args);
    }
    let effective = args.policy.load_effective(args.cluster_state.as_deref())?;
    let found = discover(&args.paths, &args.exclude);
    let namespace = args.namespace.clone().unwrap_or_else(|| "default".into());
    let opts = CheckOptions {
        namespace: &namespace,
        skip_kinds: &args.skip_kind,
        strict: args.strict,
        fix: args.fix,
    };
    let mut run = CheckRun {
        errors: found.errors,
        file_skips: found.skipped,
        fail_on: args.fail_on,
        ..CheckRun::default()
    };
    let mut fixed_out = String::new();
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for path in &found.files {
        let (file, text) = match input::read_text(path) {
            Ok(read) => read,
            Err(e) => {
                run.errors.push(e);
                continue;
            }
        };
        run.files += 1;
        let checked = match check_text(&effective, &file, &text, opts, threads) {
            Ok(c) => c,
            Err(e) => {
                run.errors.push(e);
                continue;
            }
        };
        run.reports.extend(checked.reports);
        run.errors.extend(checked.errors);
        run.skips += checked.skips;
        if args.fix {
            let fixed = checked.fix.unwrap_or_else(|| Ok(text.clone()));
            fix_one(&args, path, &file, &text, fixed, &mut run, &mut fixed_out);
        }
    }
    finish(&args, run, &fixed_out)
}

/// Writes, prints or diffs one file's fix, and records it.
fn fix_one(
    args: &CheckArgs,
    path: &std::path::Path,
    file: &str,
    original: &str,
    text: Result<String, String>,
    run: &mut CheckRun,
    fixed_out: &mut String,
) {
    let file = file.to_string();
    let changed = text.as_ref().is_ok_and(|t| t != original);
    let status = match text {
        Err(reason) => {
            if !args.write && !args.diff {
                fixed_out.push_str(&format!("# Source: {file}\n---\n"));
                fixed_out.push_str(original);
            }
            EditStatus::Unchanged(reason)
        }
        Ok(text) if args.write => {
            if !changed {
                return;
            }
            if input::is_stdin(path) {
                run.errors.push(InputError::new(
                    file,
                    None,
                    "--write cannot write stdin; use --fix alone",
                ));
                return;
            }
            match std::fs::write(path, &text) {
                Ok(()) => EditStatus::Written,
                Err(e) => {
                    run.errors
                        .push(InputError::new(file, None, format!("cannot write: {e}")));
                    return;
                }
            }
        }
        Ok(text) if args.diff => {
            if !changed {
                return;
            }
            let diff = similar::TextDiff::from_lines(original, text.as_str());
            let header = format!("a/{file}");
            let new = format!("b/{file}");
            fixed_out.push_str(&diff.unified_diff().header(&header, &new).to_string());
            EditStatus::Printed
        }
        Ok(text) => {
            fixed_out.push_str(&format!("# Source: {file}\n---\n"));
            fixed_out.push_str(&text);
            if !changed {
                return;
            }
            EditStatus::Printed
        }
    };
    run.edits.push(Edit { file, status });
}

/// Prints the report (and the fixed text), and decides the exit code.
pub(super) fn finish(args: &CheckArgs, run: CheckRun, fixed_out: &str) -> Result<Done, CliError> {
    let report = match args.output {
        OutputFormat::Text => render::text(&run),
        OutputFormat::Json => render::json(&run),
        OutputFormat::Github => render::github(&run),
        OutputFormat::Junit => junit::render(&run),
        OutputFormat::Sarif => sarif::render(&run),
    };
    // Write errors (a closed pipe: `check … | head`) end the output quietly, never in a panic.
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let fixes_to_stdout = args.fix && !args.write;
    if fixes_to_stdout {
        let _ = stdout.write_all(fixed_out.as_bytes());
    }
    let out: &mut dyn Write = if fixes_to_stdout { &mut stderr } else { &mut stdout };
    let _ = out.write_all(report.as_bytes()).and_then(|()| out.flush());
    // Structured outputs also carry them; stderr always names them.
    for e in &run.errors {
        let _ = writeln!(stderr, "error: {e}");
    }
    if !run.errors.is_empty() {
        let n = run.errors.len();
        Err(CliError::Input(format!(
            "{n} input error(s); nothing was decided for them"
        )))
    } else if run.reports.iter().any(|r| run.fails(r)) {
        Ok(Done::Findings)
    } else {
        Ok(Done::Clean)
    }
}
