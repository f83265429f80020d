package vulndb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"berth.dev/berth/internal/osv"
	"berth.dev/berth/internal/vulndb"
)

func TestCompare(t *testing.T) {
	base := []*osv.Vulnerability{
		rec("GHSA-1", aff("npm", "lodash", fixed("4.17.21")...)),
		rec("GHSA-2", aff("npm", "minimist", fixed("1.2.6")...), aff("npm", "optimist", fixed("0.7.0")...)),
		rec("PYSEC-3", aff("PyPI", "Jinja2", fixed("2.11.3")...)),
		rec("DSA-4", aff("Debian:12", "openssl", fixed("3.0.13-1~deb12u1")...)),
	}
	oldDir, _ := build(t, "osv", base...)
	old := open(t, oldDir)

	changed := *base[1]
	changed.Affected = []osv.Affected{aff("npm", "minimist", fixed("1.2.8")...), aff("npm", "optimist", fixed("0.7.0")...)}
	withdrawn := *base[3]
	withdrawn.Withdrawn = t0.Add(time.Hour)
	next := []*osv.Vulnerability{
		base[0],    // unchanged
		&changed,   // minimist's fixed version moved; optimist's entry is as it was
		&withdrawn, // withdrawn: the database keeps no withdrawn record
		rec("GHSA-5", aff("Go", "golang.org/x/net", fixed("0.23.0")...)), // new
		// PYSEC-3 removed
	}
	newDir, _ := build(t, "osv", next...)
	cur := open(t, newDir)

	d, err := vulndb.Compare(context.Background(), old, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		vulndb.Key("Debian:12", "openssl"),
		vulndb.Key("Go", "golang.org/x/net"),
		vulndb.Key("PyPI", "jinja2"),
		vulndb.Key("npm", "minimist"),
	}
	slices.Sort(want)
	if !slices.Equal(d.Keys, want) {
		t.Errorf("keys %q\nwant %q", d.Keys, want)
	}
	if d.Added != 1 || d.Changed != 1 || d.Removed != 2 {
		t.Errorf("added %d changed %d removed %d, want 1 1 2", d.Added, d.Changed, d.Removed)
	}

	same, err := vulndb.Compare(context.Background(), old, old)
	if err != nil || len(same.Keys) != 0 || same.Added+same.Changed+same.Removed != 0 {
		t.Errorf("a database against itself: %+v, %v", same, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := vulndb.Compare(ctx, old, cur); err == nil {
		t.Error("a cancelled comparison succeeded")
	}
}
