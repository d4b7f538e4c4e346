//! `gpu-admission doctor`: per GPU node, the device-plugin config it resolves to and what does
//! not add up. Exit 0 when consistent, 1 when anything is inconsistent, 2 on bad input.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::cluster_read::{device_plugin_config, list_all, with_client};
use super::{CliError, Done, PolicyFlags};
use crate::cluster::ClusterFacts;
use crate::cluster::doctor::{self, Report};
use crate::server::ClusterSource;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorOutput {
    Text,
    Json,
}

/// Read the cluster (or a dump) and say, per GPU node, what its device plugin gives.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Cluster objects dumped as YAML (`kubectl get nodes -o yaml`, the device-plugin ConfigMap).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "cluster",
        required_unless_present = "cluster"
    )]
    pub cluster_state: Option<PathBuf>,
    /// Read the cluster itself (kubeconfig, or in-cluster).
    #[arg(long)]
    pub cluster: bool,
    #[arg(long, value_name = "FILE", requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DoctorOutput::Text)]
    pub output: DoctorOutput,
}

pub fn run(args: DoctorArgs) -> Result<Done, CliError> {
    let policy = args.policy.load()?;
    let spec = policy.spec();
    let facts = match &args.cluster_state {
        Some(dir) => crate::cluster::state_dir::load(spec, dir).map_err(CliError::ClusterState)?,
        None => {
            let source = ClusterSource {
                kubeconfig: args.kubeconfig.clone(),
            };
            let objects = read_cluster(&source, spec).map_err(CliError::Failed)?;
            ClusterFacts::from_objects(spec, &objects)
        }
    };
    let cm = &spec.cluster.device_plugin_config;
    let report = doctor::diagnose(&facts, &format!("{}/{}", cm.namespace, cm.name));
    print(&report, args.output);
    Ok(if report.problem_count() == 0 {
        Done::Clean
    } else {
        Done::Findings
    })
}

fn print(report: &Report, output: DoctorOutput) {
    match output {
        DoctorOutput::Text => print!("{}", doctor::render_text(report)),
        DoctorOutput::Json => match serde_json::to_string_pretty(report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot render the report: {e}"),
        },
    }
}

/// The Nodes and the device-plugin ConfigMap, read once.
fn read_cluster(source: &ClusterSource, spec: &crate::policy::PolicySpec) -> Result<Vec<Value>, String> {
    with_client(source, |client| async move {
        let mut objects = list_all::<Node>(&client).await?;
        objects.extend(device_plugin_config(&client, spec).await?);
        Ok(objects)
    })
}
