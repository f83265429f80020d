package api

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/registry/access"
	"berth.dev/berth/internal/registry/event"
	"berth.dev/berth/internal/report"
	"berth.dev/berth/internal/reports"
	"berth.dev/berth/internal/scanservice"
)

// Repository is one entry of a project's repository listing.
type Repository struct {
	// Name is the repository's name below the project ("team/app" in
	// project "team" is "app").
	Name     string `json:"name"`
	FullName string `json:"full_name"`
}

// Artifact is one entry of a repository's artifact listing: what the
// registry holds, with the state and summary of its scan.
type Artifact struct {
	Digest       digest.Digest    `json:"digest"`
	MediaType    string           `json:"media_type"`
	ArtifactType string           `json:"artifact_type,omitempty"`
	Size         int64            `json:"size"`
	PushedAt     time.Time        `json:"pushed_at"`
	Tags         []string         `json:"tags"`
	Scan         *reports.Scan    `json:"scan,omitempty"`
	Summary      *reports.Summary `json:"summary,omitempty"`
	// Platforms are an image's (from its config) or an index's entries.
	Platforms []Platform `json:"platforms"`
	// Signatures says whether it is signed and by which trusted keys.
	Signatures *SignatureSummary `json:"signatures,omitempty"`
	// Policy is the project policy's decision on a pull of this digest;
	// absent when the project has none.
	Policy *PolicyDecision `json:"policy,omitempty"`
}

// PolicyDecision is what a pull by digest would get: "allowed",
// "warned" (allowed, with warnings) or "denied", with the refusal's or
// the warnings' text. .../artifacts/{reference}/policy tells it rule by
// rule.
type PolicyDecision struct {
	Decision string `json:"decision"`
	Message  string `json:"message,omitempty"`
}

// ArtifactPage is a page of a repository's artifacts, newest push first.
type ArtifactPage struct {
	Artifacts []Artifact `json:"artifacts"`
	Total     int        `json:"total"`
	Page      int        `json:"page"`
	PageSize  int        `json:"page_size"`
}

// Page sizes of listings.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// repositoryNames are the registry names the path's project and
// repository may mean: "team" + "app" is "team/app"; in the default
// project a one-component name is also the registry's ("library" +
// "alpine" is "alpine", as docker names it, or "library/alpine").
func repositoryNames(project, repository string) []string {
	names := []string{project + "/" + repository}
	if project == auth.DefaultProject && !strings.Contains(repository, "/") {
		names = append([]string{repository}, names...)
	}
	return names
}

// pullable resolves the path's repository for a caller who must be able to
// pull it: a repository the caller may not see answers exactly as one that
// does not exist.
func (a *API) pullable(c *call) (repo string, err error) {
	project, repository := c.r.PathValue("project"), c.r.PathValue("repository")
	names := repositoryNames(project, repository)
	if !access.ValidRepository(names[len(names)-1]) || !a.visible(c, project) {
		return "", notFound("repository " + project + "/" + repository)
	}
	for _, name := range names {
		if _, err := a.opts.Meta.Tags(c.ctx(), name, "", 1); err == nil {
			return name, nil
		} else if !errors.Is(err, meta.ErrRepositoryUnknown) {
			return "", err
		}
	}
	return "", notFound("repository " + project + "/" + repository)
}

// resolve finds the path's reference (a tag or a digest) in repo.
func (a *API) resolve(c *call, repo string) (*meta.Manifest, error) {
	ref := c.r.PathValue("reference")
	d, err := digest.Parse(ref)
	if err != nil {
		if d, err = a.opts.Meta.Tag(c.ctx(), repo, ref); err != nil {
			if errors.Is(err, meta.ErrTagUnknown) || errors.Is(err, meta.ErrRepositoryUnknown) {
				return nil, notFound("artifact " + repo + ":" + ref)
			}
			return nil, err
		}
	}
	m, err := a.opts.Meta.Manifest(c.ctx(), repo, d)
	if errors.Is(err, meta.ErrManifestUnknown) {
		return nil, notFound("artifact " + repo + "@" + d.String())
	}
	return m, err
}

