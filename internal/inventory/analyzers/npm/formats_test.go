package npm

import (
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/internal/inventory"
)

// secret stands for a token a lockfile may carry in a git or tarball URL;
// no analyzer output may contain it.
const secret = "ghp_S3CRET"

// TestLockfileForms reads the lockfile forms the peers' test suites
// exercise and berth once got wrong. Each file is written here, small,
// in the shape the tool writes.
func TestLockfileForms(t *testing.T) {
	tests := []struct {
		name  string
		parse inventory.ParseFunc
		data  string
		want  []string // name@version, " dev" when flagged so; sorted
	}{
		{"yarn v1 with quoted keys", ParseYarnLock, `# yarn lockfile v1


"lodash@^4.17.21":
  "version" "4.17.21"
  "resolved" "https://registry.yarnpkg.com/lodash/-/lodash-4.17.21.tgz"
  "dependencies":
    "ms" "2.1.3"

ms@2.1.3:
  "version" "2.1.3"
`, []string{"lodash@4.17.21", "ms@2.1.3"}},
		{"yarn berry with a duplicated key", ParseYarnLock, `__metadata:
  version: 6

"ms@npm:2.1.3":
  version: 2.1.3
  resolution: "ms@npm:2.1.3"
  languageName: node
  languageName: node
  linkType: hard

"lodash@npm:4.17.21":
  version: 4.17.20
  resolution: "lodash@npm:4.17.21"

"lodash@npm:4.17.21":
  version: 4.17.21
  resolution: "lodash@npm:4.17.21"
`, []string{"lodash@4.17.21", "ms@2.1.3"}},
		{"yarn berry patch and git resolutions", ParseYarnLock, `__metadata:
  version: 8

"fsevents@patch:fsevents@npm%3A2.3.2#~builtin<compat/fsevents>":
  version: 2.3.2
  resolution: "fsevents@patch:fsevents@npm%3A2.3.2#~builtin<compat/fsevents>::version=2.3.2&hash=df0bf1"

"is-really-great@git+ssh://git@github.com/o/is-really-great.git":
  version: 1.0.0
  resolution: "is-really-great@ssh://git@github.com/o/is-really-great.git#commit=0123abc"

"@scope/pkg@patch:@scope/pkg@npm%3A1.0.0#./p.patch::locator=app%40workspace%3A.":
  version: 1.0.0
  resolution: "@scope/pkg@patch:@scope/pkg@npm%3A1.0.0#./p.patch::version=1.0.0&hash=1&locator=app%40workspace%3A."

"tok@https://ci:` + secret + `@git.example.com/o/tok.git":
  version: 0.3.0
  resolution: "tok@https://ci:` + secret + `@git.example.com/o/tok.git#commit=abc"
`, []string{"@scope/pkg@1.0.0", "fsevents@2.3.2", "is-really-great@1.0.0", "tok@0.3.0"}},
		{"pnpm v9 tarball, git and file dependencies", ParsePNPMLock, `lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      tar-dep:
        specifier: https://ci:` + secret + `@example.com/tar-dep-1.2.3.tgz
        version: https://ci:` + secret + `@example.com/tar-dep-1.2.3.tgz
      git-dep:
        specifier: github:o/git-dep#abc
        version: https://codeload.github.com/o/git-dep/tar.gz/abc
      local:
        specifier: file:../local
        version: file:../local
packages:
  tar-dep@https://ci:` + secret + `@example.com/tar-dep-1.2.3.tgz:
    resolution: {tarball: 'https://ci:` + secret + `@example.com/tar-dep-1.2.3.tgz'}
    version: 1.2.3
  git-dep@https://codeload.github.com/o/git-dep/tar.gz/abc:
    resolution: {tarball: https://codeload.github.com/o/git-dep/tar.gz/abc}
    version: 2.0.0
  local@file:../local:
    resolution: {directory: ../local, type: directory}
    version: 0.1.0
  nover@https://example.com/nover.tgz:
    resolution: {tarball: https://example.com/nover.tgz}
snapshots:
  tar-dep@https://ci:` + secret + `@example.com/tar-dep-1.2.3.tgz: {}
  git-dep@https://codeload.github.com/o/git-dep/tar.gz/abc: {}
  local@file:../local: {}
  nover@https://example.com/nover.tgz: {}
`, []string{"git-dep@2.0.0", "local@0.1.0", "nover@ dev", "tar-dep@1.2.3"}},
		{"pnpm 10 with packageManagerDependencies", ParsePNPMLock, `---
lockfileVersion: '9.0'

importers:

  .:
    configDependencies: {}
    packageManagerDependencies:
      pnpm:
        specifier: 10.12.1
        version: 10.12.1

packages:

  pnpm@10.12.1:
    resolution: {integrity: sha512-AAAA}
    hasBin: true

snapshots:

  pnpm@10.12.1: {}

---
lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      debug:
        specifier: 2.6.9
        version: 2.6.9

packages:

  debug@2.6.9:
    resolution: {integrity: sha512-BBBB}

  ms@2.0.0:
    resolution: {integrity: sha512-CCCC}

snapshots:

  debug@2.6.9:
    dependencies:
      ms: 2.0.0

  ms@2.0.0: {}
`, []string{"debug@2.6.9", "ms@2.0.0", "pnpm@10.12.1 dev"}},
		{"yarn v1 entry keyed by the bare name", ParseYarnLock, `# yarn lockfile v1


balanced-match:
  version "1.0.2"

"@scope/pkg":
  version "2.0.0"

ms@^2.1.0:
  version "2.1.3"
`, []string{"@scope/pkg@2.0.0", "balanced-match@1.0.2", "ms@2.1.3"}},
		{"pnpm v9 without snapshots", ParsePNPMLock, `lockfileVersion: '9.0'
packages:
  debug@2.6.9:
    resolution: {integrity: sha512-BBBB}
  '@isaacs/string-locale-compare@1.1.0':
    resolution: {integrity: sha512-DDDD}
`, []string{"@isaacs/string-locale-compare@1.1.0", "debug@2.6.9"}},
		{"pnpm v5 keys with a registry host or a tarball", ParsePNPMLock, `lockfileVersion: 5.4
packages:
  registry.example.com/foo/1.0.0:
    resolution: {integrity: sha512-EEEE}
    dev: false
  registry.example.com/@scope/baz/3.0.0_react@18.2.0:
    resolution: {integrity: sha512-FFFF}
    dev: false
  registry.npmjs.org/bar/-/bar-2.0.0.tgz:
    resolution: {tarball: https://registry.npmjs.org/bar/-/bar-2.0.0.tgz}
    dev: false
  /lodash.merge/4.6.2:
    resolution: {integrity: sha512-GGGG}
    dev: true
`, []string{"@scope/baz@3.0.0", "bar@2.0.0", "foo@1.0.0", "lodash.merge@4.6.2 dev"}},
		{"npm v1 git, file and path-keyed entries", ParsePackageLock, `{"lockfileVersion": 1, "dependencies": {
  "private": {"version": "git+https://ci:` + secret + `@github.com/o/private.git#0123abc", "from": "git+https://ci:` + secret + `@github.com/o/private.git"},
  "node_modules/async": {"version": "2.6.4"},
  "local": {"version": "file:../local"},
  "ms": {"version": "2.1.3"}
}}`, []string{"async@2.6.4", "local@", "ms@2.1.3", "private@"}},
		{"npm v2 git dependency without a version", ParsePackageLock, `{"lockfileVersion": 3, "packages": {
  "": {"name": "app", "dependencies": {"gitdep": "github:o/gitdep"}},
  "node_modules/gitdep": {"resolved": "git+ssh://git@github.com/o/gitdep.git#0123abc", "license": "MIT"},
  "node_modules/tokdep": {"version": "git+https://ci:` + secret + `@github.com/o/tokdep.git#abc"},
  "node_modules/ms": {"version": "2.1.3"}
}}`, []string{"gitdep@", "ms@2.1.3", "tokdep@"}},
		{"pnpm v9 keys with v6's leading slash", ParsePNPMLock, `lockfileVersion: '9.0'
importers:
  .:
    dependencies:
      is-positive:
        specifier: ^3.1.0
        version: 3.1.0
packages:
  /@babel/core@7.24.7:
    resolution: {integrity: sha512-HHHH}
  /@babel/helper-plugin-utils@7.24.7(@babel/core@7.24.7):
    resolution: {integrity: sha512-IIII}
  /is-positive@3.1.0:
    resolution: {integrity: sha512-JJJJ}
`, []string{"@babel/core@7.24.7", "@babel/helper-plugin-utils@7.24.7", "is-positive@3.1.0"}},
		{"npm v1 dependencies nested in a dev dependency", ParsePackageLock, `{"lockfileVersion": 1, "dependencies": {
  "parent": {"version": "1.0.0", "dependencies": {
    "shared": {"version": "1.0.0"}
  }},
  "dev-parent": {"version": "1.0.0", "dev": true, "dependencies": {
    "dev-nested": {"version": "1.0.0", "dependencies": {
      "deeper": {"version": "0.1.0"}
    }},
    "shared": {"version": "1.0.0"}
  }}
}}`, []string{"deeper@0.1.0 dev", "dev-nested@1.0.0 dev", "dev-parent@1.0.0 dev", "parent@1.0.0", "shared@1.0.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := tt.parse([]byte(tt.data), "/app/lock", "test")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range pkgs {
				s := p.Name + "@" + p.Version
				if p.Dev {
					s += " dev"
				}
				got = append(got, s)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			out, err := json.Marshal(pkgs)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(out), secret) {
				t.Errorf("the token is in the output: %s", out)
			}
		})
	}
}

