//! Shared by the benchmarks (`benches/*.rs`) and the load tools (`tools/`): the recorded
//! AdmissionReview bodies of `benches/data/` and a generator of realistic manifests for `check`.

use std::fmt::Write as _;

/// The review bodies, as kube-apiserver sends them (see `benches/data/generate.sh`).
pub const FIXTURES: &[(&str, &[u8])] = &[
    // (a) A pod without GPUs in `default`: most of a cluster's reviews.
    ("plain-pod", include_bytes!("../../benches/data/review-plain-pod.json")),
    // The recorded GPU pod CREATE (already has placement, toleration and class: allowed as is).
    ("gpu-pod", include_bytes!("../../benches/data/review-pod.json")),
    // A GPU pod as its ReplicaSet creates it from a plain template: /mutate answers a patch.
    (
        "gpu-pod-unpatched",
        include_bytes!("../../benches/data/review-gpu-pod-unpatched.json"),
    ),
    // (b) A GPU Deployment CREATE without placement, toleration and class: /validate warns.
    (
        "gpu-deployment",
        include_bytes!("../../benches/data/review-gpu-deployment.json"),
    ),
    // (c) A 30-container pod CREATE (two containers ask for a GPU).
    ("pod-30", include_bytes!("../../benches/data/review-pod-30.json")),
    // (d) The recorded 100 KB UPDATE of a 30-container Deployment (object + oldObject): denied.
    ("big-update", include_bytes!("../../benches/data/review-big.json")),
];

/// The body of a fixture by name.
pub fn fixture(name: &str) -> &'static [u8] {
    FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .unwrap_or_else(|| panic!("no fixture named {name}"))
}

/// The object kinds of a GitOps repository, in the proportions [`manifests_yaml`] writes them.
pub const MIX: &[&str] = &[
    "Deployment (GPU, no placement/toleration/class: fixed)",
    "Deployment (web)",
    "Service",
    "ConfigMap",
    "StatefulSet (GPU, compliant)",
    "DaemonSet (monitoring, hostPath /proc: exempt)",
    "Job (GPU, 2 slices)",
    "CronJob (plain)",
    "Pod (Coral hostPath /dev/bus/usb in ai)",
    "Deployment (hostPath /var/lib: denied)",
];

