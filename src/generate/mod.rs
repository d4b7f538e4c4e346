//! Generation: the policy (and, for native mode, the facts) in, Kubernetes objects out. No I/O.
//!
//! - [`webhooks`]: the Mutating and Validating webhook configurations (`deploy/webhooks/`).
//! - [`exempt`]: who is not sent at all, shared by every generator.
//! - [`native`]: the rules as ValidatingAdmissionPolicies, a MutatingAdmissionPolicy and their
//!   params (`generate native`).
//! - [`cel`]: the CEL text the matchConditions and the native policies share.

pub mod cel;
pub mod exempt;
pub mod native;
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

/// The files of `generate native`: `params.yaml`, `validating.yaml`, `mutating.yaml`.
pub fn native_files(effective: &crate::engine::Effective) -> Result<Vec<(&'static str, String)>, GenerateError> {
    let n = native::generate(effective);
    Ok(vec![
        ("params.yaml", yaml::render(native::PARAMS_HEADER, &[n.params])?),
        (
            "validating.yaml",
            yaml::render(&native::validating_header(), &n.validating)?,
        ),
        ("mutating.yaml", yaml::render(native::MUTATING_HEADER, &n.mutating)?),
    ])
}

#[cfg(test)]
mod tests;
