//! `check --cluster-state DIR`: cluster facts from YAML dumps (`kubectl get nodes,configmaps,
//! priorityclasses,namespaces -A -o yaml`), through the same [`ClusterFacts::from_objects`] the
//! server's caches use.

use std::path::Path;

use super::ClusterFacts;
use crate::k8s::discover::discover;
use crate::k8s::manifests::{self, InputError};
use crate::policy::PolicySpec;

/// Reads every manifest under `dir` (recursively; `kind: List` expanded) into cluster facts.
pub fn load(spec: &PolicySpec, dir: &Path) -> Result<ClusterFacts, Vec<InputError>> {
    let found = discover(&[dir.to_path_buf()], &[]);
    let (files, mut errors) = (found.files, found.errors);
    let mut objects = Vec::new();
    for file in files {
        match manifests::read_file(&file).and_then(|source| manifests::manifests(&source)) {
            Ok(found) => objects.extend(found.into_iter().map(|m| m.object)),
            Err(e) => errors.push(e),
        }
    }
    if !dir.is_dir() {
        errors.push(InputError::new(dir.display().to_string(), None, "not a directory"));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ClusterFacts::from_objects(spec, &objects))
}
