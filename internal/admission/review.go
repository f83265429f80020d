// Package admission is berth's Kubernetes admission webhook: POST
// /validate and POST /mutate answer AdmissionReview v1 requests for Pods
// and the pod templates of Deployments, StatefulSets, DaemonSets,
// ReplicaSets, Jobs and CronJobs, deciding every container image
// (containers, initContainers, ephemeralContainers) with the same policy
// evaluation as `berth policy check` and the registry. /mutate pins every
// image to the digest it resolved to and was verified at (Kyverno's
// mutateDigest), so what runs is what was checked.
//
// AdmissionReview is read and written with the small structs below (its
// JSON shape, admission.k8s.io/v1) rather than k8s.io/api, whose packages
// and apimachinery would add ~9 MB and 1.2 ms of init to every berth
// command.
package admission

import "encoding/json"

// APIVersion and Kind of the reviews this webhook answers.
const (
	APIVersion = "admission.k8s.io/v1"
	Kind       = "AdmissionReview"
)

// Review is an AdmissionReview.
type Review struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Request    *Request  `json:"request,omitempty"`
	Response   *Response `json:"response,omitempty"`
}

// GroupVersionKind names an object's type.
type GroupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// Request is the part of an AdmissionRequest the webhook reads.
type Request struct {
	UID       string           `json:"uid"`
	Kind      GroupVersionKind `json:"kind"`
	Namespace string           `json:"namespace,omitempty"`
	Name      string           `json:"name,omitempty"`
	Operation string           `json:"operation"`
	Object    json.RawMessage  `json:"object,omitempty"`
	DryRun    *bool            `json:"dryRun,omitempty"`
}

// Response is an AdmissionResponse.
type Response struct {
	UID              string            `json:"uid"`
	Allowed          bool              `json:"allowed"`
	Result           *Status           `json:"status,omitempty"`
	Patch            []byte            `json:"patch,omitempty"`
	PatchType        *string           `json:"patchType,omitempty"`
	AuditAnnotations map[string]string `json:"auditAnnotations,omitempty"`
	Warnings         []string          `json:"warnings,omitempty"`
}

// Status is the metav1.Status of a refusal.
type Status struct {
	Code    int32  `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// patchOp is one JSON Patch (RFC 6902) operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}
