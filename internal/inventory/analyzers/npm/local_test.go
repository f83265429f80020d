package npm

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzertest"
)

// Lockfile formats, to seed each fuzz target with the cases of its own.
const (
	fmtPackageLock = "package-lock"
	fmtYarnLock    = "yarn.lock"
	fmtPNPMLock    = "pnpm-lock"
)

var parsers = map[string]inventory.ParseFunc{fmtPackageLock: ParsePackageLock, fmtYarnLock: ParseYarnLock, fmtPNPMLock: ParsePNPMLock}

// localCases are lockfiles with workspace members and local folders, each
// written here in the shape its tool writes.
var localCases = []struct {
	name, format, data string
	want               []string // analyzertest.Summary
}{
	{"npm v3 workspaces and file: folders", fmtPackageLock, `{
  "name": "shop", "version": "3.0.0", "lockfileVersion": 3, "requires": true,
  "packages": {
    "": {"name": "shop", "version": "3.0.0", "workspaces": ["apps/*", "libs/*"],
      "dependencies": {"left-pad": "1.3.0"},
      "devDependencies": {"fixtures": "file:./test/fixtures", "packed": "file:vendor/packed-1.0.0.tgz"}},
    "apps/web": {"name": "@shop/web", "version": "0.4.0", "dependencies": {"@shop/util": "*", "ms": "^2.0.0"}},
    "libs/util": {"version": "1.1.0"},
    "libs/orphan": {"version": "9.9.9"},
    "libs/retired": {"name": "@shop/retired", "version": "0.1.0"},
    "test/fixtures": {"version": "0.0.1", "dev": true},
    "apps/web/node_modules/ms": {"version": "2.0.0", "resolved": "https://registry.npmjs.org/ms/-/ms-2.0.0.tgz"},
    "node_modules/@shop/web": {"resolved": "apps/web", "link": true},
    "node_modules/@shop/util": {"resolved": "libs/util", "link": true},
    "node_modules/fixtures": {"resolved": "test/fixtures", "link": true, "dev": true},
    "node_modules/broken": {"resolved": "", "link": true},
    "node_modules/left-pad": {"version": "1.3.0", "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz"},
    "node_modules/packed": {"version": "1.0.0", "resolved": "file:vendor/packed-1.0.0.tgz", "dev": true}
  }
}`, []string{
		"@shop/retired@0.1.0 local",
		"@shop/util@1.1.0 local",
		"@shop/web@0.4.0 local -> [@shop/util ms]",
		"fixtures@0.0.1 dev local",
		"left-pad@1.3.0",
		"ms@2.0.0",
		"packed@1.0.0 dev",
	}},
	{"npm v3 folder named only by a dependency, no link", fmtPackageLock, `{"lockfileVersion": 2, "packages": {
  "": {"devDependencies": {"etagish": "file:./deps/etagish"}},
  "deps/etagish": {"version": "1.8.0", "dev": true},
  "deps/etagish/node_modules/abbrev": {"version": "2.3.4", "dev": true},
  "node_modules/abbrev": {"version": "1.0.9", "dev": true}
}}`, []string{"abbrev@1.0.9 dev", "abbrev@2.3.4 dev", "etagish@1.8.0 dev local"}},
	{"npm v3 member without a version", fmtPackageLock, `{"lockfileVersion": 3, "packages": {
  "": {"name": "root", "version": "1.0.0", "workspaces": ["functions/*"]},
  "functions/handler": {},
  "node_modules/fn-handler": {"resolved": "functions/handler", "link": true}
}}`, []string{"fn-handler@ local"}},
	{"npm v3 folder and registry copy of the same version", fmtPackageLock, `{"lockfileVersion": 3, "packages": {
  "": {"workspaces": ["vendor/ms"]},
  "vendor/ms": {"name": "ms", "version": "2.1.3"},
  "node_modules/ms": {"resolved": "vendor/ms", "link": true},
  "node_modules/x/node_modules/ms": {"version": "2.1.3"}
}}`, []string{"ms@2.1.3"}},
	{"npm v1 file: folder and tarball", fmtPackageLock, `{"lockfileVersion": 1, "dependencies": {
  "helpers": {"version": "file:../helpers", "requires": {"ms": "2.1.3"}},
  "packed": {"version": "file:vendor/packed-1.0.0.tgz"},
  "ms": {"version": "2.1.3"}
}}`, []string{"helpers@ local -> [ms]", "ms@2.1.3", "packed@"}},
	{"yarn berry workspaces and local protocols", fmtYarnLock, `__metadata:
  version: 8
  cacheKey: 10c0

"shop@workspace:.":
  version: 0.0.0-use.local
  resolution: "shop@workspace:."
  dependencies:
    "@shop/util": "workspace:^"
  languageName: unknown
  linkType: soft

"@shop/util@workspace:^, @shop/util@workspace:libs/util":
  version: 0.0.0-use.local
  resolution: "@shop/util@workspace:libs/util"
  dependencies:
    ms: "npm:^2.1.0"
  languageName: unknown
  linkType: soft

"ms@npm:^2.1.0":
  version: 2.1.3
  resolution: "ms@npm:2.1.3"
  languageName: node
  linkType: hard

"helpers@file:../helpers::locator=shop%40workspace%3A.":
  version: 0.2.0
  resolution: "helpers@file:../helpers#../helpers::hash=0a1b2c&locator=shop%40workspace%3A."
  languageName: node
  linkType: hard

"packed@file:./vendor/packed-1.0.0.tgz::locator=shop%40workspace%3A.":
  version: 1.0.0
  resolution: "packed@file:./vendor/packed-1.0.0.tgz#./vendor/packed-1.0.0.tgz::hash=3d4e5f&locator=shop%40workspace%3A."
  languageName: node
  linkType: hard

"linked@link:../linked::locator=shop%40workspace%3A.":
  version: 0.0.0-use.local
  resolution: "linked@link:../linked::locator=shop%40workspace%3A."
  languageName: node
  linkType: soft

"portaled@portal:../portaled::locator=shop%40workspace%3A.":
  version: 0.0.0-use.local
  resolution: "portaled@portal:../portaled::locator=shop%40workspace%3A."
  languageName: node
  linkType: soft

"fsevents@patch:fsevents@npm%3A2.3.2#~builtin<compat/fsevents>":
  version: 2.3.2
  resolution: "fsevents@patch:fsevents@npm%3A2.3.2#~builtin<compat/fsevents>::version=2.3.2&hash=df0bf1"
  languageName: node
  linkType: hard

"private@https://ci:` + secret + `@git.example.com/o/private.git":
  version: 0.3.0
  resolution: "private@https://ci:` + secret + `@git.example.com/o/private.git#commit=abc"
  languageName: node
  linkType: hard
`, []string{
		"@shop/util@0.0.0-use.local local -> [ms]",
		"fsevents@2.3.2",
		"helpers@0.2.0 local",
		"linked@0.0.0-use.local local",
		"ms@2.1.3",
		"packed@1.0.0",
		"portaled@0.0.0-use.local local",
		"private@0.3.0",
	}},
	{"yarn v1 file: and link: dependencies", fmtYarnLock, `# yarn lockfile v1


"helpers@file:../helpers", helpers@^0.2.0:
  version "0.2.0"
  dependencies:
    ms "^2.1.0"

"linked@link:../linked":
  version "0.0.0"

"packed@file:vendor/packed-1.0.0.tar.gz":
  version "1.0.0"
  resolved "file:vendor/packed-1.0.0.tar.gz#0123"

ms@^2.1.0:
  version "2.1.3"
  resolved "https://registry.yarnpkg.com/ms/-/ms-2.1.3.tgz#abc"
`, []string{"helpers@0.2.0 local -> [ms]", "linked@0.0.0 local", "ms@2.1.3", "packed@1.0.0"}},
	{"pnpm 10 with a pinned pnpm and local folders", fmtPNPMLock, `---
lockfileVersion: '9.0'

importers:

  .:
    configDependencies: {}
    packageManagerDependencies:
      '@pnpm/exe':
        specifier: ^10.0.0
        version: 10.12.1

packages:

  '@pnpm/exe@10.12.1':
    resolution: {integrity: sha512-AAAA}
    hasBin: true

---
lockfileVersion: '9.0'

importers:

  .:
    dependencies:
      helpers:
        specifier: file:../helpers
        version: file:../helpers
      packed:
        specifier: file:vendor/packed-1.0.0.tgz
        version: file:vendor/packed-1.0.0.tgz
      '@shop/util':
        specifier: workspace:*
        version: link:libs/util

  libs/util:
    dependencies:
      ms:
        specifier: 2.1.3
        version: 2.1.3

packages:

  helpers@file:../helpers:
    resolution: {directory: ../helpers, type: directory}
    version: 0.2.0

  packed@file:vendor/packed-1.0.0.tgz:
    resolution: {integrity: sha512-BBBB, tarball: file:vendor/packed-1.0.0.tgz}
    version: 1.0.0

  ms@2.1.3:
    resolution: {integrity: sha512-CCCC}

snapshots:

  helpers@file:../helpers:
    dependencies:
      ms: 2.1.3

  packed@file:vendor/packed-1.0.0.tgz: {}

  ms@2.1.3: {}
`, []string{"@pnpm/exe@10.12.1 dev", "helpers@0.2.0 local -> [ms]", "ms@2.1.3", "packed@1.0.0"}},
	{"pnpm v5 local folder keys", fmtPNPMLock, `lockfileVersion: 5.4

specifiers:
  helpers: file:../helpers

dependencies:
  helpers: file:../helpers

packages:

  file:../helpers_react@18.2.0:
    resolution: {directory: ../helpers, type: directory}
    name: helpers
    version: 0.2.0
    dev: false

  file:vendor/packed-1.0.0.tgz:
    resolution: {integrity: sha512-BBBB, tarball: file:vendor/packed-1.0.0.tgz}
    name: packed
    version: 1.0.0
    dev: true

  /react/18.2.0:
    resolution: {integrity: sha512-DDDD}
    dev: false
`, []string{"helpers@0.2.0 local", "packed@1.0.0 dev", "react@18.2.0"}},
}

// TestLocalPackages: workspace members and local folder dependencies are
// listed, marked local, with the version the lockfile gives them; the
// project itself is not listed, and a tarball, patch or git dependency
// is not local.
func TestLocalPackages(t *testing.T) {
	for _, tt := range localCases {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := parsers[tt.format]([]byte(tt.data), "/app/lock", "test")
			if err != nil {
				t.Fatal(err)
			}
			if got := analyzertest.Summary(pkgs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
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
