package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// storeOf holds an index's manifests and blobs by digest, as the
// registry's stores do.
func storeOf(t *testing.T, idx v1.ImageIndex, imgs map[string]v1.Image) map[string][]byte {
	t.Helper()
	store := map[string][]byte{}
	put := func(h v1.Hash, b []byte, err error) {
		if err != nil {
			t.Fatal(err)
		}
		store[h.String()] = b
	}
	for _, img := range imgs {
		d, _ := img.Digest()
		raw, err := img.RawManifest()
		put(d, raw, err)
		cn, _ := img.ConfigName()
		cfg, err := img.RawConfigFile()
		put(cn, cfg, err)
		layers, _ := img.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			put(ld, b, err)
		}
	}
	return store
}

func funcOf(store map[string][]byte) BlobFunc {
	return func(d string) (io.ReadCloser, int64, error) {
		b, ok := store[d]
		if !ok {
			return nil, 0, fmt.Errorf("%w: %s", ErrMissingBlob, d)
		}
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
}

func TestOpenManifest(t *testing.T) {
	idx, imgs := multiArch(t)
	store := storeOf(t, idx, imgs)
	idxRaw, _ := idx.RawManifest()
	idxDigest, _ := idx.Digest()
	wantFiles := []string{"etc/os-release=ID=test\n", "arch=amd64", "-arch"}

	amd, _ := imgs["amd64"].Digest()
	amdRaw, _ := imgs["amd64"].RawManifest()
	for _, tc := range []struct {
		name     string
		digest   string
		manifest []byte
		platform string
		arch     string
	}{
		{"image manifest", amd.String(), amdRaw, "", "amd64"},
		{"index, default platform", idxDigest.String(), idxRaw, "", "amd64"},
		{"index, arm64", idxDigest.String(), idxRaw, "linux/arm64", "arm64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im, err := OpenManifest(tc.digest, tc.manifest, funcOf(store), Options{Platform: tc.platform})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			want, _ := imgs[tc.arch].Digest()
			if im.Digest != want.String() || im.Config.Architecture != tc.arch {
				t.Errorf("opened %s (%s), want the %s image %s", im.Digest, im.Config.Architecture, tc.arch, want)
			}
			if tc.arch == "amd64" {
				if got := filesOf(t, im); !reflect.DeepEqual(got, wantFiles) {
					t.Errorf("files %q, want %q", got, wantFiles)
				}
			}
		})
	}

	t.Run("missing layer", func(t *testing.T) {
		partial := map[string][]byte{}
		for k, v := range store {
			partial[k] = v
		}
		m, _ := imgs["amd64"].Manifest()
		delete(partial, m.Layers[1].Digest.String())
		_, err := OpenManifest(amd.String(), amdRaw, funcOf(partial), Options{})
		if !errors.Is(err, ErrMissingBlob) {
			t.Errorf("err = %v, want ErrMissingBlob", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		if _, err := OpenManifest("sha256:x", []byte("{"), funcOf(store), Options{}); !errors.Is(err, ErrBadSource) {
			t.Errorf("err = %v, want ErrBadSource", err)
		}
	})
	t.Run("no platform", func(t *testing.T) {
		if _, err := OpenManifest(idxDigest.String(), idxRaw, funcOf(store), Options{Platform: "linux/s390x"}); !errors.Is(err, ErrNoMatchingPlatform) {
			t.Errorf("err = %v, want ErrNoMatchingPlatform", err)
		}
	})
}
