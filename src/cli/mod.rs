//! Command-line entry points: every clap type, and the one place where results become exit
//! codes. Each subcommand is a thin shell around the library.
//!
//! Exit codes: 0 success; 1 findings (`check`: something denied) or a server that could not
//! start; 2 bad input: an unusable policy, file, flag or review.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::admission::ReviewError;
use crate::engine::Effective;
use crate::k8s::manifests::InputError;
use crate::policy::{Policy, PolicyError};

mod certs;
mod check;
mod cluster_read;
mod doctor;
mod generate;
mod policy_cmd;
mod review;
mod serve;
mod shell;
mod test_cmd;

/// gpu-admission: admission webhook and offline checker for GPU and edge-TPU workloads.
#[derive(Debug, Parser)]
#[command(name = "gpu-admission", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook (and the admin port).
    Serve(serve::ServeArgs),
    /// Check manifests in files against the policy, offline.
    Check(check::CheckArgs),
    /// Evaluate one AdmissionReview JSON exactly as the server would, print the response review.
    Review(review::ReviewArgs),
    /// Write a development CA and serving certificate.
    Certs(certs::CertsArgs),
    /// Policy file tools.
    Policy(policy_cmd::PolicyArgs),
    /// Per GPU node: the device-plugin config it resolves to, and what is inconsistent.
    Doctor(doctor::DoctorArgs),
    /// Write Kubernetes objects generated from the policy (webhook configurations).
    Generate(generate::GenerateArgs),
    /// Run suites of manifests against the decisions they must get (gpu-admission-test.yaml).
    Test(test_cmd::TestArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

/// How a command ended, when it ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Exit 0.
    Clean,
    /// Exit 1: the command ran and found what it reports as failure (`check`: a denial).
    Findings,
}

/// Why a command stopped. [`CliError::exit_code`] is the only mapping to exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("cluster state: {}", join(.0))]
    ClusterState(Vec<InputError>),
    /// Unusable input named by the message (a file, a flag).
    #[error("{0}")]
    Input(String),
    /// A body that is not a usable AdmissionReview (printed as `error[code]: message`).
    #[error("[{}] {}", .0.code, .0.message)]
    Review(ReviewError),
    /// The command could not do its work (a server that cannot start, files that cannot be
    /// written).
    #[error("{0}")]
    Failed(String),
}

// === impl CliError ===

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Policy(_) | CliError::ClusterState(_) | CliError::Input(_) | CliError::Review(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

fn join(errors: &[InputError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Review(args) => review::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Policy(args) => policy_cmd::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Test(args) => test_cmd::run(args),
        Command::Completions(args) => shell::completions(args),
        Command::Man => shell::man(),
    };
    match result {
        Ok(Done::Clean) => ExitCode::SUCCESS,
        Ok(Done::Findings) => ExitCode::from(1),
        Err(CliError::Review(e)) => {
            eprintln!("error[{}]: {}", e.code, e.message);
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The policy flags every command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicyFlags {
    /// Policy file (default: the embedded default policy).
    #[arg(long, env = "GPU_ADMISSION_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Read time-slicing from a device-plugin ConfigMap, GPU Operator Helm values or config
    /// (overrides `gpu.timeSlicing`).
    #[arg(long, env = "GPU_ADMISSION_TIME_SLICING", value_name = "FILE")]
    pub time_slicing: Option<PathBuf>,
}

// === impl PolicyFlags ===

impl PolicyFlags {
    /// The policy, or the error that makes the command exit 2.
    pub fn load(&self) -> Result<Policy, CliError> {
        Ok(Policy::load_files(
            self.policy.as_deref(),
            self.time_slicing.as_deref(),
        )?)
    }

    /// The policy with the facts of a `--cluster-state` directory, when one is given.
    pub fn load_effective(&self, cluster_state: Option<&Path>) -> Result<Effective, CliError> {
        let policy = self.load()?;
        let Some(dir) = cluster_state else {
            return Ok(Effective::new(policy));
        };
        let facts = crate::cluster::state_dir::load(policy.spec(), dir).map_err(CliError::ClusterState)?;
        if !facts.device_plugin_config_found {
            let cm = &policy.spec().cluster.device_plugin_config;
            eprintln!(
                "warning: cluster state {}: no device-plugin ConfigMap {}/{}: per-node time-slicing is unknown, so GPU nodes are judged by their allocatable alone",
                dir.display(),
                cm.namespace,
                cm.name
            );
        }
        Ok(Effective::from_parts(Arc::new(policy), Some(Arc::new(facts))))
    }
}
