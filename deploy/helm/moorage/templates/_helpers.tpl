{{/* Names and labels. */}}
{{- define "moorage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "moorage.fullname" -}}
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

{{- define "moorage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "moorage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "moorage.selector" -}}
app.kubernetes.io/name: {{ include "moorage.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "moorage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "moorage.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "moorage.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* A secret reference as an env var, only when the secret is named. */}}
{{- define "moorage.secretEnv" -}}
{{- if .ref.name }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name }}
      key: {{ .ref.key }}
{{- end }}
{{- end -}}

{{/* The settings every Moorage container gets (API, worker, migration job). */}}
{{- define "moorage.env" -}}
- name: MOORAGE_DATA_DIR
  value: /var/lib/moorage
- name: MOORAGE_GRPC_HEALTH_PORT
  value: {{ .Values.grpcHealthPort | quote }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_DATABASE_URL" "ref" .Values.database.urlSecret) }}
- name: MOORAGE_STORAGE
  value: {{ .Values.storage.backend | quote }}
{{- if eq .Values.storage.backend "s3" }}
{{- with .Values.storage.s3 }}
{{- if .endpointUrl }}
- name: MOORAGE_S3__ENDPOINT_URL
  value: {{ .endpointUrl | quote }}
{{- end }}
- name: MOORAGE_S3__REGION
  value: {{ .region | quote }}
- name: MOORAGE_S3__BUCKET
  value: {{ .bucket | quote }}
- name: MOORAGE_S3__KEY_PREFIX
  value: {{ .keyPrefix | quote }}
- name: MOORAGE_S3__BUCKET_PER_PROJECT
  value: {{ .bucketPerProject | quote }}
- name: MOORAGE_S3__REDIRECT_PULLS
  value: {{ .redirectPulls | quote }}
{{- if .credentialsSecret.name }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_S3__ACCESS_KEY_ID" "ref" (dict "name" .credentialsSecret.name "key" .credentialsSecret.accessKeyIdKey)) }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_S3__SECRET_ACCESS_KEY" "ref" (dict "name" .credentialsSecret.name "key" .credentialsSecret.secretAccessKeyKey)) }}
{{- end }}
{{- end }}
{{- else }}
- name: MOORAGE_BLOB_ROOT
  value: /var/lib/moorage/blobs
{{- end }}
- name: MOORAGE_TEMPORAL__ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: MOORAGE_TEMPORAL__NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: MOORAGE_TEMPORAL__TASK_QUEUE
  value: {{ .Values.temporal.taskQueue | quote }}
{{- if .Values.temporal.tls.enabled }}
- name: MOORAGE_TEMPORAL__TLS__ENABLED
  value: "true"
{{- if .Values.temporal.tls.secretName }}
- name: MOORAGE_TEMPORAL__TLS__SERVER_CA_FILE
  value: /etc/moorage/temporal-tls/ca.crt
- name: MOORAGE_TEMPORAL__TLS__CLIENT_CERT_FILE
  value: /etc/moorage/temporal-tls/tls.crt
- name: MOORAGE_TEMPORAL__TLS__CLIENT_KEY_FILE
  value: /etc/moorage/temporal-tls/tls.key
{{- end }}
{{- if .Values.temporal.tls.serverName }}
- name: MOORAGE_TEMPORAL__TLS__SERVER_NAME
  value: {{ .Values.temporal.tls.serverName | quote }}
{{- end }}
{{- end }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_TEMPORAL__API_KEY" "ref" .Values.temporal.apiKeySecret) }}
{{- if .Values.keycloak.enabled }}
- name: MOORAGE_OIDC__ISSUER
  value: {{ required "keycloak.issuer is required when keycloak.enabled" .Values.keycloak.issuer | quote }}
- name: MOORAGE_OIDC__AUDIENCE
  value: {{ .Values.keycloak.audience | quote }}
- name: MOORAGE_OIDC__CLIENT_ID
  value: {{ .Values.keycloak.clientId | quote }}
- name: MOORAGE_OIDC__ADMIN_GROUP
  value: {{ .Values.keycloak.adminGroup | quote }}
- name: MOORAGE_OIDC__GROUP_PREFIX
  value: {{ .Values.keycloak.groupPrefix | quote }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_OIDC__CLIENT_SECRET" "ref" .Values.keycloak.clientSecret) }}
{{- end }}
- name: MOORAGE_AUTH__ADMIN_USERNAME
  value: {{ .Values.admin.username | quote }}
{{- include "moorage.secretEnv" (dict "env" "MOORAGE_AUTH__ADMIN_PASSWORD" "ref" .Values.admin.passwordSecret) }}
- name: MOORAGE_SECRETS__MASTER_KEY_FILE
  value: /etc/moorage/master-key/{{ .Values.masterKeySecret.key }}
{{- if .Values.publicUrl }}
- name: MOORAGE_PUBLIC_URL
  value: {{ .Values.publicUrl | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes every Moorage pod mounts: scratch, data dir, and referenced secrets. */}}
{{- define "moorage.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
{{- if and (eq .Values.storage.backend "filesystem") .Values.storage.filesystem.existingClaim }}
  persistentVolumeClaim:
    claimName: {{ .Values.storage.filesystem.existingClaim }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: master-key
  secret:
    secretName: {{ required "masterKeySecret.name is required: every pod must seal and open secrets with the same master key" .Values.masterKeySecret.name }}
    defaultMode: 0400
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  secret:
    secretName: {{ .Values.temporal.tls.secretName }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "moorage.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/moorage
- name: master-key
  mountPath: /etc/moorage/master-key
  readOnly: true
{{- if and .Values.temporal.tls.enabled .Values.temporal.tls.secretName }}
- name: temporal-tls
  mountPath: /etc/moorage/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level security; the migration hook runs before the chart's ServiceAccount exists,
so it uses an existing account (serviceAccount.name) or the namespace's default. */}}
{{- define "moorage.podSecurity" -}}
{{- if .hook }}
serviceAccountName: {{ .root.Values.serviceAccount.create | ternary "default" (default "default" .root.Values.serviceAccount.name) }}
{{- else }}
serviceAccountName: {{ include "moorage.serviceAccountName" .root }}
{{- end }}
{{- with .root }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end -}}
