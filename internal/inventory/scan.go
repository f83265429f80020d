package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"

	"berth.dev/berth/internal/image"
)

// Scanner builds the inventory of an image: it reads each layer at most
// once (not at all when the cache has it), runs the analyzers on the files
// they ask for, and merges the layers.
type Scanner struct {
	// Analyzers run on every layer, in this order; usually
	// analyzers.All().
	Analyzers []Analyzer
	// Cache, when set, keeps per-layer results between scans.
	Cache *Cache
	// Limits bound every layer read; zero fields take image.DefaultLimits.
	Limits image.Limits
	// Parallel is how many layers are read at once; 0 means GOMAXPROCS.
	Parallel int
	// OnPlan, when set, is told which layers are about to be read (the
	// ones the cache cannot answer for), before any is.
	OnPlan func(toRead []image.Layer)
	// Progress, when set, is called with stored bytes as layers stream.
	// It is called from several goroutines at once.
	Progress func(n int64)
	// Passes see every entry of every layer (pass.go); the secret
	// scanner is one.
	Passes []Pass
}

// ErrAnalyzerPanic: an analyzer's Required panicked while a layer was read.
var ErrAnalyzerPanic = errors.New("analyzer panicked")

// layerOutcome is everything the merge needs from one layer.
type layerOutcome struct {
	changes *image.Changes
	results []*analyzerEntry // by analyzer index

	passes []json.RawMessage // by pass index
}

// Scan inventories img.
func (s *Scanner) Scan(ctx context.Context, img *image.Image) (*Inventory, error) {
	outcomes := make([]layerOutcome, len(img.Layers))
	type job struct {
		index   int
		pending []int // analyzers without a cached result
		passes  []int // passes without a cached result
	}
	var jobs []job
	var toRead []image.Layer
	for i, l := range img.Layers {
		out := &outcomes[i]
		out.results = make([]*analyzerEntry, len(s.Analyzers))
		var pending []int
		cached := s.Cache.layer(l.DiffID)
		for ai, a := range s.Analyzers {
			if e, ok := cached.result(a); ok {
				out.results[ai] = e
			} else {
				pending = append(pending, ai)
			}
		}
		pendingPasses, passResults := s.passesOf(cached)
		out.passes = passResults
		if ch, ok := cached.changes(); ok && len(pending) == 0 && len(pendingPasses) == 0 {
			out.changes = ch
			continue
		}
		jobs = append(jobs, job{index: i, pending: pending, passes: pendingPasses})
		toRead = append(toRead, l)
	}
	if s.OnPlan != nil {
		s.OnPlan(toRead)
	}

	parallel := s.Parallel
	if parallel <= 0 {
		parallel = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, parallel)
	)
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			err := s.readLayer(ctx, img.Layers[j.index], j.pending, j.passes, &outcomes[j.index])
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inv := s.merge(img, outcomes)
	if err := s.donePasses(img, outcomes); err != nil {
		return nil, err
	}
	return inv, nil
}

// readLayer walks one layer, buffering the files the pending analyzers
// require, then runs those analyzers and caches what they found.
func (s *Scanner) readLayer(ctx context.Context, l image.Layer, pending, pendingPasses []int, out *layerOutcome) (err error) {
	// Required runs analyzer code on every entry; a panic there fails the
	// scan with an error rather than the process.
	defer func() {
		if r := recover(); r != nil {
			slog.Error("panic while reading a layer", "layer", l.Name(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("layer %s: %w: %v", l.Name(), ErrAnalyzerPanic, r)
		}
	}()
	g := &layerFiles{
		s: s, layer: l.Name(), pending: pending, buf: newLayerBuffer(),
		inputs: make([][]string, len(s.Analyzers)), links: make([][]hardLink, len(s.Analyzers)),
		wantedBy: map[string][]int{}, hardTargets: map[string]string{},
	}
	buf := g.buf
	defer func() {
		if err := buf.close(); err != nil {
			slog.Warn("removing spool file", "err", err)
		}
	}()
	passes := s.startPasses(l, pendingPasses)
	changes, err := image.Walk(ctx, l, image.WalkOptions{Limits: s.Limits, Progress: s.Progress}, passes.wrap(g.entry))
	if err != nil {
		return err
	}
	passResults, err := passes.results(s, out.passes)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.Name(), err)
	}
	changes.Warnings = append(changes.Warnings, g.warnings...)
	out.changes = changes
	found := make(map[string]*analyzerEntry, len(pending))
	for _, ai := range pending {
		a := s.Analyzers[ai]
		files := make(map[string]*bufferedFile, len(g.inputs[ai]))
		for _, p := range g.inputs[ai] {
			files[p] = buf.files[p]
		}
		res := &Result{}
		// An analyzer that required nothing here has nothing to say about
		// the layer.
		if len(files) > 0 {
			var err error
			var crashed bool
			res, crashed, err = analyzeSafely(ctx, a, newAnalyzerFS(files, buf.links))
			if err != nil {
				return fmt.Errorf("layer %s: analyzer %s: %w", l.Name(), a.Name(), err)
			}
			if crashed {
				// Kept out of the cache, so a fixed analyzer sees the layer.
				out.results[ai] = &analyzerEntry{Result: res}
				continue
			}
		}
		addHardLinks(res, g.links[ai])
		in := g.inputs[ai]
		for _, hl := range g.links[ai] {
			in = append(in, hl.path)
		}
		e := &analyzerEntry{Inputs: in, Result: res}
		out.results[ai] = e
		found[analyzerKey(a)] = e
	}
	if err := s.Cache.putLayer(l.DiffID, changes, found, passResults); err != nil {
		slog.Warn("layer cache", "err", err)
	}
	return nil
}

