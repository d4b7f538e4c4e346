//! The open corpus (`../shared/corpus/*.yaml`) through the webhook over TLS: every object, wrapped
//! as a CREATE review (namespace: `metadata.namespace` or `default`), gets the decision that
//! `../shared/corpus/README.md`'s table gives for its file.
//!
//! - Pods go through `/mutate`, the patch is applied, and the result through `/validate` (as the
//!   API server chains them). "mutated" = a patch came back.
//! - Controllers go through `/validate` (and `/mutate`, which must not patch them by default).
//!   "mutated" = allowed with warnings about what their pods will get.
//! - A file is "denied" if any object is, else "mutated" if any object is, else "allowed".

mod common;

use std::collections::BTreeMap;

use common::*;
use gpu_admission_testkit::review::apply_patch;
use gpu_admission_testkit::{Review, assert_none_failed};
use serde::Deserialize as _;
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus");

/// `file -> decision` from the README's table.
fn expected_decisions() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(format!("{CORPUS}/README.md")).expect("corpus README");
    let mut out = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 5 && cells[1].ends_with(".yaml") {
            out.insert(cells[1].to_string(), cells[3].to_string());
        }
    }
    out
}

fn documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| v.is_object())
        .collect()
}

async fn post(client: &Client, path: &str, body: &Value) -> Value {
    let resp = client.post(path, body.to_string()).await.expect("request");
    assert_eq!(resp.status, 200, "{path}: {}", String::from_utf8_lossy(&resp.body));
    let json = resp.json();
    assert_eq!(json["response"]["uid"], body["request"]["uid"]);
    json
}

/// The decision for one object, and a description for failure messages.
async fn decide(client: &Client, uid: &str, object: &Value) -> (&'static str, String) {
    let kind = object["kind"].as_str().unwrap_or_default();
    let body = Review::create(object).uid(uid).build();
    if kind == "Pod" {
        let mutated = post(client, "/mutate", &body).await;
        assert_eq!(mutated["response"]["allowed"], true, "/mutate never denies: {mutated}");
        let has_patch = mutated["response"].get("patch").is_some();
        let object = if has_patch {
            apply_patch(&mutated["response"], object)
        } else {
            object.clone()
        };
        let validated = post(client, "/validate", &Review::create(&object).uid(uid).build()).await;
        let r = &validated["response"];
        if r["allowed"] == false {
            return ("denied", r["status"]["message"].to_string());
        }
        let decision = if has_patch { "mutated" } else { "allowed" };
        return (decision, format!("patch: {}", mutated["response"]["patch"]));
    }
    let validated = post(client, "/validate", &body).await;
    let r = &validated["response"];
    let mutated = post(client, "/mutate", &body).await;
    assert!(
        mutated["response"].get("patch").is_none(),
        "{kind} template patched: {mutated}"
    );
    if r["allowed"] == false {
        return ("denied", r["status"]["message"].to_string());
    }
    let warnings = r["warnings"].as_array().map(Vec::len).unwrap_or(0);
    if warnings > 0 {
        ("mutated", r["warnings"].to_string())
    } else {
        ("allowed", String::new())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_file_gets_its_documented_decision() {
    let expected = expected_decisions();
    assert!(expected.len() >= 20, "README table not found: {expected:?}");
    let (server, client) = serve(&Pki::new(), |_| {}).await;

    let mut failures = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), expected.len(), "every corpus file is in the README table");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let want = expected
            .get(&name)
            .unwrap_or_else(|| panic!("{name} not in the README table"));
        let mut got = "allowed";
        let mut details = Vec::new();
        for (i, object) in documents(path).iter().enumerate() {
            let (decision, detail) = decide(&client, &format!("{name}-{i}"), object).await;
            details.push(format!(
                "{} {}: {decision} {detail}",
                object["kind"], object["metadata"]["name"]
            ));
            got = match (got, decision) {
                ("denied", _) | (_, "denied") => "denied",
                ("mutated", _) | (_, "mutated") => "mutated",
                _ => "allowed",
            };
        }
        if got != want {
            failures.push(format!(
                "{name}: expected {want}, got {got}\n    {}",
                details.join("\n    ")
            ));
        }
    }
    server.shutdown().await;
    assert_none_failed("corpus file(s)", &failures);
}
