//! `gpu-admission generate webhooks|native`: Kubernetes objects from the policy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;

use super::cluster_read::with_client;
use super::{CliError, Done, PolicyFlags};
use crate::cluster::ClusterFacts;
use crate::cluster::watch::ClusterWatch;
use crate::engine::Effective;
use crate::generate::{self, webhooks::Service};
use crate::policy::Policy;
use crate::server::ClusterSource;

/// How long `generate native --cluster` waits for the caches' first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// The facts `serve --cluster` would decide with: its watch caches, once they have synced.
fn live_facts(policy: &Policy, kubeconfig: Option<PathBuf>) -> Result<ClusterFacts, CliError> {
    with_client(&ClusterSource { kubeconfig }, |client| async move {
        let watch = ClusterWatch::spawn(client, policy.spec());
        let mut changes = watch.changes();
        let deadline = tokio::time::sleep(SYNC_TIMEOUT);
        tokio::pin!(deadline);
        while !watch.synced() {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { break },
                () = &mut deadline => {
                    return Err(format!(
                        "the cluster's {} did not sync within {} s",
                        watch.unsynced().join(", "),
                        SYNC_TIMEOUT.as_secs()
                    ));
                }
            }
        }
        Ok(watch.facts(policy.spec()))
    })
    .map_err(CliError::Failed)
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub command: GenerateCommand,
}

#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// The Mutating and Validating webhook configurations (deploy/webhooks/webhooks.yaml), on
    /// stdout.
    Webhooks {
        #[command(flatten)]
        policy: PolicyFlags,
        /// Namespace of the webhook's Service.
        #[arg(long, default_value = "gpu-admission")]
        service_namespace: String,
        /// Name of the webhook's Service.
        #[arg(long, default_value = "gpu-admission")]
        service_name: String,
    },
    /// Every generated file of deploy/ (webhook configurations, native policies and params,
    /// the hybrid mode's patch), written under ROOT (the repository).
    Deploy {
        #[command(flatten)]
        policy: PolicyFlags,
        #[arg(long, default_value = ".", value_name = "ROOT")]
        root: PathBuf,
    },
    /// ValidatingAdmissionPolicies, a MutatingAdmissionPolicy and their params ConfigMap: the
    /// rules without a webhook (README "Native mode"), on stdout or as files in `-o DIR`.
    Native {
        #[command(flatten)]
        policy: PolicyFlags,
        /// Compute the params from a directory of cluster objects (as `check --cluster-state`).
        #[arg(long, value_name = "DIR", conflicts_with = "cluster")]
        cluster_state: Option<PathBuf>,
        /// Compute the params from the cluster itself: the watch caches of `serve --cluster`,
        /// once synced (kubeconfig, or in-cluster).
        #[arg(long)]
        cluster: bool,
        /// With --cluster: the kubeconfig to use.
        #[arg(long, value_name = "FILE", requires = "cluster")]
        kubeconfig: Option<PathBuf>,
        /// Write params.yaml, validating.yaml and mutating.yaml into DIR instead of stdout.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

pub fn run(args: GenerateArgs) -> Result<Done, CliError> {
    match args.command {
        GenerateCommand::Webhooks {
            policy,
            service_namespace,
            service_name,
        } => {
            let policy = policy.load()?;
            let service = Service {
                namespace: service_namespace,
                name: service_name,
                ..Service::default()
            };
            let text = generate::webhooks_yaml(&policy, &service).map_err(|e| CliError::Failed(e.to_string()))?;
            print!("{text}");
            Ok(Done::Clean)
        }
        GenerateCommand::Deploy { policy, root } => {
            let policy = policy.load()?;
            let files = generate::deploy_files(&policy).map_err(|e| CliError::Failed(e.to_string()))?;
            for (name, text) in files {
                write(&root.join(name), &text)?;
            }
            Ok(Done::Clean)
        }
        GenerateCommand::Native {
            policy,
            cluster_state,
            cluster,
            kubeconfig,
            output_dir,
        } => {
            let effective = if cluster {
                let policy = policy.load()?;
                let facts = live_facts(&policy, kubeconfig)?;
                Effective::from_parts(Arc::new(policy), Some(Arc::new(facts)))
            } else {
                policy.load_effective(cluster_state.as_deref())?
            };
            let files = generate::native_files(&effective).map_err(|e| CliError::Failed(e.to_string()))?;
            match output_dir {
                None => {
                    let texts: Vec<String> = files.into_iter().map(|(_, text)| text).collect();
                    print!("{}", texts.join("---\n"));
                }
                Some(dir) => {
                    for (name, text) in files {
                        write(&dir.join(name), &text)?;
                    }
                }
            }
            Ok(Done::Clean)
        }
    }
}

/// Writes `text` to `path`, creating its directory.
fn write(path: &std::path::Path, text: &str) -> Result<(), CliError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, text).map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}
