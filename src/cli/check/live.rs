//! `check --live`: what the policy would decide today about the workloads a cluster runs, with
//! the cluster's own facts (Nodes, the device-plugin ConfigMap, PriorityClasses, Namespaces).
//!
//! Read-only: `list` on those and on Pods and every pod-bearing kind (the README's Role).

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController};
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::Client;
use serde_json::Value;

use super::{CheckArgs, CheckRun};
use crate::cli::cluster_read::{device_plugin_config, list, list_all, with_client};
use crate::cli::{CliError, Done};
use crate::cluster::ClusterFacts;
use crate::engine::Effective;
use crate::k8s::manifests::ObjectRef;
use crate::offline::{evaluate_object, skips_kind};
use crate::policy::PolicySpec;
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
    let spec = policy.spec();
    let namespace = args.namespace.as_deref();
    let (facts_objects, workloads) =
        with_client(&source, |client| read(client, spec, namespace)).map_err(CliError::Failed)?;
    let facts = ClusterFacts::from_objects(policy.spec(), &facts_objects);
    let effective = Effective::from_parts(Arc::new(policy), Some(Arc::new(facts)));
    let mut run = CheckRun {
        files: 1,
        fail_on: args.fail_on,
        ..CheckRun::default()
    };
    for (document, object) in workloads.iter().enumerate() {
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        if skips_kind(&args.skip_kind, kind) {
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
async fn read(client: Client, spec: &PolicySpec, namespace: Option<&str>) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut facts = Vec::new();
    facts.extend(list_all::<Node>(&client).await?);
    facts.extend(list_all::<PriorityClass>(&client).await?);
    facts.extend(list_all::<Namespace>(&client).await?);
    facts.extend(device_plugin_config(&client, spec).await?);
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
