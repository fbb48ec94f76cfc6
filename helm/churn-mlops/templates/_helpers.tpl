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