func (a *API) listRepositories(c *call) error {
	project := c.r.PathValue("project")
	if !a.visible(c, project) {
		return notFound("project " + project)
	}
	names, err := a.opts.Meta.Repositories(c.ctx(), "", -1)
	if err != nil {
		return err
	}
	out := []Repository{}
	for _, n := range names {
		if auth.ProjectOf(n) != project {
			continue
		}
		short := strings.TrimPrefix(n, project+"/")
		out = append(out, Repository{Name: short, FullName: n})
	}
	return respond(c, http.StatusOK, out)
}

func (a *API) listArtifacts(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	q := c.r.URL.Query()
	page, size := 1, defaultPageSize
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
	sortBy := q.Get("sort")
	less, ok := artifactOrders[strings.TrimPrefix(sortBy, "-")]
	if sortBy != "" && !ok {
		return badRequest("sort %q: want one of pushed_at, tag, size, severity, with - for descending", sortBy)
	}
	var arts []meta.Artifact
	var total int
	var recs map[digest.Digest]*reports.Record
	hideAttached := false
	if v := q.Get("hide_attached"); v != "" {
		if hideAttached, err = strconv.ParseBool(v); err != nil {
			return badRequest("hide_attached %q: want true or false", v)
		}
	}
	if !hideAttached && (sortBy == "" || sortBy == "-pushed_at") {
		// The store's own order: read only the page.
		if arts, total, err = a.opts.Meta.Artifacts(c.ctx(), repo, (page-1)*size, size); err != nil {
			return err
		}
		if recs, err = a.opts.Reports.Records(c.ctx(), digestsOf(arts)); err != nil {
			return err
		}
	} else {
		// Another order needs every artifact and its summary (two queries),
		// sorted here; a repository of thousands sorts in milliseconds.
		if arts, _, err = a.opts.Meta.Artifacts(c.ctx(), repo, 0, -1); err != nil {
			return err
		}
		if hideAttached {
			arts = slices.DeleteFunc(arts, attached)
		}
		total = len(arts)
		if recs, err = a.opts.Reports.Records(c.ctx(), digestsOf(arts)); err != nil {
			return err
		}
		if less == nil {
			less = artifactOrders["pushed_at"]
			sortBy = "-pushed_at"
		}
		desc := strings.HasPrefix(sortBy, "-")
		slices.SortStableFunc(arts, func(x, y meta.Artifact) int {
			if desc {
				x, y = y, x
			}
			return less(x, y, recs)
		})
		arts = arts[min((page-1)*size, len(arts)):min(page*size, len(arts))]
	}
	out := ArtifactPage{Artifacts: make([]Artifact, len(arts)), Total: total, Page: page, PageSize: size}
	for i, art := range arts {
		tags := art.Tags
		if tags == nil {
			tags = []string{}
		}
		out.Artifacts[i] = Artifact{Digest: art.Digest, MediaType: art.MediaType, ArtifactType: art.ArtifactType,
			Size: art.Size, PushedAt: art.PushedAt.UTC(), Tags: tags}
		out.Artifacts[i].setScan(recs[art.Digest])
		if out.Artifacts[i].Platforms, err = a.platformsOf(c.ctx(), repo, art.Digest); err != nil {
			return err
		}
		if out.Artifacts[i].Platforms == nil {
			out.Artifacts[i].Platforms = []Platform{}
		}
		if out.Artifacts[i].Signatures, err = a.signatureSummary(c.ctx(), repo, art.Digest, art.Size, types.MediaType(art.MediaType)); err != nil {
			return err
		}
		if out.Artifacts[i].Policy, err = a.policyDecision(c, repo, art.Digest); err != nil {
			return err
		}
	}
	return respond(c, http.StatusOK, out)
}

// policyDecision is the pull-time decision on digest d of repo, from the
// enforcer's verdict cache when it holds one; nil when no policy is
// enforced in the project.
func (a *API) policyDecision(c *call, repo string, d digest.Digest) (*PolicyDecision, error) {
	if a.opts.Policies == nil || !a.opts.Policies.Enforced(repo) {
		return nil, nil
	}
	m, err := a.opts.Meta.Manifest(c.ctx(), repo, d)
	if err != nil {
		return nil, err
	}
	deny, warnings := a.opts.Policies.CheckPull(c.ctx(), c.r.Host, repo, d.String(), m)
	switch {
	case deny != "":
		return &PolicyDecision{Decision: "denied", Message: deny}, nil
	case len(warnings) > 0:
		return &PolicyDecision{Decision: "warned", Message: strings.Join(warnings, "; ")}, nil
	}
	return &PolicyDecision{Decision: "allowed"}, nil
}

