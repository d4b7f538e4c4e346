//! deploy/components/self-managed-certs in a rendering (tests/e2e_deploy_components.rs).

use serde_json::{Value, json};

/// The Deployment's certificate: mounted files, or the self-managed Secret (no mount, no file
/// flags, the namespace from the downward API), and the RBAC by resourceNames that goes with it.
pub fn check_certificate_source(name: &str, components: &[&str], docs: &[Value]) {
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
    let mounts_tls = volumes.as_array().unwrap().iter().any(|v| v["name"] == "tls");
    let self_managed = components.contains(&"self-managed-certs");
    assert_eq!(
        args.contains(&"--self-managed-certs=gpu-admission-certs"),
        self_managed,
        "{name}: {args:?}"
    );
    assert_eq!(
        args.iter().any(|a| a.starts_with("--tls-")),
        !self_managed,
        "{name}: {args:?}"
    );
    assert_eq!(mounts_tls, !self_managed, "{name}");
    let secret = docs
        .iter()
        .find(|d| d["kind"] == "Secret" && d["metadata"]["name"] == "gpu-admission-certs");
    assert_eq!(secret.is_some(), self_managed, "{name}");
    if !self_managed {
        return;
    }
    assert_eq!(container["env"][0]["name"], "GPU_ADMISSION_NAMESPACE", "{name}");
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let rules = |kind: &str| -> Vec<Value> {
        let role = docs
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == "gpu-admission-self-managed-certs")
            .unwrap_or_else(|| panic!("{name}: no {kind} gpu-admission-self-managed-certs"));
        role["rules"].as_array().unwrap().clone()
    };
    let verbs = json!(["get", "list", "watch", "update"]);
    assert_eq!(
        rules("Role"),
        vec![
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["gpu-admission-certs"], "verbs": verbs})
        ]
    );
    assert_eq!(
        rules("ClusterRole"),
        vec![json!({"apiGroups": ["admissionregistration.k8s.io"],
                    "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
                    "resourceNames": ["gpu-admission"], "verbs": verbs})]
    );
}
