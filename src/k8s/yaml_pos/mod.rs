//! Where things are in a YAML text: the line of each document's object, of each `List` item,
//! and (on demand) of every node, by JSON pointer.
//!
//! The values themselves come from `serde_yaml_ng` (see [`super::manifests`]); this index comes
//! from `yaml-rust2`'s event parser, whose marks carry byte offsets, lines and columns. It serves
//! two things: line numbers in `check`'s reports, and `check --fix --write`, which inserts the
//! added fields into the original text (see [`super::yaml_edit`]).

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

mod walk;

use walk::Walk;

/// Which nodes an index records (the document and `items` lines are always kept).
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// None: the cheap index every file gets.
    Lines,
    /// Every node (what `--fix` edits).
    All,
    /// Only these pointers (the fields a report names, and their ancestors).
    Only(&'a HashSet<String>),
}

/// What kind of node a position is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Map,
    Seq,
    Scalar,
}

/// One node of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    /// Where the node starts: its first token (a flow collection: its `{` or `[`).
    pub start: Pos,
    /// Where the next token after a map or sequence starts (for a scalar: its start). Offsets
    /// are bytes in the text given to [`index`].
    pub end: Pos,
    /// `{…}` or `[…]`.
    pub flow: bool,
    /// The line of its key, when the node is a mapping value.
    pub key_line: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub offset: usize,
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Pos {
            offset: m.index(),
            line: m.line(),
            col: m.col(),
        }
    }
}

/// The index of one document.
#[derive(Debug, Clone, Default)]
pub struct DocIndex {
    /// The line where the document's root node starts (1-based).
    pub line: usize,
    /// `items[i]`'s start lines when the root is a mapping with an `items` sequence.
    pub item_lines: Vec<usize>,
    /// Every node by JSON pointer (`""` is the root), when indexed in full.
    pub nodes: HashMap<String, Node>,
    /// Anchors, aliases or complex keys: text edits are not safe in this document.
    pub has_anchors: bool,
}

/// Indexes every document of `text`, recording the nodes `record` asks for.
///
/// libyaml (behind `serde_yaml_ng`, which reads the values) accepts flow continuation lines
/// indented no deeper than their block (`args: [` … `]` at the key's column, as real manifests
/// have it); yaml-rust2 refuses them. Such a line is indented further in a copy of the text,
/// and every offset is mapped back, so the index still describes the original text.
pub fn index(text: &str, record: Record<'_>) -> Result<Vec<DocIndex>, String> {
    let mut copy = std::borrow::Cow::Borrowed(text);
    // (offset in the copy where spaces were added, how many), in increasing offsets.
    let mut padded: Vec<(usize, usize)> = Vec::new();
    for _ in 0..64 {
        match index_once(&copy, record) {
            Ok(mut docs) => {
                if !copy.is_ascii() {
                    bytes_from_chars(&copy, &mut docs);
                }
                if !padded.is_empty() {
                    unpad(&mut docs, &padded);
                }
                return Ok(docs);
            }
            Err(e) if e.info() == "invalid indentation" || e.info() == "invalid indentation in flow construct" => {
                let line = e.marker().line();
                let line_start = line_offset(&copy, line).ok_or_else(|| e.to_string())?;
                let owned = copy.to_mut();
                owned.insert_str(line_start, "  ");
                let before = padded.iter().filter(|(at, _)| *at <= line_start).count();
                padded.insert(before, (line_start, 2));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("too many lines indented less than their flow collection".into())
}

/// Byte offset of the start of 1-based `line`.
fn line_offset(text: &str, line: usize) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n').nth(line - 2).map(|(i, _)| i + 1)
}

/// yaml-rust2's marks count characters: offsets become bytes again through the line and column.
fn bytes_from_chars(text: &str, docs: &mut [DocIndex]) {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let byte = |pos: Pos| {
        let Some(&start) = starts.get(pos.line.saturating_sub(1)) else {
            return text.len();
        };
        let line = &text[start..];
        start + line.char_indices().nth(pos.col).map_or(line.len(), |(i, _)| i)
    };
    for doc in docs {
        for node in doc.nodes.values_mut() {
            node.start.offset = byte(node.start);
            node.end.offset = byte(node.end);
        }
    }
}

/// Maps offsets in the padded copy back to the original text.
fn unpad(docs: &mut [DocIndex], padded: &[(usize, usize)]) {
    let back = |offset: usize| {
        let added: usize = padded.iter().filter(|(at, _)| *at < offset).map(|(_, n)| n).sum();
        offset - added
    };
    for doc in docs {
        for node in doc.nodes.values_mut() {
            node.start.offset = back(node.start.offset);
            node.end.offset = back(node.end.offset);
        }
    }
}

fn index_once(text: &str, record: Record<'_>) -> Result<Vec<DocIndex>, yaml_rust2::ScanError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs: Vec<DocIndex> = Vec::new();
    let mut walk = Walk::default();
    loop {
        let (event, mark) = parser.next_token()?;
        let pos = Pos::from(mark);
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart => {
                walk = Walk::default();
                docs.push(DocIndex::default());
            }
            other => {
                let Some(doc) = docs.last_mut() else { continue };
                walk.event(text, other, pos, record, doc);
            }
        }
    }
    Ok(docs)
}

/// A document's place in the text: from its `---` line (or the start of the text) to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    /// The line (1-based) at `start`.
    pub line: usize,
    /// The first line with content (not blank, not a comment): where the root node starts.
    pub content_line: Option<usize>,
}