// attached reports whether art is only there for another artifact:
// tagged with nothing but cosign's tags for a digest (sha256-<hex>.sig,
// .att, .sbom) or the referrers tag schema's (sha256-<hex>).
func attached(art meta.Artifact) bool {
	if len(art.Tags) == 0 {
		return false
	}
	for _, t := range art.Tags {
		base, _, _ := strings.Cut(t, ".")
		if rest, ok := strings.CutPrefix(base, "sha256-"); !ok || len(rest) != 64 || strings.Trim(rest, "0123456789abcdef") != "" {
			return false
		}
	}
	return true
}

func digestsOf(arts []meta.Artifact) []digest.Digest {
	ds := make([]digest.Digest, len(arts))
	for i, art := range arts {
		ds[i] = art.Digest
	}
	return ds
}

// artifactOrders are the listing's ascending orders by name; ties keep
// the store's order (newest push first).
var artifactOrders = map[string]func(x, y meta.Artifact, recs map[digest.Digest]*reports.Record) int{
	"pushed_at": func(x, y meta.Artifact, _ map[digest.Digest]*reports.Record) int {
		return x.PushedAt.Compare(y.PushedAt)
	},
	"size": func(x, y meta.Artifact, _ map[digest.Digest]*reports.Record) int { return cmp.Compare(x.Size, y.Size) },
	"tag": func(x, y meta.Artifact, _ map[digest.Digest]*reports.Record) int {
		first := func(a meta.Artifact) string {
			if len(a.Tags) == 0 {
				return "\uffff" // untagged last
			}
			return a.Tags[0]
		}
		return strings.Compare(first(x), first(y))
	},
	"severity": func(x, y meta.Artifact, recs map[digest.Digest]*reports.Record) int {
		return cmp.Compare(severityRank(recs[x.Digest]), severityRank(recs[y.Digest]))
	},
}

// severityRank orders artifacts by how bad their findings are: critical
// count first, then high, medium, low; unscanned below clean.
func severityRank(rec *reports.Record) int64 {
	if rec == nil || !rec.HasReport() {
		return -1
	}
	s := rec.Summary
	clamp := func(n int) int64 { return int64(min(n, 9999)) }
	return clamp(s.Critical)*1e12 + clamp(s.High)*1e8 + clamp(s.Medium)*1e4 + clamp(s.Low)
}

// artifactVulnerabilities answers with the stored report exactly as `berth
// scan --format json` writes it for the image (or SARIF or CycloneDX with
// ?format=), with the state of its scan added as a top-level "scan".
func (a *API) artifactVulnerabilities(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	format := c.r.URL.Query().Get("format")
	switch format {
	case "", "json", "sarif", "cyclonedx":
	default:
		return badRequest("format %q: want json, sarif or cyclonedx", format)
	}
	rec, err := a.opts.Reports.Get(c.ctx(), m.Digest, true)
	if errors.Is(err, reports.ErrNotFound) {
		if a.opts.Scans == nil {
			return errNotScanning
		}
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: "artifact " + repo + "@" + m.Digest.String() +
			" has not been scanned (only images are; POST .../scan to scan it now)"}
	}
	if err != nil {
		return err
	}
	if rec.Report == nil {
		// Queued, running or failed before any report: the state alone.
		return respond(c, http.StatusOK, map[string]reports.Scan{"scan": rec.Scan})
	}
	var body bytes.Buffer
	name := "json"
	if format != "" {
		name = format
	}
	if err := report.EncodeReport(&body, name, rec.Report, report.Options{ToolVersion: a.opts.Version}); err != nil {
		return err
	}
	out := body.Bytes()
	if name == "json" {
		if out, err = withScan(out, rec.Scan); err != nil {
			return err
		}
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(out)
	return nil
}

// withScan inserts "scan" as the first member of the report's JSON object,
// leaving every other byte as the CLI writes it.
func withScan(doc []byte, s reports.Scan) ([]byte, error) {
	scan, err := json.MarshalIndent(s, "  ", "  ")
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(doc, []byte("{\n")) {
		return nil, fmt.Errorf("report JSON does not start with an object")
	}
	out := make([]byte, 0, len(doc)+len(scan)+16)
	out = append(out, "{\n  \"scan\": "...)
	out = append(out, scan...)
	out = append(out, ",\n"...)
	return append(out, doc[2:]...), nil
}

