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

{{/* MLflow's basic-auth config: deny by default, medops' approver-only guard (docs/security.md).
No secret in it: the admin comes from MLFLOW_AUTH_ADMIN_*, the database password from
PGPASSWORD (libpq reads it) */}}
{{- define "medops.mlflowAuthIni" -}}
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {{ required "mlflow.auth.database.url: the auth database (users, grants), postgresql+psycopg://user@host:5432/db" .Values.mlflow.auth.database.url }}
authorization_function = medops.registry.permissions:authenticate
grant_default_workspace_access = false
{{- end -}}

{{/* The namespaces whose medops pods may call MLflow: the release's, the watched ones, the
pipeline runner's and networkPolicy.registryClientNamespaces, as a namespaceSelector */}}
{{- define "medops.registryClientNamespaces" -}}
{{- $names := list .Release.Namespace -}}
{{- if not .Values.operator.clusterWide -}}
{{- $names = concat $names .Values.operator.watchNamespaces -}}
{{- end -}}
{{- $names = concat $names (.Values.pipelineRunner.namespaces | default list) (.Values.networkPolicy.registryClientNamespaces | default list) -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values: {{ $names | uniq | toJson }}
{{- end -}}

{{/* The feature_store.yaml every medops pod of a Feast-enabled release opens its store with
(MEDOPS_FEATURE_STORE_CONFIG): Feast's SQL registry on PostgreSQL, the duckdb offline store
(it reads the parquet each run's build wrote on its volume, by absolute path) and Redis.
No secret in it: libpq reads the registry's password from PGPASSWORD, and Feast substitutes
${REDIS_PASSWORD} from the container's environment when it reads the file */}}
{{- define "medops.feastStoreYaml" -}}
{{- $feast := .Values.feast -}}
{{- if not (regexMatch "^postgresql(\\+psycopg)?://[^:@/]+@[^/]+/.+$" $feast.registry) -}}
{{- fail (printf "feast.registry %q: Feast's SQL registry on PostgreSQL as postgresql+psycopg://user@host:5432/db, without a password (put it in the Secret feast.registryPasswordSecret names, key password)" $feast.registry) -}}
{{- end -}}
{{- $redis := printf "%s:%v,db=%v" $feast.redis.host $feast.redis.port $feast.redis.db -}}
{{- if $feast.redis.existingSecret -}}
{{- $redis = printf "%s,password=${REDIS_PASSWORD}" $redis -}}
{{- end -}}
project: {{ $feast.project }}
provider: local
registry:
  registry_type: sql
  path: {{ regexReplaceAll "^postgresql(\\+psycopg)?://" $feast.registry "postgresql+psycopg://" | quote }}
  cache_ttl_seconds: 60
offline_store:
  type: duckdb
online_store:
  type: redis
  connection_string: {{ $redis | quote }}
entity_key_serialization_version: 3
{{- end -}}

{{/* Where the Feast ConfigMap is rendered: the release's namespace (the feature server) and
each watched one (the predictors mount it: a pod reads ConfigMaps of its own namespace only) */}}
{{- define "medops.feastNamespaces" -}}
{{- $names := list .Release.Namespace -}}
{{- if not .Values.operator.clusterWide -}}
{{- $names = concat $names .Values.operator.watchNamespaces -}}
{{- end -}}
{{- $names | uniq | toJson -}}
{{- end -}}

{{/* The peers (a NetworkPolicy ingress rule's `from`) that may call MLflow or Feast: medops
pods of the medops.registryClientNamespaces, and, cluster-wide, of namespaces labelled
medops.dev/registry-client: "true" */}}
{{- define "medops.registryClients" -}}
- namespaceSelector:
    {{- include "medops.registryClientNamespaces" . | nindent 4 }}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: medops
{{- if .Values.operator.clusterWide }}
- namespaceSelector:
    matchLabels:
      medops.dev/registry-client: "true"
  podSelector:
    matchLabels:
      app.kubernetes.io/name: medops
{{- end }}
{{- end -}}
