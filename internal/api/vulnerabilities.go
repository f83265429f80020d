package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/reports"
)

// AffectedPackage is one finding of an advisory in an image.
type AffectedPackage struct {
	// ID is the finding's primary id (the one asked for may be an alias).
	ID            string   `json:"id"`
	Severity      string   `json:"severity"`
	Ecosystem     string   `json:"ecosystem"`
	Package       string   `json:"package"`
	Version       string   `json:"version"`
	FixedVersions []string `json:"fixed_versions"`
}

// VulnerableArtifact is a stored image an advisory affects, in one
// repository.
type VulnerableArtifact struct {
	Project    string            `json:"project"`
	Repository string            `json:"repository"`
	FullName   string            `json:"full_name"`
	Digest     digest.Digest     `json:"digest"`
	Tags       []string          `json:"tags"`
	Findings   []AffectedPackage `json:"findings"`
}

// VulnerabilityPage answers "which images have this advisory?" across the
// projects the caller may see.
type VulnerabilityPage struct {
	ID        string               `json:"id"`
	Summary   string               `json:"summary,omitempty"`
	Artifacts []VulnerableArtifact `json:"artifacts"`
	Total     int                  `json:"total"`
	Page      int                  `json:"page"`
	PageSize  int                  `json:"page_size"`
}

// validAdvisoryID accepts what advisory ids look like (CVE-2024-1234,
// GHSA-xxxx-xxxx-xxxx, DSA-5000-1, PYSEC-2023-1, GO-2024-0001): short,
// printable, no spaces.
func validAdvisoryID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// vulnerableArtifacts lists every stored image whose report names the
// advisory, in the repositories the caller may pull from: the index gives
// the digests in one read, the meta store the repositories holding each,
// and only the page's reports are decoded for their findings.
func (a *API) vulnerableArtifacts(c *call) error {
	id := strings.TrimSpace(c.r.PathValue("id"))
	if !validAdvisoryID(id) {
		return badRequest("vulnerability id %q: want an advisory id such as CVE-2024-3094 or GHSA-xxxx-xxxx-xxxx", id)
	}
	q := c.r.URL.Query()
	page, size := 1, defaultPageSize
	var err error
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			return badRequest("page %q: want a whole number from 1", v)
		}
	}
	if v := q.Get("page_size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > maxPageSize {
			return badRequest("page_size %q: want 1 to %d", v, maxPageSize)
		}
	}
	out := VulnerabilityPage{ID: id, Artifacts: []VulnerableArtifact{}, Page: page, PageSize: size}
	if a.opts.Reports == nil {
		return respond(c, http.StatusOK, out)
	}
	ds, err := a.opts.Reports.Vulnerable(c.ctx(), id)
	if err != nil {
		return err
	}
	type hit struct {
		repo string
		d    digest.Digest
	}
	var hits []hit
	visible := map[string]bool{}
	holders, err := a.manifestRepositories(c.ctx(), ds)
	if err != nil {
		return err
	}
	for _, d := range ds {
		for _, repo := range holders[d] {
			p := auth.ProjectOf(repo)
			ok, seen := visible[p]
			if !seen {
				ok = a.visible(c, p)
				visible[p] = ok
			}
			if ok {
				hits = append(hits, hit{repo, d})
			}
		}
	}
	slices.SortFunc(hits, func(x, y hit) int {
		if c := strings.Compare(x.repo, y.repo); c != 0 {
			return c
		}
		return strings.Compare(string(x.d), string(y.d))
	})
	out.Total = len(hits)
	hits = hits[min((page-1)*size, len(hits)):min(page*size, len(hits))]
	findings := map[digest.Digest][]AffectedPackage{}
	for _, h := range hits {
		if _, done := findings[h.d]; done {
			continue
		}
		rec, err := a.opts.Reports.Get(c.ctx(), h.d, true)
		if errors.Is(err, reports.ErrNotFound) {
			findings[h.d] = []AffectedPackage{}
			continue
		}
		if err != nil {
			return err
		}
		list := []AffectedPackage{}
		if rec.Report != nil {
			for i := range rec.Report.Findings {
				f := &rec.Report.Findings[i]
				if !slices.ContainsFunc(f.IDs(), func(s string) bool { return strings.EqualFold(s, id) }) {
					continue
				}
				if out.Summary == "" {
					out.Summary = f.Summary
				}
				fixed := f.FixedVersions
				if fixed == nil {
					fixed = []string{}
				}
				list = append(list, AffectedPackage{ID: f.ID, Severity: string(f.Severity), Ecosystem: string(f.Package.Ecosystem),
					Package: f.Package.Name, Version: f.Package.Version, FixedVersions: fixed})
			}
		}
		findings[h.d] = list
	}
	for _, h := range hits {
		tags, err := a.opts.Meta.ManifestTags(c.ctx(), h.repo, h.d)
		if err != nil {
			return err
		}
		if tags == nil {
			tags = []string{}
		}
		project := auth.ProjectOf(h.repo)
		out.Artifacts = append(out.Artifacts, VulnerableArtifact{Project: project, Repository: strings.TrimPrefix(h.repo, project+"/"),
			FullName: h.repo, Digest: h.d, Tags: tags, Findings: findings[h.d]})
	}
	return respond(c, http.StatusOK, out)
}

// manyManifests is what a meta store that resolves many digests at once
// offers (the SQLite store does); others are asked digest by digest.
type manyManifests interface {
	ManifestRepositoriesOf(ctx context.Context, ds []digest.Digest) (map[digest.Digest][]string, error)
}

// manifestRepositories returns the repositories holding each digest.
func (a *API) manifestRepositories(ctx context.Context, ds []digest.Digest) (map[digest.Digest][]string, error) {
	if m, ok := a.opts.Meta.(manyManifests); ok {
		return m.ManifestRepositoriesOf(ctx, ds)
	}
	out := make(map[digest.Digest][]string, len(ds))
	for _, d := range ds {
		repos, err := a.opts.Meta.ManifestRepositories(ctx, d, -1)
		if err != nil {
			return nil, err
		}
		out[d] = repos
	}
	return out, nil
}
