package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime"
	"runtime/debug"
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
}

// ErrAnalyzerPanic: an analyzer's Required panicked while a layer was read.
var ErrAnalyzerPanic = errors.New("analyzer panicked")

// layerOutcome is everything the merge needs from one layer.
type layerOutcome struct {
	changes *image.Changes
	results []*analyzerEntry // by analyzer index
}

// Scan inventories img.
func (s *Scanner) Scan(ctx context.Context, img *image.Image) (*Inventory, error) {
	outcomes := make([]layerOutcome, len(img.Layers))
	type job struct {
		index   int
		pending []int // analyzers without a cached result
	}
	var jobs []job
	var toRead []image.Layer
	for i, l := range img.Layers {
		out := &outcomes[i]
		out.results = make([]*analyzerEntry, len(s.Analyzers))
		var pending []int
		for ai, a := range s.Analyzers {
			if e, ok := s.Cache.getResult(l.DiffID, a); ok {
				out.results[ai] = e
			} else {
				pending = append(pending, ai)
			}
		}
		if ch, ok := s.Cache.getChanges(l.DiffID); ok && len(pending) == 0 {
			out.changes = ch
			continue
		}
		jobs = append(jobs, job{index: i, pending: pending})
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
			err := s.readLayer(ctx, img.Layers[j.index], j.pending, &outcomes[j.index])
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
	return inv, nil
}

// readLayer walks one layer, buffering the files the pending analyzers
// require, then runs those analyzers and caches what they found.
func (s *Scanner) readLayer(ctx context.Context, l image.Layer, pending []int, out *layerOutcome) (err error) {
	// Required runs analyzer code on every entry; a panic there fails the
	// scan with an error rather than the process.
	defer func() {
		if r := recover(); r != nil {
			slog.Error("panic while reading a layer", "layer", l.Name(), "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("layer %s: %w: %v", l.Name(), ErrAnalyzerPanic, r)
		}
	}()
	buf := newLayerBuffer()
	defer func() {
		if err := buf.close(); err != nil {
			slog.Warn("removing spool file", "err", err)
		}
	}()
	inputs := make([][]string, len(s.Analyzers))
	var wanted []int // reused per entry
	var warnings []string
	changes, err := image.Walk(ctx, l, image.WalkOptions{Limits: s.Limits, Progress: s.Progress},
		func(e *image.Entry, body io.Reader) error {
			switch e.Kind {
			case image.KindSymlink:
				buf.links[e.Path] = e.Link
				return nil
			case image.KindFile, image.KindHardLink:
			default:
				return nil
			}
			wanted = wanted[:0]
			info := e.Info()
			if e.Kind == image.KindHardLink {
				target, ok := buf.files[e.Link]
				if ok {
					info = fileInfo{name: e.Info().Name(), size: target.size, mode: target.mode, mod: target.modTime}
				}
				for _, ai := range pending {
					if s.Analyzers[ai].Required(e.Path, info) {
						wanted = append(wanted, ai)
					}
				}
				if len(wanted) == 0 {
					return nil
				}
				if !ok {
					warnings = append(warnings, fmt.Sprintf("layer %s: /%s is a hard link to /%s, which no analyzer read; skipped", l.Name(), e.Path, e.Link))
					return nil
				}
				alias := *target
				alias.path = e.Path
				buf.files[e.Path] = &alias
				for _, ai := range wanted {
					inputs[ai] = append(inputs[ai], e.Path)
				}
				return nil
			}
			for _, ai := range pending {
				if s.Analyzers[ai].Required(e.Path, info) {
					wanted = append(wanted, ai)
				}
			}
			if len(wanted) == 0 {
				return nil
			}
			if _, err := buf.add(e, body); err != nil {
				return err
			}
			for _, ai := range wanted {
				inputs[ai] = append(inputs[ai], e.Path)
			}
			return nil
		})
	if err != nil {
		return err
	}
	changes.Warnings = append(changes.Warnings, warnings...)
	out.changes = changes
	if err := s.Cache.put(l.DiffID, changesFile(), changes); err != nil {
		slog.Warn("layer cache", "err", err)
	}
	for _, ai := range pending {
		a := s.Analyzers[ai]
		files := make(map[string]*bufferedFile, len(inputs[ai]))
		for _, p := range inputs[ai] {
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
		e := &analyzerEntry{Inputs: inputs[ai], Result: res}
		out.results[ai] = e
		if err := s.Cache.put(l.DiffID, analyzerFile(a.Name(), a.Version()), e); err != nil {
			slog.Warn("layer cache", "err", err)
		}
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
