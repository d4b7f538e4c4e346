//! AdmissionReview v1 requests, as kube-apiserver sends them, and reading the responses.
//!
//! ```
//! use gpu_admission_testkit::{Pod, Review};
//!
//! let pod = Pod::gpu(1).ns("ai").build();
//! let body = Review::create(&pod).uid("u-1").build();
//! assert_eq!(body["request"]["operation"], "CREATE");
//! assert_eq!(body["request"]["namespace"], "ai");
//! assert_eq!(body["request"]["resource"]["resource"], "pods");
//! ```

use base64::Engine as _;
use serde_json::{Value, json};

use crate::wait::unique_name;

/// An AdmissionReview request for one object. Defaults: a unique uid, the object's namespace
/// (or `default`), not a dry run, Argo CD's user.
#[derive(Clone, Debug)]
pub struct Review {
    uid: String,
    operation: String,
    namespace: Option<String>,
    object: Value,
    old_object: Value,
    dry_run: bool,
    user: String,
    sub_resource: Option<String>,
}

impl Review {
    /// `operation` (CREATE, UPDATE, DELETE, CONNECT) of `object`, without an `oldObject`.
    pub fn of(operation: &str, object: &Value) -> Self {
        Review {
            uid: unique_name("uid"),
            operation: operation.into(),
            namespace: None,
            object: object.clone(),
            old_object: Value::Null,
            dry_run: false,
            user: "system:serviceaccount:argocd:argocd-application-controller".into(),
            sub_resource: None,
        }
    }

    pub fn create(object: &Value) -> Self {
        Self::of("CREATE", object)
    }

    /// UPDATE from `old` to `object`.
    pub fn update(object: &Value, old: &Value) -> Self {
        let mut r = Self::of("UPDATE", object);
        r.old_object = old.clone();
        r
    }

    /// DELETE of `old` (no `object`, as the API server sends it).
    pub fn delete(old: &Value) -> Self {
        let mut r = Self::of("DELETE", old);
        r.old_object = r.object.take();
        r
    }

    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = uid.into();
        self
    }

    /// `request.namespace` (default: the object's, else `default`).
    pub fn ns(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    pub fn user(mut self, username: &str) -> Self {
        self.user = username.into();
        self
    }

    pub fn sub_resource(mut self, sub_resource: &str) -> Self {
        self.sub_resource = Some(sub_resource.into());
        self
    }

    pub fn build(self) -> Value {
        // The kind comes from whichever object there is (DELETE: the old one).
        let typed = if self.object.is_null() {
            &self.old_object
        } else {
            &self.object
        };
        let api_version = typed["apiVersion"].as_str().unwrap_or("v1");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = typed["kind"].as_str().unwrap_or("Pod");
        let resource = format!("{}s", kind.to_ascii_lowercase());
        let name = typed["metadata"]["name"].as_str().unwrap_or("");
        let namespace = self
            .namespace
            .as_deref()
            .or(typed["metadata"]["namespace"].as_str())
            .unwrap_or("default");
        let mut request = json!({
            "uid": self.uid,
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": self.operation,
            "userInfo": {"username": self.user},
            "object": self.object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        });
        if let Some(sub) = self.sub_resource {
            request["subResource"] = json!(sub);
        }
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
    }
}

impl From<Review> for Value {
    fn from(r: Review) -> Value {
        r.build()
    }
}

impl std::fmt::Display for Review {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.clone().build())
    }
}

/// The JSON patch of a review's `response` (`[]` when there is none).
#[track_caller]
pub fn patch_of(response: &Value) -> Value {
    match response["patch"].as_str() {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("patch base64");
            serde_json::from_slice(&bytes).expect("patch JSON")
        }
        None => json!([]),
    }
}

/// `object` with the patch of a review's `response` applied; panics when there is no patch.
#[track_caller]
pub fn apply_patch(response: &Value, object: &Value) -> Value {
    assert!(response["patch"].is_string(), "no patch in {response}");
    let patch: json_patch::Patch = serde_json::from_value(patch_of(response)).expect("a JSON patch");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("patch applies");
    patched
}
