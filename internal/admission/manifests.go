package admission

import (
	"encoding/base64"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// ManifestOptions shape what Manifests prints.
type ManifestOptions struct {
	Namespace string // where the webhook runs
	Name      string // of its Deployment, Service, Secret and configurations
	Image     string // the berth image
	// Policy is the policy file's content, kept in a ConfigMap.
	Policy []byte
	// URL, when set, points the configurations at a webhook outside the
	// cluster (berth serve's /admission/) instead of the Service; no
	// Deployment or Service is printed then.
	URL string
	// CertPEM and KeyPEM are the serving certificate (its own CA: it is
	// the caBundle) and key.
	CertPEM, KeyPEM []byte
	TimeoutSeconds  int
	FailurePolicy   string // Fail (default) or Ignore
	// NamespaceLabel opts a namespace in: key=value.
	NamespaceLabelKey, NamespaceLabelValue string
	PodSecurity                            bool
}

type obj = map[string]any

// Manifests writes the Kubernetes objects of the webhook as one YAML
// stream: the ConfigMap with the policy, the TLS Secret, the Deployment
// and Service (unless URL is set), and the Validating- and
// MutatingWebhookConfiguration with the CA bundle, namespace opt-in
// label, timeoutSeconds and failurePolicy.
func Manifests(w io.Writer, o ManifestOptions) error {
	if o.FailurePolicy == "" {
		o.FailurePolicy = "Fail"
	}
	if o.FailurePolicy != "Fail" && o.FailurePolicy != "Ignore" {
		return fmt.Errorf("failure policy %q: want Fail or Ignore", o.FailurePolicy)
	}
	if o.TimeoutSeconds < 1 || o.TimeoutSeconds > 30 {
		return fmt.Errorf("timeout %d s: Kubernetes allows 1 to 30", o.TimeoutSeconds)
	}
	labels := obj{"app.kubernetes.io/name": o.Name, "app.kubernetes.io/part-of": "berth"}
	meta := func(name string) obj { return obj{"name": name, "namespace": o.Namespace, "labels": labels} }
	var docs []obj
	if o.URL == "" {
		docs = append(docs,
			obj{"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(o.Name + "-policy"),
				"data": obj{"policy.yaml": string(o.Policy)}},
			obj{"apiVersion": "v1", "kind": "Secret", "metadata": meta(o.Name + "-tls"), "type": "kubernetes.io/tls",
				"data": obj{"tls.crt": base64.StdEncoding.EncodeToString(o.CertPEM), "tls.key": base64.StdEncoding.EncodeToString(o.KeyPEM)}},
			o.deployment(meta(o.Name), labels),
			obj{"apiVersion": "v1", "kind": "Service", "metadata": meta(o.Name),
				"spec": obj{"selector": obj{"app.kubernetes.io/name": o.Name}, "ports": []obj{{"name": "https", "port": 443, "targetPort": 8443}}}},
		)
	}
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		path, suffix := "/validate", "validate"
		if kind == "MutatingWebhookConfiguration" {
			path, suffix = "/mutate", "mutate"
		}
		client := obj{"caBundle": base64.StdEncoding.EncodeToString(o.CertPEM)}
		if o.URL != "" {
			client["url"] = o.URL + path
		} else {
			client["service"] = obj{"name": o.Name, "namespace": o.Namespace, "path": path, "port": 443}
		}
		hook := obj{
			"name":                    suffix + ".admission.berth.dev",
			"clientConfig":            client,
			"admissionReviewVersions": []string{"v1"},
			"sideEffects":             "None",
			"timeoutSeconds":          o.TimeoutSeconds,
			"failurePolicy":           o.FailurePolicy,
			"matchPolicy":             "Equivalent",
			"namespaceSelector":       obj{"matchLabels": obj{o.NamespaceLabelKey: o.NamespaceLabelValue}},
			"rules": []obj{
				{"apiGroups": []string{""}, "apiVersions": []string{"v1"}, "operations": []string{"CREATE", "UPDATE"},
					"resources": []string{"pods", "pods/ephemeralcontainers"}, "scope": "Namespaced"},
				{"apiGroups": []string{"apps"}, "apiVersions": []string{"v1"}, "operations": []string{"CREATE", "UPDATE"},
					"resources": []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, "scope": "Namespaced"},
				{"apiGroups": []string{"batch"}, "apiVersions": []string{"v1"}, "operations": []string{"CREATE", "UPDATE"},
					"resources": []string{"jobs", "cronjobs"}, "scope": "Namespaced"},
			},
		}
		if kind == "MutatingWebhookConfiguration" {
			hook["reinvocationPolicy"] = "IfNeeded"
		}
		docs = append(docs, obj{"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
			"metadata": obj{"name": o.Name, "labels": labels}, "webhooks": []obj{hook}})
	}
	for _, d := range docs {
		b, err := yaml.Marshal(d)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

func (o ManifestOptions) deployment(meta, labels obj) obj {
	args := []string{"admission", "serve", "--addr", ":8443", "--policy", "/etc/berth/policy/policy.yaml",
		"--tls-cert", "/etc/berth/tls/tls.crt", "--tls-key", "/etc/berth/tls/tls.key"}
	if o.PodSecurity {
		args = append(args, "--pod-security")
	}
	restricted := obj{"runAsNonRoot": true, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
		"capabilities": obj{"drop": []string{"ALL"}}, "seccompProfile": obj{"type": "RuntimeDefault"}}
	return obj{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
		"spec": obj{"replicas": 2, "selector": obj{"matchLabels": obj{"app.kubernetes.io/name": o.Name}},
			"template": obj{"metadata": obj{"labels": labels},
				"spec": obj{
					"securityContext": obj{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": obj{"type": "RuntimeDefault"}},
					"containers": []obj{{"name": "admission", "image": o.Image, "args": args,
						"ports":           []obj{{"name": "https", "containerPort": 8443}},
						"readinessProbe":  obj{"httpGet": obj{"path": "/healthz", "port": 8443, "scheme": "HTTPS"}},
						"securityContext": restricted,
						"resources":       obj{"requests": obj{"cpu": "100m", "memory": "128Mi"}},
						"volumeMounts": []obj{{"name": "policy", "mountPath": "/etc/berth/policy", "readOnly": true},
							{"name": "tls", "mountPath": "/etc/berth/tls", "readOnly": true}}}},
					"volumes": []obj{{"name": "policy", "configMap": obj{"name": o.Name + "-policy"}},
						{"name": "tls", "secret": obj{"secretName": o.Name + "-tls"}}},
				}}}}
}
