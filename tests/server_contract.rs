//! The AdmissionReview contract over real TLS sockets: echoed uid/apiVersion/kind, JSONPatch
//! responses whose patch applies, denials naming every violation, warnings, skipped requests,
//! HTTP/1.1 keep-alive and HTTP/2, and the admin port.

mod common;

use common::*;
use gpu_admission_testkit::paths::shared_dir;
use gpu_admission_testkit::review::apply_patch;
use gpu_admission_testkit::{Pod, Review, Workload};
use serde_json::{Value, json};

async fn server() -> (gpu_admission::server::RunningServer, Pki, Client) {
    let pki = Pki::new();
    let (server, client) = serve(&pki, |_| {}).await;
    (server, pki, client)
}

async fn post_json(client: &Client, path: &str, body: &Value) -> Value {
    let resp = client.post(path, body.to_string()).await.expect("request");
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(resp.content_type, "application/json");
    resp.json()
}

/// POSTs an `operation` review of `object` with `uid`; returns the response review.
async fn send(client: &Client, path: &str, operation: &str, uid: &str, object: &Value) -> Value {
    post_json(client, path, &Review::of(operation, object).uid(uid).build()).await
}

#[track_caller]
fn assert_no_patch(resp: &Value, why: &str) {
    assert!(resp["response"].get("patch").is_none(), "{why}: {resp}");
}

