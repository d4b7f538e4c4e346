#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = gpu_admission::cli::Cli::parse();
    gpu_admission::cli::run(cli)
}
