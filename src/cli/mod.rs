//! Command-line entry points. Each subcommand is a thin shell around the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check;
pub mod policy_cmd;

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
    Serve(crate::server::ServeArgs),
    /// Check manifests in files against the policy, offline.
    Check(check::CheckArgs),
    /// Evaluate one AdmissionReview JSON exactly as the server would, print the response review.
    Review(crate::admission::ReviewArgs),
    /// Write a development CA and serving certificate.
    Certs(crate::certs::CertsArgs),
    /// Policy file tools.
    Policy(policy_cmd::PolicyArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => crate::server::run(args),
        Command::Check(args) => check::run(args),
        Command::Review(args) => crate::admission::run_review_cmd(args),
        Command::Certs(args) => crate::certs::run(args),
        Command::Policy(args) => policy_cmd::run(args),
    }
}
