package store

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// NewInProcess returns a store that speaks the distribution API to h, a
// registry's handler in this process, without a listener: the server
// signs into its own registry through the same code path (validation,
// referrers, change records) as any client push. host only names the
// registry to go-containerregistry.
func NewInProcess(h http.Handler, host string) (*Remote, error) {
	reg, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("in-process registry %q: %w", host, err)
	}
	return NewRemote(reg, remote.WithTransport(handlerTransport{h}))
}

// handlerTransport answers requests by calling a handler. Signing moves
// small documents, so buffering each answer costs little.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	req := r.Clone(r.Context())
	req.RequestURI = r.URL.RequestURI()
	if req.Body == nil {
		req.Body = http.NoBody
	}
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = r
	return resp, nil
}
