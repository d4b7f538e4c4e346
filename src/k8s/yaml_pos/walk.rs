//! The walk through one document's events, keeping the JSON pointer of the current node in one
//! buffer (no allocation per node unless the node is recorded).
//!
//! yaml-rust2 marks a block mapping's or sequence's start event after its first token, so a
//! collection's start is taken from the first scalar inside it; a flow collection's start mark is
//! its `{` or `[`. The end mark of a collection is the start of the token after it.

use yaml_rust2::parser::Event;

use super::{DocIndex, Node, NodeKind, Pos, Record};

#[derive(Debug)]
enum Frame {
    Map { key: Option<(String, usize)> },
    Seq { index: usize },
}

/// An open collection: its frame, the length of the path buffer at its pointer, whether its
/// start is known.
#[derive(Debug)]
struct Open {
    frame: Frame,
    len: usize,
    started: bool,
    recorded: bool,
}

#[derive(Debug, Default)]
pub(super) struct Walk {
    open: Vec<Open>,
    path: String,
}

impl Walk {
    pub(super) fn event(&mut self, text: &str, event: Event, pos: Pos, record: Record<'_>, doc: &mut DocIndex) {
        match event {
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(open) = self.open.pop() {
                    self.path.truncate(open.len);
                    if open.recorded
                        && let Some(node) = doc.nodes.get_mut(self.path.as_str())
                    {
                        node.end = pos;
                    }
                    self.pop_token();
                }
                self.advance();
            }
            Event::Scalar(value, _, anchor, _) => {
                doc.has_anchors |= anchor != 0;
                self.started(pos, doc);
                if self.take_key(value, pos) {
                    return;
                }
                self.push_token();
                self.record(NodeKind::Scalar, pos, false, record, doc);
                self.pop_token();
                self.advance();
            }
            Event::Alias(_) => {
                doc.has_anchors = true;
                self.started(pos, doc);
                if !self.take_key(String::new(), pos) {
                    self.advance();
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                doc.has_anchors |= anchor != 0;
                let is_map = matches!(event, Event::MappingStart(..));
                if let Some(Open {
                    frame: Frame::Map { key: None },
                    ..
                }) = self.open.last()
                {
                    // A mapping or sequence as a key.
                    doc.has_anchors = true;
                }
                let flow = matches!(text.as_bytes().get(pos.offset), Some(b'{' | b'['));
                if flow {
                    self.started(pos, doc);
                }
                self.push_token();
                let kind = if is_map { NodeKind::Map } else { NodeKind::Seq };
                let recorded = self.record(kind, pos, flow, record, doc);
                let frame = if is_map {
                    Frame::Map { key: None }
                } else {
                    Frame::Seq { index: 0 }
                };
                self.open.push(Open {
                    frame,
                    len: self.path.len(),
                    started: flow,
                    recorded,
                });
            }
            _ => {}
        }
    }

    /// A scalar where a mapping waits for its key: the key.
    fn take_key(&mut self, value: String, pos: Pos) -> bool {
        if let Some(Open {
            frame: Frame::Map { key },
            ..
        }) = self.open.last_mut()
            && key.is_none()
        {
            *key = Some((value, pos.line));
            return true;
        }
        false
    }

    /// The first token inside every open collection whose start is not known yet.
    fn started(&mut self, pos: Pos, doc: &mut DocIndex) {
        for i in (0..self.open.len()).rev() {
            if self.open[i].started {
                break;
            }
            self.open[i].started = true;
            let pointer = &self.path[..self.open[i].len];
            if pointer.is_empty() {
                doc.line = pos.line;
            } else if let Some(line) = items_index(pointer).and_then(|n| doc.item_lines.get_mut(n)) {
                *line = pos.line;
            }
            if self.open[i].recorded
                && let Some(node) = doc.nodes.get_mut(pointer)
            {
                node.start = pos;
            }
        }
    }

    /// Appends the current node's token (its key, or its index) to the path.
    fn push_token(&mut self) {
        match self.open.last() {
            None => {}
            Some(Open {
                frame: Frame::Map { key },
                ..
            }) => {
                self.path.push('/');
                let k = key.as_ref().map(|(k, _)| k.as_str()).unwrap_or("");
                if k.contains(['~', '/']) {
                    self.path.push_str(&super::escape_token(k));
                } else {
                    self.path.push_str(k);
                }
            }
            Some(Open {
                frame: Frame::Seq { index },
                ..
            }) => {
                use std::fmt::Write as _;
                let _ = write!(self.path, "/{index}");
            }
        }
    }

    /// Removes the last token (back to the parent's pointer).
    fn pop_token(&mut self) {
        let parent = self.open.last().map_or(0, |o| o.len);
        self.path.truncate(parent);
    }

    /// Records the node at the current path if `record` wants it; the document and item lines
    /// are kept whatever `record` says.
    fn record(&mut self, kind: NodeKind, pos: Pos, flow: bool, record: Record<'_>, doc: &mut DocIndex) -> bool {
        let key_line = match self.open.last() {
            Some(Open {
                frame: Frame::Map { key },
                ..
            }) => key.as_ref().map(|(_, l)| *l),
            _ => None,
        };
        if self.open.is_empty() {
            doc.line = pos.line;
        }
        if items_index(&self.path).is_some() {
            doc.item_lines.push(pos.line);
        }
        let wanted = match record {
            Record::Lines => false,
            Record::All => true,
            Record::Only(set) => set.contains(self.path.as_str()),
        };
        if wanted {
            let node = Node {
                kind,
                start: pos,
                end: pos,
                flow,
                key_line,
            };
            doc.nodes.insert(self.path.clone(), node);
        }
        wanted
    }

    /// After a value: a map waits for its next key, a sequence counts the item.
    fn advance(&mut self) {
        match self.open.last_mut().map(|o| &mut o.frame) {
            Some(Frame::Map { key }) => *key = None,
            Some(Frame::Seq { index }) => *index += 1,
            None => {}
        }
    }
}

/// `i` for the pointer `/items/i` of a List's item.
fn items_index(pointer: &str) -> Option<usize> {
    pointer.strip_prefix("/items/").and_then(|i| i.parse().ok())
}
