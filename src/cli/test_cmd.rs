//! `gpu-admission test DIR`: suites of manifests with the decisions and codes they must get,
//! like `kyverno test`. Prints a table; exit 1 on any mismatch.
//!
//! A suite is a `gpu-admission-test.yaml` (every one under DIR, or DIR itself if it is a file):
//!
//! ```yaml
//! name: corpus
//! policy: ../policy.yaml          # optional; paths are relative to the suite file
//! timeSlicing: time-slicing.yaml  # optional
//! clusterState: state/            # optional, as check --cluster-state
//! namespace: default              # for objects without one
//! manifests: [manifests/]         # files or directories
//! results:
//!   - file: pod.yaml              # a path suffix
//!     name: hostpath-exec-pod     # optional; also `kind`, `document`
//!     decision: denied            # allowed | mutated | denied
//!     codes: [HOSTPATH_NOT_ALLOWED]   # optional: the exact set of violation and fix codes
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{CliError, Done, PolicyFlags};
use crate::decision::Outcome;
use crate::k8s::discover::discover;
use crate::k8s::manifests as input;
use crate::offline::{CheckOptions, Report, check_source};

/// The suite file's name.
pub const SUITE_FILE: &str = "gpu-admission-test.yaml";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes:\n  0  every expectation holds\n  1  a mismatch, or an expectation that matches no object\n  2  a suite, policy or manifest that cannot be read"
)]
pub struct TestArgs {
    /// A directory (every gpu-admission-test.yaml under it) or one suite file.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Suite {
    name: Option<String>,
    policy: Option<PathBuf>,
    time_slicing: Option<PathBuf>,
    cluster_state: Option<PathBuf>,
    #[serde(default = "default_namespace")]
    namespace: String,
    manifests: Vec<PathBuf>,
    #[serde(default)]
    results: Vec<Expect>,
}

fn default_namespace() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    file: String,
    kind: Option<String>,
    name: Option<String>,
    document: Option<usize>,
    decision: Outcome,
    codes: Option<BTreeSet<String>>,
}

// === impl Expect ===

impl Expect {
    fn matches(&self, r: &Report) -> bool {
        r.file.ends_with(&self.file)
            && self.kind.as_deref().is_none_or(|k| k == r.kind)
            && self.name.as_deref().is_none_or(|n| n == r.name)
            && self.document.is_none_or(|d| d == r.document)
    }
}

pub fn run(args: TestArgs) -> Result<Done, CliError> {
    let suites = if args.path.is_dir() {
        let found = discover(std::slice::from_ref(&args.path), &[]);
        found
            .files
            .into_iter()
            .filter(|f| f.file_name().is_some_and(|n| n == SUITE_FILE))
            .collect()
    } else {
        vec![args.path.clone()]
    };
    if suites.is_empty() {
        return Err(CliError::Input(format!(
            "{}: no {SUITE_FILE} found",
            args.path.display()
        )));
    }
    let mut table = String::from("suite | file | object | expected | got | result\n");
    let (mut passed, mut failed) = (0usize, 0usize);
    for path in &suites {
        let (p, f) = run_suite(path, &mut table)?;
        passed += p;
        failed += f;
    }
    let _ = writeln!(table, "{passed} passed, {failed} failed, {} suites", suites.len());
    print!("{table}");
    Ok(if failed == 0 { Done::Clean } else { Done::Findings })
}

/// One suite: its rows go to `table`; returns (passed, failed).
fn run_suite(path: &Path, table: &mut String) -> Result<(usize, usize), CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::Input(format!("{}: cannot read: {e}", path.display())))?;
    let suite: Suite =
        serde_yaml_ng::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let at = |p: &Option<PathBuf>| p.as_ref().map(|p| dir.join(p));
    let flags = PolicyFlags {
        policy: at(&suite.policy),
        time_slicing: at(&suite.time_slicing),
    };
    let effective = flags.load_effective(at(&suite.cluster_state).as_deref())?;
    let name = suite.name.clone().unwrap_or_else(|| path.display().to_string());
    let paths: Vec<PathBuf> = suite.manifests.iter().map(|m| dir.join(m)).collect();
    let found = discover(&paths, &[]);
    if let Some(e) = found.errors.first() {
        return Err(CliError::Input(format!("{}: {e}", path.display())));
    }
    let opts = CheckOptions {
        namespace: &suite.namespace,
        skip_kinds: &[],
        strict: false,
        fix: false,
    };
    let mut reports = Vec::new();
    for file in found
        .files
        .iter()
        .filter(|f| f.file_name().is_none_or(|n| n != SUITE_FILE))
    {
        let source = input::read_file(file).map_err(|e| CliError::Input(e.to_string()))?;
        let checked = check_source(&effective, &source, opts).map_err(|e| CliError::Input(e.to_string()))?;
        reports.extend(checked.reports);
    }
    let (mut passed, mut failed) = (0, 0);
    let mut used = vec![false; reports.len()];
    for want in &suite.results {
        let hits: Vec<usize> = (0..reports.len()).filter(|&i| want.matches(&reports[i])).collect();
        let expected = describe(want.decision, want.codes.as_ref());
        if hits.is_empty() {
            failed += 1;
            let object = format!(
                "{}/{}",
                want.kind.as_deref().unwrap_or("*"),
                want.name.as_deref().unwrap_or("*")
            );
            let _ = writeln!(
                table,
                "{name} | {} | {object} | {expected} | (no such object) | FAIL",
                want.file
            );
            continue;
        }
        for i in hits {
            used[i] = true;
            let r = &reports[i];
            let codes: BTreeSet<String> = r
                .violations
                .iter()
                .map(|v| v.code)
                .chain(r.fixes.iter().map(|f| f.code))
                .map(String::from)
                .collect();
            let ok = r.decision == want.decision && want.codes.as_ref().is_none_or(|c| *c == codes);
            let got = describe(r.decision, Some(&codes));
            let verdict = if ok { "ok" } else { "FAIL" };
            if ok {
                passed += 1;
            } else {
                failed += 1;
            }
            let _ = writeln!(
                table,
                "{name} | {} | {} | {expected} | {got} | {verdict}",
                want.file,
                r.object()
            );
        }
    }
    for (r, _) in reports.iter().zip(&used).filter(|(_, used)| !**used) {
        let got = describe(r.decision, None);
        let _ = writeln!(
            table,
            "{name} | {} | {} | (no expectation) | {got} | -",
            r.file,
            r.object()
        );
    }
    Ok((passed, failed))
}

fn describe(decision: Outcome, codes: Option<&BTreeSet<String>>) -> String {
    let word = decision.as_str();
    match codes {
        Some(c) if !c.is_empty() => format!("{word} [{}]", c.iter().cloned().collect::<Vec<_>>().join(",")),
        _ => word.to_string(),
    }
}
