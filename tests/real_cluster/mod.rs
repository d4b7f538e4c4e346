//! The real-cluster suite's kit (tests/e2e_real_cluster.rs): the cluster and its kubectl
//! ([`cluster`]), a bounded admission load ([`load`]), the run's report ([`report`]), and the
//! installation by Argo CD sync waves ([`waves`]).
//! Self-contained: it does not use tests/common or tests/e2e.
#![allow(dead_code)]

pub mod cluster;
pub mod load;
pub mod report;
pub mod waves;
