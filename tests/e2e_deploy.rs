//! `deploy/`: what the kustomizations render, and that a real kube-apiserver accepts the rendered
//! base in a server-side dry run (with stub cert-manager CRDs, see
//! `tests/fixtures/cert-manager-crds-stub.yaml`).

use std::collections::BTreeSet;

use gpu_admission_testkit::e2e::dry_run::{self, server_side_dry_run};
use gpu_admission_testkit::e2e::{harness, webhook};
use harness::kubectl;
use serde_json::{Value, json};
use webhook::{assert_output, repo, s};

#[path = "deploy/webhooks.rs"]
mod webhooks;

/// `kubectl kustomize <dir>` (under the repository; the test control plane's kubectl, no server).
fn render(dir: &str) -> (String, Vec<Value>) {
    dry_run::render(&repo().join(dir))
}

fn one<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "expected one {kind}/{name}");
    found[0]
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap_or(""),
                d["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// kustomize cannot load files from outside a kustomization's directory, so the base carries a
/// copy of the default policy. It must be the same bytes.
#[test]
fn base_policy_is_a_byte_identical_copy_of_the_default_policy() {
    let original = std::fs::read(repo().join("policies/default.yaml")).expect("policies/default.yaml");
    let copy = std::fs::read(repo().join("deploy/base/policy.yaml")).expect("deploy/base/policy.yaml");
    assert!(
        original == copy,
        "deploy/base/policy.yaml differs from policies/default.yaml: run\n  cp policies/default.yaml deploy/base/policy.yaml"
    );
}

#[test]
fn base_renders_every_component() {
    let (_, docs) = render("deploy");
    let names = kinds(&docs);
    for want in [
        "Namespace/gpu-admission",
        "ServiceAccount/gpu-admission",
        "ClusterRole/gpu-admission",
        "ClusterRoleBinding/gpu-admission",
        "Role/gpu-admission-device-plugin-config",
        "RoleBinding/gpu-admission-device-plugin-config",
        "Deployment/gpu-admission",
        "Service/gpu-admission",
        "PodDisruptionBudget/gpu-admission",
        "PriorityClass/high-priority",
        "PriorityClass/medium-priority",
        "Issuer/gpu-admission-selfsigned",
        "Issuer/gpu-admission-ca",
        "Certificate/gpu-admission-ca",
        "Certificate/gpu-admission-serving",
        "MutatingWebhookConfiguration/gpu-admission",
        "ValidatingWebhookConfiguration/gpu-admission",
    ] {
        assert!(names.contains(want), "{want} missing from the base: {names:?}");
    }
    // The policy ConfigMap (name with kustomize's content hash) holds the default policy.
    let cms: Vec<_> = docs.iter().filter(|d| d["kind"] == "ConfigMap").collect();
    assert_eq!(cms.len(), 1, "{names:?}");
    let cm = cms[0];
    let cm_name = cm["metadata"]["name"].as_str().unwrap();
    assert!(cm_name.starts_with("gpu-admission-policy-"), "{cm_name}");
    let policy = std::fs::read_to_string(repo().join("policies/default.yaml")).unwrap();
    assert_eq!(cm["data"]["policy.yaml"], policy.as_str());

    // Namespaced objects live in gpu-admission.
    for d in &docs {
        let kind = d["kind"].as_str().unwrap();
        let cluster_scoped = [
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "PriorityClass",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ];
        if ["Role", "RoleBinding"].contains(&kind) {
            assert_eq!(d["metadata"]["namespace"], "gpu-operator", "{kind}");
        } else if !cluster_scoped.contains(&kind) {
            assert_eq!(d["metadata"]["namespace"], "gpu-admission", "{kind}");
        }
    }

    // PriorityClasses: the seed's, and the values the policy patches into pods.
    for (name, value) in [("high-priority", 1_000_000), ("medium-priority", 100_000)] {
        let pc = one(&docs, "PriorityClass", name);
        assert_eq!(pc["value"], value);
        assert_eq!(pc["globalDefault"], false);
        assert!(
            policy.contains(&format!("{{name: {name}, value: {value}")),
            "policy lacks {name}"
        );
    }

    // RBAC for serve --cluster: read-only.
    let role = one(&docs, "ClusterRole", "gpu-admission");
    for rule in role["rules"].as_array().unwrap() {
        assert_eq!(rule["verbs"], json!(["get", "list", "watch"]), "{rule}");
    }
    let resources: BTreeSet<_> = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        resources,
        [
            "namespaces",
            "nodes",
            "priorityclasses",
            "resourceclaims",
            "resourceclaimtemplates"
        ]
        .map(String::from)
        .into()
    );
    // ConfigMaps: only the policy's device-plugin ConfigMap, in its namespace, by name.
    let role = one(&docs, "Role", "gpu-admission-device-plugin-config");
    assert!(
        policy.contains(&format!(
            "devicePluginConfig: {{namespace: {}, name: {}}}",
            role["metadata"]["namespace"].as_str().unwrap(),
            role["rules"][0]["resourceNames"][0].as_str().unwrap()
        )),
        "the Role does not name the policy's cluster.devicePluginConfig: {role}"
    );
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["time-slicing-config"], "verbs": ["get", "list", "watch"]}])
    );
    let binding = one(&docs, "RoleBinding", "gpu-admission-device-plugin-config");
    assert_eq!(binding["roleRef"]["name"], "gpu-admission-device-plugin-config");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "gpu-admission", "namespace": "gpu-admission"}])
    );
}

