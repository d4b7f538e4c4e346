//! Which files `check` reads: the paths given, with directories walked as a repository is.
//!
//! The walk is the `ignore` crate's (ripgrep's): `.git` is never entered, `.gitignore`,
//! `.ignore` and `.git/info/exclude` are honoured (also outside a git checkout), symbolic links
//! are followed with loop detection, and each file is read once however many links lead to it.
//! A Helm chart's `templates/` is left out (render it: `helm template … | check -`). A file
//! named on the command line is always read. Every file left out is counted by reason.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;
use serde::Serialize;

use super::manifests::{InputError, display, is_stdin};

/// Extensions read in directories.
const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// What the walk found.
#[derive(Debug, Default)]
pub struct Discovered {
    /// In a stable order: the paths as given, each directory's files sorted.
    pub files: Vec<PathBuf>,
    pub errors: Vec<InputError>,
    pub skipped: FileSkips,
}

/// Files left out, by reason.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct FileSkips {
    /// Matched by `.gitignore` (or `.ignore`, `.git/info/exclude`) or `--exclude`, or in a Helm
    /// chart's `templates/`.
    pub ignored: usize,
    /// Symbolic links that lead back into a directory being walked (named in `loops`).
    pub symlink_loops: usize,
    /// The same file reached again through a link.
    pub duplicates: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loops: Vec<String>,
}

/// Expands `paths` (files, directories, `-`), leaving out what `exclude` globs match (gitignore
/// syntax, relative to each directory given).
pub fn discover(paths: &[PathBuf], exclude: &[String]) -> Discovered {
    let mut out = Discovered::default();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for path in paths {
        if is_stdin(path) || !path.is_dir() {
            // Named explicitly: always read (a missing file is reported when it is read).
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            if is_stdin(path) || seen.insert(key) {
                out.files.push(path.clone());
            } else {
                out.skipped.duplicates += 1;
            }
            continue;
        }
        if let Err(e) = walk_dir(path, exclude, &mut seen, &mut out) {
            out.errors.push(e);
        }
    }
    out
}

fn walk_dir(
    dir: &Path,
    exclude: &[String],
    seen: &mut HashSet<PathBuf>,
    out: &mut Discovered,
) -> Result<(), InputError> {
    let mut overrides = OverrideBuilder::new(dir);
    for glob in exclude {
        overrides
            .add(&format!("!{glob}"))
            .map_err(|e| InputError::new(display(dir), None, format!("--exclude `{glob}`: {e}")))?;
    }
    let overrides = overrides
        .build()
        .map_err(|e| InputError::new(display(dir), None, format!("--exclude: {e}")))?;
    let mut kept: HashSet<PathBuf> = HashSet::new();
    let walker = WalkBuilder::new(dir)
        .standard_filters(true)
        .hidden(false)
        .require_git(false)
        .git_global(false)
        .follow_links(true)
        .overrides(overrides)
        .filter_entry(|e| e.file_name() != ".git" && !is_chart_templates(e.path()))
        .sort_by_file_path(Path::cmp)
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                if let Some(link) = loop_of(&e) {
                    out.skipped.symlink_loops += 1;
                    out.skipped.loops.push(link);
                } else {
                    out.errors
                        .push(InputError::new(display(dir), None, format!("cannot walk: {e}")));
                }
                continue;
            }
        };
        let path = entry.path();
        if !entry.file_type().is_some_and(|t| t.is_file()) || !has_extension(path) {
            continue;
        }
        kept.insert(path.to_path_buf());
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if seen.insert(key) {
            out.files.push(path.to_path_buf());
        } else {
            out.skipped.duplicates += 1;
        }
    }
    out.skipped.ignored += count_ignored(dir, &kept);
    Ok(())
}

/// Files of ours under `dir` that the filters left out: a walk without them (links not followed,
/// so no loop), minus what was kept.
fn count_ignored(dir: &Path, kept: &HashSet<PathBuf>) -> usize {
    WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build()
        .flatten()
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()) && has_extension(e.path()))
        .filter(|e| !kept.contains(e.path()))
        .count()
}

/// A Helm chart's `templates/` (beside its `Chart.yaml`): not manifests until rendered, so
/// `helm template … | gpu-admission check -` reads them.
fn is_chart_templates(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "templates") && path.parent().is_some_and(|p| p.join("Chart.yaml").is_file())
}

fn has_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// The link of a loop error, however it is wrapped.
fn loop_of(error: &ignore::Error) -> Option<String> {
    match error {
        ignore::Error::Loop { child, ancestor } => Some(format!("{} -> {}", child.display(), ancestor.display())),
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => loop_of(err),
        ignore::Error::Partial(errors) => errors.iter().find_map(loop_of),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_is_walked_once_with_its_ignores_counted() {
        let root = std::env::temp_dir().join(format!("ga-discover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for d in ["apps/a", ".git/objects", "build", "vendor", "chart/templates"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "apps/a/x.yaml",
            "apps/b.yml",
            ".git/objects/c.yaml",
            "build/d.yaml",
            "vendor/e.json",
            "README.md",
            "chart/Chart.yaml",
            "chart/templates/t.yaml",
        ] {
            std::fs::write(root.join(f), "a: 1\n").unwrap();
        }
        std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
        std::os::unix::fs::symlink("..", root.join("apps/a/up")).unwrap();
        std::os::unix::fs::symlink("x.yaml", root.join("apps/a/y.yaml")).unwrap();
        let found = discover(std::slice::from_ref(&root), &["vendor/**".to_string()]);
        let names: Vec<String> = found
            .files
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["apps/a/x.yaml", "apps/b.yml", "chart/Chart.yaml"]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        assert_eq!(
            found.skipped.ignored, 3,
            "build/d.yaml, vendor/e.json, the chart's template: {:?}",
            found.skipped
        );
        assert_eq!(found.skipped.symlink_loops, 1, "{:?}", found.skipped);
        assert_eq!(found.skipped.duplicates, 1, "y.yaml is x.yaml: {:?}", found.skipped);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
