//! Embedding the engine in your own service: an axum handler that checks one Kubernetes object
//! (a Pod, or a workload with a pod template, as JSON) against a policy and answers the engine's
//! decision as JSON. No AdmissionReview, no TLS: [`engine::evaluate`] over an [`Effective`]
//! policy is the whole contract.
//!
//! ```text
//! cargo run --example embed_engine                      # the embedded default policy
//! cargo run --example embed_engine -- policies/default.yaml
//! curl -s 127.0.0.1:3000/validate -H 'content-type: application/json' -d @pod.json
//! ```

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use gpu_admission::engine::{self, Context, Effective, Stage};
use gpu_admission::policy::Policy;
use serde_json::{Value, json};

/// The policy (and, in a cluster, its facts) that every request is decided with.
type Shared = State<Arc<Effective>>;

/// `POST /validate`: violations that deny, and warnings.
async fn validate(State(policy): Shared, Json(object): Json<Value>) -> Json<Value> {
    Json(decide(&policy, &object, Stage::Validate))
}

/// `POST /mutate`: the JSON patch a Pod would get on CREATE.
async fn mutate(State(policy): Shared, Json(object): Json<Value>) -> Json<Value> {
    Json(decide(&policy, &object, Stage::Mutate))
}

fn decide(policy: &Effective, object: &Value, stage: Stage) -> Value {
    // The namespace of the request; the engine prefers the object's own.
    let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default");
    let decision = engine::evaluate(policy, object, &Context::create(namespace, stage));
    json!({
        "outcome": decision.outcome(),
        "skipped": decision.skipped,
        "violations": decision.violations,
        "warnings": decision.warnings,
        "patch": decision.patch,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let policy = match std::env::args_os().nth(1) {
        Some(path) => Policy::load(path.as_ref())?,
        None => Policy::embedded_default()?,
    };
    let app = Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .with_state(Arc::new(Effective::new(policy)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