#[test]
fn deployment_is_spread_probed_limited_and_restricted() {
    let (_, docs) = render("deploy");
    let d = one(&docs, "Deployment", "gpu-admission");
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    let tsc = &pod["topologySpreadConstraints"][0];
    assert_eq!(tsc["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(tsc["maxSkew"], 1);
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");

    let c = &pod["containers"][0];
    // The image deploy/ names once (`images:`), at the version a release of this crate pushes.
    assert_eq!(
        c["image"],
        format!("ghcr.io/gpu-admission/gpu-admission:{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(spec["minReadySeconds"], 5);
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["runAsNonRoot"], true);
    for k in ["cpu", "memory"] {
        assert!(c["resources"]["requests"][k].is_string(), "requests.{k}");
        assert!(c["resources"]["limits"][k].is_string(), "limits.{k}");
    }
    // Probes on the admin port, which serves /livez and /readyz.
    let admin = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .expect("admin port");
    assert_eq!(admin["containerPort"], 8080);
    assert_eq!(
        c["livenessProbe"]["httpGet"],
        json!({"path": "/livez", "port": "admin"})
    );
    assert_eq!(
        c["readinessProbe"]["httpGet"],
        json!({"path": "/readyz", "port": "admin"})
    );
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--admin-listen=0.0.0.0:8080"), "{args:?}");
    assert!(args.contains(&"--listen=0.0.0.0:8443"), "{args:?}");

    // The policy ConfigMap (hashed name) and the cert-manager Secret are what is mounted.
    let cm = docs.iter().find(|x| x["kind"] == "ConfigMap").unwrap();
    let vols = pod["volumes"].as_array().unwrap();
    assert!(
        vols.iter().any(|v| v["configMap"]["name"] == cm["metadata"]["name"]),
        "{vols:?}"
    );
    let serving = one(&docs, "Certificate", "gpu-admission-serving");
    assert!(
        vols.iter()
            .any(|v| v["secret"]["secretName"] == serving["spec"]["secretName"]),
        "{vols:?}"
    );

    // The Service sends 443 to the webhook port; the PDB keeps one replica.
    let svc = one(&docs, "Service", "gpu-admission");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "webhook");
    let webhook_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhook")
        .unwrap();
    assert_eq!(webhook_port["containerPort"], 8443);
    assert_eq!(
        one(&docs, "PodDisruptionBudget", "gpu-admission")["spec"]["minAvailable"],
        1
    );
}

/// `kubectl apply --server-side --dry-run=server` of the rendered base against the real API
/// server: every object is accepted (schema, defaulting, validation, CEL compilation of the
/// matchConditions, admission), and the Deployment's pod template passes the `restricted` Pod
/// Security level the Namespace enforces.
#[test]
fn rendered_base_is_accepted_by_the_api_server() {
    harness::shared();
    // cert-manager's kinds (stub CRDs), established before use.
    let crds = repo().join("tests/fixtures/cert-manager-crds-stub.yaml");
    kubectl(&["apply", "-f", s(&crds)], None).assert_success();
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/certificates.cert-manager.io",
            "crd/issuers.cert-manager.io",
        ],
        None,
    )
    .assert_success();

    let (text, docs) = render("deploy");
    // A server-side dry run stores nothing, so namespaced objects need their Namespace to exist:
    // apply that one for real (with its Pod Security labels, so the dry run below is checked
    // against `restricted`).
    let ns = one(&docs, "Namespace", "gpu-admission");
    kubectl(&["apply", "--server-side", "-f", "-"], Some(&ns.to_string())).assert_success();
    webhook::ensure_namespaces(&["gpu-operator"]);

    let out = server_side_dry_run("cert-manager's kinds", &text);
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_output(
        &out,
        0,
        &[
            "namespace/gpu-admission serverside-applied (server dry run)",
            "serviceaccount/gpu-admission serverside-applied (server dry run)",
            "role.rbac.authorization.k8s.io/gpu-admission-device-plugin-config serverside-applied (server dry run)",
            "clusterrole.rbac.authorization.k8s.io/gpu-admission serverside-applied (server dry run)",
            "rolebinding.rbac.authorization.k8s.io/gpu-admission-device-plugin-config serverside-applied (server dry run)",
            "clusterrolebinding.rbac.authorization.k8s.io/gpu-admission serverside-applied (server dry run)",
            &format!("configmap/{cm} serverside-applied (server dry run)"),
            "service/gpu-admission serverside-applied (server dry run)",
            "priorityclass.scheduling.k8s.io/high-priority serverside-applied (server dry run)",
            "priorityclass.scheduling.k8s.io/medium-priority serverside-applied (server dry run)",
            "deployment.apps/gpu-admission serverside-applied (server dry run)",
            "poddisruptionbudget.policy/gpu-admission serverside-applied (server dry run)",
            "certificate.cert-manager.io/gpu-admission-ca serverside-applied (server dry run)",
            "certificate.cert-manager.io/gpu-admission-serving serverside-applied (server dry run)",
            "issuer.cert-manager.io/gpu-admission-ca serverside-applied (server dry run)",
            "issuer.cert-manager.io/gpu-admission-selfsigned serverside-applied (server dry run)",
            "mutatingwebhookconfiguration.admissionregistration.k8s.io/gpu-admission serverside-applied (server dry run)",
            "validatingwebhookconfiguration.admissionregistration.k8s.io/gpu-admission serverside-applied (server dry run)",
        ],
        &[],
    );
    // The Pod Security check above was live: a privileged template in that namespace is warned.
    let privileged = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "privileged", "namespace": "gpu-admission"},
        "spec": {
            "selector": {"matchLabels": {"app": "privileged"}},
            "template": {
                "metadata": {"labels": {"app": "privileged"}},
                "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]},
            },
        },
    });
    let out = kubectl(
        &["apply", "--server-side", "--dry-run=server", "-f", "-"],
        Some(&privileged.to_string()),
    );
    assert!(
        out.success() && out.stderr.contains("would violate PodSecurity \"restricted:latest\""),
        "{out:?}"
    );

    // Dry run: no webhook configuration was stored.
    let get = kubectl(&["get", "validatingwebhookconfiguration", "gpu-admission"], None);
    assert_eq!(get.code, 1, "{get:?}");
}

/// A matchCondition that does not compile is refused by the API server when the configuration is
/// created: the expressions above compile because the dry run accepted them. This checks that
/// the API server does check them (so that acceptance above means something).
#[test]
fn api_server_compiles_match_conditions() {
    harness::shared();
    let (_, docs) = render("deploy/overlays/local");
    let mut v = one(&docs, "ValidatingWebhookConfiguration", "gpu-admission").clone();
    v["metadata"]["name"] = json!("gpu-admission-broken");
    for w in v["webhooks"].as_array_mut().unwrap() {
        w["clientConfig"]["caBundle"] = json!("");
    }
    v["webhooks"][0]["matchConditions"][0]["expression"] = json!("object.spec.containers.exists(c, c.resources.limits");
    let out = kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&v.to_string()));
    out.assert_fails_saying(&[
        "webhooks[0].matchConditions[0].expression: Invalid value",
        "compilation failed",
    ]);
}
