//! `gpu-admission completions SHELL` and `gpu-admission man`, from the clap definitions.

use std::io::Write;

use clap::CommandFactory;

use super::{Cli, CliError, Done};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<Done, CliError> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "gpu-admission", &mut out);
    write_stdout(&out)
}

pub fn man() -> Result<Done, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::Failed(format!("cannot render the man page: {e}")))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<Done, CliError> {
    // A closed pipe (`… | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(bytes);
    Ok(Done::Clean)
}