/// The documents of `text` by their `---` lines, without parsing: a `---` at column 0 starts a
/// document wherever it is (YAML forbids it inside any scalar). `None` where a line scan cannot
/// be sure (`%` directives, `...` document ends): index the whole text instead.
pub fn split(text: &str) -> Option<Vec<Span>> {
    let mut spans: Vec<Span> = Vec::new();
    let mut current = Span {
        start: 0,
        end: text.len(),
        line: 1,
        content_line: None,
    };
    // The text before the first `---` is a document only if it has content.
    let mut marked = false;
    let mut at = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\n', '\r']);
        let n = i + 1;
        if is_marker(line, "---") {
            if marked || current.content_line.is_some() {
                current.end = at;
                spans.push(current);
            }
            marked = true;
            let rest = line[3..].trim();
            current = Span {
                start: at,
                end: text.len(),
                line: n,
                content_line: (!rest.is_empty() && !rest.starts_with('#')).then_some(n),
            };
        } else if line.starts_with('%') || is_marker(line, "...") {
            return None;
        } else if current.content_line.is_none() {
            let t = line.trim_start();
            if !t.is_empty() && !t.starts_with('#') {
                current.content_line = Some(n);
            }
        }
        at += raw.len();
    }
    if marked || current.content_line.is_some() {
        spans.push(current);
    }
    Some(spans)
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

/// Indexes the one document of `span`, with lines and offsets in the whole text.
pub fn index_span(text: &str, span: Span, record: Record<'_>) -> Result<DocIndex, String> {
    let mut docs = index(&text[span.start..span.end], record)?;
    if docs.len() != 1 {
        return Err(format!("{} documents where one was expected", docs.len()));
    }
    let mut doc = docs.remove(0);
    let lines = span.line - 1;
    let shift = |p: &mut Pos| {
        p.line += lines;
        p.offset += span.start;
    };
    doc.line += lines;
    for l in &mut doc.item_lines {
        *l += lines;
    }
    for node in doc.nodes.values_mut() {
        shift(&mut node.start);
        shift(&mut node.end);
        if let Some(k) = &mut node.key_line {
            *k += lines;
        }
    }
    Ok(doc)
}

/// `pointer` and every pointer above it (`/a/b` → `""`, `/a`, `/a/b`), for [`Record::Only`].
pub fn with_ancestors(pointer: &str, into: &mut HashSet<String>) {
    into.insert(pointer.to_string());
    let mut p = pointer;
    while let Some(i) = p.rfind('/') {
        p = &p[..i];
        into.insert(p.to_string());
    }
}

/// One JSON pointer token: `~` and `/` escaped.
pub fn escape_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Where a violation path (`spec.containers[0].resources.limits`) is, as a JSON pointer
/// (`/spec/containers/0/resources/limits`). Keys with dots cannot be told apart from nesting, so
/// the caller looks the pointer up and falls back to its longest known prefix.
pub fn pointer_of_path(path: &str) -> String {
    let mut out = String::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            out.push('/');
            out.push_str(&escape_token(&rest[..open]));
            rest = &rest[open..];
            while let Some(close) = rest.find(']') {
                out.push('/');
                out.push_str(&rest[1..close]);
                rest = &rest[close + 1..];
                if !rest.starts_with('[') {
                    break;
                }
            }
        } else {
            out.push('/');
            out.push_str(&escape_token(rest));
        }
    }
    out
}

// === impl DocIndex ===