// TestLockfileSetsNameTheirInstallDir: every lockfile set tells the merge
// where its packages get installed, so entries without an installed copy
// can be dropped there.
func TestLockfileSetsNameTheirInstallDir(t *testing.T) {
	files := fstest.MapFS{
		"app/package-lock.json": {Data: []byte(`{"lockfileVersion": 3, "packages": {"node_modules/ms": {"version": "2.1.3"}}}`)},
		"yarn.lock":             {Data: []byte("ms@2.1.3:\n  version \"2.1.3\"\n")},
		"srv/x/pnpm-lock.yaml":  {Data: []byte("lockfileVersion: '9.0'\npackages:\n  ms@2.1.3:\n    resolution: {integrity: x}\n")},
	}
	want := map[string]string{"app/package-lock.json": "app/node_modules", "yarn.lock": "node_modules", "srv/x/pnpm-lock.yaml": "srv/x/node_modules"}
	for _, a := range []inventory.Analyzer{LockAnalyzer{}, YarnAnalyzer{}, PNPMAnalyzer{}} {
		res, err := a.Analyze(context.Background(), files)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Sets) != 1 || res.Sets[0].InstalledUnder != want[res.Sets[0].Origin] {
			t.Errorf("%s: sets %+v", a.Name(), res.Sets)
		}
	}
}