// artifactSBOM answers with the artifact's SBOM made from its stored
// inventory (CycloneDX 1.6 by default, or ?format=spdx), without reading
// the image.
func (a *API) artifactSBOM(c *call) error {
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	format := c.r.URL.Query().Get("format")
	switch format {
	case "", "cyclonedx", "cyclonedx-json":
		format = "cyclonedx"
	case "spdx", "spdx-json":
		format = "spdx"
	default:
		return badRequest("format %q: want cyclonedx or spdx", format)
	}
	rec, err := a.opts.Reports.Get(c.ctx(), m.Digest, true)
	if errors.Is(err, reports.ErrNotFound) || (err == nil && rec.Report == nil) {
		return &apiError{status: http.StatusNotFound, code: "NOT_FOUND", message: "artifact " + repo + "@" + m.Digest.String() +
			" has no inventory yet (it is inventoried when scanned)"}
	}
	if err != nil {
		return err
	}
	inv := rec.Report.Inventory
	inv.Source = repo + "@" + m.Digest.String()
	var body bytes.Buffer
	if err := report.EncodeSBOM(&body, format, &inv, report.Options{Created: rec.Scan.FinishedAt, ToolVersion: a.opts.Version}); err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(body.Bytes())
	return nil
}

// ScanQueued answers a scan request.
type ScanQueued struct {
	Digest digest.Digest `json:"digest"`
	Scan   reports.Scan  `json:"scan"`
}

// scanArtifact queues a scan of the artifact now (who may push may ask).
func (a *API) scanArtifact(c *call) error {
	if a.opts.Scans == nil || !a.opts.Scans.Enabled() {
		return errNotScanning
	}
	repo, err := a.pullable(c)
	if err != nil {
		return err
	}
	if !a.can(c, auth.ProjectOf(repo), auth.Push) {
		return errForbidden
	}
	m, err := a.resolve(c, repo)
	if err != nil {
		return err
	}
	if !scanservice.Scannable(m) {
		return badRequest("%s@%s is a %s, not an image: only images and image indexes are scanned", repo, m.Digest, kindOf(m))
	}
	err = a.opts.Scans.Enqueue(c.ctx(), repo, m.Digest)
	a.audited(c, "artifact.scan", auth.ProjectOf(repo), repo+"@"+m.Digest.String(), err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusAccepted, ScanQueued{Digest: m.Digest, Scan: reports.Scan{Status: reports.Pending}})
}

// RepositoryDeleted answers a repository's deletion.
type RepositoryDeleted struct {
	Repository string `json:"repository"`
	// Deleted lists every manifest deleted (artifacts, their platform
	// manifests, signatures, attestations and SBOMs), in digest order.
	Deleted []digest.Digest `json:"deleted"`
}

// deleteRepository deletes a repository and everything it holds, for
// those who may delete in its project (the registry's delete action).
// Blobs go at the next garbage collection, when nothing else links them.
func (a *API) deleteRepository(c *call) error {
	repo, err := a.pullable(c)
	project := c.r.PathValue("project")
	if err == nil && !a.can(c, auth.ProjectOf(repo), auth.Delete) {
		err = errForbidden
	}
	var changes []event.Event
	if err == nil {
		changes, err = a.opts.Meta.DeleteRepository(event.WithActor(c.ctx(), c.actor()), repo)
		if errors.Is(err, meta.ErrRepositoryUnknown) {
			err = notFound("repository " + project + "/" + c.r.PathValue("repository"))
		}
	}
	out := RepositoryDeleted{Repository: repo, Deleted: []digest.Digest{}}
	for _, e := range changes {
		// The registry's cache forgets them now, not when the outbox relay
		// gets to them (which this also wakes).
		if a.opts.Notifier != nil {
			a.opts.Notifier.Notify(c.ctx(), e)
		}
		out.Deleted = append(out.Deleted, e.Digest)
	}
	detail := c.r.PathValue("repository")
	if err == nil {
		detail = fmt.Sprintf("%s: %d manifests", repo, len(out.Deleted))
	}
	a.audited(c, "repository.delete", project, detail, err)
	if err != nil {
		return err
	}
	return respond(c, http.StatusOK, out)
}

func kindOf(m *meta.Manifest) string {
	if m.ArtifactType != "" {
		return "artifact of type " + m.ArtifactType
	}
	return m.MediaType
}
