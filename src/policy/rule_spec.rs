//! The part every rule's section of the policy shares, so the engine's rule table can read any
//! of them the same way.

use super::file::{HostPathSpec, PlacementSpec, PrioritySpec, SlicesSpec, TolerationsSpec, VisibilitySpec};
use crate::decision::Action;

/// What every rule's section of the policy has: an action and the namespaces it skips.
pub trait RuleSpec {
    fn action(&self) -> Action;
    fn exempt_namespaces(&self) -> &[String];
    /// Whether the rule has anything to do (a rule with a second action says so here).
    fn enabled(&self) -> bool {
        self.action() != Action::Off
    }
}

macro_rules! rule_spec {
    ($($spec:ty),*) => {$(
        impl RuleSpec for $spec {
            fn action(&self) -> Action {
                self.action
            }
            fn exempt_namespaces(&self) -> &[String] {
                &self.exempt_namespaces
            }
        }
    )*};
}

rule_spec!(PlacementSpec, TolerationsSpec, PrioritySpec, HostPathSpec);

impl RuleSpec for SlicesSpec {
    fn action(&self) -> Action {
        self.action
    }
    fn exempt_namespaces(&self) -> &[String] {
        &self.exempt_namespaces
    }
    /// The unknown-resource and no-node checks run even when the slice limits are off.
    fn enabled(&self) -> bool {
        [self.action, self.unknown_resource_action, self.no_node_matches_action]
            .iter()
            .any(|a| *a != Action::Off)
    }
}

impl RuleSpec for VisibilitySpec {
    fn action(&self) -> Action {
        self.action
    }
    fn exempt_namespaces(&self) -> &[String] {
        &self.exempt_namespaces
    }
    /// The privileged check runs even when the variable checks are off.
    fn enabled(&self) -> bool {
        self.action != Action::Off || self.privileged_action != Action::Off
    }
}