// TestPNPMSkipsUnnamedEntries: an entry whose key and fields name no
// package and version is skipped and named in the error; the rest of the
// file is still read.
func TestPNPMSkipsUnnamedEntries(t *testing.T) {
	tests := []struct {
		name, lock string
		want       []string
		wantErr    string
	}{
		{"v5 git keys", `lockfileVersion: 5.3
packages:
  /foo/1.0.0:
    dev: false
  github.com/kevva/is-positive:
    dev: false
  /foo/bar:
    dev: false
  example.com/foo/1.3.0_bar@2.0.0:
    dev: false
`, []string{"foo@1.0.0", "foo@1.3.0"}, `package keys not name@version, skipped: "/foo/bar", "github.com/kevva/is-positive"`},
		{"local folder without a name", `lockfileVersion: 5.4
packages:
  file:../pkg:
    resolution: {directory: ../pkg, type: directory}
    name: local-pkg
    version: 1.0.0
  file:../nameless:
    resolution: {directory: ../nameless, type: directory}
    version: 1.0.0
`, []string{"local-pkg@1.0.0"}, `package keys not name@version, skipped: "file:../nameless"`},
		{"v6 scoped key without a version", `lockfileVersion: '6.0'
packages:
  /@x:
    dev: false
  /acorn@8.7.0:
    dev: false
`, []string{"acorn@8.7.0"}, `package keys not name@version, skipped: "/@x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := ParsePNPMLock([]byte(tt.lock), "/app/pnpm-lock.yaml", "pnpm-lock")
			var got []string
			for _, p := range pkgs {
				s := p.Name + "@" + p.Version
				if p.Dev {
					s += " dev"
				}
				got = append(got, s)
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
