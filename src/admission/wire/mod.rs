//! Reading an AdmissionReview v1 body: only the fields the decision needs, with an error code
//! for each way a body can be unusable.

use std::borrow::Cow;

use kube::core::DynamicObject;
use kube::core::TypeMeta;
use kube::core::admission::{AdmissionRequest, Operation};
use kube::core::gvk::{GroupVersionKind, GroupVersionResource};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::ReviewError;
use crate::engine;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// A usable request: kube's [`AdmissionRequest`] (its `object` and `oldObject` left empty) plus
/// the object to evaluate and the namespace the decision is taken in.
#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub request: AdmissionRequest<DynamicObject>,
    /// `request.object` (always a JSON object, with `apiVersion` and `kind`); `None` for DELETE
    /// and CONNECT.
    pub object: Option<Value>,
    /// `request.namespace`, else the object's `metadata.namespace`, else `default`.
    pub namespace: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, rename = "apiVersion")]
    api_version: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    request: Option<MapOnly<Req<'a>>>,
}

/// Derived struct deserializers also accept a JSON array (fields by position); a review and its
/// request must be JSON objects.
struct MapOnly<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = MapOnly<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(MapOnly)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Req<'a> {
    #[serde(default, borrow)]
    uid: Option<Cow<'a, str>>,
    #[serde(default)]
    kind: Option<GroupVersionKind>,
    #[serde(default)]
    resource: Option<GroupVersionResource>,
    #[serde(default, borrow)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    operation: Option<Cow<'a, str>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    object: Option<Value>,
    // Read past, never built into a tree.
    #[serde(default)]
    #[allow(dead_code)]
    old_object: Option<IgnoredAny>,
}

