package inventory_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/dpkg"
)

// hashPass records the sha256 of every regular file's content it sees,
// and the kind of every other entry.
type hashPass struct {
	key    string
	layers atomic.Int64
	mu     sync.Mutex
	done   []inventory.PassLayer
}

func (p *hashPass) Key() string { return p.key }
func (p *hashPass) Layer(image.Layer) inventory.LayerPass {
	p.layers.Add(1)
	return &hashLayer{seen: map[string]string{}}
}
func (p *hashPass) Done(ls []inventory.PassLayer) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = ls
	return nil
}

type hashLayer struct {
	seen map[string]string
	w    hashWriter
}

type hashWriter struct {
	l    *hashLayer
	path string
	h    hash.Hash
}

func (w *hashWriter) Write(b []byte) (int, error) { return w.h.Write(b) }
func (w *hashWriter) Close() error {
	w.l.seen[w.path] = hex.EncodeToString(w.h.Sum(nil))
	return nil
}

func (l *hashLayer) Entry(e *image.Entry) io.WriteCloser {
	if e.Kind != image.KindFile {
		l.seen[e.Path] = "link"
		return nil
	}
	l.w = hashWriter{l: l, path: e.Path, h: sha256.New()}
	return &l.w
}
func (l *hashLayer) Result() (json.RawMessage, error) { return json.Marshal(l.seen) }

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// TestPassSeesEveryFileOnce: a pass gets the whole content of every
// file, those the analyzers buffer (the dpkg status file) and those they
// do not, large ones included; the analyzers still get theirs; the
// results are cached, and a new pass key reads the layers again.
func TestPassSeesEveryFileOnce(t *testing.T) {
	status := stanza("a", "1")
	big := strings.Repeat("0123456789abcdef", 5<<20/16) // past the in-memory buffer of one file
	layer := layerTar(t,
		file{name: "var/lib/dpkg/status", body: status},
		file{name: "etc/motd", body: "hello"},
		file{name: "srv/big.bin", body: big},
		file{name: "srv/link", link: "etc/motd"},
	)
	cache, err := inventory.OpenCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	scan := func(p *hashPass) (*inventory.Inventory, int64) {
		t.Helper()
		var reads atomic.Int64
		img := synthetic(t, &reads, layer)
		s := &inventory.Scanner{Analyzers: []inventory.Analyzer{dpkg.Analyzer{}}, Cache: cache, Passes: []inventory.Pass{p}}
		inv, err := s.Scan(context.Background(), img)
		if err != nil {
			t.Fatal(err)
		}
		return inv, reads.Load()
	}
	p := &hashPass{key: "hash-v1"}
	inv, reads := scan(p)
	if reads != 1 || len(inv.Packages) != 1 {
		t.Fatalf("reads %d, packages %v", reads, names(inv))
	}
	var seen map[string]string
	if len(p.done) != 1 || json.Unmarshal(p.done[0].Result, &seen) != nil {
		t.Fatalf("done %+v", p.done)
	}
	want := map[string]string{"var/lib/dpkg/status": sum(status), "etc/motd": sum("hello"), "srv/big.bin": sum(big), "srv/link": "link"}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("%s: pass saw %q, want %q", k, seen[k], v)
		}
	}
	// Warm: nothing read, the pass gets its cached result.
	p2 := &hashPass{key: "hash-v1"}
	if _, reads := scan(p2); reads != 0 || p2.layers.Load() != 0 || string(p2.done[0].Result) != string(p.done[0].Result) {
		t.Errorf("warm: %d reads, %d layer passes, result %s", reads, p2.layers.Load(), p2.done[0].Result)
	}
	// A new key: the layer is read again for the pass alone.
	p3 := &hashPass{key: "hash-v2"}
	if inv, reads := scan(p3); reads != 1 || p3.layers.Load() != 1 || len(inv.Packages) != 1 {
		t.Errorf("new key: %d reads, %d layer passes, packages %v", reads, p3.layers.Load(), names(inv))
	}
}