impl DocIndex {
    /// The line of the node at `pointer`, or of its nearest indexed ancestor (the key's line
    /// for a mapping value).
    pub fn line_of(&self, pointer: &str) -> Option<usize> {
        let mut p = pointer;
        loop {
            if let Some(node) = self.nodes.get(p) {
                return Some(node.key_line.unwrap_or(node.start.line));
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: x\n    resources:\n      limits: {nvidia.com/gpu: 1}\n---\n\n---\nkind: List\nitems:\n- kind: A\n- kind: B\n";

    #[test]
    fn documents_items_and_nodes_have_their_lines() {
        let docs = index(TEXT, Record::All).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].line, 2);
        assert!(
            docs[1].nodes[""].kind == NodeKind::Scalar,
            "an empty document is a null"
        );
        assert_eq!(docs[2].line, 15);
        assert_eq!(docs[2].item_lines, vec![17, 18]);
        let limits = docs[0].nodes["/spec/containers/0/resources/limits"];
        assert!(limits.flow);
        assert_eq!(limits.key_line, Some(11));
        let containers = docs[0].nodes["/spec/containers"];
        assert_eq!(
            (containers.start.line, containers.start.col),
            (8, 4),
            "its first scalar"
        );
        assert!(!containers.flow);
        assert_eq!(docs[0].line_of("/spec/containers/0/image"), Some(9));
        assert_eq!(
            docs[0].line_of("/spec/containers/0/resources/limits/nvidia.com~1gpu"),
            Some(11)
        );
        assert_eq!(
            docs[0].line_of("/spec/nothing/here"),
            Some(6),
            "the nearest ancestor: spec"
        );
        assert!(!docs[0].has_anchors);
    }

    #[test]
    fn violation_paths_become_pointers() {
        assert_eq!(
            pointer_of_path("spec.template.spec.containers[1].resources.limits"),
            "/spec/template/spec/containers/1/resources/limits"
        );
        assert_eq!(
            pointer_of_path("spec.volumes[0].hostPath.path"),
            "/spec/volumes/0/hostPath/path"
        );
        assert_eq!(pointer_of_path("items[2][3]"), "/items/2/3");
    }

    #[test]
    fn anchors_and_bad_yaml_are_reported() {
        let docs = index("a: &x 1\nb: *x\n", Record::All).unwrap();
        assert!(docs[0].has_anchors);
        assert!(index("a: [1, 2\n", Record::All).is_err());
    }

    #[test]
    fn flow_lines_indented_like_their_key_are_indexed_in_the_original_offsets() {
        let text = "spec:\n  args: [\n    \"a\"\n  ]\n  env:\n  - name: x\n";
        let docs = index(text, Record::All).unwrap();
        let env = docs[0].nodes["/spec/env"];
        assert_eq!(&text[env.start.offset..env.start.offset + 4], "name");
        assert_eq!(docs[0].line_of("/spec/env/0/name"), Some(6));
    }

    #[test]
    fn offsets_are_bytes_after_multibyte_characters() {
        let text = "a: 1 # （注）\nb:\n  c: 2\n";
        let docs = index(text, Record::All).unwrap();
        let c = docs[0].nodes["/b/c"];
        assert_eq!(&text[c.start.offset..c.start.offset + 1], "2");
        assert_eq!(docs[0].nodes["/b"].end.offset, text.len());
    }

    #[test]
    fn spans_split_at_document_markers_and_index_in_the_whole_texts_lines() {
        let spans = split(TEXT).unwrap();
        assert_eq!(spans.len(), 3);
        assert_eq!((spans[0].line, spans[0].content_line), (1, Some(2)));
        assert_eq!((spans[1].line, spans[1].content_line), (12, None));
        assert_eq!((spans[2].line, spans[2].content_line), (14, Some(15)));
        let mut want = HashSet::new();
        with_ancestors("/items/1/kind", &mut want);
        let doc = index_span(TEXT, spans[2], Record::Only(&want)).unwrap();
        assert_eq!(doc.item_lines, vec![17, 18]);
        assert_eq!(doc.line_of("/items/1/kind"), Some(18));
        assert!(!doc.nodes.contains_key("/items/0/kind"), "only what was asked");
        let kind = doc.nodes["/items/1/kind"];
        assert_eq!(&TEXT[kind.start.offset..kind.start.offset + 1], "B");
        assert_eq!(split("%YAML 1.2\n---\na: 1\n"), None, "directives: not sure");
        assert_eq!(split("---\na: 1\n").unwrap().len(), 1);
        assert_eq!(split("a: |\n  ---x\n---\n").unwrap().len(), 2);
    }

    #[test]
    fn the_cheap_index_has_no_nodes_but_the_lines() {
        let docs = index(TEXT, Record::Lines).unwrap();
        assert!(docs[0].nodes.is_empty());
        assert_eq!(docs[2].item_lines, vec![17, 18]);
    }
}
