package secret

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
)

// Pass is the inventory.Pass that finds secrets in every file and entry
// name of every layer, including files a later layer deletes. Make one
// per scan; after the scan, Findings has the result.
type Pass struct {
	rs       *Ruleset
	findings []Finding
}

// NewPass returns a pass using rs.
func NewPass(rs *Ruleset) *Pass { return &Pass{rs: rs} }

// Key names the pass and its rule set in the layer cache.
func (p *Pass) Key() string { return "secret-" + p.rs.Version() }

// Layer starts the pass over one layer.
func (p *Pass) Layer(image.Layer) inventory.LayerPass {
	rs := p.rs.built()
	return &layerPass{rs: rs, files: rs.NewFileScanner(), names: rs.NewFileScanner()}
}

// layerResult is what the cache keeps of one layer: masked findings only.
type layerResult struct {
	Findings []Finding `json:"findings,omitempty"`
}

type layerPass struct {
	rs           *Ruleset
	files, names *FileScanner
	found        []Finding
	w            fileWriter
}

// fileWriter feeds a file's content to the scanner; path, when set, is
// the file's name masked (its name holds a secret), which its findings
// show instead of the name.
type fileWriter struct {
	lp   *layerPass
	path string
}

// Entry scans the entry's name, and returns a writer for the content of
// a regular file the allow rules do not skip.
func (lp *layerPass) Entry(e *image.Entry) io.WriteCloser {
	masked := lp.scanName(e.Path)
	if e.Kind == image.KindSymlink {
		lp.scanName(e.Link)
	}
	if e.Kind != image.KindFile {
		return nil
	}
	if lp.files.Begin(e.Path); lp.files.skip {
		return nil
	}
	lp.w = fileWriter{lp: lp, path: masked}
	return &lp.w
}

// scanName finds secrets in a tar entry's name (or a symlink's target):
// a token pasted into a file name is in the image as surely as one in a
// file.
func (lp *layerPass) scanName(name string) (masked string) {
	if !lp.rs.kw.any([]byte(name)) || lp.rs.Skips(name) {
		return ""
	}
	lp.names.Begin("")
	lp.names.Write([]byte(name))
	for _, f := range lp.names.End() {
		// Generic rules read "key:amd64.list" as an assignment; a name
		// holds a secret only when it holds a token of a known shape.
		if strings.Contains(f.RuleID, "generic") {
			continue
		}
		f.Kind, f.Path = KindName, name
		f.StartLine, f.EndLine = 0, 0
		// The name itself holds the secret: show it masked.
		if masked == "" {
			masked = name
		}
		f.Path = maskSpan(name, f.secretStart, f.secretEnd)
		masked = maskSpanLike(masked, name, f.secretStart, f.secretEnd)
		f.Fingerprint = fingerprint(f.RuleID, KindName, f.Path)
		lp.found = append(lp.found, f)
	}
	return masked
}

// maskSpan masks name[start:end].
func maskSpan(name string, start, end int) string {
	return name[:start] + Mask(name[start:end]) + name[end:]
}

// maskSpanLike masks name[start:end] in masked, which is name with
// earlier spans already masked: the parts of name outside every span are
// found in masked by their text.
func maskSpanLike(masked, name string, start, end int) string {
	secret := name[start:end]
	if i := strings.Index(masked, secret); i >= 0 {
		return masked[:i] + Mask(secret) + masked[i+len(secret):]
	}
	return masked
}

func (w *fileWriter) Write(p []byte) (int, error) { return w.lp.files.Write(p) }

func (w *fileWriter) Close() error {
	fs := w.lp.files.End()
	for i := range fs {
		if w.path != "" {
			fs[i].Path = w.path
			fs[i].Fingerprint = fingerprint(fs[i].RuleID, KindFile, w.path, fs[i].Match)
		}
	}
	w.lp.found = append(w.lp.found, fs...)
	return nil
}

func (lp *layerPass) Result() (json.RawMessage, error) {
	return json.Marshal(layerResult{Findings: lp.found})
}

// Done attributes each layer's findings to the layer and the history
// entry that made it, and marks those a later layer deleted.
func (p *Pass) Done(layers []inventory.PassLayer) error {
	p.findings = p.findings[:0]
	for i, l := range layers {
		if l.Result == nil {
			continue
		}
		var r layerResult
		if err := json.Unmarshal(l.Result, &r); err != nil {
			return fmt.Errorf("layer %s: cached secrets: %w", l.Layer.Name(), err)
		}
		for _, f := range r.Findings {
			f.Layer, f.CreatedBy = l.Layer.DiffID, l.Layer.CreatedBy
			f.RemovedBy = removedBy(f, layers[i+1:])
			p.findings = append(p.findings, f)
		}
	}
	return nil
}

// removedBy names the first later layer that deletes the finding's file:
// a whiteout of it or of a directory above it, or an opaque directory
// above it. A later layer that writes another file at the same path also
// hides it, but the cache keeps no list of every layer's files, so that
// case is not detected (the finding then reads as present).
func removedBy(f Finding, later []inventory.PassLayer) string {
	if f.Kind != KindFile && f.Kind != KindName {
		return ""
	}
	p := f.Path
	if f.Kind == KindName {
		return "" // masked: cannot be compared with whiteouts
	}
	for _, l := range later {
		if l.Changes == nil {
			continue
		}
		for _, w := range l.Changes.Whiteouts {
			if p == w || strings.HasPrefix(p, w+"/") {
				return l.Layer.DiffID
			}
		}
		for _, d := range l.Changes.Opaque {
			if d == "" || strings.HasPrefix(p, d+"/") {
				return l.Layer.DiffID
			}
		}
	}
	return ""
}

// Findings returns what the pass found, in layer order.
func (p *Pass) Findings() []Finding { return p.findings }

// ScanConfig finds secrets in an image config: each Env entry, each
// label, and each history entry's created_by (where `docker build
// --build-arg` values are written: `RUN |1 NPM_TOKEN=... /bin/sh -c ...`).
func (rs *Ruleset) ScanConfig(cfg *v1.ConfigFile) []Finding {
	if cfg == nil {
		return nil
	}
	rs = rs.built()
	s := rs.NewFileScanner()
	var out []Finding
	text := func(kind, where string, history *int, t string) {
		if !rs.kw.any([]byte(t)) {
			return
		}
		s.Begin("")
		s.Write([]byte(t))
		for _, f := range s.End() {
			f.Kind, f.Path, f.History = kind, where, history
			f.StartLine, f.EndLine = 0, 0
			f.Fingerprint = fingerprint(f.RuleID, kind, where, f.Match)
			out = append(out, f)
		}
	}
	for _, e := range cfg.Config.Env {
		name, _, _ := strings.Cut(e, "=")
		text(KindEnv, name, nil, e)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Config.Labels)) {
		text(KindLabel, k, nil, k+"="+cfg.Config.Labels[k])
	}
	for i, h := range cfg.History {
		text(KindHistory, "", &i, h.CreatedBy)
	}
	return out
}
