#!/usr/bin/env bash
# Derives the benchmark fixtures from the two recorded reviews (review-pod.json,
# review-big.json, copied from the project's shared bench recordings). Deterministic; the
# outputs are committed, so benchmarks need no jq. Re-run after changing a recording.
set -euo pipefail
cd "$(dirname "$0")"

# (a) A plain pod: the recorded pod without any GPU request, placement, toleration or class,
#     in namespace `default` (what most reviews on a cluster look like).
jq -c '
  .request.uid = "11111111-0000-4000-8000-000000000001"
  | .request.namespace = "default"
  | .request.object.metadata.namespace = "default"
  | .request.object.spec |= (
      del(.nodeSelector, .priorityClassName, .preemptionPolicy)
      | .tolerations |= map(select(.key != "nvidia.com/gpu"))
      | .containers |= map(.resources.limits |= del(.["nvidia.com/gpu"])
                           | .resources.requests |= del(.["nvidia.com/gpu"])))
' review-pod.json > review-plain-pod.json

# (e) A GPU pod as the ReplicaSet controller creates it from a plain Deployment template: no
#     placement, toleration or class yet, so /mutate answers a patch.
jq -c '
  .request.uid = "11111111-0000-4000-8000-000000000005"
  | .request.object.spec |= (
      del(.nodeSelector, .priorityClassName, .preemptionPolicy)
      | .tolerations |= map(select(.key != "nvidia.com/gpu")))
' review-pod.json > review-gpu-pod-unpatched.json

# (b) A typical GPU Deployment CREATE (Argo CD sync): the big review's object cut to two
#     containers (one asks for a GPU), its template without placement, toleration and class, so
#     /validate answers warnings naming what the pods will get.
jq -c '
  .request.uid = "11111111-0000-4000-8000-000000000002"
  | .request.operation = "CREATE"
  | del(.request.oldObject)
  | .request.options = {"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}
  | .request.object.spec.template.spec |= (
      del(.nodeSelector, .priorityClassName, .preemptionPolicy, .tolerations)
      | .containers |= (.[0:2] | .[1].resources.limits |= del(.["nvidia.com/gpu"])
                               | .[1].resources.requests |= del(.["nvidia.com/gpu"])))
' review-big.json > review-gpu-deployment.json

# (c) A 30-container pod CREATE: the big review's pod template as a Pod, two containers asking
#     for a GPU (allowed: evaluation walks every container).
jq -c '
  .request.uid = "11111111-0000-4000-8000-000000000003"
  | .request.operation = "CREATE"
  | del(.request.oldObject)
  | .request.kind = {"group":"","version":"v1","kind":"Pod"}
  | .request.resource = {"group":"","version":"v1","resource":"pods"}
  | .request.requestKind = .request.kind | .request.requestResource = .request.resource
  | .request.name = ""
  | .request.options = {"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}
  | .request.object = {
      "apiVersion": "v1", "kind": "Pod",
      "metadata": (.request.object.spec.template.metadata
                   + {"generateName": "comfyui-5f6d7c8b9-", "namespace": "ai"}),
      "spec": (.request.object.spec.template.spec
               | .containers |= (to_entries | map(if .key < 2 then .value
                   else .value | .resources.limits |= del(.["nvidia.com/gpu"])
                               | .resources.requests |= del(.["nvidia.com/gpu"]) end)))
    }
' review-big.json > review-pod-30.json
