{{/* Chart name, overridable. */}}
{{- define "interlock.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified name: <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "interlock.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>, for the resources of one component. Call with (list . "component"). */}}
{{- define "interlock.componentName" -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (include "interlock.fullname" $ctx | trunc 50 | trimSuffix "-") (index . 1) -}}
{{- end -}}

{{/* Chart label value. */}}
{{- define "interlock.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component. Call with (list . "component"). */}}
{{- define "interlock.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "interlock.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Every label of one component. Call with (list . "component"). */}}
{{- define "interlock.labels" -}}
{{- $ctx := index . 0 -}}
helm.sh/chart: {{ include "interlock.chart" $ctx }}
{{ include "interlock.selectorLabels" . }}
app.kubernetes.io/part-of: interlock
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An image reference from {registry, repository, tag, digest}; the digest wins over the tag. */}}
{{- define "interlock.imageRef" -}}
{{- $repo := .repository -}}
{{- if .registry -}}{{- $repo = printf "%s/%s" .registry .repository -}}{{- end -}}
{{- if .digest -}}
{{- printf "%s@%s" $repo .digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (required "an image tag is required (pinned, never latest)" .tag) -}}
{{- end -}}
{{- end -}}

{{/* The Interlock image; its tag defaults to the appVersion, the package version scripts/image tags. */}}
{{- define "interlock.image" -}}
{{- include "interlock.imageRef" (merge (dict "tag" (default .Chart.AppVersion .Values.image.tag)) .Values.image) -}}
{{- end -}}

{{/* The gateway image: gateway.image's fields, each defaulting to image's. */}}
{{- define "interlock.gatewayImage" -}}
{{- $img := .Values.gateway.image -}}
{{- $digest := "" -}}
{{- if not (or $img.registry $img.repository $img.tag) -}}{{- $digest = .Values.image.digest -}}{{- end -}}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) $img.tag -}}
{{- include "interlock.imageRef" (dict "registry" (default .Values.image.registry $img.registry) "repository" (default .Values.image.repository $img.repository) "tag" $tag "digest" $digest) -}}
{{- end -}}

