package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"

	"berth.dev/berth/internal/image"
)

// FixedPathAnalyzer is an Analyzer that reads files at fixed places: a
// package database, os-release. Besides the files it requires where they
// are, it gets, under its fixed path's name, the file that path leads to
// through the image's symlinks once every layer is stacked: a dpkg status
// at var/lib/dpkg/status → /data/status, or under a var/lib/dpkg that links
// elsewhere, possibly in another layer than the link. A runtime follows
// those links; a scanner that did not would miss every package.
type FixedPathAnalyzer interface {
	Analyzer
	// FixedPaths are the paths the analyzer reads files at, as Required
	// names them.
	FixedPaths() []string
}

// aliasResult is what an analyzer found in the file one of its fixed
// paths leads to, merged as if the layer it is attributed to had held that
// file at the fixed path.
type aliasResult struct {
	analyzer int
	entry    *analyzerEntry
}

// stackView answers, for paths of the stacked image, whether they are
// symlinks and to what, from what each layer recorded: its symlinks,
// whiteouts and opaque directories, and the regular files analyzers read.
type stackView struct {
	layers []viewLayer
}

type viewLayer struct {
	links              *image.Links
	whiteouts, opaques map[string]bool
	files              map[string]bool // regular files analyzers read
}

func newStackView(outcomes []layerOutcome) *stackView {
	v := &stackView{layers: make([]viewLayer, len(outcomes))}
	for i, out := range outcomes {
		vl := viewLayer{whiteouts: map[string]bool{}, opaques: map[string]bool{}, files: map[string]bool{}}
		if out.changes != nil {
			vl.links = out.changes.Links
			for _, w := range out.changes.Whiteouts {
				vl.whiteouts[w] = true
			}
			for _, o := range out.changes.Opaque {
				vl.opaques[o] = true
			}
		}
		for _, e := range out.results {
			if e != nil {
				for _, in := range e.Inputs {
					vl.files[in] = true
				}
			}
		}
		v.layers[i] = vl
	}
	return v
}

// deletes reports whether layer i deletes p of the layers below it: a
// whiteout of p or of a directory above it, or an opaque directory above
// it.
func (vl viewLayer) deletes(p string) bool {
	if vl.whiteouts[p] || vl.opaques[""] {
		return true
	}
	for d := p; ; {
		i := strings.LastIndexByte(d, '/')
		if i < 0 {
			return false
		}
		d = d[:i]
		if vl.whiteouts[d] || vl.opaques[d] {
			return true
		}
	}
}

// readlink reports whether p is a symlink of the stacked image, its
// target and the layer that made it: the topmost layer that says anything
// about p decides.
func (v *stackView) readlink(p string) (target string, layer int, ok bool) {
	for i := len(v.layers) - 1; i >= 0; i-- {
		vl := v.layers[i]
		if t, isLink := vl.links.Lookup(p); isLink {
			return t, i, true
		}
		if vl.files[p] || vl.deletes(p) {
			return "", 0, false
		}
	}
	return "", 0, false
}

// resolve follows p through the stacked image's symlinks, within the
// root. via is the topmost layer whose symlink it followed, -1 for none.
func (v *stackView) resolve(p string) (resolved string, via int, err error) {
	via = -1
	resolved, err = image.ResolveWithin(p, func(q string) (string, bool) {
		t, layer, ok := v.readlink(q)
		if ok {
			via = max(via, layer)
		}
		return t, ok
	})
	return resolved, via, err
}

// alias is a fixed path of an analyzer that leads elsewhere.
type alias struct {
	analyzer    int
	fixed, real string // the fixed path; the file it leads to
	via         int    // the topmost layer whose symlink leads there
	key         string // in a layer's cache entry
	done        bool   // found, or known to be in no layer further down
	found       *analyzerEntry
	foundIn     int
}

// followFixedPaths finds, once every layer is read, the files the fixed
// paths of analyzers lead to through symlinks, reads each from the
// topmost layer holding it (walking layers again from the top: which
// layer holds a file no analyzer asked for is not known before; a layer's
// answer is cached), and attributes what the analyzer found there to the
// later of that layer and the symlink's.
func (s *Scanner) followFixedPaths(ctx context.Context, st *scanState, img *image.Image, outcomes []layerOutcome) error {
	view := newStackView(outcomes)
	var aliases []*alias
	for ai, a := range s.Analyzers {
		fa, ok := a.(FixedPathAnalyzer)
		if !ok {
			continue
		}
		for _, fixed := range fa.FixedPaths() {
			real, via, err := view.resolve(fixed)
			if err != nil {
				slog.Debug("fixed path not followed", "analyzer", a.Name(), "path", fixed, "err", err)
				continue
			}
			// The analyzer reads the file where it is, if it is there.
			if real == fixed || real == "" || a.Required(real, fileInfo{name: path.Base(real), mode: 0o644}) {
				continue
			}
			aliases = append(aliases, &alias{analyzer: ai, fixed: fixed, real: real, via: via,
				key: analyzerKey(a) + "|" + fixed + "|" + real})
		}
	}
	for i := len(img.Layers) - 1; i >= 0 && len(aliases) > 0; i-- {
		var open []*alias
		for _, al := range aliases {
			if !al.done {
				open = append(open, al)
			}
		}
		if len(open) == 0 {
			break
		}
		if err := s.probeLayer(ctx, st, img.Layers[i], i, open); err != nil {
			return err
		}
		for _, al := range open {
			// Deleted here: not in any layer below either.
			if !al.done && view.layers[i].deletes(al.real) {
				al.done = true
			}
		}
	}
	for _, al := range aliases {
		if al.found == nil {
			continue
		}
		at := max(al.foundIn, al.via)
		outcomes[at].aliases = append(outcomes[at].aliases, aliasResult{analyzer: al.analyzer, entry: al.found})
	}
	return nil
}

