//! The real-cluster suite's kit (tests/e2e_real_cluster.rs): the cluster and its kubectl
//! ([`cluster`]), a bounded admission load ([`load`]), and the run's report ([`report`]).
//! Self-contained: it does not use tests/common or tests/e2e.
#![allow(dead_code)]

pub mod cluster;
pub mod load;
pub mod report;
