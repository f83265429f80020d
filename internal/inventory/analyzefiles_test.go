package inventory

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/fstest"
)

// TestAnalyzeFilesPartial: a parser's packages are kept when it also
// reports what it skipped, and a file that fails whole gives only the
// warning.
func TestAnalyzeFilesPartial(t *testing.T) {
	for _, tc := range []struct {
		name      string
		pkgs      []Package
		err       error
		wantSets  int
		wantWarns []string
	}{
		{"clean", []Package{{Name: "a"}}, nil, 1, nil},
		{"partial", []Package{{Name: "a"}}, errors.New("line 3: bad"), 1, []string{"/app/x.lock: line 3: bad"}},
		{"failed", nil, errors.New("not a lockfile"), 0, []string{"/app/x.lock: not a lockfile"}},
		{"empty", nil, nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := fstest.MapFS{"app/x.lock": {Data: []byte("x")}}
			parse := func([]byte, string, string) ([]Package, error) { return tc.pkgs, tc.err }
			res, err := AnalyzeFiles(context.Background(), files, "test", func(string) bool { return true }, parse)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Sets) != tc.wantSets {
				t.Errorf("sets = %+v, want %d", res.Sets, tc.wantSets)
			}
			if !reflect.DeepEqual(res.Warns, tc.wantWarns) {
				t.Errorf("warnings = %q, want %q", res.Warns, tc.wantWarns)
			}
		})
	}
}
