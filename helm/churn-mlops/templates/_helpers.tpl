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
The S3 credentials of the Secret the chart creates, resolved once per render (every namespace
gets the same pair): the values when given; else the pair already in the release's Secret
(`lookup`, so `helm upgrade` keeps what install generated); else a new random pair.
*/}}
{{- define "churn.s3Credentials" -}}
{{- if not (hasKey .Values.s3 "resolvedCredentials") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "churn.s3Secret" .) -}}
{{- $_ := set .Values.s3 "resolvedCredentials" (include "churn.s3CredentialsFrom" (dict "values" .Values.s3 "existing" $existing) | fromYaml) -}}
{{- end -}}
{{- end -}}

{{/*
The credential pair from the values, an existing Secret (its .data), or random, as YAML.
Kept apart from `lookup` so that its keep-existing branch can be rendered without a cluster.
*/}}
{{- define "churn.s3CredentialsFrom" -}}
{{- $data := (default dict (and .existing .existing.data)) -}}
{{- $access := .values.accessKey | default (and (hasKey $data "AWS_ACCESS_KEY_ID") (index $data "AWS_ACCESS_KEY_ID" | b64dec)) | default (printf "churn-%s" (randAlphaNum 12 | lower)) -}}
{{- $secret := .values.secretKey | default (and (hasKey $data "AWS_SECRET_ACCESS_KEY") (index $data "AWS_SECRET_ACCESS_KEY" | b64dec)) | default (randAlphaNum 40) -}}
accessKey: {{ $access | quote }}
secretKey: {{ $secret | quote }}
{{- end -}}
