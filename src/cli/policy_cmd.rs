//! `gpu-admission policy check [FILE]`: validate a policy and print the effective policy.

use clap::Subcommand;
use std::path::PathBuf;

use super::{CliError, Done};
use crate::policy::Policy;

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate FILE (default: the embedded policy) and print the effective policy as YAML.
    Check {
        file: Option<PathBuf>,
        /// Take time-slicing from a device-plugin ConfigMap, Helm values or config.
        #[arg(long)]
        time_slicing: Option<PathBuf>,
    },
}

pub fn run(args: PolicyArgs) -> Result<Done, CliError> {
    match args.command {
        PolicyCommand::Check { file, time_slicing } => {
            let policy = Policy::load_files(file.as_deref(), time_slicing.as_deref())?;
            println!("# effective policy from {}", policy.origin());
            print!("{}", policy.to_yaml());
            Ok(Done::Clean)
        }
    }
}
