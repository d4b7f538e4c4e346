//! Cluster facts: what the cluster says about its GPUs, priority classes and namespaces.
//!
//! [`ClusterFacts`] is plain data built from Kubernetes objects (as JSON), so the server's watch
//! caches and `check --cluster-state DIR` build it through the same code, and the engine reads it
//! from the [`Policy`](crate::policy::Policy) it is given ([`Policy::with_cluster`]). The admission
//! path never calls the API server.
//!
//! [`Policy::with_cluster`]: crate::policy::Policy::with_cluster

pub mod facts;
pub mod state_dir;
pub mod watch;

pub use facts::{ClusterFacts, GpuNode, NodeLimits, PriorityClassFact};
