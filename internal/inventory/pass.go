package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"berth.dev/berth/internal/image"
)

// Pass is a scan of every entry of every layer that is not about packages
// (the secret scanner is one). Unlike an Analyzer, which gets a few
// buffered files once the layer is read, a pass sees each entry as the
// layer streams by, content included: nothing is buffered for it, so it
// can read every file of a layer, of any size, in bounded memory. Its
// per-layer results are cached beside the analyzers', keyed by Key, so a
// warm scan does not read the layer again.
type Pass interface {
	// Key names the pass and the version of its rules in the cache;
	// changing it rescans every layer.
	Key() string
	// Layer starts the pass over one layer. Calls for different layers
	// run concurrently.
	Layer(l image.Layer) LayerPass
	// Done is called once per scan, after every layer was read or found
	// in the cache, with the layers in image order.
	Done(layers []PassLayer) error
}

// LayerPass is one pass over one layer.
type LayerPass interface {
	// Entry is called for every entry of the layer except whiteouts. For
	// a regular file whose content it wants, it returns a writer that
	// then receives the whole content and is closed.
	Entry(e *image.Entry) io.WriteCloser
	// Result is what the pass found in the layer, as cached.
	Result() (json.RawMessage, error)
}

// PassLayer is one layer as a Pass's Done sees it.
type PassLayer struct {
	Layer image.Layer
	// Changes are the layer's whiteouts and opaque directories.
	Changes *image.Changes
	// Result is the pass's LayerPass.Result for the layer.
	Result json.RawMessage
}

// passesOf returns, for a layer's cache entry, the indexes of the passes
// it holds no result for and the results it holds (by pass index).
func (s *Scanner) passesOf(cached *layerEntry) (pending []int, results []json.RawMessage) {
	results = make([]json.RawMessage, len(s.Passes))
	for i, p := range s.Passes {
		if r, ok := cached.passResult(p.Key()); ok {
			results[i] = r
		} else {
			pending = append(pending, i)
		}
	}
	return pending, results
}

// layerPasses runs the pending passes over one layer's entries.
type layerPasses struct {
	idx    []int
	passes []LayerPass
	ws     []io.WriteCloser // scratch
}

func (s *Scanner) startPasses(l image.Layer, pending []int) *layerPasses {
	if len(pending) == 0 {
		return nil
	}
	lp := &layerPasses{idx: pending}
	for _, i := range pending {
		lp.passes = append(lp.passes, s.Passes[i].Layer(l))
	}
	return lp
}

// wrap gives next's entries to the passes too. A file's content goes to
// them as next reads it (a tee), and what next leaves unread is read for
// them afterwards.
func (lp *layerPasses) wrap(next image.EntryFunc) image.EntryFunc {
	if lp == nil {
		return next
	}
	return func(e *image.Entry, body io.Reader) error {
		lp.ws = lp.ws[:0]
		for _, p := range lp.passes {
			if w := p.Entry(e); w != nil {
				lp.ws = append(lp.ws, w)
			}
		}
		if len(lp.ws) == 0 {
			return next(e, body)
		}
		var w io.Writer = lp.ws[0]
		if len(lp.ws) > 1 {
			w = io.MultiWriter(asWriters(lp.ws)...)
		}
		tee := io.TeeReader(body, w)
		err := next(e, tee)
		if err == nil {
			_, err = io.Copy(io.Discard, tee)
		}
		for _, w := range lp.ws {
			err = errors.Join(err, w.Close())
		}
		return err
	}
}

func asWriters(ws []io.WriteCloser) []io.Writer {
	out := make([]io.Writer, len(ws))
	for i, w := range ws {
		out[i] = w
	}
	return out
}

// results collects the passes' results for the cache, by pass key, and
// into out by pass index.
func (lp *layerPasses) results(s *Scanner, out []json.RawMessage) (map[string]json.RawMessage, error) {
	if lp == nil {
		return nil, nil
	}
	byKey := make(map[string]json.RawMessage, len(lp.passes))
	for j, p := range lp.passes {
		r, err := p.Result()
		if err != nil {
			return nil, fmt.Errorf("pass %s: %w", s.Passes[lp.idx[j]].Key(), err)
		}
		out[lp.idx[j]] = r
		byKey[s.Passes[lp.idx[j]].Key()] = r
	}
	return byKey, nil
}

// donePasses hands every pass its layers.
func (s *Scanner) donePasses(img *image.Image, outcomes []layerOutcome) error {
	for pi, p := range s.Passes {
		layers := make([]PassLayer, len(img.Layers))
		for i, l := range img.Layers {
			layers[i] = PassLayer{Layer: l, Changes: outcomes[i].changes}
			if outcomes[i].passes != nil {
				layers[i].Result = outcomes[i].passes[pi]
			}
		}
		if err := p.Done(layers); err != nil {
			return fmt.Errorf("pass %s: %w", p.Key(), err)
		}
	}
	return nil
}

func (e *layerEntry) passResult(key string) (json.RawMessage, bool) {
	if e == nil || e.Passes == nil {
		return nil, false
	}
	r, ok := e.Passes[key]
	return r, ok && r != nil
}
