//! Bad input over real TLS sockets: a table of malformed bodies, methods and paths, each with its
//! status and error code (never an "allowed" answer); body limit; slow clients; panics.

mod common;
#[path = "bad_input/strict.rs"]
mod strict;

use std::time::Duration;

use common::*;
use gpu_admission_testkit::{Pod, Review, assert_none_failed};
use serde_json::{Value, json};

fn valid() -> Value {
    Review::create(&Pod::gpu(1).ns("ai").build()).uid("bad-1").build()
}

fn with(f: impl FnOnce(&mut Value)) -> String {
    let mut v = valid();
    f(&mut v);
    v.to_string()
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: "/validate",
        body: body.into(),
        status: 400,
        code,
    }
}

fn table() -> Vec<Case> {
    let nested = with(|v| v["request"]["object"]["spec"]["x"] = json!("NESTED"))
        .replace("\"NESTED\"", &format!("{}{}", "[".repeat(300), "]".repeat(300)));
    vec![
        case("empty body", "", "empty_body"),
        case("whitespace body", " \n\t ", "empty_body"),
        case("not JSON", "hello", "not_json"),
        case("truncated JSON", "{\"apiVersion\": \"admission.k8s.io/v1\"", "not_json"),
        case("trailing garbage", format!("{} x", valid()), "not_json"),
        case("nested too deep", nested, "not_json"),
        case("invalid UTF-8", &b"{\"apiVersion\":\"\xff\"}"[..], "not_json"),
        case("JSON array", "[]", "not_an_object"),
        case("JSON number", "42", "not_an_object"),
        case("JSON string", "\"AdmissionReview\"", "not_an_object"),
        case("JSON null", "null", "not_an_object"),
        case("empty object", "{}", "wrong_api_version"),
        case(
            "v1beta1",
            with(|v| v["apiVersion"] = json!("admission.k8s.io/v1beta1")),
            "wrong_api_version",
        ),
        case(
            "apiVersion v1",
            with(|v| v["apiVersion"] = json!("v1")),
            "wrong_api_version",
        ),
        case(
            "apiVersion a number",
            with(|v| v["apiVersion"] = json!(1)),
            "invalid_field",
        ),
        case(
            "no kind",
            with(|v| drop(v.as_object_mut().unwrap().remove("kind"))),
            "wrong_kind",
        ),
        case(
            "wrong kind",
            with(|v| v["kind"] = json!("ConversionReview")),
            "wrong_kind",
        ),
        case(
            "no request",
            with(|v| drop(v.as_object_mut().unwrap().remove("request"))),
            "missing_request",
        ),
        case("null request", with(|v| v["request"] = Value::Null), "missing_request"),
        case(
            "request an array",
            with(|v| v["request"] = json!([])),
            "invalid_request",
        ),
        case(
            "request a string",
            with(|v| v["request"] = json!("x")),
            "invalid_request",
        ),
        case(
            "no uid",
            with(|v| drop(v["request"].as_object_mut().unwrap().remove("uid"))),
            "missing_uid",
        ),
        case("empty uid", with(|v| v["request"]["uid"] = json!("")), "missing_uid"),
        case(
            "uid a number",
            with(|v| v["request"]["uid"] = json!(42)),
            "invalid_field",
        ),
        case(
            "no operation",
            with(|v| drop(v["request"].as_object_mut().unwrap().remove("operation"))),
            "missing_operation",
        ),
        case(
            "unknown operation",
            with(|v| v["request"]["operation"] = json!("PATCH")),
            "unknown_operation",
        ),
        case(
            "no request.kind",
            with(|v| drop(v["request"].as_object_mut().unwrap().remove("kind"))),
            "missing_kind",
        ),
        case(
            "request.kind without kind",
            with(|v| v["request"]["kind"] = json!({"group": "", "version": "v1"})),
            "invalid_field",
        ),
        case(
            "request.kind empty",
            with(|v| v["request"]["kind"] = json!({"group": "", "version": "", "kind": ""})),
            "missing_kind",
        ),
        case(
            "no object on CREATE",
            with(|v| drop(v["request"].as_object_mut().unwrap().remove("object"))),
            "missing_object",
        ),
        case(
            "null object on UPDATE",
            with(|v| {
                v["request"]["operation"] = json!("UPDATE");
                v["request"]["object"] = Value::Null;
            }),
            "missing_object",
        ),
        case(
            "object a string",
            with(|v| v["request"]["object"] = json!("pod")),
            "object_not_an_object",
        ),
        case(
            "object an array",
            with(|v| v["request"]["object"] = json!([])),
            "object_not_an_object",
        ),
        case(
            "object of another kind",
            with(|v| v["request"]["object"]["kind"] = json!("Deployment")),
            "object_kind_mismatch",
        ),
        case(
            "object of another apiVersion",
            with(|v| v["request"]["object"]["apiVersion"] = json!("apps/v1")),
            "object_kind_mismatch",
        ),
        case(
            "dryRun a string",
            with(|v| v["request"]["dryRun"] = json!("yes")),
            "invalid_field",
        ),
        case(
            "namespace a number",
            with(|v| v["request"]["namespace"] = json!(5)),
            "invalid_field",
        ),
        Case {
            name: "GET /validate",
            method: "GET",
            path: "/validate",
            body: Vec::new(),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "PUT /mutate",
            method: "PUT",
            path: "/mutate",
            body: valid().to_string().into_bytes(),
            status: 405,
            code: "method_not_allowed",
        },
        Case {
            name: "unknown path",
            method: "POST",
            path: "/admit",
            body: valid().to_string().into_bytes(),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "root",
            method: "GET",
            path: "/",
            body: Vec::new(),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "trailing slash",
            method: "POST",
            path: "/mutate/",
            body: valid().to_string().into_bytes(),
            status: 404,
            code: "not_found",
        },
        Case {
            name: "over the body limit",
            method: "POST",
            path: "/mutate",
            body: format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)).into_bytes(),
            status: 413,
            code: "body_too_large",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_table() {
    let (server, client) = serve(&Pki::new(), |c| c.max_body_bytes = 64 * 1024).await;
    let cases = table();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let resp = client
            .request(c.method, c.path, c.body.clone().into())
            .await
            .expect(c.name);
        let text = String::from_utf8_lossy(&resp.body).to_string();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let ok = resp.status == c.status
            && json["code"] == c.code
            && json["error"].as_str().is_some_and(|e| !e.is_empty())
            && resp.content_type == "application/json"
            && !text.contains("\"allowed\"");
        if !ok {
            failures.push(format!(
                "{}: expected {} {}, got {} {text}",
                c.name, c.status, c.code, resp.status
            ));
        }
    }
    // 405 names the allowed method.
    let conn = client.connect().await.unwrap();
    let raw = conn
        .raw(b"GET /mutate HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await;
    assert!(
        String::from_utf8_lossy(&raw)
            .to_ascii_lowercase()
            .contains("\r\nallow: post\r\n")
    );
    // A chunked body (no Content-Length) over the limit is cut off too.
    let conn = client.connect().await.unwrap();
    let chunk = "x".repeat(40_000);
    let raw = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    let resp = parse_raw(&conn.raw(raw.as_bytes()).await);
    assert_eq!(
        (resp.status, resp.json()["code"].clone()),
        (413, json!("body_too_large"))
    );

    let text = metrics_text(&server).await;
    assert_errors_counted(&text, &[("not_json", 4.0), ("body_too_large", 2.0)]);
    // Nothing above was counted as a review.
    assert!(!text.contains("gpu_admission_requests_total{"), "{text}");
    server.shutdown().await;
    assert_none_failed("case(s)", &failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped() {
    let (server, client) = serve(&Pki::new(), |c| {
        c.header_timeout = Duration::from_millis(1000);
        c.body_timeout = Duration::from_millis(1000);
    })
    .await;

    // Headers that never finish: the connection is closed without an answer.
    let conn = client.connect().await.unwrap();
    let raw = conn
        .raw(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        .await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");

    // A body that stops halfway: 408 with a JSON error.
    let conn = client.connect().await.unwrap();
    let raw = conn
        .raw(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":")
        .await;
    let resp = parse_raw(&raw);
    assert_eq!(resp.status, 408);
    assert_eq!(resp.json()["code"], "body_timeout");

    // A TCP client that never starts TLS is dropped too.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(BOUND, tokio::io::AsyncReadExt::read_to_end(&mut tcp, &mut buf)).await;
    assert!(read.is_ok(), "handshake timeout did not drop the connection");

    let text = metrics_text(&server).await;
    let causes = [
        ("header_timeout", 1.0),
        ("body_timeout", 1.0),
        ("tls_handshake_timeout", 1.0),
    ];
    assert_errors_counted(&text, &causes);

    // The server still answers.
    let resp = client.post("/mutate", valid().to_string()).await.unwrap();
    assert_eq!(resp.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_500_and_the_server_goes_on() {
    let (server, client) = serve(&Pki::new(), |c| c.debug_panic_route = true).await;
    for _ in 0..3 {
        let resp = client.post("/debug/panic", "{}").await.unwrap();
        assert_eq!(resp.status, 500);
        assert_eq!(resp.json()["code"], "internal_error");
    }
    let resp = client.post("/mutate", valid().to_string()).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["response"]["uid"], "bad-1");
    let text = metrics_text(&server).await;
    assert_eq!(
        metric(&text, r#"gpu_admission_request_errors_total{cause="panic"}"#),
        3.0,
        "{text}"
    );
    server.shutdown().await;
}
