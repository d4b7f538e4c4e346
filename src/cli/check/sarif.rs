//! `check --output sarif`: SARIF 2.1.0, for code-scanning uploads. A rule per stable code, a
//! result per violation (`error` for deny, `warning` for warn) and per pending fix (`note`), input
//! errors as tool execution notifications.

use serde_json::{Value, json};

use super::CheckRun;
use crate::decision::Action;
use crate::engine::all_codes;

const SCHEMA: &str = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

pub fn render(run: &CheckRun) -> String {
    let codes = all_codes();
    let rules: Vec<Value> = codes
        .iter()
        .map(|code| {
            json!({
                "id": code,
                "name": code,
                "shortDescription": {"text": code},
                "helpUri": format!("{}#violation-codes", env!("CARGO_PKG_REPOSITORY")),
            })
        })
        .collect();
    let rule_index = |code: &str| codes.iter().position(|c| *c == code);
    let mut results = Vec::new();
    for r in &run.reports {
        let who = r.object();
        for v in &r.violations {
            let level = if v.action == Action::Warn { "warning" } else { "error" };
            let text = format!("{who}: {} ({})", v.message, v.path);
            results.push(result(
                v.code,
                rule_index(v.code),
                level,
                &text,
                &r.file,
                v.line.or(r.line),
            ));
        }
        for f in &r.fixes {
            let text = format!("{who}: {} gets {} (gpu-admission check --fix)", f.path, f.summary);
            results.push(result(
                f.code,
                rule_index(f.code),
                "note",
                &text,
                &r.file,
                f.line.or(r.line),
            ));
        }
    }
    let notifications: Vec<Value> = run
        .errors
        .iter()
        .map(|e| {
            let mut n = json!({"level": "error", "message": {"text": e.to_string()}});
            n["locations"] = json!([location(&e.file, e.line)]);
            n
        })
        .collect();
    let doc = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gpu-admission",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": run.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    let mut out =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\": \"cannot render: {e}\"}}"));
    out.push('\n');
    out
}

fn result(code: &str, index: Option<usize>, level: &str, text: &str, file: &str, line: Option<usize>) -> Value {
    let mut r = json!({
        "ruleId": code,
        "level": level,
        "message": {"text": text},
        "locations": [location(file, line)],
    });
    if let Some(i) = index {
        r["ruleIndex"] = json!(i);
    }
    r
}

fn location(file: &str, line: Option<usize>) -> Value {
    let mut physical = json!({"artifactLocation": {"uri": uri(file)}});
    if let Some(line) = line {
        physical["region"] = json!({"startLine": line});
    }
    json!({"physicalLocation": physical})
}

/// A relative URI reference for a path: the characters a path may hold that a URI may not,
/// percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_become_uri_references() {
        assert_eq!(super::uri("apps/my app/a#1.yaml"), "apps/my%20app/a%231.yaml");
    }
}
