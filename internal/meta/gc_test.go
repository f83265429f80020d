package meta

import (
	_ "crypto/sha256"
	_ "crypto/sha512"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestFallbackTagSubject(t *testing.T) {
	hex256 := strings.Repeat("ab", 32)
	hex512 := strings.Repeat("cd", 64)
	tests := []struct {
		tag  string
		want digest.Digest
		ok   bool
	}{
		{"sha256-" + hex256, digest.Digest("sha256:" + hex256), true},
		{"sha256-" + hex256 + ".sig", digest.Digest("sha256:" + hex256), true},
		{"sha256-" + hex256 + ".att", digest.Digest("sha256:" + hex256), true},
		{"sha256-" + hex256 + ".sbom", digest.Digest("sha256:" + hex256), true},
		{"sha512-" + hex512, digest.Digest("sha512:" + hex512), true},
		{"sha256-" + hex256 + ".other", "", false},
		{"sha256-" + hex256[:63], "", false},
		{"sha256-" + strings.ToUpper(hex256), "", false},
		{"sha256-" + hex256 + "x", "", false},
		{"sha512-" + hex512[:121], "", false}, // truncated to 128 characters: no full digest
		{"latest", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := FallbackTagSubject(tc.tag)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FallbackTagSubject(%q) = %q, %v; want %q, %v", tc.tag, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzFallbackTagSubject(f *testing.F) {
	f.Add("sha256-" + strings.Repeat("0", 64) + ".sig")
	f.Add("sha512-" + strings.Repeat("f", 128))
	f.Add("v1.2.3")
	f.Fuzz(func(t *testing.T, tag string) {
		d, ok := FallbackTagSubject(tag)
		if !ok {
			return
		}
		if err := d.Validate(); err != nil {
			t.Fatalf("FallbackTagSubject(%q) = invalid digest %q: %v", tag, d, err)
		}
		if !strings.HasPrefix(tag, d.Algorithm().String()+"-"+d.Encoded()) {
			t.Fatalf("FallbackTagSubject(%q) = %q, not the tag's prefix", tag, d)
		}
	})
}

func TestLive(t *testing.T) {
	before := time.Unix(1000, 0)
	old, fresh := time.Unix(10, 0), time.Unix(2000, 0)
	d := func(s string) digest.Digest { return digest.FromString(s) }
	tagFor := func(subject string, suffix string) string { return "sha256-" + d(subject).Encoded() + suffix }
	graph := []GCManifest{
		{Digest: d("tagged"), PushedAt: old},
		{Digest: d("untagged"), PushedAt: old},
		{Digest: d("index"), PushedAt: old, Children: []digest.Digest{d("child"), d("absent child")}},
		{Digest: d("child"), PushedAt: old},
		{Digest: d("sig of tagged"), Subject: d("tagged"), PushedAt: old},
		{Digest: d("sig of sig"), Subject: d("sig of tagged"), PushedAt: old},
		{Digest: d("sig of untagged"), Subject: d("untagged"), PushedAt: old},
		{Digest: d("sig of nothing"), Subject: d("nothing"), PushedAt: old},
		{Digest: d("fresh sig of nothing"), Subject: d("nothing"), PushedAt: fresh},
		{Digest: d("cosign sig of tagged"), PushedAt: old},
		{Digest: d("cosign sig of gone"), PushedAt: old},
		{Digest: d("fresh untagged"), PushedAt: fresh},
	}
	tags := []GCTag{
		{Name: "v1", Digest: d("tagged"), UpdatedAt: old},
		{Name: "multi", Digest: d("index"), UpdatedAt: old},
		{Name: tagFor("tagged", ".sig"), Digest: d("cosign sig of tagged"), UpdatedAt: old},
		{Name: tagFor("gone", ".sig"), Digest: d("cosign sig of gone"), UpdatedAt: old},
	}
	tests := []struct {
		name      string
		untagged  bool
		wantDead  []string
		wantStale []string
	}{
		{"referrers only", false, []string{"sig of nothing", "cosign sig of gone"}, nil},
		{"untagged too", true, []string{"untagged", "sig of untagged", "sig of nothing", "cosign sig of gone"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dead, stale := Live(slices.Clone(graph), tags, GCPolicy{Untagged: tc.untagged, Before: before})
			var want []digest.Digest
			for _, s := range tc.wantDead {
				want = append(want, d(s))
			}
			slices.Sort(dead)
			slices.Sort(want)
			if !slices.Equal(dead, want) {
				names := map[digest.Digest]string{}
				for _, m := range graph {
					for _, s := range []string{"tagged", "untagged", "index", "child", "sig of tagged", "sig of sig", "sig of untagged", "sig of nothing", "fresh sig of nothing", "cosign sig of tagged", "cosign sig of gone", "fresh untagged"} {
						if d(s) == m.Digest {
							names[m.Digest] = s
						}
					}
				}
				var got []string
				for _, x := range dead {
					got = append(got, names[x])
				}
				t.Errorf("dead = %q, want %q", got, tc.wantDead)
			}
			if len(stale) != len(tc.wantStale) {
				t.Errorf("stale tags = %v, want %v", stale, tc.wantStale)
			}
		})
	}
}

func TestLiveStaleFallbackTag(t *testing.T) {
	sig := digest.FromString("sig")
	subject := digest.FromString("subject")
	tag := "sha256-" + subject.Encoded() + ".sig"
	manifests := []GCManifest{{Digest: sig, PushedAt: time.Unix(10, 0)}}
	tags := []GCTag{
		{Name: tag, Digest: sig, UpdatedAt: time.Unix(10, 0)},
		{Name: "release", Digest: sig, UpdatedAt: time.Unix(10, 0)},
	}
	dead, stale := Live(manifests, tags, GCPolicy{Before: time.Unix(1000, 0)})
	if len(dead) != 0 {
		t.Errorf("dead = %v, want none: the signature is tagged normally too", dead)
	}
	if !slices.Equal(stale, []string{tag}) {
		t.Errorf("stale = %v, want [%s]", stale, tag)
	}
	// Within the grace period the tag stays.
	if _, stale := Live(manifests, tags, GCPolicy{Before: time.Unix(5, 0)}); len(stale) != 0 {
		t.Errorf("stale within grace = %v", stale)
	}
}
