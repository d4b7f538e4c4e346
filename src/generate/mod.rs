//! Generation: the policy (and, for native mode, the facts) in, Kubernetes objects out. No I/O.
//!
//! - [`webhooks`]: the Mutating and Validating webhook configurations (`deploy/webhooks/`).
//! - [`exempt`]: who is not sent at all, shared by every generator.
//! - [`cel`]: the CEL text the matchConditions and the native policies share.

pub mod cel;
pub mod exempt;
pub mod webhooks;
pub mod yaml;

use crate::policy::Policy;

/// The objects could not be written as YAML.
#[derive(Debug, thiserror::Error)]
#[error("cannot render YAML: {0}")]
pub struct GenerateError(#[from] serde_yaml_ng::Error);

/// `deploy/webhooks/webhooks.yaml` for `policy`: the header, then both configurations.
pub fn webhooks_yaml(policy: &Policy, service: &webhooks::Service) -> Result<String, GenerateError> {
    let docs = webhooks::configurations(policy, service);
    Ok(yaml::render(webhooks::HEADER, &docs)?)
}

#[cfg(test)]
mod tests;
