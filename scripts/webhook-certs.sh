#!/usr/bin/env bash
# The serving certificate of an in-cluster gpu-admission without cert-manager (a script step
# until the install kit's self-managed certificate mode exists): what cert-manager's Issuers and
# Certificates in deploy/base do, with openssl.
#
#   scripts/webhook-certs.sh create   CA (kept when it exists) + serving certificate -> Secret
#                                     gpu-admission/gpu-admission-tls (tls.crt, tls.key, ca.crt);
#                                     prints the caBundle (base64 of the CA) as the LAST line
#   scripts/webhook-certs.sh renew    a new key and certificate from the same CA replace the
#                                     Secret's (the kubelet swaps the pods' ..data); prints the new
#                                     certificate's serial (hex, as openssl prints it) as the LAST line
#
# The certificate is for gpu-admission.gpu-admission.svc (and .cluster.local), ECDSA P-256, like
# deploy/components/cert-manager/certificates.yaml. Keys stay in $WEBHOOK_PKI_DIR
# (default ${GA_CLUSTER_DIR:-/tmp/gpu-admission-cluster}/webhook-pki). Uses $KUBECTL (default
# kubectl) with $KUBECONFIG.
set -euo pipefail
action="${1:-}"
[[ "$action" == create || "$action" == renew ]] || { echo "usage: $0 create|renew" >&2; exit 2; }
D="${WEBHOOK_PKI_DIR:-${GA_CLUSTER_DIR:-/tmp/gpu-admission-cluster}/webhook-pki}"
K="${KUBECTL:-kubectl}"
NS=gpu-admission SVC=gpu-admission SECRET=gpu-admission-tls
mkdir -p "$D"
chmod 0700 "$D"
cd "$D"

if [[ ! -f ca.crt || ! -f ca.key ]]; then
  [[ "$action" == renew ]] && { echo "no CA in $D: run create first" >&2; exit 1; }
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
  openssl req -x509 -new -key ca.key -subj "/CN=gpu-admission-ca" -days 3650 -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
fi
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out tls.key.new 2>/dev/null
openssl req -new -key tls.key.new -subj "/CN=$SVC.$NS.svc" -out tls.csr
cat > tls.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$SVC.$NS.svc,DNS:$SVC.$NS.svc.cluster.local
EOF
# a random serial each time (renewals are told apart by it)
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" -days 90 \
  -extfile tls.ext -out tls.crt.new 2>/dev/null
rm -f tls.csr tls.ext
mv -f tls.key.new tls.key
mv -f tls.crt.new tls.crt

"$K" get namespace "$NS" >/dev/null 2>&1 || "$K" create namespace "$NS" >/dev/null
"$K" create secret generic "$SECRET" -n "$NS" --type=kubernetes.io/tls \
  --from-file=tls.crt=tls.crt --from-file=tls.key=tls.key --from-file=ca.crt=ca.crt \
  --dry-run=client -o yaml | "$K" apply -f - >/dev/null

if [[ "$action" == create ]]; then
  base64 -w0 ca.crt
  echo
else
  openssl x509 -in tls.crt -noout -serial | sed 's/^serial=//'
fi
