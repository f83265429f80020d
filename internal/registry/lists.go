package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
)

// maxPage bounds n on paginated lists.
const maxPage = 10000

// pageParams reads n and last. n < 0 means the client asked for no limit.
func pageParams(q *request) (n int, last string, err error) {
	query := q.r.URL.Query()
	last = query.Get("last")
	n = -1
	if s := query.Get("n"); s != "" {
		n, err = strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, "", &apiError{code: errPaginationInvalid, reason: fmt.Sprintf("invalid n %q: want a number from 0 to %d", s, maxPage)}
		}
		n = min(n, maxPage)
	}
	return n, last, nil
}

// nextLink sets the Link header pointing at the page after last.
func nextLink(q *request, n int, last string) {
	v := url.Values{}
	v.Set("n", strconv.Itoa(n))
	v.Set("last", last)
	q.w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, q.r.URL.Path, v.Encode()))
}

func writeJSON(q *request, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	h := q.w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		q.w.Write(body)
	}
	return nil
}

func (reg *Registry) handleTags(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed(q, "GET, HEAD")
	}
	if err := reg.authorize(q, access.List); err != nil {
		return err
	}
	n, last, err := pageParams(q)
	if err != nil {
		return err
	}
	ask := n
	if n >= 0 {
		ask = n + 1 // one more tells whether there is a next page
	}
	tags, err := reg.meta.Tags(q.ctx(), q.route.name, last, ask)
	if errors.Is(err, meta.ErrRepositoryUnknown) {
		return &apiError{code: errNameUnknown, reason: fmt.Sprintf("repository %s not known to registry", q.route.name),
			detail: map[string]string{"name": q.route.name}}
	}
	if err != nil {
		return err
	}
	if n >= 0 && len(tags) > n {
		tags = tags[:n]
		nextLink(q, n, tags[len(tags)-1])
	}
	if tags == nil {
		tags = []string{}
	}
	return writeJSON(q, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{q.route.name, tags})
}

func (reg *Registry) handleCatalog(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed(q, "GET, HEAD")
	}
	if err := reg.authz.Authorize(q.ctx(), q.subject, access.Request{Action: access.Catalog}); err != nil {
		return err
	}
	n, last, err := pageParams(q)
	if err != nil {
		return err
	}
	// Fetch in batches and keep the repositories the caller may see in
	// the catalog, until the page is full or the list ends.
	batch := 1000
	if n >= 0 {
		batch = n + 1
	}
	var repos []string
	more := false
	for cursor := last; ; {
		names, err := reg.meta.Repositories(q.ctx(), cursor, batch)
		if err != nil {
			return err
		}
		for _, name := range names {
			if n >= 0 && len(repos) == n {
				more = true
				break
			}
			if reg.authz.Authorize(q.ctx(), q.subject, access.Request{Repository: name, Action: access.Catalog}) == nil {
				repos = append(repos, name)
			}
		}
		if more || len(names) < batch {
			break
		}
		cursor = names[len(names)-1]
	}
	if more && len(repos) > 0 {
		nextLink(q, n, repos[len(repos)-1])
	}
	if repos == nil {
		repos = []string{}
	}
	return writeJSON(q, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// referrerDescriptor is an entry of the referrers index.
type referrerDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

func (reg *Registry) handleReferrers(q *request) error {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		return methodNotAllowed(q, "GET, HEAD")
	}
	if err := reg.authorize(q, access.Pull); err != nil {
		return err
	}
	d, err := blobDigest(q.route.ref)
	if err != nil {
		return err
	}
	artifactType := q.r.URL.Query().Get("artifactType")
	found, err := reg.meta.Referrers(q.ctx(), q.route.name, d, artifactType)
	if err != nil {
		return err
	}
	manifests := make([]referrerDescriptor, len(found))
	for i, f := range found {
		manifests[i] = referrerDescriptor{MediaType: f.MediaType, Digest: f.Digest, Size: f.Size,
			ArtifactType: f.ArtifactType, Annotations: f.Annotations}
	}
	if artifactType != "" {
		q.w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(q, mediaTypeOCIIndex, struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []referrerDescriptor `json:"manifests"`
	}{2, mediaTypeOCIIndex, manifests})
}
