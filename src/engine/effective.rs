//! The policy and the cluster facts, swapped together as one value.

use std::sync::Arc;

use crate::cluster::ClusterFacts;
use crate::policy::file::UnsyncedAction;
use crate::policy::{Policy, ResolvedClass};

/// What the engine decides with: a compiled policy and, with `serve --cluster` or
/// `check --cluster-state`, the facts read from the cluster. Cheap to clone (two `Arc`s).
#[derive(Debug, Clone)]
pub struct Effective {
    policy: Arc<Policy>,
    facts: Option<Arc<ClusterFacts>>,
}

// === impl Effective ===

impl Effective {
    /// The policy alone: its own numbers apply.
    pub fn new(policy: Policy) -> Self {
        Self::from_parts(Arc::new(policy), None)
    }

    pub fn from_parts(policy: Arc<Policy>, facts: Option<Arc<ClusterFacts>>) -> Self {
        Self { policy, facts }
    }

    /// The same policy deciding with these cluster facts.
    pub fn with_facts(&self, facts: Arc<ClusterFacts>) -> Self {
        Self::from_parts(self.policy.clone(), Some(facts))
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn policy_arc(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Cluster facts the engine should use, if any. Facts that never synced are used only when
    /// `cluster.unsyncedAction` is `deny` (to deny); with `fallback` the file's numbers apply.
    pub fn cluster(&self) -> Option<&ClusterFacts> {
        let facts = self.facts.as_deref()?;
        let deny_unsynced = self.policy.spec().cluster.unsynced_action == UnsyncedAction::Deny;
        (facts.synced || deny_unsynced).then_some(facts)
    }

    /// A priority class by name: from the cluster when it has synced facts, else from the policy.
    pub fn resolve_priority_class(&self, name: &str) -> Option<ResolvedClass> {
        if let Some(facts) = self.cluster().filter(|f| f.synced) {
            let fact = facts.priority_classes.get(name)?;
            return Some(ResolvedClass {
                name: name.to_string(),
                value: fact.value,
                preemption_policy: fact.preemption_policy.clone(),
            });
        }
        self.policy.priority_class(name).map(|c| ResolvedClass {
            name: c.name.clone(),
            value: c.value,
            preemption_policy: c.preemption_policy.clone(),
        })
    }
}

impl From<Policy> for Effective {
    fn from(policy: Policy) -> Self {
        Self::new(policy)
    }
}
