//! `check --fix`: a file's text with the fixes inserted, and nothing else changed.
//!
//! The insertions come from [`crate::k8s::yaml_edit`]. Before the text is handed back, it is read
//! again and compared with what the patches give: an edit that would not produce exactly the
//! fixed objects (and leave every other document as it was) is refused, never written.

use serde_json::Value;

use super::Report;
use crate::decision::Outcome;
use crate::k8s::manifests::{SourceFile, parse_documents};
use crate::k8s::yaml_edit;
use crate::k8s::yaml_pos::DocIndex;

/// The fixed text of `source`, or why it cannot be edited safely (the file is then left as it
/// is). `docs` holds the full position index of each document to edit.
pub fn fix_text(source: &SourceFile, docs: &[Option<DocIndex>], reports: &[Report]) -> Result<String, String> {
    let mut insertions = Vec::new();
    let mut expected = source.documents.clone();
    for r in reports.iter().filter(|r| r.decision == Outcome::Mutated) {
        let at = |what: &str| match r.item {
            Some(i) => format!("document {} items[{i}] ({what})", r.document),
            None => format!("document {} ({what})", r.document),
        };
        let doc = docs
            .get(r.document)
            .and_then(Option::as_ref)
            .ok_or_else(|| at("its YAML positions are not known"))?;
        let base = r.item.map(|i| format!("/items/{i}")).unwrap_or_default();
        let found = yaml_edit::insertions(&source.text, doc, &base, &r.patch.0).map_err(|e| at(&e))?;
        insertions.extend(found);
        let target = expected
            .get_mut(r.document)
            .and_then(Option::as_mut)
            .and_then(|d| match r.item {
                None => Some(d),
                Some(i) => d.get_mut("items").and_then(|items| items.get_mut(i)),
            })
            .ok_or_else(|| at("not found"))?;
        json_patch::patch(target, &r.patch).map_err(|e| at(&format!("the fix does not apply: {e}")))?;
    }
    let text = yaml_edit::apply(&source.text, insertions);
    let reread = parse_documents(&text).map_err(|e| format!("the edited text would not parse: {}", e.message))?;
    if !same_documents(&reread, &expected) {
        return Err("the edited text would not give the fixed objects".into());
    }
    Ok(text)
}

fn same_documents(a: &[Option<Value>], b: &[Option<Value>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::super::{CheckOptions, check_source};
    use crate::engine::Effective;
    use crate::k8s::manifests::SourceFile;
    use crate::policy::Policy;

    const OPTS: CheckOptions<'static> = CheckOptions {
        namespace: "default",
        skip_kinds: &[],
        strict: false,
        fix: true,
    };

    fn fixed(text: &str) -> Option<Result<String, String>> {
        let effective = Effective::new(Policy::embedded_default().unwrap());
        let source = SourceFile::parse("t.yaml", text.to_string()).unwrap();
        check_source(&effective, &source, OPTS).unwrap().fix
    }

    const POD: &str = "# a GPU pod\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p   # its name\nspec:\n  containers:\n    - name: c\n      image: \"cuda\"\n      resources:\n        limits:\n          nvidia.com/gpu: 1\n";

    #[test]
    fn a_pod_gets_only_added_lines_and_checks_clean_again() {
        let out = fixed(POD).expect("something to fix").expect("editable");
        let old: Vec<&str> = POD.lines().collect();
        let new: Vec<&str> = out.lines().collect();
        // Every original line is still there, in order.
        let mut it = new.iter();
        for line in &old {
            assert!(it.any(|l| l == line), "`{line}` kept in order:\n{out}");
        }
        assert!(out.contains("  priorityClassName: "), "{out}");
        assert!(out.contains("  nodeSelector:\n    node-type: gpu-worker\n"), "{out}");
        assert!(fixed(&out).is_none(), "a fixed file has nothing left to fix:\n{out}");
    }

    #[test]
    fn flow_style_is_left_unchanged_with_the_reason() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 1}}}]}\n";
        let err = fixed(text).expect("something to fix").unwrap_err();
        assert!(err.contains("flow style"), "{err}");
    }
}
