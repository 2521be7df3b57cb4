{{- define "medops.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "medops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: medops
{{ include "medops.selector" . }}
{{- end -}}

{{/* selector labels of one component: pass (dict "root" $ "component" "operator") */}}
{{- define "medops.componentSelector" -}}
app.kubernetes.io/name: medops
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "medops.componentLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: medops
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "medops.componentSelector" . }}
{{- end -}}

{{- define "medops.selector" -}}
app.kubernetes.io/name: medops
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "medops.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Pod Security "restricted": the pod part; pass the uid */}}
{{- define "medops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod Security "restricted" for every container, with a read-only root filesystem */}}
{{- define "medops.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}


{{/* The chart's own MLflow service, plus operator.allowedTrackingUris, comma-separated */}}
{{- define "medops.allowedTrackingUris" -}}
{{- $uris := .Values.operator.allowedTrackingUris | default list -}}
{{- if .Values.mlflow.enabled -}}
{{- $own := printf "http://%s-mlflow.%s.svc:%v" (include "medops.fullname" .) .Release.Namespace .Values.mlflow.port -}}
{{- $uris = prepend $uris $own -}}
{{- end -}}
{{- join "," $uris -}}
{{- end -}}

{{/* Image repositories resources may name: those next to image.repository, plus
operator.allowedImages, comma-separated (the operator's check and the admission policy) */}}
{{- define "medops.allowedImages" -}}
{{- prepend (.Values.operator.allowedImages | default list) (printf "%s/" (dir .Values.image.repository)) | join "," -}}
{{- end -}}

{{/* A comma-separated helper's values as a CEL list literal (JSON strings are CEL strings) */}}
{{- define "medops.celList" -}}
{{- $items := list -}}
{{- range (splitList "," .) }}{{ if . }}{{ $items = append $items . }}{{ end }}{{ end -}}
{{- toJson $items -}}
{{- end -}}