/// `count` objects as multi-document YAML, cycling through [`MIX`]; names are unique.
pub fn manifests_yaml(count: usize) -> String {
    let mut out = String::with_capacity(count * 900);
    for i in 0..count {
        let n = i / MIX.len();
        if i > 0 {
            out.push_str("---\n");
        }
        let _ = match i % MIX.len() {
            0 => write!(
                out,
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: llm-{n}
  namespace: ai
  labels: {{app: llm-{n}, team: ml}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: llm-{n}}}}}
  template:
    metadata:
      labels: {{app: llm-{n}}}
    spec:
      containers:
        - name: server
          image: ollama/ollama:0.6.8
          ports: [{{containerPort: 11434, name: http}}]
          env:
            - {{name: OLLAMA_HOST, value: 0.0.0.0}}
            - {{name: OLLAMA_KEEP_ALIVE, value: 24h}}
          resources:
            limits: {{cpu: "4", memory: 16Gi, nvidia.com/gpu: 1}}
            requests: {{cpu: "1", memory: 8Gi}}
          volumeMounts: [{{name: models, mountPath: /models}}]
      volumes:
        - name: models
          persistentVolumeClaim: {{claimName: models-{n}}}
"#
            ),
            1 => write!(
                out,
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web-{n}
  namespace: apps
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web-{n}}}}}
  template:
    metadata:
      labels: {{app: web-{n}}}
    spec:
      containers:
        - name: nginx
          image: nginx:1.27
          ports: [{{containerPort: 80}}]
          resources:
            limits: {{cpu: 500m, memory: 256Mi}}
          readinessProbe:
            httpGet: {{path: /, port: 80}}
        - name: exporter
          image: nginx/nginx-prometheus-exporter:1.3
          args: [--nginx.scrape-uri=http://localhost/status]
"#
            ),
            2 => write!(
                out,
                r#"apiVersion: v1
kind: Service
metadata:
  name: web-{n}
  namespace: apps
spec:
  selector: {{app: web-{n}}}
  ports:
    - {{name: http, port: 80, targetPort: 80}}
"#
            ),
            3 => write!(
                out,
                r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{n}
  namespace: apps
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "a,b,c"
  config.yaml: |
    server:
      port: 8080
      workers: 4
"#
            ),
            4 => write!(
                out,
                r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: comfyui-{n}
  namespace: ai
spec:
  serviceName: comfyui-{n}
  replicas: 1
  selector: {{matchLabels: {{app: comfyui-{n}}}}}
  template:
    metadata:
      labels: {{app: comfyui-{n}}}
    spec:
      priorityClassName: high-priority
      nodeSelector: {{node-type: gpu-worker}}
      tolerations:
        - {{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}
      containers:
        - name: comfyui
          image: ghcr.io/example/comfyui:1.0
          resources:
            limits: {{cpu: "8", memory: 24Gi, nvidia.com/gpu: 2}}
          volumeMounts: [{{name: data, mountPath: /data}}]
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 50Gi}}}}
"#
            ),
            5 => write!(
                out,
                r#"apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-exporter-{n}
  namespace: monitoring
spec:
  selector: {{matchLabels: {{app: node-exporter-{n}}}}}
  template:
    metadata:
      labels: {{app: node-exporter-{n}}}
    spec:
      hostNetwork: true
      hostPID: true
      containers:
        - name: node-exporter
          image: prom/node-exporter:v1.9.1
          args: [--path.procfs=/host/proc, --path.sysfs=/host/sys, --path.rootfs=/host/root]
          volumeMounts:
            - {{name: proc, mountPath: /host/proc, readOnly: true}}
            - {{name: sys, mountPath: /host/sys, readOnly: true}}
            - {{name: root, mountPath: /host/root, readOnly: true}}
      volumes:
        - {{name: proc, hostPath: {{path: /proc}}}}
        - {{name: sys, hostPath: {{path: /sys}}}}
        - {{name: root, hostPath: {{path: /}}}}
"#
            ),
            6 => write!(
                out,
                r#"apiVersion: batch/v1
kind: Job
metadata:
  name: train-{n}
  namespace: ml
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      priorityClassName: medium-priority
      nodeSelector: {{node-type: gpu-worker}}
      tolerations:
        - {{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}
      initContainers:
        - name: fetch
          image: busybox:1.36
          command: [sh, -c, "wget -O /data/model http://models/{n}"]
      containers:
        - name: train
          image: ghcr.io/example/train:2.1
          resources:
            limits: {{nvidia.com/gpu: 2, memory: 8Gi}}
"#
            ),
            7 => write!(
                out,
                r#"apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup-{n}
  namespace: apps
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: backup
              image: restic/restic:0.17
              args: [backup, /data]
"#
            ),
            8 => write!(
                out,
                r#"apiVersion: v1
kind: Pod
metadata:
  name: frigate-{n}
  namespace: ai
spec:
  containers:
    - name: frigate
      image: ghcr.io/blakeblackshear/frigate:0.14
      securityContext: {{privileged: true}}
      volumeMounts: [{{name: usb, mountPath: /dev/bus/usb}}]
  volumes:
    - name: usb
      hostPath: {{path: /dev/bus/usb/001, type: Directory}}
"#
            ),
            _ => write!(
                out,
                r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: cache-{n}
  namespace: apps
spec:
  replicas: 1
  selector: {{matchLabels: {{app: cache-{n}}}}}
  template:
    metadata:
      labels: {{app: cache-{n}}}
    spec:
      containers:
        - name: redis
          image: redis:7.4
          volumeMounts: [{{name: data, mountPath: /data}}]
      volumes:
        - name: data
          hostPath: {{path: /var/lib/cache-{n}}}
"#
            ),
        };
    }
    out
}
