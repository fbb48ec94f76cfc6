{{/* Names and labels shared by every object of the chart. */}}
{{- define "churn.fullname" -}}
{{- printf "%s" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "churn.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "churn.image" -}}
{{- printf "%s/%s:%s" .root.Values.imageRegistry .name (default .root.Chart.AppVersion .root.Values.imageTag) -}}
{{- end -}}

{{- define "churn.s3Secret" -}}
{{- default (printf "%s-s3" (include "churn.fullname" .)) .Values.s3.existingSecret -}}
{{- end -}}

{{/* The in-cluster MinIO by its full name: pipeline pods may run in another namespace. */}}
{{- define "churn.s3Endpoint" -}}
{{- default (printf "%s-minio.%s.svc:9000" (include "churn.fullname" .) .Release.Namespace) .Values.s3.endpoint -}}
{{- end -}}

{{/* Where KFP runs the pipelines' pods: they read the S3 Secret and pipeline-env there. */}}
{{- define "churn.pipelinesNamespace" -}}
{{- default .Release.Namespace .Values.pipelines.namespace -}}
{{- end -}}

{{- define "churn.s3Url" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.s3.useHttps) (include "churn.s3Endpoint" .) -}}
{{- end -}}

{{/* Where the transformer logs its answers and the monitoring pipeline reads them; where labels arrive. */}}
{{- define "churn.predictionLogUri" -}}
{{- default (printf "s3://%s/predictions/" .Values.s3.bucket) .Values.performance.predictionLogUri -}}
{{- end -}}

{{/*
The S3 user the transformer writes the prediction log as: the given Secret; else with the
in-cluster MinIO a generated write-only user (churn-predlog: PutObject on the log's prefix,
nothing else; the bucket Job creates it); else the read/write Secret.
*/}}
{{- define "churn.predictionLogSecret" -}}
{{- if .Values.performance.predictionLogExistingSecret -}}
{{- .Values.performance.predictionLogExistingSecret -}}
{{- else if .Values.minio.enabled -}}
{{- printf "%s-s3-predlog" (include "churn.fullname" .) -}}
{{- else -}}
{{- include "churn.s3Secret" . -}}
{{- end -}}
{{- end -}}

{{/* The front door's service: the transformer's, or in single-pass mode the predictor's. */}}
{{- define "churn.servingFront" -}}
{{- printf "%s-%s" .Values.serving.name (ternary "predictor" "transformer" (eq .Values.serving.mode "single")) -}}
{{- end -}}

{{/*
The environment of the container that writes the prediction log (churn.storage.sigv4: one
signed PUT a flush): the S3 endpoint and the write-only log user (churn.predictionLogSecret).
*/}}
{{- define "churn.predictionLogEnv" -}}
- name: AWS_ENDPOINT_URL
  value: {{ include "churn.s3Url" . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
{{- range $key := list "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "churn.predictionLogSecret" $ }}
      key: {{ $key }}
{{- end }}
{{- end -}}

{{/* Whether the chart creates the log's write-only MinIO user (its Secret, policy and the Job's lines). */}}
{{- define "churn.predictionLogUser" -}}
{{- if and .Values.performance.predictionLog .Values.minio.enabled (not .Values.performance.predictionLogExistingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The write-only policy of the log's user: s3:PutObject under the log's prefix, in the log's bucket. */}}
{{- define "churn.predictionLogPolicy" -}}
{{- $path := trimPrefix "s3://" (include "churn.predictionLogUri" .) -}}
{{- $bucket := first (splitList "/" $path) -}}
{{- $prefix := trimSuffix "/" (trimPrefix $bucket (trimPrefix (printf "%s/" $bucket) $path)) -}}
{{- $resource := ternary (printf "arn:aws:s3:::%s/%s/*" $bucket $prefix) (printf "arn:aws:s3:::%s/*" $bucket) (ne $prefix "") -}}
{{- dict "Version" "2012-10-17" "Statement" (list (dict "Effect" "Allow" "Action" (list "s3:PutObject") "Resource" (list $resource))) | toJson -}}
{{- end -}}

{{- define "churn.labelsUri" -}}
{{- default (printf "s3://%s/labels/" .Values.s3.bucket) .Values.performance.labelsUri -}}
{{- end -}}

{{- define "churn.serviceAccount" -}}
{{- printf "%s-models" (include "churn.fullname" .) -}}
{{- end -}}

{{/* Container security context: non-root, read-only root filesystem, no capabilities. */}}
{{- define "churn.containerSecurity" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
  seccompProfile:
    type: RuntimeDefault
{{- end -}}

{{/*
The values of a Secret the chart generates, resolved once per render (every namespace and
every template that needs them get the same): for each key, the value given in the values;
else the one the release's Secret of that name already holds (`lookup`, so `helm upgrade`
keeps what install generated); else a new random one. Returns YAML (use `| fromYaml`).
Args: root, name (the Secret), keys (key -> list of the given value and its kind: "id" =
churn-<12 lowercase alphanumerics>, an access key or user name; "secret" = 40 alphanumerics).
*/}}
{{- define "churn.generated" -}}
{{- if not (hasKey .root.Values "generatedSecrets") -}}
{{- $_ := set .root.Values "generatedSecrets" dict -}}
{{- end -}}
{{- if not (hasKey .root.Values.generatedSecrets .name) -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .name -}}
{{- $_ := set .root.Values.generatedSecrets .name (include "churn.generatedFrom" (dict "keys" .keys "existing" $existing) | fromYaml) -}}
{{- end -}}
{{- toYaml (index .root.Values.generatedSecrets .name) -}}
{{- end -}}

{{/*
The values from the given ones, an existing Secret (its .data), or random, as YAML. Kept
apart from `lookup` so that its keep-existing branch can be rendered without a cluster.
*/}}
{{- define "churn.generatedFrom" -}}
{{- $data := (default dict (and .existing .existing.data)) -}}
{{- range $key, $spec := .keys }}
{{- $kept := and (hasKey $data $key) (index $data $key | b64dec) }}
{{- $random := ternary (printf "churn-%s" (randAlphaNum 12 | lower)) (randAlphaNum 40) (eq (index $spec 1) "id") }}
{{ $key }}: {{ index $spec 0 | default $kept | default $random | quote }}
{{- end }}
{{- end -}}

{{/* The S3 read/write user (pipelines, MLflow): its Secret's values. */}}
{{- define "churn.s3Credentials" -}}
{{- include "churn.generated" (dict "root" . "name" (include "churn.s3Secret" .) "keys" (dict "AWS_ACCESS_KEY_ID" (list .Values.s3.accessKey "id") "AWS_SECRET_ACCESS_KEY" (list .Values.s3.secretKey "secret"))) -}}
{{- end -}}

{{/* The read-only S3 user KServe's storage initializer downloads models as. */}}
{{- define "churn.s3ReaderSecret" -}}
{{- if .Values.s3.readerExistingSecret -}}
{{- .Values.s3.readerExistingSecret -}}
{{- else if .Values.minio.enabled -}}
{{- printf "%s-s3-reader" (include "churn.fullname" .) -}}
{{- else -}}
{{- include "churn.s3Secret" . -}}
{{- end -}}
{{- end -}}

{{/* MinIO's root user: only MinIO itself and the bucket Job see it. */}}
{{- define "churn.minioRootSecret" -}}
{{- printf "%s-minio-root" (include "churn.fullname" .) -}}
{{- end -}}

{{/* MLflow authentication is on (the churn-auth app) when the chart runs MLflow and mlflow.auth.enabled. */}}
{{- define "churn.mlflowAuth" -}}
{{- if and .Values.mlflow.enabled .Values.mlflow.auth.enabled }}true{{ end -}}
{{- end -}}

{{- define "churn.mlflowUserSecret" -}}
{{- printf "%s-mlflow-%s" (include "churn.fullname" .root) .role -}}
{{- end -}}

{{/* Namespaces that get the pipelines' Secrets: the release's and the pipelines'. */}}
{{- define "churn.secretNamespaces" -}}
{{- toYaml (uniq (list .Release.Namespace (include "churn.pipelinesNamespace" .))) -}}
{{- end -}}

{{/* One Secret: args root, name, namespace, comment, data (key -> value). */}}
{{- define "churn.secretObject" -}}
# {{ .comment }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  namespace: {{ .namespace }}
  labels:
    {{- include "churn.labels" .root | nindent 4 }}
type: Opaque
stringData:
  {{- toYaml .data | nindent 2 }}
{{- end -}}

{{/*
An S3 (MinIO) policy on one bucket, as JSON: list the bucket and read its objects, and with
write also put, delete and finish multipart uploads. Args: bucket, write.
*/}}
{{- define "churn.minioPolicy" -}}
{{- $objects := list "s3:GetObject" -}}
{{- $bucket := list "s3:GetBucketLocation" "s3:ListBucket" -}}
{{- if .write -}}
{{- $objects = concat $objects (list "s3:PutObject" "s3:DeleteObject" "s3:AbortMultipartUpload" "s3:ListMultipartUploadParts") -}}
{{- $bucket = append $bucket "s3:ListBucketMultipartUploads" -}}
{{- end -}}
{{- dict "Version" "2012-10-17" "Statement" (list (dict "Effect" "Allow" "Action" $bucket "Resource" (list (printf "arn:aws:s3:::%s" .bucket))) (dict "Effect" "Allow" "Action" $objects "Resource" (list (printf "arn:aws:s3:::%s/*" .bucket)))) | toJson -}}
{{- end -}}

{{/*
Where MLflow keeps its users: beside the runs, on the sqlite volume or in the same database
(MLflow's auth has its own tables and its own alembic_version_auth).
*/}}
{{- define "churn.mlflowAuthDatabase" -}}
{{- $sqlite := and (not .Values.mlflow.backendStoreUri) (not .Values.mlflow.backendStoreSecret) -}}
{{- $database := .Values.mlflow.auth.databaseUri | default .Values.mlflow.backendStoreUri | default (ternary "sqlite:////data/basic_auth.db" "" $sqlite) -}}
{{- if not $database -}}
{{- fail "mlflow.auth.databaseUri: the database URL is in mlflow.backendStoreSecret, so give MLflow's users a database here (it may be the same URL)" -}}
{{- end -}}
{{- $database -}}
{{- end -}}

{{/* MLflow's usage telemetry (and any tool honouring DO_NOT_TRACK): off unless telemetry.enabled. Every
container gets both, so the image's default can be overridden either way (see churn/telemetry.py). */}}
{{- define "churn.telemetryOff" -}}
{{ ternary "false" "true" .Values.telemetry.enabled | quote }}
{{- end }}
{{- define "churn.telemetryEnv" -}}
- name: MLFLOW_DISABLE_TELEMETRY
  value: {{ include "churn.telemetryOff" . }}
- name: DO_NOT_TRACK
  value: {{ include "churn.telemetryOff" . }}
{{- end }}

{{/* host:port of the shadow's predictor Service (churn.deploy.shadow_predictor_host): KServe's <isvc>-predictor, port 80. */}}
{{- define "churn.shadowPredictorHost" -}}
{{ .Values.serving.name }}-shadow-predictor.{{ .Release.Namespace }}.svc.cluster.local:80
{{- end }}
