#!/usr/bin/env bash
# churn-mlops end to end on a real Kubernetes cluster: install the chart, train through KFP,
# wait for the InferenceService the training run deploys, send it a V2 request, run the daily
# data and monitoring pipelines, and schedule the recurring runs.
#
# It cannot run on the build machines (no container engine, no cluster); CI checks it with
# DRY_RUN=1, which prints every command instead of running it (tests/deploy/test_cluster_script.py).
#
# Needs:
#   - kubectl pointing at a cluster with KServe (0.14 or later, RawDeployment) and Kubeflow
#     Pipelines (a 2.x backend recent enough for kfp-kubernetes 2.17's parameterised Secret and
#     ConfigMap names) installed, e.g. kind with KServe's quick install plus KFP's standalone
#     manifests.
#   - The images (make images) where the cluster can pull them: with kind, KIND_CLUSTER=<name>
#     loads them from the local engine; elsewhere push them (PUSH=1 CHURN_IMAGE_REGISTRY=... make images)
#     and pass the same CHURN_IMAGE_REGISTRY here.
#
# Settings (environment):
#   NAMESPACE       where the chart, MinIO, MLflow and the InferenceService go   [churn-mlops]
#   RELEASE         Helm release name                                             [churn]
#   KFP_NAMESPACE   where KFP runs pipeline pods (standalone KFP: kubeflow)       [kubeflow]
#   KFP_HOST        KFP API; empty = port-forward svc/ml-pipeline of KFP_NAMESPACE [""]
#   ROWS            rows the training run generates                               [20000]
#   RUN_TIMEOUT     seconds to wait for each pipeline run                         [3600]
#   KIND_CLUSTER    kind cluster to load the images into; empty = do not load     [""]
#   CHURN_IMAGE_REGISTRY  registry of the images                                   [ghcr.io/churn-mlops]
#   S3_SECRET_KEY   MinIO secret key; empty = a random one                        [""]
#   DRY_RUN=1       print the commands, run nothing
set -euo pipefail
cd "$(dirname "$0")/.."

NAMESPACE="${NAMESPACE:-churn-mlops}"
RELEASE="${RELEASE:-churn}"
KFP_NAMESPACE="${KFP_NAMESPACE:-kubeflow}"
KFP_HOST="${KFP_HOST:-}"
ROWS="${ROWS:-20000}"
RUN_TIMEOUT="${RUN_TIMEOUT:-3600}"
KIND_CLUSTER="${KIND_CLUSTER:-}"
REGISTRY="${CHURN_IMAGE_REGISTRY:-ghcr.io/churn-mlops}"
DRY_RUN="${DRY_RUN:-0}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
MODEL="churn-model"

run() {
  echo "+ $*"
  if [[ "$DRY_RUN" != "1" ]]; then "$@"; fi
}

step() { echo; echo "== $*"; }

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# port_forward <namespace> <service> <local port> <service port>: in the background until the script ends.
port_forward() {
  echo "+ kubectl -n $1 port-forward svc/$2 $3:$4 &"
  if [[ "$DRY_RUN" == "1" ]]; then return; fi
  kubectl -n "$1" port-forward "svc/$2" "$3:$4" >/dev/null 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 1 30); do
    if (echo >"/dev/tcp/127.0.0.1/$3") 2>/dev/null; then return; fi
    sleep 1
  done
  echo "error: port-forward to svc/$2 in $1 did not open port $3" >&2
  exit 1
}

step "tools: helm and kubectl into .tools/k8s, the churn CLI into .venv (from uv.lock)"
run bash scripts/install_helm.sh
run bash scripts/bootstrap.sh
export PATH="$PWD/.tools/k8s:$PATH"
CHURN=(.venv/bin/churn)

step "preflight: the cluster, KServe and KFP"
run kubectl cluster-info
run kubectl get crd inferenceservices.serving.kserve.io servingruntimes.serving.kserve.io
run kubectl -n "$KFP_NAMESPACE" get svc ml-pipeline

if [[ -n "$KIND_CLUSTER" ]]; then
  step "images: load $REGISTRY/{churn,churn-serving,mlflow}:$VERSION into kind cluster $KIND_CLUSTER"
  for image in churn churn-serving mlflow; do
    run kind load docker-image "$REGISTRY/$image:$VERSION" --name "$KIND_CLUSTER"
  done
fi

if [[ "$REGISTRY" != "ghcr.io/churn-mlops" ]]; then
  step "pipelines: compile them for $REGISTRY"
  run env CHURN_IMAGE_REGISTRY="$REGISTRY" "${CHURN[@]}" pipeline compile
fi

step "chart: MinIO, MLflow, the Pushgateway, our ServingRuntime; the pipelines' Secret, ConfigMap and account in $KFP_NAMESPACE"
# The MinIO key goes in a values file, so it is not printed with the command.
secrets="$(mktemp)"
chmod 600 "$secrets"
printf 's3:\n  secretKey: "%s"\n' "${S3_SECRET_KEY:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}" >"$secrets"
# serving.enabled=false: the training run's deploy step creates and owns the InferenceService.
run helm upgrade --install "$RELEASE" helm/churn-mlops --namespace "$NAMESPACE" --create-namespace \
  --values "$secrets" \
  --set serving.enabled=false \
  --set pipelines.namespace="$KFP_NAMESPACE" \
  --set imageRegistry="$REGISTRY" \
  --wait --timeout 10m
rm -f "$secrets"

if [[ -z "$KFP_HOST" ]]; then
  port_forward "$KFP_NAMESPACE" ml-pipeline 8888 8888
  KFP_HOST="http://127.0.0.1:8888"
fi

step "training: generate $ROWS customers, train four families, register, gate, deploy"
run "${CHURN[@]}" pipeline submit training --host "$KFP_HOST" --release "$RELEASE" \
  -p rows="$ROWS" --wait "$RUN_TIMEOUT"

step "serving: wait for the InferenceService the deploy step created"
run kubectl -n "$NAMESPACE" wait --for=condition=Ready "inferenceservice/$MODEL" --timeout=15m
run kubectl -n "$NAMESPACE" get inferenceservice "$MODEL"

step "a V2 request: raw records in, churn probabilities out"
port_forward "$NAMESPACE" "$MODEL-transformer" 18080 80
run "${CHURN[@]}" predict --url http://127.0.0.1:18080 --file scripts/examples/records.json
run helm test "$RELEASE" --namespace "$NAMESPACE" --logs

step "daily data, then monitoring of that day against the champion (metrics to the Pushgateway)"
run "${CHURN[@]}" pipeline submit data --host "$KFP_HOST" --release "$RELEASE" --wait "$RUN_TIMEOUT"
run "${CHURN[@]}" pipeline submit monitoring --host "$KFP_HOST" --release "$RELEASE" --wait "$RUN_TIMEOUT"

step "recurring runs: data 02:00, training Sunday 03:00, monitoring 06:00"
run "${CHURN[@]}" schedule --host "$KFP_HOST" --release "$RELEASE"

echo
echo "done: $MODEL serves in namespace $NAMESPACE; MLflow: kubectl -n $NAMESPACE port-forward svc/$RELEASE-mlflow 5000:5000"