// probe is what one layer says of an alias's file, as cached.
type probe struct {
	// Found: the file is a regular file of the layer; Entry is what the
	// analyzer found in it. Stop: something else is there (a directory,
	// a device), so the fixed path leads to no file.
	Found bool           `json:"found,omitempty"`
	Stop  bool           `json:"stop,omitempty"`
	Entry *analyzerEntry `json:"entry,omitempty"`
}

// settle records what a layer said of the alias's file.
func (al *alias) settle(p *probe, layer int) {
	switch {
	case p.Found:
		al.found, al.foundIn, al.done = p.Entry, layer, true
	case p.Stop:
		al.done = true
	}
}

// probeLayer looks for the files of aliases in one layer: from the cache,
// else by walking the layer once (twice when one is a hard link to a file
// met before it).
func (s *Scanner) probeLayer(ctx context.Context, st *scanState, l image.Layer, index int, aliases []*alias) error {
	cached := s.Cache.layer(l.DiffID)
	var todo []*alias
	limit := map[string]int64{} // alias file → the most an analyzer reads of it
	for _, al := range aliases {
		if p, ok := cached.probe(al.key); ok {
			al.settle(p, index)
			continue
		}
		todo = append(todo, al)
		limit[al.real] = max(limit[al.real], s.Analyzers[al.analyzer].MaxFileBytes())
	}
	if len(todo) == 0 {
		return nil
	}
	buf := newLayerBuffer(st.spool)
	defer func() {
		if err := buf.close(); err != nil {
			slog.Warn("removing spool file", "err", err)
		}
	}()
	want := map[string]string{} // path in the layer → the alias file it is
	for real := range limit {
		want[real] = real
	}
	found := map[string]*bufferedFile{} // alias file → its content
	stops := map[string]bool{}
	overBudget := map[string]int64{} // alias file → its size
	for pass := 0; pass < 2 && len(want) > 0; pass++ {
		hardLinks := map[string]string{}
		_, err := image.Walk(ctx, l, image.WalkOptions{Limits: s.Limits}, func(e *image.Entry, body io.Reader) error {
			real, ok := want[e.Path]
			if !ok {
				return nil
			}
			switch e.Kind {
			case image.KindFile:
				if e.Size > limit[real] {
					// Kept for its size only: each analyzer warns.
					found[real] = &bufferedFile{path: e.Path, size: e.Size, mode: e.Mode, modTime: e.ModTime}
					return nil
				}
				bf, err := buf.add(e, body)
				if errors.Is(err, errOverBudget) {
					overBudget[real] = e.Size
					return nil
				}
				if err != nil {
					return err
				}
				found[real] = bf
			case image.KindHardLink:
				hardLinks[e.Link] = real
			default:
				stops[real] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		want = hardLinks
	}
	probes := map[string]*probe{}
	for _, al := range todo {
		a := s.Analyzers[al.analyzer]
		skip := func(why string) *analyzerEntry {
			return &analyzerEntry{Inputs: []string{al.fixed}, Result: &Result{Warns: []string{
				fmt.Sprintf("%s: /%s (where /%s leads) skipped: %s", a.Name(), al.real, al.fixed, why)}}}
		}
		p, cacheable := &probe{}, true
		switch bf, ok := found[al.real]; {
		case ok && bf.size > a.MaxFileBytes():
			p.Found, p.Entry = true, skip(fmt.Sprintf("%d bytes, more than the %d it reads from one file", bf.size, a.MaxFileBytes()))
		case ok:
			// The analyzer sees the file at its fixed path.
			at := *bf
			at.path = al.fixed
			res, crashed, err := analyzeSafely(ctx, a, newAnalyzerFS(map[string]*bufferedFile{al.fixed: &at}))
			if err != nil {
				return fmt.Errorf("layer %s: analyzer %s: %w", l.Name(), a.Name(), err)
			}
			p.Found, p.Entry, cacheable = true, &analyzerEntry{Inputs: []string{al.fixed}, Result: res}, !crashed
		case overBudget[al.real] > 0:
			p.Found, cacheable = true, false
			p.Entry = skip(fmt.Sprintf("%d bytes, more than this layer may still spool to temporary files (Scanner.MaxSpoolBytes, %d bytes per scan)",
				overBudget[al.real], st.spool.limit))
		case stops[al.real]:
			p.Stop = true
		}
		al.settle(p, index)
		if cacheable {
			probes[al.key] = p
		}
	}
	if err := s.Cache.putProbes(l.DiffID, probes); err != nil {
		slog.Warn("layer cache", "err", err)
	}
	return nil
}
