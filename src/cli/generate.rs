//! `gpu-admission generate webhooks`: the webhook configurations from the policy.

use clap::Subcommand;

use super::{CliError, Done, PolicyFlags};
use crate::generate::{self, webhooks::Service};

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
    }
}
