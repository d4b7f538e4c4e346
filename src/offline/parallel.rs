//! A large file checked on every core: its text is cut at `---` lines into one chunk per
//! thread, each chunk is parsed, evaluated and located on its own, and the results are put back
//! in the file's document and line numbers. Documents are independent, so a chunk's result is
//! the whole file's result for those documents; the fixed text is the fixed chunks in order.

use super::{CheckOptions, FileCheck, Report, check_source};
use crate::engine::Effective;
use crate::k8s::manifests::{InputError, SourceFile};
use crate::k8s::yaml_pos::{self, Span};

/// Below this many documents a file is checked on one thread.
const MIN_DOCUMENTS_PER_CHUNK: usize = 512;

/// Checks the text of `file` (on up to `threads` threads).
pub fn check_text(
    effective: &Effective,
    file: &str,
    text: &str,
    opts: CheckOptions<'_>,
    threads: usize,
) -> Result<FileCheck, InputError> {
    let spans = yaml_pos::split(text).unwrap_or_default();
    let chunks = threads.min(spans.len() / MIN_DOCUMENTS_PER_CHUNK).max(1);
    if chunks > 1
        && let Some(result) = in_chunks(effective, file, text, opts, &spans, chunks)
    {
        return result;
    }
    let source = SourceFile::parse(file, text.to_string())?;
    check_source(effective, &source, opts)
}

/// One chunk: its text, its first document's index and the line it starts on.
struct Chunk<'a> {
    text: &'a str,
    documents: usize,
    first_document: usize,
    first_line: usize,
}

/// `None` when a chunk does not parse into the documents the line scan found (then the file is
/// checked in one piece, where errors get their exact place).
fn in_chunks(
    effective: &Effective,
    file: &str,
    text: &str,
    opts: CheckOptions<'_>,
    spans: &[Span],
    chunks: usize,
) -> Option<Result<FileCheck, InputError>> {
    let per = spans.len().div_ceil(chunks);
    let parts: Vec<Chunk<'_>> = spans
        .chunks(per)
        .enumerate()
        .map(|(k, group)| {
            let start = if k == 0 { 0 } else { group[0].start };
            let end = group.last().map_or(text.len(), |s| s.end);
            Chunk {
                text: &text[start..end],
                documents: group.len(),
                first_document: k * per,
                first_line: if k == 0 { 1 } else { group[0].line },
            }
        })
        .collect();
    let results: Vec<Option<Result<FileCheck, InputError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|chunk| scope.spawn(move || check_chunk(effective, file, chunk, opts)))
            .collect();
        handles.into_iter().map(|h| h.join().ok().flatten()).collect()
    });
    let mut out = FileCheck::default();
    let mut fixed = String::new();
    let mut fix_failed: Option<String> = None;
    for (result, chunk) in results.into_iter().zip(&parts) {
        let part = match result? {
            Ok(part) => part,
            Err(e) => return Some(Err(e)),
        };
        out.reports.extend(part.reports);
        out.errors.extend(part.errors);
        out.skips += part.skips;
        match part.fix {
            Some(Ok(t)) => fixed.push_str(&t),
            Some(Err(reason)) => fix_failed = fix_failed.or(Some(reason)),
            None => fixed.push_str(chunk.text),
        }
    }
    if opts.fix
        && out
            .reports
            .iter()
            .any(|r| r.decision == crate::decision::Outcome::Mutated)
    {
        out.fix = Some(match fix_failed {
            Some(reason) => Err(reason),
            None => Ok(fixed),
        });
    }
    Some(Ok(out))
}

/// Checks one chunk and moves its numbers into the file's; `None` if it does not hold the
/// documents expected.
fn check_chunk(
    effective: &Effective,
    file: &str,
    chunk: &Chunk<'_>,
    opts: CheckOptions<'_>,
) -> Option<Result<FileCheck, InputError>> {
    let source = match SourceFile::parse(file, chunk.text.to_string()) {
        Ok(s) if s.documents.len() == chunk.documents => s,
        _ => return None,
    };
    let mut part = match check_source(effective, &source, opts) {
        Ok(part) => part,
        Err(e) => return Some(Err(shift_error(e, chunk))),
    };
    for r in &mut part.reports {
        shift_report(r, chunk);
    }
    part.errors = part.errors.into_iter().map(|e| shift_error(e, chunk)).collect();
    Some(Ok(part))
}

fn shift_report(r: &mut Report, chunk: &Chunk<'_>) {
    let lines = chunk.first_line - 1;
    r.document += chunk.first_document;
    let shift = |l: &mut Option<usize>| {
        if let Some(l) = l {
            *l += lines;
        }
    };
    shift(&mut r.line);
    r.violations.iter_mut().for_each(|v| shift(&mut v.line));
    r.fixes.iter_mut().for_each(|f| shift(&mut f.line));
}

fn shift_error(mut e: InputError, chunk: &Chunk<'_>) -> InputError {
    if let Some(d) = &mut e.document {
        *d += chunk.first_document;
    }
    if let Some(l) = &mut e.line {
        *l += chunk.first_line - 1;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;

    #[test]
    fn chunks_give_the_results_of_one_piece() {
        let effective = Effective::new(Policy::embedded_default().unwrap());
        let pod = |i: usize| {
            format!(
                "---\n# pod {i}\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  containers:\n    - name: c\n      image: i\n      resources:\n        limits:\n          nvidia.com/gpu: {}\n  volumes:\n    - name: h\n      hostPath:\n        path: {}\n",
                i % 3,
                if i.is_multiple_of(5) { "/" } else { "/dev/bus/usb" }
            )
        };
        let text: String = (0..2000).map(pod).collect();
        let opts = CheckOptions {
            namespace: "ai",
            skip_kinds: &[],
            strict: false,
            fix: true,
        };
        let one = check_text(&effective, "f.yaml", &text, opts, 1).unwrap();
        let four = check_text(&effective, "f.yaml", &text, opts, 4).unwrap();
        let key = |r: &Report| {
            let lines: Vec<_> = r
                .violations
                .iter()
                .map(|v| v.line)
                .chain(r.fixes.iter().map(|f| f.line))
                .collect();
            (r.document, r.line, r.name.clone(), r.decision, lines)
        };
        assert_eq!(one.reports.len(), 2000);
        assert_eq!(
            one.reports.iter().map(key).collect::<Vec<_>>(),
            four.reports.iter().map(key).collect::<Vec<_>>()
        );
        assert_eq!(one.fix, four.fix, "the same fixed text");
        assert!(one.fix.unwrap().is_ok());
        assert_eq!(
            four.reports[1999].line,
            Some(2000 * 17 - 14),
            "the last pod's apiVersion line"
        );
    }
}
