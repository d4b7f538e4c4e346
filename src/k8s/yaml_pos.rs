//! Where things are in a YAML text: the line of each document's object, of each `List` item,
//! and (on demand) of every node, by JSON pointer.
//!
//! The values themselves come from `serde_yaml_ng` (see [`super::manifests`]); this index comes
//! from `yaml-rust2`'s event parser, whose marks carry byte offsets, lines and columns. It serves
//! two things: line numbers in `check`'s reports, and `check --fix --write`, which inserts the
//! added fields into the original text (see [`super::yaml_edit`]).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

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

/// Indexes every document of `text`. With `full`, every node is recorded by pointer; without,
/// only the document and `items` lines (cheap enough for every file `check` reads).
///
/// libyaml (behind `serde_yaml_ng`, which reads the values) accepts flow continuation lines
/// indented no deeper than their block (`args: [` … `]` at the key's column, as real manifests
/// have it); yaml-rust2 refuses them. Such a line is indented further in a copy of the text,
/// and every offset is mapped back, so the index still describes the original text.
pub fn index(text: &str, full: bool) -> Result<Vec<DocIndex>, String> {
    let mut copy = std::borrow::Cow::Borrowed(text);
    // (offset in the copy where spaces were added, how many), in increasing offsets.
    let mut padded: Vec<(usize, usize)> = Vec::new();
    for _ in 0..64 {
        match index_once(&copy, full) {
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

fn index_once(text: &str, full: bool) -> Result<Vec<DocIndex>, yaml_rust2::ScanError> {
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
                walk.event(text, other, pos, full, doc);
            }
        }
    }
    Ok(docs)
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

#[derive(Debug)]
enum Frame {
    Map { key: Option<(String, usize)> },
    Seq { index: usize },
}

/// The walk through one document's events.
///
/// yaml-rust2 marks a block mapping's or sequence's start event after its first token, so a
/// collection's start is taken from the first scalar inside it; a flow collection's start mark is
/// its `{` or `[`. The end mark of a collection is the start of the token after it.
#[derive(Debug, Default)]
struct Walk {
    /// Open collections: the frame, the pointer of its node, whether its start is known.
    frames: Vec<(Frame, String, bool)>,
}

impl Walk {
    fn event(&mut self, text: &str, event: Event, pos: Pos, full: bool, doc: &mut DocIndex) {
        match event {
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some((_, pointer, _)) = self.frames.pop()
                    && let Some(node) = doc.nodes.get_mut(&pointer)
                {
                    node.end = pos;
                }
                self.advance();
            }
            Event::Scalar(value, _, anchor, _) => {
                doc.has_anchors |= anchor != 0;
                self.started(pos, full, doc);
                if let Some((Frame::Map { key }, ..)) = self.frames.last_mut()
                    && key.is_none()
                {
                    *key = Some((value, pos.line));
                    return;
                }
                self.node(NodeKind::Scalar, pos, false, full, doc);
                self.advance();
            }
            Event::Alias(_) => {
                doc.has_anchors = true;
                self.started(pos, full, doc);
                if let Some((Frame::Map { key }, ..)) = self.frames.last_mut()
                    && key.is_none()
                {
                    *key = Some((String::new(), pos.line));
                    return;
                }
                self.advance();
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                doc.has_anchors |= anchor != 0;
                let is_map = matches!(event, Event::MappingStart(..));
                if let Some((Frame::Map { key: None }, ..)) = self.frames.last() {
                    // A mapping or sequence as a key.
                    doc.has_anchors = true;
                }
                let flow = matches!(text.as_bytes().get(pos.offset), Some(b'{' | b'['));
                if flow {
                    self.started(pos, full, doc);
                }
                let kind = if is_map { NodeKind::Map } else { NodeKind::Seq };
                let pointer = self.node(kind, pos, flow, full, doc);
                let frame = if is_map {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { index: 0 }
                };
                self.frames.push((frame, pointer, flow));
            }
            _ => {}
        }
    }

    /// The first token inside every open collection whose start is not known yet.
    fn started(&mut self, pos: Pos, full: bool, doc: &mut DocIndex) {
        for (_, pointer, started) in self.frames.iter_mut().rev() {
            if *started {
                break;
            }
            *started = true;
            if pointer.is_empty() {
                doc.line = pos.line;
            } else if let Some(line) = items_index(pointer).and_then(|i| doc.item_lines.get_mut(i)) {
                *line = pos.line;
            }
            if full && let Some(node) = doc.nodes.get_mut(pointer.as_str()) {
                node.start = pos;
            }
        }
    }

    /// Records a node starting at `pos` under the current frame; returns its pointer.
    fn node(&mut self, kind: NodeKind, pos: Pos, flow: bool, full: bool, doc: &mut DocIndex) -> String {
        let (pointer, key_line) = match self.frames.last() {
            None => (String::new(), None),
            Some((Frame::Map { key }, parent, _)) => {
                let (k, line) = key.as_ref().map(|(k, l)| (k.as_str(), Some(*l))).unwrap_or(("", None));
                (format!("{parent}/{}", escape_token(k)), line)
            }
            Some((Frame::Seq { index }, parent, _)) => (format!("{parent}/{index}"), None),
        };
        if self.frames.is_empty() {
            doc.line = pos.line;
        }
        if items_index(&pointer).is_some() {
            doc.item_lines.push(pos.line);
        }
        if full {
            let node = Node {
                kind,
                start: pos,
                end: pos,
                flow,
                key_line,
            };
            doc.nodes.insert(pointer.clone(), node);
        }
        pointer
    }

    /// After a value: a map waits for its next key, a sequence counts the item.
    fn advance(&mut self) {
        match self.frames.last_mut() {
            Some((Frame::Map { key }, ..)) => *key = None,
            Some((Frame::Seq { index }, ..)) => *index += 1,
            None => {}
        }
    }
}

