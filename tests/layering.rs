//! The layers of `src/` point one way: each module uses only the modules before it.
//!
//! decision → k8s, certs → policy → cluster → engine → admission, offline, generate → server →
//! cli.
//! A module may use itself and any earlier layer, never a later one or a sibling of its own
//! layer. Only the binary (`src/main.rs`) uses `cli`.

use std::fs;
use std::path::{Path, PathBuf};

/// Every top-level module of `src/`, with its layer.
const LAYERS: &[(&str, u8)] = &[
    ("decision", 0),
    ("k8s", 1),
    ("certs", 1),
    ("policy", 2),
    ("cluster", 3),
    ("engine", 4),
    ("generate", 5),
    ("admission", 5),
    ("offline", 5),
    ("server", 6),
    ("cli", 7),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/engine/rules/gpu.rs` → `engine`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The modules a file names through `crate::<module>`, with the line, outside comments.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((i + 1, name));
            }
            rest = after;
        }
    }
    out
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        assert!(
            layer(&module).is_some(),
            "{}: module `{module}` is not in LAYERS",
            file.display()
        );
    }
}

#[test]
fn no_arrow_points_back_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let text = fs::read_to_string(file).unwrap();
        for (line, used) in crate_paths(&text) {
            if module == "main" || used == module {
                continue;
            }
            let ok = match (layer(&module), layer(&used)) {
                (_, None) => false,
                // lib.rs declares modules and re-exports the embedder's surface, never cli.
                (None, Some(_)) => used != "cli",
                (Some(from), Some(to)) => to < from,
            };
            if !ok {
                wrong.push(format!("{}:{line}: `{module}` uses `crate::{used}`", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows back up (or across a layer):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_itself_sees_a_back_arrow() {
    // A guard against a scanner that finds nothing: this line would be an arrow back up.
    let paths = crate_paths("use crate::engine::Action; // crate::cli in a comment");
    assert_eq!(paths, vec![(1, "engine".to_string())]);
}