/// Parses and checks a body. Every rejection names the problem (`code` + message).
pub fn parse(body: &[u8]) -> Result<ParsedRequest, ReviewError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ReviewError::new(
            "empty_body",
            "the body is empty: expected an AdmissionReview v1 JSON object",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    // No path tracking on the way in: serde_path_to_error copies every map key it passes (the
    // object's included), about a quarter of a review's CPU time. A body that fails is parsed
    // again with tracking, for the error's path (`diagnose`): same error, same code.
    let env: Envelope<'_> = match MapOnly::<Envelope<'_>>::deserialize(&mut de) {
        Ok(MapOnly(env)) => env,
        Err(e) => return Err(diagnose(body, e)),
    };
    // Nothing but whitespace may follow the document.
    if let Err(e) = de.end() {
        return Err(ReviewError::new("not_json", format!("the body is not valid JSON: {e}")));
    }

    match env.api_version.as_deref() {
        Some(API_VERSION) => {}
        None | Some("") => {
            return Err(ReviewError::new(
                "wrong_api_version",
                format!("`apiVersion` is missing: expected `{API_VERSION}`"),
            ));
        }
        Some(other) => {
            return Err(ReviewError::new(
                "wrong_api_version",
                format!(
                    "`apiVersion` is `{other}`: only `{API_VERSION}` is served (set admissionReviewVersions: [v1])"
                ),
            ));
        }
    }
    match env.kind.as_deref() {
        Some(KIND) => {}
        None | Some("") => {
            return Err(ReviewError::new(
                "wrong_kind",
                format!("`kind` is missing: expected `{KIND}`"),
            ));
        }
        Some(other) => {
            return Err(ReviewError::new(
                "wrong_kind",
                format!("`kind` is `{other}`: expected `{KIND}`"),
            ));
        }
    }
    let Some(MapOnly(req)) = env.request else {
        return Err(ReviewError::new(
            "missing_request",
            "`request` is missing (or null): nothing to review",
        ));
    };
    let uid = match req.uid.as_deref() {
        None => {
            return Err(ReviewError::new(
                "missing_uid",
                "`request.uid` is missing: the response must echo it",
            ));
        }
        Some(u) if u.trim().is_empty() => {
            return Err(ReviewError::new(
                "missing_uid",
                "`request.uid` is empty: the response must echo it",
            ));
        }
        Some(u) => u.to_string(),
    };
    let operation = match req.operation.as_deref() {
        None | Some("") => {
            return Err(ReviewError::new(
                "missing_operation",
                "`request.operation` is missing: expected CREATE, UPDATE, DELETE or CONNECT",
            ));
        }
        Some("CREATE") => Operation::Create,
        Some("UPDATE") => Operation::Update,
        Some("DELETE") => Operation::Delete,
        Some("CONNECT") => Operation::Connect,
        Some(other) => {
            return Err(ReviewError::new(
                "unknown_operation",
                format!("`request.operation` is `{other}`: expected CREATE, UPDATE, DELETE or CONNECT"),
            ));
        }
    };
    let Some(kind) = req.kind.filter(|k| !k.kind.is_empty() && !k.version.is_empty()) else {
        return Err(ReviewError::new(
            "missing_kind",
            "`request.kind` is missing or has no `version`/`kind`",
        ));
    };

    // Only CREATE and UPDATE of a main resource are evaluated; other objects are not looked at.
    let has_subresource = req.sub_resource.as_deref().is_some_and(|s| !s.is_empty());
    let evaluated = matches!(operation, Operation::Create | Operation::Update) && !has_subresource;
    let object = match req.object {
        None | Some(Value::Null) if evaluated => {
            return Err(ReviewError::new(
                "missing_object",
                format!(
                    "`request.object` is missing: a {} review carries the object",
                    operation_str(&operation)
                ),
            ));
        }
        Some(Value::Object(map)) if evaluated => Some(object_matching_kind(Value::Object(map), &kind)?),
        Some(other) if evaluated => {
            return Err(ReviewError::new(
                "object_not_an_object",
                format!("`request.object` is {}: expected a JSON object", json_type(&other)),
            ));
        }
        _ => None,
    };

    let namespace = req
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .or_else(|| {
            object
                .as_ref()
                .and_then(|o| o.pointer("/metadata/namespace"))
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "default".to_string());

    let request = AdmissionRequest {
        types: TypeMeta {
            api_version: API_VERSION.to_string(),
            kind: KIND.to_string(),
        },
        uid,
        kind,
        resource: req.resource.unwrap_or_else(|| GroupVersionResource::gvr("", "", "")),
        sub_resource: req.sub_resource.map(Cow::into_owned),
        request_kind: None,
        request_resource: None,
        request_sub_resource: None,
        name: req.name.map(Cow::into_owned).unwrap_or_default(),
        namespace: req.namespace.map(Cow::into_owned),
        operation,
        user_info: Default::default(),
        object: None,
        old_object: None,
        dry_run: req.dry_run.unwrap_or(false),
        options: None,
    };
    Ok(ParsedRequest {
        request,
        object,
        namespace,
    })
}

/// The object must say what it is, and agree with `request.kind`. A missing `apiVersion`/`kind`
/// is filled in from `request.kind` (the engine decides coverage from them).
fn object_matching_kind(mut object: Value, kind: &GroupVersionKind) -> Result<Value, ReviewError> {
    let api_version = if kind.group.is_empty() {
        kind.version.clone()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    let Some(map) = object.as_object_mut() else {
        return Err(ReviewError::new(
            "object_not_an_object",
            "`request.object` is not a JSON object",
        ));
    };
    match map.get("kind") {
        None | Some(Value::Null) => {
            map.insert("kind".into(), Value::String(kind.kind.clone()));
        }
        Some(Value::String(k)) if *k == kind.kind => {}
        Some(other) => {
            return Err(ReviewError::new(
                "object_kind_mismatch",
                format!(
                    "`request.object.kind` is {other} but `request.kind.kind` is `{}`",
                    kind.kind
                ),
            ));
        }
    }
    match map.get("apiVersion") {
        None | Some(Value::Null) => {
            map.insert("apiVersion".into(), Value::String(api_version));
        }
        Some(Value::String(v)) if *v == api_version => {}
        Some(other) => {
            return Err(ReviewError::new(
                "object_kind_mismatch",
                format!("`request.object.apiVersion` is {other} but `request.kind` says `{api_version}`"),
            ));
        }
    }
    Ok(object)
}

/// The error of a body the fast parse refused, with the path where it went wrong.
fn diagnose(body: &[u8], untracked: serde_json::Error) -> ReviewError {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, MapOnly<Envelope<'_>>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            classify(&path, e.into_inner())
        }
        // Tracking does not change what parses; should it ever, the untracked error stands.
        Ok(_) => classify(".", untracked),
    }
}

fn classify(path: &str, inner: serde_json::Error) -> ReviewError {
    match inner.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            ReviewError::new("not_json", format!("the body is not valid JSON: {inner}"))
        }
        serde_json::error::Category::Io => ReviewError::new("not_json", format!("cannot read the body: {inner}")),
        serde_json::error::Category::Data => {
            let msg = inner.to_string();
            if path == "." && msg.starts_with("invalid type") {
                ReviewError::new("not_an_object", format!("the body is not a JSON object: {inner}"))
            } else if path == "." {
                ReviewError::new("invalid_review", format!("the body is not an AdmissionReview: {inner}"))
            } else if path == "request" {
                ReviewError::new(
                    "invalid_request",
                    format!("`request` is not an AdmissionRequest object: {inner}"),
                )
            } else {
                ReviewError::new("invalid_field", format!("`{path}`: {inner}"))
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub fn operation_str(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

pub fn engine_operation(op: &Operation) -> engine::Operation {
    match op {
        Operation::Create => engine::Operation::Create,
        Operation::Update => engine::Operation::Update,
        Operation::Delete => engine::Operation::Delete,
        Operation::Connect => engine::Operation::Connect,
    }
}

#[cfg(test)]
mod tests;
