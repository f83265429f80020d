package inventory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

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
	// MaxLinkBytes bounds the symlinks (paths and targets) kept for the
	// whole image while it is scanned; 0 means DefaultMaxLinkBytes.
	// Limits.MaxLinkBytes bounds each layer.
	MaxLinkBytes int64
	// MaxSpoolBytes bounds the temporary disk a scan uses at once for the
	// files analyzers asked for (those past the in-memory share); 0 means
	// DefaultMaxSpoolBytes. A file that would take one layer past it is
	// skipped with a warning; the scan goes on.
	MaxSpoolBytes int64
	// Stats, when set, receives the scan's accounting when Scan returns.
	Stats *ScanStats
	// Passes see every entry of every layer (pass.go); the secret
	// scanner is one.
	Passes []Pass
}

const (
	// DefaultMaxLinkBytes is the default Scanner.MaxLinkBytes: four layers
	// at image.DefaultLimits' MaxLinkBytes each.
	DefaultMaxLinkBytes = 256 << 20
	// DefaultMaxSpoolBytes is the default Scanner.MaxSpoolBytes: as much
	// as the largest binary the gobinary analyzer reads, which is also
	// the spool of a layer holding a few hundred MiB of executables.
	DefaultMaxSpoolBytes = 1 << 30
)

// ScanStats is what one scan used of the resources it bounds.
type ScanStats struct {
	// LinkBytes is what the symlinks of the image's layers took, as
	// counted against MaxLinkBytes.
	LinkBytes int64
	// SpoolWritten is what all layers wrote to spool files, SpoolPeak the
	// most held on disk at once (at most MaxSpoolBytes).
	SpoolWritten, SpoolPeak int64
	// SpoolSkipped counts the files not read because they would have
	// passed MaxSpoolBytes.
	SpoolSkipped int
	// Rereads counts the layers read a second time, alone, because the
	// layers read with them held the spool budget.
	Rereads int
}

// scanState is what the layer reads of one scan share.
type scanState struct {
	maxLinkBytes int64
	linkBytes    atomic.Int64
	spool        *spoolBudget
	rereads      int
}

func (st *scanState) stats() ScanStats {
	st.spool.mu.Lock()
	defer st.spool.mu.Unlock()
	return ScanStats{
		LinkBytes:    st.linkBytes.Load(),
		SpoolWritten: st.spool.written, SpoolPeak: st.spool.peak, SpoolSkipped: st.spool.skipped,
		Rereads: st.rereads,
	}
}

// keepLinks counts a layer's symlinks against the image's bound.
func (st *scanState) keepLinks(layer string, ch *image.Changes) error {
	n := st.linkBytes.Add(ch.LinkBytes())
	if n > st.maxLinkBytes {
		return fmt.Errorf("layer %s: %w: the image's symlinks take more than %d bytes (limit Scanner.MaxLinkBytes)",
			layer, image.ErrLimit, st.maxLinkBytes)
	}
	return nil
}

// ErrAnalyzerPanic: an analyzer's Required panicked while a layer was read.
var ErrAnalyzerPanic = errors.New("analyzer panicked")

// layerOutcome is everything the merge needs from one layer.
type layerOutcome struct {
	changes *image.Changes
	results []*analyzerEntry // by analyzer index
	// aliases are what analyzers found in files their fixed paths lead
	// to through symlinks, merged as if this layer held them there.
	aliases []aliasResult

	passes []json.RawMessage // by pass index
}