{{/* ServiceAccount names. */}}
{{- define "interlock.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "interlock.componentName" (list . "operator")) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "interlock.api.serviceAccountName" -}}
{{- if .Values.api.serviceAccount.create -}}
{{- default (include "interlock.componentName" (list . "api")) .Values.api.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.api.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the admin token, the gateway token and the gateway signing key. */}}
{{- define "interlock.authSecretName" -}}
{{- default (include "interlock.componentName" (list . "auth")) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The bundled Postgres's Secret (password, database-url). */}}
{{- define "interlock.postgresSecretName" -}}
{{- default (include "interlock.componentName" (list . "postgresql")) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/* The bundled Redis's Secret (password). */}}
{{- define "interlock.redisSecretName" -}}
{{- default (include "interlock.componentName" (list . "redis")) .Values.redis.auth.existingSecret -}}
{{- end -}}

{{/* The Secret and key holding the database DSN. */}}
{{- define "interlock.databaseSecretName" -}}
{{- if eq .Values.database.mode "external" -}}
{{- required "database.external.existingSecret is required when database.mode is external" .Values.database.external.existingSecret -}}
{{- else -}}
{{- include "interlock.postgresSecretName" . -}}
{{- end -}}
{{- end -}}

{{- define "interlock.databaseSecretKey" -}}
{{- if eq .Values.database.mode "external" -}}
{{- .Values.database.external.existingSecretKey -}}
{{- else -}}
database-url
{{- end -}}
{{- end -}}

{{/*
The Secrets the secrets hook Job creates (interlock.deploy.secrets), as its JSON spec: those no existing* value
names. Nothing random is drawn here, so every render is the same; the Job draws the values once, in the cluster,
and never changes an existing one. Empty list: no Job.
*/}}
{{- define "interlock.generatedSecrets" -}}
{{- $specs := list -}}
{{- $labels := dict "app.kubernetes.io/part-of" "interlock" "app.kubernetes.io/instance" .Release.Name -}}
{{- if not .Values.auth.existingSecret -}}
{{- $keys := dict "admin-token" (dict "random" 32) "gateway-signing-key" (dict "random" 48) -}}
{{- $specs = append $specs (dict "name" (include "interlock.authSecretName" .) "labels" $labels "keys" $keys) -}}
{{- end -}}
{{- if and (eq .Values.database.mode "bundled") (not .Values.postgresql.auth.existingSecret) -}}
{{- $a := .Values.postgresql.auth -}}
{{- $url := printf "postgresql+asyncpg://%s:{password}@%s.%s.svc:5432/%s" $a.username (include "interlock.componentName" (list . "postgresql")) .Release.Namespace $a.database -}}
{{- $keys := dict "password" (dict "random" 24) "database-url" (dict "template" $url) -}}
{{- $specs = append $specs (dict "name" (include "interlock.postgresSecretName" .) "labels" $labels "keys" $keys) -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "bundled") (not .Values.redis.auth.existingSecret) -}}
{{- $keys := dict "password" (dict "random" 32) -}}
{{- $specs = append $specs (dict "name" (include "interlock.redisSecretName" .) "labels" $labels "keys" $keys) -}}
{{- end -}}
{{- toJson $specs -}}
{{- end -}}

{{/* The control-plane URL the gateways use. */}}
{{- define "interlock.controlPlaneURL" -}}
{{- if .Values.gateway.controlPlane.url -}}
{{- .Values.gateway.controlPlane.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "interlock.componentName" (list . "api")) .Release.Namespace (int .Values.api.service.port) -}}
{{- end -}}
{{- end -}}

{{/* The names of imagePullSecrets as a JSON list, for the operator (INTERLOCK_OPERATOR_IMAGE_PULL_SECRETS). */}}
{{- define "interlock.pullSecretNames" -}}
{{- $names := list -}}
{{- range .Values.imagePullSecrets }}{{- $names = append $names .name -}}{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Pod-level settings shared by the Interlock pods. */}}
{{- define "interlock.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* Labels of the gateway pods the operator runs (interlock/operator/builders.py). */}}
{{- define "interlock.gatewayPodLabels" -}}
app.kubernetes.io/component: gateway
app.kubernetes.io/part-of: interlock
app.kubernetes.io/managed-by: interlock-operator
{{- end -}}

{{/* Labels of the inference engine pods the operator runs (interlock/operator/builders.py). */}}
{{- define "interlock.enginePodLabels" -}}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: interlock
app.kubernetes.io/managed-by: interlock-operator
{{- end -}}

{{/*
The NetworkPolicy peer of the gateways: their pods' labels AND their namespaces (networkPolicy.gatewayNamespaces,
else operator.watchNamespaces, else the namespaces networkPolicy.gatewayNamespaceSelector selects).
*/}}
{{- define "interlock.gatewayPeer" -}}
{{- $names := default .Values.operator.watchNamespaces .Values.networkPolicy.gatewayNamespaces -}}
- namespaceSelector:
    {{- if $names }}
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- toYaml $names | nindent 10 }}
    {{- else }}
    {{- toYaml .Values.networkPolicy.gatewayNamespaceSelector | nindent 4 }}
    {{- end }}
  podSelector:
    matchLabels:
      {{- include "interlock.gatewayPodLabels" . | nindent 6 }}
{{- end -}}

{{/* The gateways' Redis settings (EnvVar list as JSON), or an empty list when redis.mode is none. */}}
{{- define "interlock.gatewayRedisEnv" -}}
{{- $r := .Values.redis -}}
{{- $env := list -}}
{{- if ne $r.mode "none" -}}
{{- $auth := "" -}}
{{- if $r.gatewaySecret.name -}}
{{- $env = append $env (dict "name" "INTERLOCK_REDIS_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" $r.gatewaySecret.name "key" $r.gatewaySecret.key))) -}}
{{- $auth = "$(INTERLOCK_REDIS_PASSWORD)@" -}}
{{- end -}}
{{- $url := "" -}}
{{- if eq $r.mode "bundled" -}}
{{- if $auth -}}{{- $auth = printf ":%s" $auth -}}{{- end -}}
{{- $url = printf "redis://%s%s.%s.svc:6379/0" $auth (include "interlock.componentName" (list . "redis")) .Release.Namespace -}}
{{- else -}}
{{- $e := $r.external -}}
{{- if $auth -}}{{- $auth = printf "%s:%s" $e.username $auth -}}{{- end -}}
{{- $url = printf "%s://%s%s:%d/%d" (ternary "rediss" "redis" $e.tls) $auth $e.host (int $e.port) (int $e.database) -}}
{{- end -}}
{{- $env = append $env (dict "name" "INTERLOCK_GATEWAY_REDIS_URL" "value" $url) -}}
{{- end -}}
{{- toJson $env -}}
{{- end -}}

{{/* The migration container (hook Job, or the API pods' init container with the bundled database). */}}
{{- define "interlock.migrateContainer" -}}
name: migrate
image: {{ include "interlock.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
command: ["interlock", "api", "--migrate-only"]
env:
  - name: INTERLOCK_API_ENVIRONMENT
    value: {{ .Values.api.environment | quote }}
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "interlock.databaseSecretName" . }}
        key: {{ include "interlock.databaseSecretKey" . }}
  # The API's settings refuse to load in production without a real admin token, even just to migrate.
  - name: INTERLOCK_API_ADMIN_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "interlock.authSecretName" . }}
        key: admin-token
resources:
  {{- toYaml .Values.migrations.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end -}}
