//! gpu-admission: a Kubernetes admission webhook that keeps GPU and edge-TPU workloads correct.
//!
//! The crate is a pure policy engine ([`engine::evaluate`]) with thin shells around it: the
//! HTTPS webhook ([`server`]), the AdmissionReview codec ([`admission`]) and the CLI ([`cli`]).
#![forbid(unsafe_code)]

pub mod admission;
pub mod certs;
pub mod cli;
pub mod cluster;
pub mod engine;
pub mod manifests;
pub mod policy;
pub mod quantity;
pub mod server;
pub mod workload;