// Scan inventories img.
func (s *Scanner) Scan(ctx context.Context, img *image.Image) (*Inventory, error) {
	st := &scanState{maxLinkBytes: s.MaxLinkBytes, spool: &spoolBudget{limit: s.MaxSpoolBytes}}
	if st.maxLinkBytes <= 0 {
		st.maxLinkBytes = DefaultMaxLinkBytes
	}
	if st.spool.limit <= 0 {
		st.spool.limit = DefaultMaxSpoolBytes
	}
	if s.Stats != nil {
		defer func() { *s.Stats = st.stats() }()
	}
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
			if err := st.keepLinks(l.Name(), ch); err != nil {
				return nil, err
			}
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
		alone    []int // jobs to read again, one at a time
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
			err := s.readLayer(ctx, st, img.Layers[j.index], j.pending, j.passes, &outcomes[j.index])
			if err != nil {
				mu.Lock()
				if errors.Is(err, errSpoolContended) {
					alone = append(alone, j.index)
				} else if firstErr == nil {
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
	// Alone, a layer holds the whole budget: whether a file of it is
	// skipped depends on the layer only, never on the others.
	slices.Sort(alone)
	for _, j := range jobs {
		if !slices.Contains(alone, j.index) {
			continue
		}
		st.rereads++
		if err := s.readLayer(ctx, st, img.Layers[j.index], j.pending, j.passes, &outcomes[j.index]); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.followFixedPaths(ctx, st, img, outcomes); err != nil {
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
func (s *Scanner) readLayer(ctx context.Context, st *scanState, l image.Layer, pending, pendingPasses []int, out *layerOutcome) (err error) {
	// Required runs analyzer code on every entry; a panic there fails the
	// scan with an error rather than the process.
	defer func() {
		if r := recover(); r != nil {
			slog.Error("panic while reading a layer", "layer", l.Name(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("layer %s: %w: %v", l.Name(), ErrAnalyzerPanic, r)
		}
	}()
	g := &layerFiles{
		s: s, layer: l.Name(), pending: pending, buf: newLayerBuffer(st.spool),
		inputs: make([][]string, len(s.Analyzers)), links: make([][]hardLink, len(s.Analyzers)),
		skipped:  make([]skippedFiles, len(s.Analyzers)),
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
	if err := st.keepLinks(l.Name(), changes); err != nil {
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
		// the layer (but for the files it required and did not get).
		if len(files) > 0 {
			var err error
			var crashed bool
			afs := newAnalyzerFS(files, mapLookup(buf.links), changes.Links.Lookup)
			if fa, ok := a.(FixedPathAnalyzer); ok {
				// Its fixed paths are followed through the symlinks of the
				// whole image (followFixedPaths); followed here as well, a
				// fixed path linking to another (var/lib/rpm →
				// ../../usr/lib/sysimage/rpm) would be read twice, and the
				// copy under the link's name would outlive an update of
				// the real file in a later layer.
				afs.notFollowed = fa.FixedPaths()
			}
			res, crashed, err = analyzeSafely(ctx, a, afs)
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
		// A file skipped is still an input: what its path held in a
		// lower layer is gone, replaced by a file not read.
		sk := &g.skipped[ai]
		in = append(in, sk.paths...)
		for _, w := range sk.warnings() {
			res.Warns = append(res.Warns, a.Name()+": "+w)
		}
		e := &analyzerEntry{Inputs: in, Result: res}
		out.results[ai] = e
		// A file skipped for the spool budget would be read with a larger
		// one: that result is not the analyzer's last word on the layer.
		if !sk.overBudget {
			found[analyzerKey(a)] = e
		}
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
	skipped     []skippedFiles // by analyzer
}

// maxSkipWarnings bounds the warnings about skipped files one analyzer
// gets per layer.
const maxSkipWarnings = 20

// skippedFiles are the files an analyzer required in a layer and did not
// get: too large for it, or for the scan's spool budget.
type skippedFiles struct {
	paths      []string
	why        []string // the first maxSkipWarnings reasons
	overBudget bool
}

func (sk *skippedFiles) add(p, why string) {
	sk.paths = append(sk.paths, p)
	if len(sk.why) < maxSkipWarnings {
		sk.why = append(sk.why, fmt.Sprintf("/%s skipped: %s", p, why))
	}
}

func (sk *skippedFiles) warnings() []string {
	if n := len(sk.paths) - len(sk.why); n > 0 {
		return append(sk.why, fmt.Sprintf("%d more files skipped", n))
	}
	return sk.why
}

// hardLink is a hard link of a layer whose target an analyzer reads under
// the target's own name.
type hardLink struct{ path, target string }

// entry is the image.EntryFunc of a layer read.
func (g *layerFiles) entry(e *image.Entry, body io.Reader) error {
	switch e.Kind {
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
		if !errors.Is(err, errOverBudget) {
			return err
		}
		for _, ai := range g.wanted {
			sk := &g.skipped[ai]
			sk.add(e.Path, fmt.Sprintf("%d bytes, more than this layer may still spool to temporary files (Scanner.MaxSpoolBytes, %d bytes per scan)",
				e.Size, g.buf.budget.limit))
			sk.overBudget = true
		}
		return nil
	}
	for _, ai := range g.wanted {
		g.inputs[ai] = append(g.inputs[ai], e.Path)
	}
	g.wantedBy[e.Path] = slices.Clone(g.wanted)
	return nil
}

// required lists the pending analyzers that require the file and read
// files of its size, in g.wanted's storage; those it is too large for
// skip it, with a warning.
func (g *layerFiles) required(p string, info fs.FileInfo) []int {
	wanted := g.wanted[:0]
	for _, ai := range g.pending {
		a := g.s.Analyzers[ai]
		if !a.Required(p, info) {
			continue
		}
		if limit := a.MaxFileBytes(); info.Size() > limit {
			g.skipped[ai].add(p, fmt.Sprintf("%d bytes, more than the %d it reads from one file", info.Size(), limit))
			continue
		}
		wanted = append(wanted, ai)
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
// locations. A copy's InstalledUnder and ShadowedBy name the same places
// beside the link as the target's name beside the target (relinked):
// the merge rules on the lockfile where the link puts it. The copies are
// cached with the analyzer's result for the layer: a change to what they
// carry needs a new version of every analyzer it affects.
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
			cp := PackageSet{
				Origin:         lp,
				Packages:       relocate(set.Packages, "/"+set.Origin, "/"+lp),
				InstalledUnder: relinked(set.InstalledUnder, set.Origin, lp),
				ShadowedBy:     relinked(set.ShadowedBy, set.Origin, lp),
			}
			// A link named as the file that shadows its target (an
			// npm-shrinkwrap.json linked to the package-lock.json beside
			// it) is that file: nothing shadows it.
			if cp.ShadowedBy == lp {
				cp.ShadowedBy = ""
			}
			res.Sets = append(res.Sets, cp)
		}
	}
	for _, lf := range res.Licenses {
		for _, lp := range byTarget[lf.Origin] {
			lf.Origin, lf.Licenses = lp, slices.Clone(lf.Licenses)
			res.Licenses = append(res.Licenses, lf)
		}
	}
}

// relinked is p, a path the set of the file at from names (its
// InstalledUnder or ShadowedBy, slash-separated from the image's root),
// as a set of the same file at to names it: a path in from's folder or
// under it becomes the same path in to's folder ("src/node_modules" for
// "src/package-lock.json" is "app/node_modules" for
// "app/package-lock.json"); any other path names the same place from
// either, and is kept.
func relinked(p, from, to string) string {
	fromDir, toDir := path.Dir(from), path.Dir(to)
	switch {
	case p == "":
		return ""
	case p == fromDir:
		return toDir
	case fromDir == ".":
		return path.Join(toDir, p)
	}
	rel, ok := strings.CutPrefix(p, fromDir+"/")
	if !ok {
		return p
	}
	return path.Join(toDir, rel)
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