// analyzeSafely runs one analyzer on one layer. Analyzers parse untrusted
// files; a panic in one is a bug in that analyzer, and costs its result
// for this layer (a warning), not the whole scan or the process.
func analyzeSafely(ctx context.Context, a Analyzer, files fs.FS) (res *Result, crashed bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("analyzer panicked", "analyzer", a.Name(), "panic", r, "stack", string(debug.Stack()))
			res = &Result{Warns: []string{fmt.Sprintf("analyzer %s failed on this layer (panic: %v); its packages here are missing", a.Name(), r)}}
			crashed, err = true, nil
		}
	}()
	res, err = a.Analyze(ctx, files)
	if res == nil && err == nil {
		res = &Result{}
	}
	return res, false, err
}

// layerFiles gathers, as one layer streams by, the files each pending
// analyzer requires.
type layerFiles struct {
	s       *Scanner
	layer   string // the layer's name, for warnings
	pending []int  // the analyzers that read this layer
	buf     *layerBuffer
	// By analyzer: the paths of its file system, and the hard links it
	// reads under their target's name.
	inputs      [][]string
	links       [][]hardLink
	wantedBy    map[string][]int  // buffered path → the analyzers it is an input of
	hardTargets map[string]string // hard link → the path of the file it is
	wanted      []int             // scratch, per entry
	warnings    []string
}

// hardLink is a hard link of a layer whose target an analyzer reads under
// the target's own name.
type hardLink struct{ path, target string }

// entry is the image.EntryFunc of a layer read.
func (g *layerFiles) entry(e *image.Entry, body io.Reader) error {
	switch e.Kind {
	case image.KindSymlink:
		g.buf.links[e.Path] = e.Link
		return nil
	case image.KindHardLink:
		g.hardLink(e)
		return nil
	case image.KindFile:
	default:
		return nil
	}
	g.wanted = g.required(e.Path, e.Info())
	if len(g.wanted) == 0 {
		return nil
	}
	if _, err := g.buf.add(e, body); err != nil {
		return err
	}
	for _, ai := range g.wanted {
		g.inputs[ai] = append(g.inputs[ai], e.Path)
	}
	g.wantedBy[e.Path] = slices.Clone(g.wanted)
	return nil
}

// required lists the pending analyzers that require the file, in g.wanted's
// storage.
func (g *layerFiles) required(p string, info fs.FileInfo) []int {
	wanted := g.wanted[:0]
	for _, ai := range g.pending {
		if g.s.Analyzers[ai].Required(p, info) {
			wanted = append(wanted, ai)
		}
	}
	return wanted
}

// hardLink handles a hard link. It is the same file as its target (an
// entry before it in the layer), so an analyzer that also required the
// target reads the content once, under the target's name, and the link
// then gets what the target yielded (addHardLinks); an analyzer that wants
// the file only under the link's name reads it there. Either way the link
// resolves to the target in the analyzers' file systems, as a symlink
// would, for analyzers that open files by name.
func (g *layerFiles) hardLink(e *image.Entry) {
	link := e.Link
	if t, ok := g.hardTargets[link]; ok {
		link = t // a link to a link: the file is the first one's target
	}
	target, ok := g.buf.files[link]
	var info fs.FileInfo = e.Info()
	if ok {
		info = fileInfo{name: info.Name(), size: target.size, mode: target.mode, mod: target.modTime}
	}
	g.wanted = g.required(e.Path, info)
	if len(g.wanted) == 0 {
		return
	}
	if !ok {
		g.warnings = append(g.warnings, fmt.Sprintf("layer %s: /%s is a hard link to /%s, which no analyzer read; skipped", g.layer, e.Path, e.Link))
		return
	}
	g.hardTargets[e.Path] = link
	g.buf.links[e.Path] = "/" + link
	for _, ai := range g.wanted {
		if slices.Contains(g.wantedBy[link], ai) {
			g.links[ai] = append(g.links[ai], hardLink{path: e.Path, target: link})
			continue
		}
		if _, done := g.buf.files[e.Path]; !done {
			alias := *target
			alias.path = e.Path
			g.buf.files[e.Path] = &alias
		}
		g.inputs[ai] = append(g.inputs[ai], e.Path)
	}
}

// addHardLinks gives each hard link what the analyzer found in its
// target: a copy of every package set and license file whose origin is
// the target, with the link as origin and location. Each path stays a set
// of its own, so a later layer that deletes or rewrites one of them
// affects only that one; Merge then lists each package once, with both
// locations.
func addHardLinks(res *Result, links []hardLink) {
	if len(links) == 0 {
		return
	}
	byTarget := map[string][]string{}
	for _, hl := range links {
		byTarget[hl.target] = append(byTarget[hl.target], hl.path)
	}
	// Ranging evaluates each slice once: the copies are not visited.
	for _, set := range res.Sets {
		for _, lp := range byTarget[set.Origin] {
			res.Sets = append(res.Sets, PackageSet{Origin: lp, Packages: relocate(set.Packages, "/"+set.Origin, "/"+lp)})
		}
	}
	for _, lf := range res.Licenses {
		for _, lp := range byTarget[lf.Origin] {
			lf.Origin, lf.Licenses = lp, slices.Clone(lf.Licenses)
			res.Licenses = append(res.Licenses, lf)
		}
	}
}

// relocate copies pkgs with every location from becoming to.
func relocate(pkgs []Package, from, to string) []Package {
	out := make([]Package, len(pkgs))
	for i, p := range pkgs {
		p.Locations = slices.Clone(p.Locations)
		for j, loc := range p.Locations {
			if loc == from {
				p.Locations[j] = to
			}
		}
		p.Licenses, p.DependsOn = slices.Clone(p.Licenses), slices.Clone(p.DependsOn)
		out[i] = p
	}
	return out
}
