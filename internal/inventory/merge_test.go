package inventory_test

import (
	"bytes"
	"context"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/npm"
	"berth.dev/berth/internal/inventory/analyzers/python"
	"berth.dev/berth/internal/report"
)

// TestLockfileEntriesWithoutInstalledCopy: when node_modules lies beside
// a lockfile, what the lockfile lists but nothing installed is not
// reported: dev dependencies `npm prune --omit=dev` removed, a package a
// later layer deleted. Without node_modules, the lockfile is all there is.
func TestLockfileEntriesWithoutInstalledCopy(t *testing.T) {
	lock := `{"lockfileVersion": 3, "packages": {
		"": {"name": "app", "dependencies": {"lodash": "4.17.15", "minimist": "1.2.0"}, "devDependencies": {"jest": "29.0.0"}},
		"node_modules/lodash": {"version": "4.17.15"},
		"node_modules/minimist": {"version": "1.2.0"},
		"node_modules/jest": {"version": "29.0.0", "dev": true}
	}}`
	yarn := "lodash@4.17.15:\n  version \"4.17.15\"\n\nminimist@1.2.0:\n  version \"1.2.0\"\n\njest@29.0.0:\n  version \"29.0.0\"\n"
	installed := func(dir, name, version string) file {
		return file{name: dir + "/" + name + "/package.json", body: `{"name": "` + name + `", "version": "` + version + `"}`}
	}
	pruned := layerTar(t,
		file{name: "app/package-lock.json", body: lock},
		installed("app/node_modules", "lodash", "4.17.15"),
		installed("app/node_modules", "minimist", "1.2.0"),
	)
	tests := []struct {
		name   string
		layers []v1.Layer
		want   []string
	}{
		{"pruned dev dependency", []v1.Layer{pruned}, []string{
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
			"minimist@1.2.0@1 /app/node_modules/minimist/package.json /app/package-lock.json",
		}},
		{"deleted by a later layer", []v1.Layer{pruned, layerTar(t, file{name: "app/node_modules/.wh.minimist"})}, []string{
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
		}},
		{"no node_modules: the lockfile is all there is", []v1.Layer{pruned, layerTar(t, file{name: "app/.wh.node_modules"})}, []string{
			"jest@29.0.0@1 dev /app/package-lock.json",
			"lodash@4.17.15@1 /app/package-lock.json",
			"minimist@1.2.0@1 /app/package-lock.json",
		}},
		{"another project's node_modules does not count", []v1.Layer{layerTar(t,
			file{name: "app/package-lock.json", body: lock},
			installed("other/node_modules", "lodash", "4.17.15"),
		)}, []string{
			"jest@29.0.0@1 dev /app/package-lock.json",
			"lodash@4.17.15@1 /other/node_modules/lodash/package.json /app/package-lock.json",
			"minimist@1.2.0@1 /app/package-lock.json",
		}},
		{"a workspace member's own node_modules counts", []v1.Layer{layerTar(t,
			file{name: "app/package-lock.json", body: lock},
			installed("app/node_modules", "lodash", "4.17.15"),
			installed("app/packages/web/node_modules", "minimist", "1.2.0"),
		)}, []string{
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
			"minimist@1.2.0@1 /app/packages/web/node_modules/minimist/package.json /app/package-lock.json",
		}},
		{"a workspace member is linked, never installed: it stays", []v1.Layer{layerTar(t,
			file{name: "app/package-lock.json", body: `{"lockfileVersion": 3, "packages": {
				"": {"name": "app", "workspaces": ["packages/*"]},
				"packages/web": {"name": "@app/web", "version": "0.4.0", "dependencies": {"lodash": "4.17.15"}},
				"node_modules/@app/web": {"resolved": "packages/web", "link": true},
				"node_modules/lodash": {"version": "4.17.15"},
				"node_modules/jest": {"version": "29.0.0", "dev": true}
			}}`},
			installed("app/node_modules", "lodash", "4.17.15"),
		)}, []string{
			"@app/web@0.4.0@1 local /app/package-lock.json",
			"lodash@4.17.15@1 /app/node_modules/lodash/package.json /app/package-lock.json",
		}},
		{"yarn.lock with a pnpm-style store", []v1.Layer{layerTar(t,
			file{name: "srv/yarn.lock", body: yarn},
			installed("srv/node_modules/.pnpm/lodash@4.17.15/node_modules", "lodash", "4.17.15"),
		)}, []string{
			"lodash@4.17.15@1 /srv/node_modules/.pnpm/lodash@4.17.15/node_modules/lodash/package.json /srv/yarn.lock",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{npm.InstalledAnalyzer{}, npm.LockAnalyzer{}, npm.YarnAnalyzer{}}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, tt.layers...))
			if err != nil {
				t.Fatal(err)
			}
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestOverlongNamesAndVersionsLeftOut: a package whose name or version is
// longer than 1,024 bytes, from whichever analyzer, is not in the
// inventory; one warning says how many, of which ecosystems, and quotes
// no more than the head of each name.
func TestOverlongNamesAndVersionsLeftOut(t *testing.T) {
	long := strings.Repeat("9", 2000)
	// Byte 40 of this name falls inside an "é": the quoted head ends
	// before it.
	wideName := "a" + strings.Repeat("é", 1000)
	npmLock := func(entries string) file {
		return file{name: "app/package-lock.json", body: `{"lockfileVersion": 3, "packages": {"": {"name": "app"},` + entries + `}}`}
	}
	tests := []struct {
		name    string
		files   []file
		want    []string
		deps    string // lodash's DependsOn, when lodash is listed
		warning string // the scan's warnings, joined
	}{
		{
			name:    "version in a package-lock",
			files:   []file{npmLock(`"node_modules/lodash": {"version": "4.17.21"}, "node_modules/evil": {"version": "` + long + `"}`)},
			want:    []string{"lodash@4.17.21@1 /app/package-lock.json"},
			warning: `1 package left out, its name or version longer than 1024 bytes: 1 npm ("evil")`,
		},
		{
			name: "name in a package-lock, and the dependency naming it",
			files: []file{npmLock(`"node_modules/lodash": {"version": "4.17.21", "dependencies": {"` + wideName + `": "1.0.0", "ms": "2.1.3"}},
				"node_modules/` + wideName + `": {"version": "1.0.0"}, "node_modules/ms": {"version": "2.1.3"}`)},
			want:    []string{"lodash@4.17.21@1 /app/package-lock.json", "ms@2.1.3@1 /app/package-lock.json"},
			deps:    "ms",
			warning: `1 package left out, its name or version longer than 1024 bytes: 1 npm ("a` + strings.Repeat("é", 19) + `"…)`,
		},
		{
			name: "a requirements file and a package-lock",
			files: []file{
				npmLock(`"node_modules/lodash": {"version": "4.17.21"}, "node_modules/evil": {"version": "` + long + `"}, "node_modules/worse": {"version": "` + long + `"}`),
				{name: "srv/requirements.txt", body: "requests==2.31.0\n" + strings.Repeat("x", 2000) + "==1.0\n"},
			},
			want: []string{"lodash@4.17.21@1 /app/package-lock.json", "requests@2.31.0@1 /srv/requirements.txt"},
			warning: `3 packages left out, their name or version longer than 1024 bytes: 2 npm ("evil", "worse"); 1 pypi ("` +
				strings.Repeat("x", 40) + `"…)`,
		},
		{
			name:  "1,024 bytes is not too long",
			files: []file{npmLock(`"node_modules/lodash": {"version": "4.17.21"}, "node_modules/edge": {"version": "` + long[:1024] + `"}`)},
			want:  []string{"edge@" + long[:1024] + "@1 /app/package-lock.json", "lodash@4.17.21@1 /app/package-lock.json"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &inventory.Scanner{Analyzers: []inventory.Analyzer{npm.LockAnalyzer{}, python.RequirementsAnalyzer{}}}
			inv, err := s.Scan(context.Background(), synthetic(t, nil, layerTar(t, tt.files...)))
			if err != nil {
				t.Fatal(err)
			}
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
			for _, p := range inv.Packages {
				if p.Name == "lodash" && strings.Join(p.DependsOn, " ") != tt.deps {
					t.Errorf("lodash depends on %q, want %q", p.DependsOn, tt.deps)
				}
			}
			if got := strings.Join(inv.Warnings, "\n"); got != tt.warning {
				t.Errorf("warnings\n%s\nwant\n%s", got, tt.warning)
			}
		})
	}
}

// TestShrinkwrapShadowsPackageLockAcrossLayers: npm reads only the
// npm-shrinkwrap.json of a project holding both it and a
// package-lock.json, so the inventory lists only the shrinkwrap's
// packages for that folder, whichever layers added the two files and in
// whichever order, for as long as the shrinkwrap is in the image.
func TestShrinkwrapShadowsPackageLockAcrossLayers(t *testing.T) {
	lock := func(name, p, pkg, version string) file {
		return file{name: p + "/" + name, body: `{"lockfileVersion": 3, "packages": {"": {"name": "app"}, "node_modules/` + pkg + `": {"version": "` + version + `"}}}`}
	}
	packageLock := lock("package-lock.json", "app", "stale", "1.0.0")
	shrinkwrap := lock("npm-shrinkwrap.json", "app", "wrappy", "1.0.2")
	noDependencies := file{name: "app/npm-shrinkwrap.json", body: `{"lockfileVersion": 3, "packages": {"": {"name": "app"}}}`}
	whiteout := file{name: "app/.wh.npm-shrinkwrap.json"}
	tests := []struct {
		name   string
		layers [][]file
		want   []string
	}{
		{"one layer", [][]file{{packageLock, shrinkwrap}}, []string{
			"wrappy@1.0.2@1 /app/npm-shrinkwrap.json",
		}},
		{"shrinkwrap added by a later layer", [][]file{{packageLock}, {shrinkwrap}}, []string{
			"wrappy@1.0.2@2 /app/npm-shrinkwrap.json",
		}},
		{"package-lock added by a later layer", [][]file{{shrinkwrap}, {packageLock}}, []string{
			"wrappy@1.0.2@1 /app/npm-shrinkwrap.json",
		}},
		{"shrinkwrap deleted by a later layer", [][]file{{packageLock}, {shrinkwrap}, {whiteout}}, []string{
			"stale@1.0.0@1 /app/package-lock.json",
		}},
		{"shrinkwrap of the same layer deleted by a later one", [][]file{{packageLock, shrinkwrap}, {whiteout}}, []string{
			"stale@1.0.0@1 /app/package-lock.json",
		}},
		{"a shrinkwrap without dependencies still shadows", [][]file{{packageLock}, {noDependencies}}, nil},
		{"so does one that does not parse", [][]file{{packageLock}, {{name: "app/npm-shrinkwrap.json", body: "{"}}}, nil},
		{"a shrinkwrap in another folder does not", [][]file{{packageLock}, {lock("npm-shrinkwrap.json", "other", "wrappy", "1.0.2")}}, []string{
			"stale@1.0.0@1 /app/package-lock.json",
			"wrappy@1.0.2@2 /other/npm-shrinkwrap.json",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := scanLayers(t, tt.layers, npm.LockAnalyzer{})
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestHardLinkedLockfileKeepsItsFolder: a hard link to a lockfile is that
// lockfile in the link's folder, so the merge's rules apply to it there:
// beside an npm-shrinkwrap.json it is not reported, and beside a
// node_modules its entries without an installed copy are not, wherever
// the file it links to lies and whether or not that path is still in
// the image.
func TestHardLinkedLockfileKeepsItsFolder(t *testing.T) {
	lock := func(p string, pkgs ...string) file {
		entries := []string{`"": {"name": "app"}`}
		for _, nv := range pkgs {
			name, version, _ := strings.Cut(nv, "@")
			entries = append(entries, `"node_modules/`+name+`": {"version": "`+version+`"}`)
		}
		return file{name: p, body: `{"lockfileVersion": 3, "packages": {` + strings.Join(entries, ", ") + `}}`}
	}
	link := func(p, target string) file { return file{name: p, link: target} }
	installed := func(dir, name, version string) file {
		return file{name: dir + "/" + name + "/package.json", body: `{"name": "` + name + `", "version": "` + version + `"}`}
	}
	shrinkwrap := lock("app/npm-shrinkwrap.json", "wrappy@1.0.2")
	deleteSrcLock := []file{{name: "src/.wh.package-lock.json"}}
	tests := []struct {
		name   string
		layers [][]file
		want   []string
	}{
		{"beside a shrinkwrap, the only path to the package-lock", [][]file{
			{shrinkwrap, lock("src/package-lock.json", "stale@1.0.0"), link("app/package-lock.json", "src/package-lock.json")},
			deleteSrcLock,
		}, []string{
			"wrappy@1.0.2@1 /app/npm-shrinkwrap.json",
		}},
		{"beside a shrinkwrap, the target still in another folder", [][]file{
			{shrinkwrap, lock("src/package-lock.json", "stale@1.0.0"), link("app/package-lock.json", "src/package-lock.json")},
		}, []string{
			"stale@1.0.0@1 /src/package-lock.json",
			"wrappy@1.0.2@1 /app/npm-shrinkwrap.json",
		}},
		{"beside a node_modules missing a package, the only path to the package-lock", [][]file{
			{installed("app/node_modules", "lodash", "4.17.21"), lock("src/package-lock.json", "lodash@4.17.21", "minimist@1.2.8"),
				link("app/package-lock.json", "src/package-lock.json")},
			deleteSrcLock,
		}, []string{
			"lodash@4.17.21@1 /app/node_modules/lodash/package.json /app/package-lock.json",
		}},
		{"at the root, linked to a lockfile without a node_modules", [][]file{
			{installed("node_modules", "lodash", "4.17.21"), lock("app/package-lock.json", "lodash@4.17.21", "minimist@1.2.8"),
				link("package-lock.json", "app/package-lock.json")},
		}, []string{
			"lodash@4.17.21@1 /node_modules/lodash/package.json /app/package-lock.json /package-lock.json",
			"minimist@1.2.8@1 /app/package-lock.json",
		}},
		// The link is the shrinkwrap: what shadows the package-lock.json
		// it links to is not shadowed by itself.
		{"a shrinkwrap that is a hard link to the package-lock beside it", [][]file{
			{lock("app/package-lock.json", "stale@1.0.0"), link("app/npm-shrinkwrap.json", "app/package-lock.json")},
		}, []string{
			"stale@1.0.0@1 /app/npm-shrinkwrap.json",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := scanLayers(t, tt.layers, npm.InstalledAnalyzer{}, npm.LockAnalyzer{})
			if got := located(inv); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("packages\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestNoCredentialsInAnyOutput scans an image whose lockfile names a git
// dependency by a URL with a token, and writes every SBOM format: the
// token is in none of them, nor in the inventory's purls and versions.
func TestNoCredentialsInAnyOutput(t *testing.T) {
	const token = "ghp_n0tAr3alT0ken"
	lock := `{"lockfileVersion": 1, "dependencies": {
		"private": {"version": "git+https://ci:` + token + `@github.com/o/private.git#0123abc"},
		"ms": {"version": "2.1.3"}
	}}`
	s := &inventory.Scanner{Analyzers: []inventory.Analyzer{npm.LockAnalyzer{}, leaky{}}}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layerTar(t,
		file{name: "app/package-lock.json", body: lock},
		file{name: "leak", body: token},
	)))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Packages) != 3 {
		t.Fatalf("packages: %+v", inv.Packages)
	}
	for _, f := range report.SBOMFormats() {
		var buf bytes.Buffer
		if err := report.EncodeSBOM(&buf, f.Name, inv, report.Options{}); err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		if strings.Contains(buf.String(), token) {
			t.Errorf("%s output holds the token", f.Name)
		}
	}
}

// leaky is an analyzer that takes a credentialed URL for a version, as a
// careless one might: the merge removes the userinfo.
type leaky struct{}

func (leaky) Name() string                          { return "leaky" }
func (leaky) Version() int                          { return 1 }
func (leaky) MaxFileBytes() int64                   { return 1 << 20 }
func (leaky) Required(p string, _ fs.FileInfo) bool { return p == "leak" }
func (leaky) Analyze(_ context.Context, files fs.FS) (*inventory.Result, error) {
	token, err := fs.ReadFile(files, "leak")
	if err != nil {
		return nil, err
	}
	return &inventory.Result{Sets: []inventory.PackageSet{{Origin: "leak", Packages: []inventory.Package{{
		Ecosystem: inventory.NPM, Name: "leak", Version: "git+https://u:" + string(token) + "@git.example.com/o/leak.git#abc",
	}}}}}, nil
}

func TestRedactURLs(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.2.3", "1.2.3"},
		{"git+https://u:tok@host/r.git#abc", "git+https://host/r.git#abc"},
		{"https://tok@host", "https://host"},
		{"git+ssh://git@github.com/o/r.git", "git+ssh://github.com/o/r.git"},
		{"a https://x:y@h/p b http://q@r?s", "a https://h/p b http://r?s"},
		{"git@github.com:o/r.git", "git@github.com:o/r.git"},
		{"https://host/p@1.0", "https://host/p@1.0"},
	}
	for _, tt := range tests {
		if got := inventory.RedactURLs(tt.in); got != tt.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// scanLayers scans an image whose layers hold the files given, one list
// per layer, with the analyzers given.
func scanLayers(t *testing.T, layerFiles [][]file, analyzers ...inventory.Analyzer) *inventory.Inventory {
	t.Helper()
	var layers []v1.Layer
	for _, files := range layerFiles {
		layers = append(layers, layerTar(t, files...))
	}
	s := &inventory.Scanner{Analyzers: analyzers}
	inv, err := s.Scan(context.Background(), synthetic(t, nil, layers...))
	if err != nil {
		t.Fatal(err)
	}
	return inv
}