/// `i` for the pointer `/items/i` of a List's item.
fn items_index(pointer: &str) -> Option<usize> {
    pointer.strip_prefix("/items/").and_then(|i| i.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# a comment\napiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: c\n    image: x\n    resources:\n      limits: {nvidia.com/gpu: 1}\n---\n\n---\nkind: List\nitems:\n- kind: A\n- kind: B\n";

    #[test]
    fn documents_items_and_nodes_have_their_lines() {
        let docs = index(TEXT, true).unwrap();
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
        let docs = index("a: &x 1\nb: *x\n", true).unwrap();
        assert!(docs[0].has_anchors);
        assert!(index("a: [1, 2\n", true).is_err());
    }

    #[test]
    fn flow_lines_indented_like_their_key_are_indexed_in_the_original_offsets() {
        let text = "spec:\n  args: [\n    \"a\"\n  ]\n  env:\n  - name: x\n";
        let docs = index(text, true).unwrap();
        let env = docs[0].nodes["/spec/env"];
        assert_eq!(&text[env.start.offset..env.start.offset + 4], "name");
        assert_eq!(docs[0].line_of("/spec/env/0/name"), Some(6));
    }

    #[test]
    fn offsets_are_bytes_after_multibyte_characters() {
        let text = "a: 1 # （注）\nb:\n  c: 2\n";
        let docs = index(text, true).unwrap();
        let c = docs[0].nodes["/b/c"];
        assert_eq!(&text[c.start.offset..c.start.offset + 1], "2");
        assert_eq!(docs[0].nodes["/b"].end.offset, text.len());
    }

    #[test]
    fn the_cheap_index_has_no_nodes_but_the_lines() {
        let docs = index(TEXT, false).unwrap();
        assert!(docs[0].nodes.is_empty());
        assert_eq!(docs[2].item_lines, vec![17, 18]);
    }
}
