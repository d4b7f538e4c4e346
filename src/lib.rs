//! gpu-admission: a Kubernetes admission webhook that keeps GPU and edge-TPU workloads correct.
//!
//! The crate is a pure policy engine with thin shells around it. An embedder needs three
//! things, re-exported here: the policy loader ([`Policy`]), the engine ([`evaluate`] over an
//! [`Effective`] policy) and the review function ([`review`], AdmissionReview bytes in, response
//! review out). The layers, each using only those before it:
//!
//! [`decision`] → [`k8s`], [`certs`] → [`policy`] → `cluster` → [`engine`] → [`admission`],
//! [`offline`], `generate` (webhook configurations, native policies) → [`server`] → `cli` (the
//! binary's).
#![forbid(unsafe_code)]

pub mod admission;
pub mod certs;
mod cli;
mod cluster;
pub mod decision;
pub mod engine;
mod generate;
pub mod k8s;
pub mod offline;
pub mod policy;
pub mod server;

pub use admission::{encode, review};
pub use engine::{Context, Effective, evaluate};
pub use policy::Policy;

/// The `gpu-admission` command line: parses the arguments and runs the subcommand.
pub fn cli_main() -> std::process::ExitCode {
    use clap::Parser as _;
    cli::run(cli::Cli::parse())
}
