{{/* Names and labels, as `helm create` makes them. */}}
{{- define "tokenauthz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tokenauthz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "tokenauthz.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "tokenauthz.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "tokenauthz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenauthz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tokenauthz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tokenauthz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tokenauthz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tokenauthz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tokenauthz.configMapName" -}}
{{- default (printf "%s-config" (include "tokenauthz.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* Where the pod sees its files. */}}
{{- define "tokenauthz.configPath" -}}/etc/tokenauthz/config/config.yaml{{- end }}
{{- define "tokenauthz.sharedCacheDir" -}}/etc/tokenauthz/shared-cache{{- end }}

{{/*
The config file: config.data, with cache.shared from sharedCache pointing at
the files the shared-cache volume holds.
*/}}
{{- define "tokenauthz.config" -}}
{{- $cfg := deepCopy (.Values.config.data | default dict) }}
{{- with .Values.sharedCache }}
{{- if .enabled }}
{{- if not .addresses }}{{ fail "sharedCache.enabled needs sharedCache.addresses" }}{{ end }}
{{- if not .keysSecret.name }}{{ fail "sharedCache.enabled needs sharedCache.keysSecret.name (the cache encryption keys)" }}{{ end }}
{{- $dir := include "tokenauthz.sharedCacheDir" $ }}
{{- $shared := dict "addresses" .addresses "db" .db "prefix" .prefix "timeout" .timeout "keys_file" (printf "%s/keys" $dir) }}
{{- if .username }}{{ $_ := set $shared "username" .username }}{{ end }}
{{- if .passwordSecret.name }}{{ $_ := set $shared "password_file" (printf "%s/password" $dir) }}{{ end }}
{{- if .tlsSecret.name }}
{{- $tls := dict "ca_file" (printf "%s/tls/ca.crt" $dir) }}
{{- if .tlsSecret.clientCert }}{{ $_ := set $tls "cert_file" (printf "%s/tls/tls.crt" $dir) }}{{ $_ := set $tls "key_file" (printf "%s/tls/tls.key" $dir) }}{{ end }}
{{- $_ := set $shared "tls" $tls }}
{{- end }}
{{- $cache := get $cfg "cache" | default dict }}
{{- $_ := set $cache "shared" $shared }}
{{- $_ := set $cfg "cache" $cache }}
{{- end }}
{{- end }}
{{- if hasKey $cfg "listen" }}{{ fail "config.data.listen: leave it out, the chart's flags bind ports.grpc and ports.http" }}{{ end }}
{{- toYaml $cfg }}
{{- end }}

{{- define "tokenauthz.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add .Values.preStopSleepSeconds .Values.drainSeconds 10 5 }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
