//! `check --live`: what the policy would decide today about the workloads a cluster runs, with
//! the cluster's own facts (Nodes, the device-plugin ConfigMap, PriorityClasses, Namespaces).
//!
//! Read-only: `list` on those and on Pods and every pod-bearing kind (the README's Role).

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, ReplicationController};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CheckArgs, CheckRun};
use crate::cli::{CliError, Done};
use crate::cluster::ClusterFacts;
use crate::engine::Effective;
use crate::k8s::manifests::ObjectRef;
use crate::offline::evaluate_object;
use crate::server::ClusterSource;

#[derive(Debug, Clone, clap::Args)]
pub struct LiveArgs {
    /// Audit the workloads running in a cluster instead of files (kubeconfig, or in-cluster).
    #[arg(long, conflicts_with_all = ["fix", "paths"])]
    pub live: bool,
    #[arg(long, value_name = "FILE", requires = "live")]
    pub kubeconfig: Option<PathBuf>,
}

/// The name under which live objects are reported (in place of a file).
pub const SOURCE: &str = "cluster";

pub fn run(args: CheckArgs) -> Result<Done, CliError> {
    let policy = args.policy.load()?;
    let source = ClusterSource {
        kubeconfig: args.live.kubeconfig.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the async runtime: {e}")))?;
    let (facts_objects, workloads) = runtime
        .block_on(read(&source, policy.spec(), args.namespace.as_deref()))
        .map_err(CliError::Failed)?;
    let facts = ClusterFacts::from_objects(policy.spec(), &facts_objects);
    let effective = Effective::from_parts(Arc::new(policy), Some(Arc::new(facts)));
    let mut run = CheckRun {
        files: 1,
        fail_on: Some(args.fail_on),
        ..CheckRun::default()
    };
    for (document, object) in workloads.iter().enumerate() {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if args.skip_kind.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
            run.skips.skipped_kind += 1;
            continue;
        }
        let at = ObjectRef {
            document,
            item: None,
            object,
        };
        match evaluate_object(&effective, SOURCE, at, "default") {
            Some(report) => run.reports.push(report),
            None => run.skips.not_workloads += 1,
        }
    }
    super::finish(&args, run, "")
}

/// The facts' objects and the workloads, listed once.
async fn read(
    source: &ClusterSource,
    spec: &crate::policy::PolicySpec,
    namespace: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), String> {
    let client = crate::server::kube_client(source).await.map_err(|e| e.to_string())?;
    let mut facts = Vec::new();
    facts.extend(list_all::<Node>(&client).await?);
    facts.extend(list_all::<PriorityClass>(&client).await?);
    facts.extend(list_all::<Namespace>(&client).await?);
    let cm = &spec.cluster.device_plugin_config;
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &cm.namespace);
    let found = config_maps
        .get_opt(&cm.name)
        .await
        .map_err(|e| format!("get configmap {}/{}: {e}", cm.namespace, cm.name))?;
    if let Some(found) = found {
        facts.push(typed(found));
    }
    let mut workloads = Vec::new();
    workloads.extend(list::<Pod>(&client, namespace).await?);
    workloads.extend(list::<Deployment>(&client, namespace).await?);
    workloads.extend(list::<StatefulSet>(&client, namespace).await?);
    workloads.extend(list::<DaemonSet>(&client, namespace).await?);
    workloads.extend(list::<ReplicaSet>(&client, namespace).await?);
    workloads.extend(list::<ReplicationController>(&client, namespace).await?);
    workloads.extend(list::<Job>(&client, namespace).await?);
    workloads.extend(list::<CronJob>(&client, namespace).await?);
    Ok((facts, workloads))
}

/// Every object of a namespaced kind (in `namespace`, or everywhere).
async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    items(api).await
}

/// Every object of a cluster-scoped kind.
async fn list_all<K>(client: &Client) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    items(Api::<K>::all(client.clone())).await
}

async fn items<K>(api: Api<K>) -> Result<Vec<Value>, String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| format!("list {}: {e}", K::plural(&())))?;
    Ok(items.into_iter().map(typed).collect())
}

/// Typed objects serialize without `apiVersion`/`kind` when listed: put them back.
fn typed<K: Resource<DynamicType = ()> + serde::Serialize>(object: K) -> Value {
    let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(K::api_version(&()).into_owned()));
        map.insert("kind".into(), Value::String(K::kind(&()).into_owned()));
    }
    value
}
