//! Cluster facts: what the cluster says about its GPUs, priority classes and namespaces.
//!
//! [`ClusterFacts`] is plain data built from Kubernetes objects (as JSON), so the server's watch
//! caches and `check --cluster-state DIR` build it through the same code. The engine receives it
//! beside the policy, as one effective value (`engine::Effective`). The admission path never
//! calls the API server.

pub mod doctor;
pub mod dra;
pub mod facts;
pub mod state_dir;
pub mod watch;

pub use facts::{ClusterFacts, GpuNode, NodeLimits};
