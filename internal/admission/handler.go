package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/policy"
)

// maxReview bounds a request body: the apiserver sends at most ~3 MiB
// objects.
const maxReview = 4 << 20

// Handler serves POST /validate and POST /mutate (under whatever prefix
// it is mounted at).
type Handler struct {
	dc *decider
}

// New returns the webhook handler.
func New(opts Options) *Handler { return &Handler{dc: newDecider(opts)} }

// reviewError is a request the webhook cannot answer as a review: the
// apiserver then applies the webhook's failurePolicy (Fail: refused).
type reviewError struct {
	status int
	msg    string
}

func (e *reviewError) Error() string { return e.msg }

func badReview(format string, args ...any) error {
	return &reviewError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var mutate bool
	switch {
	case strings.HasSuffix(r.URL.Path, "/validate"):
	case strings.HasSuffix(r.URL.Path, "/mutate"):
		mutate = true
	default:
		http.Error(w, "no such endpoint: the webhook serves POST /validate and POST /mutate", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, r.Method+" is not supported: send AdmissionReview with POST", http.StatusMethodNotAllowed)
		return
	}
	resp, err := h.review(r, mutate)
	if err != nil {
		var re *reviewError
		if !errors.As(err, &re) {
			re = &reviewError{http.StatusInternalServerError, err.Error()}
		}
		http.Error(w, re.msg, re.status)
		return
	}
	body, err := json.Marshal(Review{APIVersion: APIVersion, Kind: Kind, Response: resp})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// Review decides one AdmissionReview (for tests and embedding).
func (h *Handler) review(r *http.Request, mutate bool) (*Response, error) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, &reviewError{http.StatusUnsupportedMediaType, "send the AdmissionReview as application/json"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
	if err != nil {
		return nil, badReview("reading the AdmissionReview: %v", err)
	}
	if len(body) > maxReview {
		return nil, &reviewError{http.StatusRequestEntityTooLarge, fmt.Sprintf("AdmissionReview larger than %d bytes", maxReview)}
	}
	var rev Review
	if err := json.Unmarshal(body, &rev); err != nil {
		return nil, badReview("malformed AdmissionReview: %v", err)
	}
	if rev.APIVersion != APIVersion || rev.Kind != Kind {
		return nil, badReview("apiVersion %q kind %q: this webhook answers %s %s (set admissionReviewVersions: [v1])", rev.APIVersion, rev.Kind, APIVersion, Kind)
	}
	if rev.Request == nil {
		return nil, badReview("AdmissionReview without a request")
	}
	req := rev.Request
	if req.UID == "" {
		return nil, badReview("AdmissionReview request without a uid")
	}
	ctx := r.Context()
	if t, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && t > 0 {
		// The apiserver says how long it waits: answer before it gives
		// up, so the refusal carries berth's message.
		margin := t / 10
		if margin > time.Second {
			margin = time.Second
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t-margin)
		defer cancel()
	}
	return h.decideRequest(ctx, req, mutate), nil
}

func (h *Handler) decideRequest(ctx context.Context, req *Request, mutate bool) *Response {
	resp := &Response{UID: req.UID, Allowed: true, AuditAnnotations: map[string]string{}}
	if req.Operation == "DELETE" || req.Operation == "CONNECT" {
		resp.AuditAnnotations["decision"] = "not checked: " + req.Operation
		return resp
	}
	wl, isWorkload, err := readWorkload(req.Kind.Kind, req.Object)
	if !isWorkload {
		resp.AuditAnnotations["decision"] = "not checked: " + req.Kind.Kind + " is not a workload"
		return resp
	}
	if err != nil {
		return deny(resp, "berth: "+err.Error())
	}
	// Without an admission policy of its own (Options.Policy unset), only
	// the projects' policies decide.
	var p *policy.Policy
	if h.dc.opts.Policy != nil || h.dc.opts.ProjectPolicy == nil {
		if h.dc.opts.Policy != nil {
			p = h.dc.opts.Policy()
		}
		if p == nil {
			return deny(resp, "berth: no policy is loaded (fail closed)")
		}
	}
	// Each image once, however many containers name it, all at once.
	var unique []string
	decisions := map[string]*decision{}
	for _, c := range wl.containers {
		if _, seen := decisions[c.image]; !seen {
			decisions[c.image] = nil
			unique = append(unique, c.image)
		}
	}
	results := make([]*decision, len(unique))
	checks := make([]*projectCheck, len(unique))
	var wg sync.WaitGroup
	for i, image := range unique {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = h.dc.decide(ctx, p, image)
			checks[i] = h.dc.project(ctx, results[i])
		}()
	}
	wg.Wait()
	projects := map[string]*projectCheck{}
	for i, image := range unique {
		decisions[image], projects[image] = results[i], checks[i]
	}

	var refusals, audit []string
	var patch []patchOp
	for _, c := range wl.containers {
		d, pc := decisions[c.image], projects[c.image]
		switch {
		case d.problem != "":
			refusals = append(refusals, fmt.Sprintf("%s: %s", c.field, d.problem))
			audit = append(audit, c.image+" refused")
		case !d.verdict.Allowed || (pc != nil && pc.deny != ""):
			// Both refusals, the project's worded as its pull's.
			var why []string
			if !d.verdict.Allowed {
				why = append(why, d.verdict.Message())
			}
			if pc != nil && pc.deny != "" {
				why = append(why, pc.deny)
			}
			refusals = append(refusals, fmt.Sprintf("%s: %s is not allowed: %s", c.field, d.pinned, strings.Join(why, "; ")))
			audit = append(audit, d.pinned+" denied")
		case d.unchecked:
			audit = append(audit, c.image+" not checked (not hosted here)")
		default:
			audit = append(audit, d.pinned+" allowed")
			if mutate && c.image != d.pinned {
				patch = append(patch, patchOp{Op: "replace", Path: c.pointer, Value: d.pinned})
			}
		}
		if d.verdict != nil {
			for _, w := range d.verdict.Warnings {
				resp.Warnings = append(resp.Warnings, fmt.Sprintf("%s: %s", c.field, w))
			}
		}
		if pc != nil {
			for _, w := range pc.warnings {
				resp.Warnings = append(resp.Warnings, fmt.Sprintf("%s: %s", c.field, w))
			}
		}
	}
	if h.dc.opts.PodSecurity {
		refusals = append(refusals, podSecurity(wl.spec)...)
	}
	resp.AuditAnnotations["images"] = strings.Join(audit, ", ")
	if p != nil {
		resp.AuditAnnotations["policy"] = p.Version
	}
	sort.Strings(resp.Warnings)
	if len(refusals) > 0 {
		return deny(resp, "berth: "+strings.Join(refusals, "; "))
	}
	if len(patch) > 0 {
		b, err := json.Marshal(patch)
		if err != nil {
			return deny(resp, "berth: encode the patch: "+err.Error())
		}
		jp := "JSONPatch"
		resp.Patch, resp.PatchType = b, &jp
	}
	return resp
}

func deny(resp *Response, msg string) *Response {
	resp.Allowed = false
	resp.Result = &Status{Code: http.StatusForbidden, Reason: "Forbidden", Message: msg}
	resp.AuditAnnotations["decision"] = "denied"
	return resp
}
