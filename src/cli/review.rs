//! `gpu-admission review [FILE|-]`: one AdmissionReview JSON in, the response review out.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use super::{CliError, Done, PolicyFlags};
use crate::admission::{Endpoint, encode, review};
use crate::engine::Effective;

/// `--endpoint`: which webhook to answer as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EndpointArg {
    Mutate,
    Validate,
}

impl From<EndpointArg> for Endpoint {
    fn from(arg: EndpointArg) -> Self {
        match arg {
            EndpointArg::Mutate => Endpoint::Mutate,
            EndpointArg::Validate => Endpoint::Validate,
        }
    }
}

/// Evaluate one AdmissionReview exactly as the server would and print the response review.
#[derive(Debug, Clone, clap::Args)]
pub struct ReviewArgs {
    /// The AdmissionReview JSON file; `-` (or nothing) reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Which webhook to answer as.
    #[arg(long, value_enum, default_value_t = EndpointArg::Validate)]
    pub endpoint: EndpointArg,
    #[command(flatten)]
    pub policy: PolicyFlags,
    /// Print compact JSON (one line) instead of indented JSON.
    #[arg(long)]
    pub compact: bool,
}

/// Exit 0 with the response review on stdout; exit 2 with the error on stderr when the input,
/// the policy or the time-slicing file is unusable.
pub fn run(args: ReviewArgs) -> Result<Done, CliError> {
    let effective = Effective::new(args.policy.load()?);
    let body = read_input(args.file.as_deref()).map_err(CliError::Input)?;
    match review(&effective, args.endpoint.into(), &body) {
        Ok((response, _summary)) => {
            let bytes = encode(&response);
            let text = if args.compact {
                String::from_utf8_lossy(&bytes).into_owned()
            } else {
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .and_then(|v| serde_json::to_string_pretty(&v))
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
            };
            println!("{text}");
            Ok(Done::Clean)
        }
        Err(e) => {
            println!("{}", e.to_json());
            Err(CliError::Review(e))
        }
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, String> {
    match file {
        None => read_stdin(),
        Some(p) if crate::k8s::manifests::is_stdin(p) => read_stdin(),
        Some(p) => std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display())),
    }
}

fn read_stdin() -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(buf)
}
