//! Issue 15, item 3: malformed or contradictory objects inside a well-formed review are never
//! allowed by accident. Each case was once answered `allowed: true`.
//!
//! - A covered field of the wrong JSON type: the validating webhook denies `FIELD_INVALID` with
//!   the field's path, `check` denies the same object the same way, and the mutating webhook
//!   leaves it untouched (it never denies).
//! - `metadata.namespace` other than `request.namespace`: denied `NAMESPACE_MISMATCH`.
//! - A hostPath holding a NUL or control character: denied `HOSTPATH_INVALID`.
//! - A covered kind under another group or version: skipped, never evaluated as the real one.

use gpu_admission::engine::Effective;
use gpu_admission::k8s::manifests::ObjectRef;
use gpu_admission::{Policy, offline};
use gpu_admission_testkit::{Container, Pod, Review, Workload, assert_none_failed};
use serde_json::{Value, json};

use super::common::*;

fn gpus(n: u32) -> Value {
    Container::gpu(n).build()
}

fn root() -> Value {
    json!({"name": "root", "hostPath": {"path": "/"}})
}

/// A pod in `default` with `spec`.
fn pod(spec: Value) -> Value {
    Pod::with_spec(spec).ns("default").build()
}

struct Denial {
    name: &'static str,
    object: Value,
    /// `request.namespace` (the object's own when `None`).
    namespace: Option<&'static str>,
    code: &'static str,
    path: &'static str,
}

fn denial(name: &'static str, object: Value, code: &'static str, path: &'static str) -> Denial {
    Denial {
        name,
        object,
        namespace: None,
        code,
        path,
    }
}

fn mismatch(name: &'static str, object_ns: &str, spec: Value) -> Denial {
    Denial {
        name,
        object: Pod::with_spec(spec).ns(object_ns).build(),
        namespace: Some("default"),
        code: "NAMESPACE_MISMATCH",
        path: "metadata.namespace",
    }
}

fn denials() -> Vec<Denial> {
    let usb = json!({"name": "usb", "hostPath": {"path": "/dev/bus/usb"}});
    let plain = Container::new("c", "busybox").build();
    vec![
        denial(
            "containers a map (16 GPUs inside)",
            pod(json!({"containers": {"c": gpus(16)}})),
            "FIELD_INVALID",
            "spec.containers",
        ),
        denial(
            "initContainers a map (16 GPUs inside)",
            pod(json!({"containers": [plain], "initContainers": {"i": gpus(16)}})),
            "FIELD_INVALID",
            "spec.initContainers",
        ),
        denial(
            "a container that is a string",
            pod(json!({"containers": ["gpu"]})),
            "FIELD_INVALID",
            "spec.containers[0]",
        ),
        denial(
            "resources a list",
            pod(
                json!({"containers": [{"name": "c", "image": "i", "resources": [{"limits": {"nvidia.com/gpu": 16}}]}]}),
            ),
            "FIELD_INVALID",
            "spec.containers[0].resources",
        ),
        denial(
            "resources.limits a list",
            pod(
                json!({"containers": [{"name": "c", "image": "i", "resources": {"limits": [{"nvidia.com/gpu": 16}]}}]}),
            ),
            "FIELD_INVALID",
            "spec.containers[0].resources.limits",
        ),
        denial(
            "volumes a map holding hostPath /",
            pod(json!({"containers": [plain], "volumes": {"root": root()}})),
            "FIELD_INVALID",
            "spec.volumes",
        ),
        denial(
            "a Deployment's template containers a map",
            Workload::deployment("d")
                .ns("default")
                .template(json!({"containers": {"c": gpus(16)}}))
                .build(),
            "FIELD_INVALID",
            "spec.template.spec.containers",
        ),
        mismatch(
            "metadata.namespace kube-system (exempt), hostPath / and 16 GPUs",
            "kube-system",
            json!({"containers": [gpus(16)], "volumes": [root()]}),
        ),
        mismatch(
            "metadata.namespace monitoring, hostPath / and 16 GPUs",
            "monitoring",
            json!({"containers": [gpus(16)], "volumes": [root()]}),
        ),
        mismatch(
            "metadata.namespace gpu-operator (exempt), hostPath / and 16 GPUs",
            "gpu-operator",
            json!({"containers": [gpus(16)], "volumes": [root()]}),
        ),
        mismatch(
            "metadata.namespace ai (Coral), /dev/bus/usb",
            "ai",
            json!({"containers": [plain], "volumes": [usb]}),
        ),
        Denial {
            name: "NUL byte under the allowed prefix in ai",
            object: Pod::host_path("/dev/bus/usb/\u{0}").ns("ai").build(),
            namespace: None,
            code: "HOSTPATH_INVALID",
            path: "spec.volumes[0].hostPath.path",
        },
        Denial {
            name: "newline under the allowed prefix in ai",
            object: Pod::host_path("/dev/bus/usb/001\n").ns("ai").build(),
            namespace: None,
            code: "HOSTPATH_INVALID",
            path: "spec.volumes[0].hostPath.path",
        },
    ]
}

