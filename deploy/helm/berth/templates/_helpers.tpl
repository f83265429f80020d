{{- define "berth.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "berth.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "berth.labels" -}}
{{ include "berth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "berth.secretName" -}}
{{ include "berth.fullname" . }}-generated
{{- end -}}

{{/* Checks the values the mode needs, failing the render with the reason. */}}
{{- define "berth.validate" -}}
{{- if not (has .Values.mode (list "embedded" "scaleout")) -}}
{{- fail (printf "mode must be embedded or scaleout, not %q" .Values.mode) -}}
{{- end -}}
{{- if eq .Values.mode "scaleout" -}}
{{- if not .Values.postgres.existingSecret -}}
{{- fail "mode scaleout needs postgres.existingSecret: a Secret holding the postgres:// URL of the shared database" -}}
{{- end -}}
{{- if not .Values.s3.url -}}
{{- fail "mode scaleout needs s3.url: s3://BUCKET?endpoint=URL&region=REGION" -}}
{{- end -}}
{{- if not .Values.s3.existingSecret -}}
{{- fail "mode scaleout needs s3.existingSecret: a Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" -}}
{{- end -}}
{{- if lt (int .Values.replicaCount) 1 -}}
{{- fail "replicaCount must be at least 1" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pod template both modes share. */}}
{{- define "berth.pod" -}}
metadata:
  labels:
    {{- include "berth.selectorLabels" . | nindent 4 }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if eq .Values.mode "scaleout" }}
  # A replica leaving finishes its requests (shutdown_timeout, 1m).
  terminationGracePeriodSeconds: 75
  {{- end }}
  containers:
    - name: berth
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --addr=0.0.0.0:5000
        - --data=/data
        {{- if not .Values.tls.existingSecret }}
        # TLS ends in front of berth.
        - --insecure-http
        {{- end }}
      env:
        - name: BERTH_ADMIN_PASSWORD
          valueFrom:
            secretKeyRef:
              name: {{ .Values.admin.existingSecret | default (include "berth.secretName" .) }}
              key: admin-password
        - name: BERTH_AUTH_SIGNING_KEY
          value: /etc/berth/signing-key/signing-key.pem
        {{- if .Values.masterKey.existingSecret }}
        # From the environment, not a mounted file: with fsGroup a
        # Secret's files are group-readable, which berth refuses for a
        # master key file.
        - name: BERTH_MASTER
          valueFrom:
            secretKeyRef:
              name: {{ .Values.masterKey.existingSecret }}
              key: master.key
        - name: BERTH_KEYS_MASTER_KEY
          value: env:BERTH_MASTER
        {{- end }}
        {{- if eq .Values.mode "scaleout" }}
        - name: BERTH_STORAGE_META
          valueFrom:
            secretKeyRef:
              name: {{ .Values.postgres.existingSecret }}
              key: {{ .Values.postgres.key }}
        - name: BERTH_STORAGE_BLOBS
          value: {{ .Values.s3.url | quote }}
        - name: BERTH_STORAGE_REDIRECT
          value: {{ .Values.s3.redirect | quote }}
        - name: AWS_ACCESS_KEY_ID
          valueFrom:
            secretKeyRef:
              name: {{ .Values.s3.existingSecret }}
              key: AWS_ACCESS_KEY_ID
        - name: AWS_SECRET_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ .Values.s3.existingSecret }}
              key: AWS_SECRET_ACCESS_KEY
        {{- end }}
        {{- if .Values.tls.existingSecret }}
        - name: BERTH_TLS_CERT
          value: /etc/berth/tls/tls.crt
        - name: BERTH_TLS_KEY
          value: /etc/berth/tls/tls.key
        {{- end }}
        {{- if .Values.webhooks.allowPrivate }}
        - name: BERTH_WEBHOOKS_ALLOW_PRIVATE
          value: "true"
        {{- end }}
        {{- range $name, $value := .Values.extraEnv }}
        - name: {{ $name }}
          value: {{ $value | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: 5000
          protocol: TCP
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
          {{- if .Values.tls.existingSecret }}
          scheme: HTTPS
          {{- end }}
        periodSeconds: 5
        failureThreshold: 2
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
          {{- if .Values.tls.existingSecret }}
          scheme: HTTPS
          {{- end }}
        periodSeconds: 10
        failureThreshold: 6
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: signing-key
          mountPath: /etc/berth/signing-key
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if .Values.tls.existingSecret }}
        - name: tls
          mountPath: /etc/berth/tls
          readOnly: true
        {{- end }}
  volumes:
    - name: signing-key
      secret:
        secretName: {{ .Values.signingKey.existingSecret | default (include "berth.secretName" .) }}
        items:
          - key: signing-key.pem
            path: signing-key.pem
        defaultMode: 0400
    - name: tmp
      emptyDir: {}
    {{- if eq .Values.mode "scaleout" }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if .Values.tls.existingSecret }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.existingSecret }}
        defaultMode: 0400
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
