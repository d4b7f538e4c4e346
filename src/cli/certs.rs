//! `gpu-admission certs`: a development CA and serving certificate.

use std::path::PathBuf;

use super::{CliError, Done};
use crate::certs::write_dev_certs;

/// Write a development CA and a serving certificate (PEM), print the base64 caBundle.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// Directory to write `ca.crt`, `ca.key`, `tls.crt`, `tls.key` into (created if missing).
    #[arg(long, value_name = "DIR", default_value = "certs/dev")]
    pub out: PathBuf,
    /// DNS name or IP address for the serving certificate's SANs (repeatable).
    /// The first one is also its common name.
    #[arg(long = "host", value_name = "NAME", default_values_t = [String::from("localhost"), String::from("127.0.0.1")])]
    pub hosts: Vec<String>,
    /// Validity of the serving certificate, in days (the CA gets ten times as long).
    #[arg(long, value_name = "DAYS", default_value_t = 365)]
    pub valid_days: u32,
    /// Reuse `ca.crt`/`ca.key` already in DIR (the caBundle stays the same); only the serving
    /// certificate is new.
    #[arg(long)]
    pub reuse_ca: bool,
}

/// `gpu-admission certs`.
pub fn run(args: CertsArgs) -> Result<Done, CliError> {
    match write_dev_certs(&args.out, &args.hosts, args.valid_days, args.reuse_ca) {
        Ok(files) => {
            eprintln!(
                "wrote {}, {}, {}, {} (SANs: {}); caBundle:",
                files.ca_cert.display(),
                files.ca_key.display(),
                files.cert.display(),
                files.key.display(),
                args.hosts.join(", ")
            );
            println!("{}", files.ca_bundle);
            Ok(Done::Clean)
        }
        Err(e) => Err(CliError::Failed(e.to_string())),
    }
}