fn body(d: &Denial) -> String {
    let mut review = Review::create(&d.object).uid("strict");
    if let Some(ns) = d.namespace {
        review = review.ns(ns);
    }
    review.build().to_string()
}

/// What `gpu-admission check` decides for the same object (offline, in its own namespace).
fn check_codes(object: &Value) -> (String, Vec<&'static str>) {
    let effective = Effective::new(Policy::embedded_default().unwrap());
    let at = ObjectRef {
        document: 0,
        item: None,
        object,
    };
    let report = offline::evaluate_object(&effective, "strict.yaml", at, "default").expect("a workload");
    let decision = serde_json::to_value(report.decision).unwrap();
    let codes = report.violations.iter().map(|v| v.code).collect();
    (decision.as_str().unwrap_or_default().to_string(), codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_contradictory_objects_are_denied_with_their_path() {
    let (server, client) = serve(&Pki::new(), |_| {}).await;
    let mut failures = Vec::new();
    let cases = denials();
    for d in &cases {
        let body = body(d);
        let resp = client.post("/validate", body.clone()).await.expect(d.name);
        let r = &resp.json()["response"];
        let message = r["status"]["message"].as_str().unwrap_or_default();
        let want = format!("[{}] {}:", d.code, d.path);
        if resp.status != 200 || r["allowed"] != json!(false) || !message.contains(&want) {
            failures.push(format!("{}: /validate {} {r}", d.name, resp.status));
        }
        // The mutating webhook never denies, and patches nothing of such an object.
        let resp = client.post("/mutate", body).await.expect(d.name);
        let r = &resp.json()["response"];
        if resp.status != 200 || r["allowed"] != json!(true) || !r["patch"].is_null() {
            failures.push(format!("{}: /mutate {} {r}", d.name, resp.status));
        }
        // `check` agrees (a namespace mismatch needs a request: offline there is none).
        if d.code != "NAMESPACE_MISMATCH" {
            let (decision, codes) = check_codes(&d.object);
            if decision != "denied" || !codes.contains(&d.code) {
                failures.push(format!("{}: check says {decision} {codes:?}", d.name));
            }
        }
    }
    let text = metrics_text(&server).await;
    let denied = metric(
        &text,
        r#"gpu_admission_requests_total{endpoint="validate",kind="Pod",operation="CREATE",decision="denied",dry_run="false"}"#,
    );
    server.shutdown().await;
    assert_none_failed("case(s)", &failures);
    assert_eq!(denied as usize, cases.len() - 1, "every Pod case denied: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_covered_kind_under_another_group_or_version_is_skipped() {
    let (server, client) = serve(&Pki::new(), |_| {}).await;
    let bad = json!({"containers": [gpus(16)], "volumes": [root()]});
    let mut failures = Vec::new();
    let objects = [
        ("apps/v1beta1", "Deployment", json!({"template": {"spec": bad}})),
        ("extensions/v1beta1", "Deployment", json!({"template": {"spec": bad}})),
        ("v2", "Pod", bad.clone()),
        ("v1", "pod", bad.clone()),
    ];
    for (api_version, kind, spec) in &objects {
        let object = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "x", "namespace": "default"}, "spec": spec});
        let body = Review::create(&object).uid("kind").build().to_string();
        for endpoint in ["/validate", "/mutate"] {
            let resp = client.post(endpoint, body.clone()).await.expect(endpoint);
            let r = &resp.json()["response"];
            if resp.status != 200 || r["allowed"] != json!(true) || !r["patch"].is_null() || !r["warnings"].is_null() {
                failures.push(format!("{api_version} {kind} {endpoint}: {} {r}", resp.status));
            }
        }
    }
    // Counted as skipped (the engine names the reason, `unserved_version`, in the log line),
    // under the bounded kind label.
    let text = metrics_text(&server).await;
    let skipped: f64 = ["mutate", "validate"]
        .iter()
        .flat_map(|e| ["Pod", "Deployment", "other"].map(move |k| (e, k)))
        .map(|(e, k)| {
            metric(
                &text,
                &format!(
                    r#"gpu_admission_requests_total{{endpoint="{e}",kind="{k}",operation="CREATE",decision="skipped",dry_run="false"}}"#
                ),
            )
        })
        .sum();
    server.shutdown().await;
    assert_none_failed("case(s)", &failures);
    assert_eq!(skipped as usize, 2 * objects.len(), "{text}");
}
