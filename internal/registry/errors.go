package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"berth.dev/berth/internal/registry/access"
)

// errorCode is one of the distribution spec's error codes, with the HTTP
// status berth answers it with.
type errorCode struct {
	code    string
	status  int
	message string
}

// The error codes of the distribution spec, in its order.
var (
	errBlobUnknown         = errorCode{"BLOB_UNKNOWN", http.StatusNotFound, "blob unknown to registry"}
	errBlobUploadInvalid   = errorCode{"BLOB_UPLOAD_INVALID", http.StatusBadRequest, "blob upload invalid"}
	errBlobUploadUnknown   = errorCode{"BLOB_UPLOAD_UNKNOWN", http.StatusNotFound, "blob upload unknown to registry"}
	errDigestInvalid       = errorCode{"DIGEST_INVALID", http.StatusBadRequest, "provided digest did not match uploaded content"}
	errManifestBlobUnknown = errorCode{"MANIFEST_BLOB_UNKNOWN", http.StatusBadRequest, "manifest references a manifest or blob unknown to registry"}
	errManifestInvalid     = errorCode{"MANIFEST_INVALID", http.StatusBadRequest, "manifest invalid"}
	errManifestUnknown     = errorCode{"MANIFEST_UNKNOWN", http.StatusNotFound, "manifest unknown to registry"}
	errNameInvalid         = errorCode{"NAME_INVALID", http.StatusBadRequest, "invalid repository name"}
	errNameUnknown         = errorCode{"NAME_UNKNOWN", http.StatusNotFound, "repository name not known to registry"}
	errSizeInvalid         = errorCode{"SIZE_INVALID", http.StatusBadRequest, "provided length did not match content length"}
	errUnauthorized        = errorCode{"UNAUTHORIZED", http.StatusUnauthorized, "authentication required"}
	errDenied              = errorCode{"DENIED", http.StatusForbidden, "requested access to the resource is denied"}
	errUnsupported         = errorCode{"UNSUPPORTED", http.StatusMethodNotAllowed, "the operation is unsupported"}
	errTooManyRequests     = errorCode{"TOOMANYREQUESTS", http.StatusTooManyRequests, "too many requests"}

	// Not in the spec's table, but the codes distribution answers with and
	// clients know.
	errPaginationInvalid = errorCode{"PAGINATION_NUMBER_INVALID", http.StatusBadRequest, "invalid number of results requested"}
	errUnknown           = errorCode{"UNKNOWN", http.StatusInternalServerError, "internal server error"}
	errUnavailable       = errorCode{"UNAVAILABLE", http.StatusServiceUnavailable, "service unavailable; try again"}
)

// apiError is an error answered to the client as the spec's JSON error body.
type apiError struct {
	code   errorCode
	status int    // overrides code.status when set (416 for ranges, 413 for size)
	detail any    // the spec's free-form detail
	reason string // what went wrong in words, replacing the generic message
	header http.Header
	// more are further errors answered in the same body (one
	// MANIFEST_BLOB_UNKNOWN per missing blob).
	more []errorEntry
}

func (e *apiError) Error() string {
	if e.reason != "" {
		return e.code.code + ": " + e.reason
	}
	return e.code.code + ": " + e.code.message
}

func newError(code errorCode, reason string) *apiError {
	return &apiError{code: code, reason: reason}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError answers err: an *apiError as itself, an authorization failure
// as UNAUTHORIZED or DENIED, anything else as a 500 with the cause logged,
// never shown.
func (reg *Registry) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	var challenge *access.Challenge
	var denial *access.Denial
	var throttle *access.Throttle
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &challenge):
		ae = &apiError{code: errUnauthorized, header: http.Header{"Www-Authenticate": {challenge.Header()}}}
	case errors.As(err, &denial):
		ae = &apiError{code: errDenied, reason: denial.Reason}
	case errors.Is(err, access.ErrDenied):
		ae = &apiError{code: errDenied}
	case errors.As(err, &throttle):
		ae = &apiError{code: errTooManyRequests, header: http.Header{"Retry-After": {throttle.RetryAfterSeconds()}}}
	case errors.Is(err, access.ErrTooManyRequests):
		ae = &apiError{code: errTooManyRequests}
	case reg.unavailable != nil && reg.unavailable(err):
		// A database or bucket unreachable or failing for now: the
		// client's retry is the right answer, not a report of a bug.
		ae = &apiError{code: errUnavailable, header: http.Header{"Retry-After": {"1"}}}
	default:
		// The cause is logged, never shown: it may name files or SQL.
		ae = &apiError{code: errUnknown}
	}
	status := ae.status
	if status == 0 {
		status = ae.code.status
	}
	message := ae.code.message
	if ae.reason != "" {
		message = ae.reason
	}
	entries := append([]errorEntry{{Code: ae.code.code, Message: message, Detail: ae.detail}}, ae.more...)
	body, _ := json.Marshal(errorBody{Errors: entries})
	h := w.Header()
	for k, v := range ae.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	if status >= 500 {
		reg.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	} else {
		reg.log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "error", err)
	}
}
