//! Where each document's objects and findings are: the position index of the documents that
//! need one, and no more.
//!
//! Every document gets its line from a scan of its `---` lines ([`yaml_pos::split`]); only a
//! document with findings is parsed for positions, and only the fields its findings name are
//! recorded (all of its nodes when `--fix` edits it). When the line scan is not sure, the whole
//! text is indexed once instead.

use std::collections::HashSet;

use super::Report;
use crate::decision::Outcome;
use crate::k8s::manifests::SourceFile;
use crate::k8s::yaml_pos::{self, DocIndex, Record};

/// Per document of `source`: its index (`None` where it could not be built).
pub(super) fn positions(source: &SourceFile, reports: &[Report], fix: bool) -> Vec<Option<DocIndex>> {
    let n = source.documents.len();
    let Some(spans) = yaml_pos::split(&source.text).filter(|s| s.len() == n) else {
        let full = reports.iter().any(|r| !r.violations.is_empty() || !r.fixes.is_empty());
        let record = if full { Record::All } else { Record::Lines };
        return match yaml_pos::index(&source.text, record) {
            Ok(docs) if docs.len() == n => docs.into_iter().map(Some).collect(),
            _ => vec![None; n],
        };
    };
    let mut wanted: Vec<(bool, bool, HashSet<String>)> = vec![(false, false, HashSet::new()); n];
    for r in reports {
        let (all, items, fields) = &mut wanted[r.document];
        *all |= fix && r.decision == Outcome::Mutated;
        *items |= r.item.is_some();
        let base = r.item.map(|i| format!("/items/{i}")).unwrap_or_default();
        let paths = r
            .violations
            .iter()
            .map(|v| v.path.as_str())
            .chain(r.fixes.iter().map(|f| f.path.as_str()));
        for path in paths {
            yaml_pos::with_ancestors(&format!("{base}{}", yaml_pos::pointer_of_path(path)), fields);
        }
    }
    spans
        .into_iter()
        .zip(wanted)
        .map(|(span, (all, items, fields))| {
            let record = if all {
                Record::All
            } else if !fields.is_empty() {
                Record::Only(&fields)
            } else if items {
                Record::Lines
            } else {
                // Nothing to look up: the scan's line is the object's.
                return span.content_line.map(|line| DocIndex {
                    line,
                    ..DocIndex::default()
                });
            };
            yaml_pos::index_span(&source.text, span, record).ok()
        })
        .collect()
}
