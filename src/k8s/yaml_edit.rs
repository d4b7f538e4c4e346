//! `check --fix --write`: the patch's `add` operations inserted into the original YAML text as
//! new lines, so that key order, comments, quoting and indentation of every other line stay as
//! they were.
//!
//! Only what can be inserted safely is: a new key at the end of a block mapping, a new item at
//! the end of a block sequence. Anything else (flow style, anchors and aliases, a value that
//! would be replaced) is refused with the reason, and the caller leaves the file unchanged. The
//! caller also re-reads the edited text and compares it with the patched objects (see
//! `offline::fix_text`), so an edit that would not give the fixed object is never written.

use json_patch::PatchOperation;
use serde_json::Value;

use super::yaml_pos::{DocIndex, NodeKind};

/// One insertion into the text: at byte `offset`, the `text` (whole lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    pub offset: usize,
    /// How deep the collection it extends is: at one offset, a deeper collection's lines come
    /// first (its content ends before its parent's).
    pub depth: usize,
    pub text: String,
}

/// The insertions for `ops` (against the object at `base` in document `doc`: `""` or
/// `/items/i`), or why they cannot be made safely.
pub fn insertions(text: &str, doc: &DocIndex, base: &str, ops: &[PatchOperation]) -> Result<Vec<Insertion>, String> {
    if doc.has_anchors {
        return Err("the document uses anchors, aliases or complex keys".into());
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = Vec::new();
    for op in ops {
        let PatchOperation::Add(add) = op else {
            return Err(format!("only additions are written, not `{op}`"));
        };
        let pointer = format!("{base}{}", add.path);
        let (parent, token) = pointer.rsplit_once('/').ok_or("the patch targets the whole object")?;
        let node = doc
            .nodes
            .get(parent)
            .ok_or_else(|| format!("`{parent}` is not in the text (it is added by the same fix)"))?;
        if node.flow {
            return Err(format!("`{parent}` (line {}) is in flow style", node.start.line));
        }
        let offset = end_of_content(text, node.end.offset, node.start.col);
        let first_at_end = !out.iter().any(|i: &Insertion| i.offset == offset);
        let lead = if first_at_end && offset == text.len() && !text.is_empty() && !text.ends_with('\n') {
            newline
        } else {
            ""
        };
        let block = match node.kind {
            NodeKind::Map if doc.nodes.contains_key(&pointer) => {
                return Err(format!("`{}` exists and would be replaced", add.path));
            }
            NodeKind::Map => render_entry(&unescape(token), &add.value, node.start.col)?,
            NodeKind::Seq => {
                let len = doc.nodes.keys().filter(|k| is_child(k, parent)).count();
                if token != "-" && token != len.to_string() {
                    return Err(format!("`{}` inserts into the middle of a list", add.path));
                }
                let dash = dash_column(text, node.start.offset, node.start.col)
                    .ok_or_else(|| format!("the list at line {} has no `- ` before its first item", node.start.line))?;
                render_item(&add.value, dash)?
            }
            NodeKind::Scalar => return Err(format!("`{parent}` is a scalar")),
        };
        let block: String = block.lines().map(|l| format!("{l}{newline}")).collect();
        out.push(Insertion {
            offset,
            depth: parent.matches('/').count(),
            text: format!("{lead}{block}"),
        });
    }
    Ok(out)
}

/// Applies insertions (against the same original text) in one pass.
pub fn apply(text: &str, mut insertions: Vec<Insertion>) -> String {
    // Stable: insertions at one offset and depth keep their order.
    insertions.sort_by_key(|i| (i.offset, std::cmp::Reverse(i.depth)));
    let mut out = String::with_capacity(text.len() + insertions.iter().map(|i| i.text.len()).sum::<usize>());
    let mut at = 0;
    for i in insertions {
        out.push_str(&text[at..i.offset]);
        out.push_str(&i.text);
        at = i.offset;
    }
    out.push_str(&text[at..]);
    out
}

/// Where new lines go for a collection whose next token starts at `end`: the start of that
/// token's line, moved up over blank lines and over comments less indented than the
/// collection's entries (`col`), which belong to what follows.
fn end_of_content(text: &str, end: usize, col: usize) -> usize {
    let end = end.min(text.len());
    let mut at = if end == text.len() {
        end
    } else {
        text[..end].rfind('\n').map(|i| i + 1).unwrap_or(0)
    };
    while at > 0 {
        let prev_start = text[..at - 1].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = text[prev_start..at].trim_end_matches(['\n', '\r']);
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let belongs_after = trimmed.is_empty() || (trimmed.starts_with('#') && indent < col);
        if !belongs_after {
            break;
        }
        at = prev_start;
    }
    at
}

/// The column of the `-` before a sequence's first item (which starts at `offset`, column `col`).
fn dash_column(text: &str, offset: usize, col: usize) -> Option<usize> {
    let line_start = text[..offset.min(text.len())].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let before = text.get(line_start..offset)?;
    let trimmed = before.trim_end();
    let dash = trimmed.strip_suffix('-')?;
    let dash_col = dash.chars().count();
    (dash.trim().is_empty() || dash.trim_end().ends_with('-')).then_some(dash_col.min(col))
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn is_child(key: &str, parent: &str) -> bool {
    key.strip_prefix(parent)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.contains('/'))
}

/// `key: value` at `indent`, a collection value as an indented block below the key.
fn render_entry(key: &str, value: &Value, indent: usize) -> Result<String, String> {
    let pad = " ".repeat(indent);
    let key = scalar(&Value::String(key.to_string()))?;
    if is_scalar_like(value) {
        return Ok(format!("{pad}{key}: {}", scalar(value)?));
    }
    let body = yaml(value)?;
    let inner = " ".repeat(indent + 2);
    let lines: Vec<String> = body.lines().map(|l| format!("{inner}{l}")).collect();
    Ok(format!("{pad}{key}:\n{}", lines.join("\n")))
}

/// `- item` with its `-` at `dash`.
fn render_item(value: &Value, dash: usize) -> Result<String, String> {
    let pad = " ".repeat(dash);
    if is_scalar_like(value) {
        return Ok(format!("{pad}- {}", scalar(value)?));
    }
    let body = yaml(value)?;
    let inner = " ".repeat(dash + 2);
    let mut lines = body.lines();
    let first = lines.next().unwrap_or_default();
    let rest: Vec<String> = lines.map(|l| format!("{inner}{l}")).collect();
    let mut out = format!("{pad}- {first}");
    for l in rest {
        out.push('\n');
        out.push_str(&l);
    }
    Ok(out)
}

fn is_scalar_like(value: &Value) -> bool {
    match value {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => true,
    }
}

fn scalar(value: &Value) -> Result<String, String> {
    Ok(yaml(value)?.trim_end().to_string())
}

fn yaml(value: &Value) -> Result<String, String> {
    serde_yaml_ng::to_string(value).map_err(|e| format!("cannot render YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::yaml_pos::{Record, index};
    use serde_json::json;

    fn add(path: &str, value: Value) -> PatchOperation {
        serde_json::from_value(json!({"op": "add", "path": path, "value": value})).unwrap()
    }

    fn edit(text: &str, ops: &[PatchOperation]) -> Result<String, String> {
        let docs = index(text, Record::All)?;
        Ok(apply(text, insertions(text, &docs[0], "", ops)?))
    }

    #[test]
    fn keys_and_items_are_added_after_the_last_line_and_nothing_else_moves() {
        let text = "spec:\n  # keep me\n  containers:\n  - name: c   # trailing\n    image: 'x'\n  tolerations:\n    - key: a\n      operator: Exists\n\n# next\nstatus: {}\n";
        let out = edit(
            text,
            &[
                add("/spec/priorityClassName", json!("medium-priority")),
                add(
                    "/spec/tolerations/-",
                    json!({"key": "nvidia.com/gpu", "operator": "Exists"}),
                ),
                add("/spec/nodeSelector", json!({"node-type": "gpu-worker"})),
            ],
        )
        .unwrap();
        assert_eq!(
            out,
            "spec:\n  # keep me\n  containers:\n  - name: c   # trailing\n    image: 'x'\n  tolerations:\n    - key: a\n      operator: Exists\n    - key: nvidia.com/gpu\n      operator: Exists\n  priorityClassName: medium-priority\n  nodeSelector:\n    node-type: gpu-worker\n\n# next\nstatus: {}\n"
        );
    }

    #[test]
    fn a_key_goes_into_a_list_item_mapping_at_its_indentation() {
        let text = "containers:\n- name: c\n  image: x\n- name: d\n";
        let out = edit(
            text,
            &[add("/containers/0/env", json!([{"name": "V", "value": "void"}]))],
        )
        .unwrap();
        assert_eq!(
            out,
            "containers:\n- name: c\n  image: x\n  env:\n    - name: V\n      value: void\n- name: d\n"
        );
    }

    #[test]
    fn a_file_without_a_final_newline_gets_one_before_the_added_line() {
        assert_eq!(edit("a: 1", &[add("/b", json!(2))]).unwrap(), "a: 1\nb: 2\n");
        assert_eq!(
            edit("a: 1", &[add("/b", json!(2)), add("/c", json!(3))]).unwrap(),
            "a: 1\nb: 2\nc: 3\n"
        );
    }

    #[test]
    fn unsafe_edits_are_refused_with_the_reason() {
        let flow = edit("spec: {a: 1}\n", &[add("/spec/b", json!(1))]).unwrap_err();
        assert!(flow.contains("flow style"), "{flow}");
        let anchors = edit("a: &x {b: 1}\nc: *x\n", &[add("/d", json!(1))]).unwrap_err();
        assert!(anchors.contains("anchors"), "{anchors}");
        let replace = edit("a: 1\n", &[add("/a", json!(2))]).unwrap_err();
        assert!(replace.contains("replaced"), "{replace}");
        let missing = edit("a: 1\n", &[add("/b/c", json!(2))]).unwrap_err();
        assert!(missing.contains("not in the text"), "{missing}");
        let middle = edit("l:\n- 1\n- 2\n", &[add("/l/0", json!(0))]).unwrap_err();
        assert!(middle.contains("middle"), "{middle}");
    }

    #[test]
    fn crlf_files_keep_crlf() {
        assert_eq!(edit("a: 1\r\n", &[add("/b", json!("x"))]).unwrap(), "a: 1\r\nb: x\r\n");
    }
}