fn assert_envelope(resp: &Value, uid: &str) {
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["kind"], "AdmissionReview");
    assert_eq!(resp["response"]["uid"], uid);
    assert!(resp.get("request").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_pod_in_ai_is_mutated_and_the_patch_applies() {
    let (server, _pki, client) = server().await;
    let pod = Pod::gpu(1).name("trainer").ns("ai").build();
    let resp = send(&client, "/mutate", "CREATE", "uid-mutate-1", &pod).await;
    assert_envelope(&resp, "uid-mutate-1");
    let r = &resp["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(r["patchType"], "JSONPatch");
    let patched = apply_patch(&resp["response"], &pod);
    let spec = &patched["spec"];
    assert_eq!(spec["nodeSelector"]["node-type"], "gpu-worker");
    let tolerations = spec["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations.contains(&json!({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})),
        "{tolerations:?}"
    );
    assert_eq!(spec["priorityClassName"], "high-priority");
    assert_eq!(spec["priority"], 1_000_000);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");

    // The mutated pod passes validation; mutating it again adds nothing (idempotent).
    let resp = send(&client, "/validate", "CREATE", "uid-mutate-2", &patched).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    let resp = send(&client, "/mutate", "CREATE", "uid-mutate-3", &patched).await;
    assert_eq!(resp["response"]["allowed"], true);
    assert_no_patch(&resp, "second pass patched again");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_carry_403_and_every_violation() {
    let (server, _pki, client) = server().await;
    let cases = [
        (
            Pod::host_path("/").name("root").ns("default").build(),
            "HOSTPATH_NOT_ALLOWED",
        ),
        (Pod::gpu(5).name("greedy").ns("ai").build(), "SLICES_CONTAINER_EXCEEDED"),
    ];
    for (i, (object, code)) in cases.iter().enumerate() {
        let uid = format!("uid-deny-{i}");
        let resp = send(&client, "/validate", "CREATE", &uid, object).await;
        assert_envelope(&resp, &uid);
        let r = &resp["response"];
        assert_eq!(r["allowed"], false, "{resp}");
        assert_eq!(r["status"]["code"], 403);
        let message = r["status"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("[{code}]")), "{message}");
        assert!(r.get("patch").is_none());
    }

    // Several violations in one object: all are listed, each with its code and path.
    let mut pod = Pod::gpu(5).name("both").ns("ai").build();
    pod["spec"]["nodeSelector"] = json!({"node-type": "cpu"});
    pod["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
    let resp = send(&client, "/validate", "CREATE", "uid-multi", &pod).await;
    let message = resp["response"]["status"]["message"].as_str().unwrap().to_string();
    for code in [
        "PLACEMENT_CONFLICT",
        "SLICES_CONTAINER_EXCEEDED",
        "HOSTPATH_NOT_ALLOWED",
    ] {
        assert!(
            message.contains(&format!("[{code}] spec.")),
            "{code} missing from {message}"
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_conflict_is_denied() {
    let (server, _pki, client) = server().await;
    let mut pod = Pod::gpu(1).name("cpu-node").ns("ml").build();
    pod["spec"]["nodeSelector"] = json!({"node-type": "cpu"});
    let resp = send(&client, "/validate", "CREATE", "uid-conflict", &pod).await;
    assert_eq!(resp["response"]["allowed"], false);
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[PLACEMENT_CONFLICT]")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_get_warnings_not_patches() {
    let (server, _pki, client) = server().await;
    let deployment = Workload::deployment("llm").ns("ml").template(Pod::gpu(1)).build();
    for op in ["CREATE", "UPDATE"] {
        let uid = format!("uid-dep-{op}");
        let resp = send(&client, "/validate", op, &uid, &deployment).await;
        assert_envelope(&resp, &uid);
        let r = &resp["response"];
        assert_eq!(r["allowed"], true, "{resp}");
        assert!(r.get("patch").is_none());
        let warnings = r["warnings"].as_array().expect("warnings");
        assert!(!warnings.is_empty());
        for w in warnings {
            let w = w.as_str().unwrap();
            assert!(w.chars().count() <= 120, "warning too long: {w}");
            assert!(!w.to_ascii_lowercase().starts_with("warning:"), "{w}");
        }
        let resp = send(&client, "/mutate", op, &uid, &deployment).await;
        assert_no_patch(&resp, "templates are not patched by default");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_requests_are_allowed_untouched() {
    let (server, _pki, client) = server().await;
    let bad = Pod::host_path("/").name("root").ns("default").build();
    let gpu = Pod::gpu(1).name("g").ns("ai").build();
    let mut cases = Vec::new();
    // DELETE and CONNECT
    cases.push(("delete", Review::delete(&bad).uid("s-delete").build()));
    let mut connect = Review::of("CONNECT", &bad).uid("s-connect").build();
    connect["request"]["object"] = json!({"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]});
    connect["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "PodExecOptions"});
    connect["request"]["subResource"] = json!("exec");
    cases.push(("connect", connect));
    // Subresources
    for sub in ["status", "binding", "ephemeralcontainers"] {
        let r = Review::of("UPDATE", &bad).uid(&format!("s-{sub}")).sub_resource(sub);
        cases.push(("subresource", r.build()));
    }
    // Exempt namespaces
    cases.push((
        "exempt",
        Review::create(&Pod::host_path("/").name("x").ns("kube-system").build())
            .uid("s-kube-system")
            .build(),
    ));
    cases.push((
        "exempt",
        Review::create(&Pod::gpu(9).name("x").ns("gpu-operator").build())
            .uid("s-gpu-operator")
            .build(),
    ));
    // Kinds the policy does not cover
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ai"},
                    "data": {"hostPath": "/"}});
    cases.push(("uncovered", Review::create(&cm).uid("s-configmap").build()));
    // A Pod UPDATE is never patched.
    cases.push(("pod update", Review::of("UPDATE", &gpu).uid("s-pod-update").build()));

    for (what, body) in &cases {
        for path in ["/mutate", "/validate"] {
            let uid = body["request"]["uid"].as_str().unwrap();
            let resp = post_json(&client, path, body).await;
            assert_envelope(&resp, uid);
            if *what == "pod update" && path == "/validate" {
                continue; // validated like any update; only the patch matters here
            }
            assert_eq!(resp["response"]["allowed"], true, "{what} {path}: {resp}");
            assert_no_patch(&resp, &format!("{what} {path}"));
            assert!(resp["response"].get("patchType").is_none(), "{what} {path}: {resp}");
        }
    }
    let text = metrics_text(&server).await;
    assert!(
        metric(
            &text,
            r#"gpu_admission_requests_total{endpoint="mutate",kind="Pod",operation="DELETE",decision="skipped",dry_run="false"}"#
        ) >= 1.0,
        "{text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_is_handled_identically_and_labelled() {
    let (server, _pki, client) = server().await;
    let pod = Pod::gpu(1).name("dry").ns("ai").build();
    let mut body = Review::create(&pod).uid("uid-dry").build();
    let real = post_json(&client, "/mutate", &body).await;
    body["request"]["dryRun"] = json!(true);
    let dry = post_json(&client, "/mutate", &body).await;
    assert_eq!(real, dry, "dry run answered differently");
    let text = metrics_text(&server).await;
    let label = |d: &str| {
        format!(
            r#"gpu_admission_requests_total{{endpoint="mutate",kind="Pod",operation="CREATE",decision="mutated",dry_run="{d}"}}"#
        )
    };
    assert_eq!(metric(&text, &label("true")), 1.0, "{text}");
    assert_eq!(metric(&text, &label("false")), 1.0, "{text}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_bench_reviews() {
    let (server, _pki, client) = server().await;
    let dir = shared_dir().join("bench");
    let pod: Value = serde_json::from_slice(&std::fs::read(dir.join("review-pod.json")).unwrap()).unwrap();
    let big: Value = serde_json::from_slice(&std::fs::read(dir.join("review-big.json")).unwrap()).unwrap();
    for (body, path) in [
        (&pod, "/mutate"),
        (&pod, "/validate"),
        (&big, "/validate"),
        (&big, "/mutate"),
    ] {
        let resp = post_json(&client, path, body).await;
        assert_envelope(&resp, body["request"]["uid"].as_str().unwrap());
        if path == "/mutate" && resp["response"].get("patch").is_some() {
            assert_eq!(resp["response"]["patchType"], "JSONPatch");
            apply_patch(&resp["response"], &body["request"]["object"]);
        }
    }
    // The recorded pod sets NVIDIA_VISIBLE_DEVICES=all in its GPU container, which would show it
    // every GPU of the node for one slice: the visibility rule refuses it (the device plugin owns
    // the variable), and its `metrics` sidecar lacks `void` (the mutating webhook adds it).
    let resp = post_json(&client, "/validate", &pod).await;
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    let message = resp["response"]["status"]["message"].as_str().unwrap_or("").to_string();
    assert!(
        message.contains("[VISIBILITY_SET_BY_GPU_CONTAINER] spec.containers[0].env[4]"),
        "{message}"
    );
    assert!(
        message.contains("[VISIBILITY_VOID_MISSING] spec.containers[1].env"),
        "{message}"
    );
    // Without the variable and with the mutating webhook's patch, it has everything the policy wants.
    let mut fixed = pod.clone();
    let env = fixed["request"]["object"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    env.retain(|e| e["name"] != "NVIDIA_VISIBLE_DEVICES");
    let mutated = post_json(&client, "/mutate", &fixed).await;
    fixed["request"]["object"] = apply_patch(&mutated["response"], &fixed["request"]["object"]);
    let resp = post_json(&client, "/validate", &fixed).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_http1_and_http2() {
    let pki = Pki::new();
    let server = start(config(&pki)).await;
    let pod = Review::create(&Pod::gpu(1).name("ka").ns("ai").build())
        .uid("ka")
        .to_string();

    // HTTP/1.1: several reviews on one connection.
    let conn = Client::new(server.addr, pki.ca_pem()).connect().await.unwrap();
    assert_eq!(conn.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let mut h1 = conn.into_http().await.unwrap();
    for _ in 0..5 {
        let resp = h1.request("POST", "/mutate", pod.clone().into()).await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["response"]["uid"], "ka");
    }

    // HTTP/2 by ALPN: concurrent streams on one connection.
    let client = Client::with_alpn(server.addr, pki.ca_pem(), vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    let conn = client.connect().await.unwrap();
    assert_eq!(conn.alpn.as_deref(), Some(&b"h2"[..]));
    let h2 = conn.into_http().await.unwrap();
    let common::Http::H2(send) = h2 else { panic!("not h2") };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut h = common::Http::H2(send.clone());
        let body = pod.clone();
        tasks.push(tokio::spawn(
            async move { h.request("POST", "/mutate", body.into()).await },
        ));
    }
    for t in tasks {
        let resp = t.await.unwrap().unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json()["response"]["patchType"], "JSONPatch");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_livez_and_metrics() {
    let (server, pki, client) = server().await;
    assert_eq!(admin_get(server.admin_addr, "/livez").await.status, 200);
    let ready = admin_get(server.admin_addr, "/readyz").await;
    assert_eq!(ready.status, 200, "{}", String::from_utf8_lossy(&ready.body));
    assert_eq!(admin_get(server.admin_addr, "/nope").await.status, 404);

    let root = Pod::host_path("/").name("r").ns("default").build();
    send(&client, "/validate", "CREATE", "m1", &root).await;
    send(
        &client,
        "/mutate",
        "CREATE",
        "m2",
        &Pod::gpu(1).name("g").ns("ai").build(),
    )
    .await;
    let resp = client.post("/validate", "nope").await.unwrap();
    assert_eq!(resp.status, 400);

    let m = admin_get(server.admin_addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("application/openmetrics-text"),
        "{}",
        m.content_type
    );
    let text = String::from_utf8(m.body).unwrap();
    let has = |s: &str| assert!(metric(&text, s) >= 1.0, "missing {s} in\n{text}");
    has(
        r#"gpu_admission_requests_total{endpoint="validate",kind="Pod",operation="CREATE",decision="denied",dry_run="false"}"#,
    );
    has(
        r#"gpu_admission_requests_total{endpoint="mutate",kind="Pod",operation="CREATE",decision="mutated",dry_run="false"}"#,
    );
    has(
        r#"gpu_admission_violations_total{endpoint="validate",rule="hostPath",code="HOSTPATH_NOT_ALLOWED",action="deny"}"#,
    );
    has(r#"gpu_admission_request_duration_seconds_count{endpoint="validate"}"#);
    has(r#"gpu_admission_request_duration_seconds_bucket{le="+Inf",endpoint="mutate"}"#);
    has(r#"gpu_admission_reloads_total{target="certificate",result="success"}"#);
    has(r#"gpu_admission_reloads_total{target="policy",result="success"}"#);
    has(r#"gpu_admission_request_errors_total{cause="not_json"}"#);
    let not_after = metric(&text, "gpu_admission_certificate_not_after_seconds");
    let expected = gpu_admission::certs::not_after_unix(&leaf_der(&std::fs::read_to_string(&pki.cert_path).unwrap()));
    assert_eq!(not_after as i64, expected.unwrap());
    assert!(text.trim_end().ends_with("# EOF"));
    server.shutdown().await;
}
