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

{{/* The Interlock image. */}}
{{- define "interlock.image" -}}
{{- include "interlock.imageRef" .Values.image -}}
{{- end -}}

{{/* The gateway image: gateway.image's fields, each defaulting to image's. */}}
{{- define "interlock.gatewayImage" -}}
{{- $img := .Values.gateway.image -}}
{{- $digest := "" -}}
{{- if not (or $img.registry $img.repository $img.tag) -}}{{- $digest = .Values.image.digest -}}{{- end -}}
{{- include "interlock.imageRef" (dict "registry" (default .Values.image.registry $img.registry) "repository" (default .Values.image.repository $img.repository) "tag" (default .Values.image.tag $img.tag) "digest" $digest) -}}
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

{{/* The Secret holding the admin and gateway tokens. */}}
{{- define "interlock.authSecretName" -}}
{{- default (include "interlock.componentName" (list . "auth")) .Values.auth.existingSecret -}}
{{- end -}}

{{/* The Secret and key holding the database DSN. */}}
{{- define "interlock.databaseSecretName" -}}
{{- if eq .Values.database.mode "external" -}}
{{- required "database.external.existingSecret is required when database.mode is external" .Values.database.external.existingSecret -}}
{{- else -}}
{{- include "interlock.componentName" (list . "postgresql") -}}
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
A secret value kept across upgrades: the given value, else the one already in the cluster's Secret (lookup; empty
when rendering offline), else a new random one. Call with (dict "ctx" . "secret" NAME "key" KEY "value" GIVEN).
*/}}
{{- define "interlock.secretValue" -}}
{{- if .value -}}
{{- .value -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 40 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The control-plane URL the gateways use. */}}
{{- define "interlock.controlPlaneURL" -}}
{{- if .Values.gateway.controlPlane.url -}}
{{- .Values.gateway.controlPlane.url -}}
{{- else -}}
{{- printf "http://%s.%s.svc:%d" (include "interlock.componentName" (list . "api")) .Release.Namespace (int .Values.api.service.port) -}}
{{- end -}}
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
{{- end -}}

{{/*
When the migration hook runs. An external database exists before the release, so migrations run before anything
is installed or upgraded. The bundled one only exists once the release's StatefulSet is up: on install the Job
runs after it (and retries until Postgres answers); on upgrade, before the new API starts.
*/}}
{{- define "interlock.migrationHook" -}}
{{- if eq .Values.database.mode "external" -}}
pre-install,pre-upgrade
{{- else -}}
post-install,pre-upgrade
{{- end -}}
{{- end -}}
