//! `gpu-admission review [FILE|-]`: one AdmissionReview JSON in, the response review out.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Endpoint, encode, review};
use crate::policy::Policy;

/// Evaluate one AdmissionReview exactly as the server would and print the response review.
#[derive(Debug, Clone, clap::Args)]
pub struct ReviewArgs {
    /// The AdmissionReview JSON file; `-` (or nothing) reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,
    /// Which webhook to answer as.
    #[arg(long, value_enum, default_value_t = Endpoint::Validate)]
    pub endpoint: Endpoint,
    /// Policy file (default: the embedded default policy).
    #[arg(long, env = "GPU_ADMISSION_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Device-plugin time-slicing config (ConfigMap or config file) overriding `gpu.timeSlicing`.
    #[arg(long, env = "GPU_ADMISSION_TIME_SLICING", value_name = "FILE")]
    pub time_slicing: Option<PathBuf>,
    /// Print compact JSON (one line) instead of indented JSON.
    #[arg(long)]
    pub compact: bool,
}

/// Exit 0 with the response review on stdout; exit 2 with the error on stderr when the input,
/// the policy or the time-slicing file is unusable.
pub fn run_review_cmd(args: ReviewArgs) -> ExitCode {
    let policy = match Policy::load_files(args.policy.as_deref(), args.time_slicing.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let body = match read_input(args.file.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match review(&policy, args.endpoint, &body) {
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error[{}]: {}", e.code, e.message);
            println!("{}", e.to_json());
            ExitCode::from(2)
        }
    }
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>, String> {
    match file {
        None => read_stdin(),
        Some(p) if p.as_os_str() == "-" => read_stdin(),
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
