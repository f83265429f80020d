package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"path"
	"strings"
)

// osv-scanner v1's lockfile tests (pkg/lockfile/*_test.go) write one test
// function per case, not a table:
//
//	packages, err := lockfile.ParseNpmLock("fixtures/npm/one-package.v1.json")
//	expectPackages(t, packages, []lockfile.PackageDetails{
//		{Name: "wrappy", Version: "1.0.2", Ecosystem: lockfile.NpmEcosystem, …},
//	})
//
// The fixture is also handed to testParsingNodeModules(t, fixture), or
// opened with lockfile.OpenLocalDepFile(fixture) and read by
// lockfile.GoBinaryExtractor{}.Extract. A test that checks only some
// packages calls expectPackage once for each; one that expects an error
// calls expectErrIs or expectErrContaining, or tests err == nil.
// readOSVScanner follows these forms and no others: a test function that
// names a fixture in any other way is a skipped case with the reason.

// osvRunner is where berth reads the files one of osv-scanner's parsers
// reads, and their ecosystem; an empty dest skips the case with why.
type osvRunner struct{ dest, eco, why string }

// osvRunners are osv-scanner v1's parsers and extractors, by the name the
// tests call them by.
var osvRunners = map[string]osvRunner{
	"ParseNpmLock":         {dest: "app/package-lock.json", eco: "npm"},
	"ParseYarnLock":        {dest: "app/yarn.lock", eco: "npm"},
	"ParsePnpmLock":        {dest: "app/pnpm-lock.yaml", eco: "npm"},
	"ParsePoetryLock":      {dest: "app/poetry.lock", eco: "pypi"},
	"ParsePipenvLock":      {dest: "app/Pipfile.lock", eco: "pypi"},
	"ParsePdmLock":         {dest: "app/pdm.lock", eco: "pypi"},
	"ParseRequirementsTxt": {dest: "app/requirements.txt", eco: "pypi"},
	"ParseGemfileLock":     {dest: "app/Gemfile.lock", eco: "gem"},
	"ParseComposerLock":    {dest: "app/composer.lock", eco: "composer"},
	"ParseCargoLock":       {dest: "app/Cargo.lock", eco: "cargo"},
	"ParseMixLock":         {dest: "app/mix.lock", eco: "hex"},
	"ParsePubspecLock":     {dest: "app/pubspec.lock", eco: "pub"},
	// osv-scanner v1 reads a go.mod alone (no go.sum) and a POM without
	// its parent, so neither has companions here.
	"ParseGoLock":       {dest: "app/go.mod", eco: "golang"},
	"ParseGradleLock":   {dest: "app/gradle.lockfile", eco: "maven"},
	"ParseMavenLock":    {dest: "app/pom.xml", eco: "maven"},
	"ParseConanLock":    {dest: "app/conan.lock", eco: "conan"},
	"ParseNuGetLock":    {dest: "app/packages.lock.json", eco: "nuget"},
	"ParseApkInstalled": {dest: "lib/apk/db/installed", eco: "apk"},
	"ParseDpkgStatus":   {dest: "var/lib/dpkg/status", eco: "deb"},
	// The binary keeps its fixture's name (the dest is its folder).
	"GoBinaryExtractor": {dest: "usr/local/bin/", eco: "golang"},
	"ParseRenvLock":     {why: "berth has no analyzer for R's renv.lock"},
	"ParseGradleVerificationMetadata": {why: "berth has no analyzer for gradle/verification-metadata.xml " +
		"(checksums of every artifact a build downloaded, not its dependency list)"},
	"ParseOSVScannerResults": {why: "reads osv-scanner's own results JSON, not a lockfile"},
	"NodeModulesExtractor": {why: "the test reads npm's hidden lockfile node_modules/.package-lock.json alone; " +
		"berth reads the installed packages' own package.json files, which the fixture has none of"},
}

// placeOSVScanner places a case by the parser it runs, as placeSyft does.
func placeOSVScanner(c testCase) (string, bool, string) {
	r, ok := osvRunners[c.Runner]
	switch {
	case !ok:
		return "", false, "runs " + c.Runner + ", which berth has no placement for"
	case r.dest == "":
		return "", false, r.why
	case strings.HasSuffix(r.dest, "/"):
		return r.dest + path.Base(c.Fixture), true, ""
	}
	return r.dest, false, ""
}

// osvScannerEcosystems maps osv-scanner's ecosystem names (the values of
// lockfile.NpmEcosystem and the others) to berth's. CRAN (R) has no
// berth analyzer.
var osvScannerEcosystems = map[string]string{
	"npm": "npm", "PyPI": "pypi", "RubyGems": "gem", "Packagist": "composer", "crates.io": "cargo",
	"Hex": "hex", "Pub": "pub", "Go": "golang", "Maven": "maven", "ConanCenter": "conan",
	"NuGet": "nuget", "Alpine": "apk", "Debian": "deb",
}

// osvReader reads one test function.
type osvReader struct {
	positions
	label string
	// decls are the package-level constants and variables of the test
	// package and of the lockfile package itself (they share a folder),
	// by name: the ecosystem constants are resolved to their values.
	decls map[string]ast.Expr
	cases []testCase
	skips []skipped
}

// readOSVScanner reads the lockfile tests of osv-scanner v1's
// pkg/lockfile folder.
func readOSVScanner(label, moduleDir, dir string) ([]testCase, []skipped, error) {
	fset := token.NewFileSet()
	files, decls, err := parsePackage(fset, dir, ".go")
	if err != nil {
		return nil, nil, err
	}
	r := &osvReader{positions: positions{fset, moduleDir}, label: label, decls: decls}
	for _, fd := range testFuncs(fset, files) {
		r.function(fd)
	}
	return r.cases, r.skips, nil
}

// osvWant is what a test hands expectPackages (a list) or expectPackage
// (one package).
type osvWant struct {
	expr ast.Expr
	one  bool
}

// osvCall is a parser call found in a test: its fixture and runner.
type osvCall struct {
	node            ast.Node
	fixture, runner string
}

func (r *osvReader) function(fd *ast.FuncDecl) {
	var (
		calls      []osvCall
		opened     *osvCall // OpenLocalDepFile's fixture, until an extractor reads it
		extractor  string
		want       []osvWant
		partial    bool
		expectsErr bool
		named      string // the first fixture path written anywhere in the function
	)
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if s, ok := stringLit(asExpr(n)); ok && named == "" && strings.HasPrefix(s, "fixtures/") {
			named = s
		}
		if ifs, ok := n.(*ast.IfStmt); ok && isErrNil(ifs.Cond) {
			expectsErr = true
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		switch fn := call.Fun.(type) {
		case *ast.Ident:
			switch fn.Name {
			case "testParsingNodeModules":
				if len(call.Args) == 2 {
					if s, ok := stringLit(call.Args[1]); ok {
						calls = append(calls, osvCall{call, s, "NodeModulesExtractor"})
					}
				}
			case "expectPackages":
				if len(call.Args) == 3 {
					want = append(want, osvWant{call.Args[2], false})
				}
			case "expectPackage":
				if len(call.Args) == 3 {
					want = append(want, osvWant{call.Args[2], true})
					partial = true
				}
			case "expectErrIs", "expectErrContaining":
				expectsErr = true
			}
		case *ast.SelectorExpr:
			if x, ok := fn.X.(*ast.Ident); ok && x.Name == "lockfile" && len(call.Args) == 1 {
				s, ok := stringLit(call.Args[0])
				switch {
				case !ok || !strings.HasPrefix(s, "fixtures/"):
				case fn.Sel.Name == "OpenLocalDepFile":
					opened = &osvCall{call, s, ""}
				case strings.HasPrefix(fn.Sel.Name, "Parse"):
					calls = append(calls, osvCall{call, s, fn.Sel.Name})
				}
			}
			// lockfile.GoBinaryExtractor{}.Extract(file)
			if lit, ok := fn.X.(*ast.CompositeLit); ok && fn.Sel.Name == "Extract" {
				if sel, ok := lit.Type.(*ast.SelectorExpr); ok {
					extractor = sel.Sel.Name
				}
			}
		}
		return true
	})
	if opened != nil && extractor != "" {
		opened.runner = extractor
		calls = append(calls, *opened)
	}
	if named == "" {
		return // no fixture: a test of file matching or of helpers
	}
	if len(calls) != 1 {
		why := "names a fixture but hands it to no parser the harness knows: not read"
		if len(calls) > 1 {
			why = "calls the parser more than once: not read"
		}
		r.skips = append(r.skips, skipped{r.where(fd), named, why})
		return
	}
	c := testCase{Source: r.label, Func: fd.Name.Name, Pos: r.where(calls[0].node), Fixture: calls[0].fixture,
		Runner: calls[0].runner, Eco: osvRunners[calls[0].runner].eco, Partial: partial}
	switch {
	case expectsErr:
		r.skips = append(r.skips, skipped{c.Pos, c.Fixture, "expects an error"})
		return
	case osvRunners[c.Runner].why != "":
		// Not read: placeOSVScanner skips it with the runner's reason.
		r.cases = append(r.cases, c)
		return
	case len(want) == 0:
		r.skips = append(r.skips, skipped{c.Pos, c.Fixture, "checks the packages by code, not with expectPackages: not read"})
		return
	case len(want) > 1 && !partial:
		r.skips = append(r.skips, skipped{c.Pos, c.Fixture, "calls expectPackages more than once: not read"})
		return
	}
	for _, w := range want {
		e := w.expr
		if w.one {
			e = &ast.CompositeLit{Type: &ast.ArrayType{}, Elts: []ast.Expr{e}}
		}
		ps, why := r.packages(e, &c)
		if why != "" {
			r.skips = append(r.skips, skipped{c.Pos, c.Fixture, why})
			return
		}
		c.Want = append(c.Want, ps...)
	}
	r.cases = append(r.cases, c)
}

// packages reads an expected list of lockfile.PackageDetails literals.
func (r *osvReader) packages(e ast.Expr, c *testCase) ([]pkg, string) {
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Sprintf("expected list is built by code (%T)", e)
	}
	if _, ok := lit.Type.(*ast.ArrayType); !ok {
		return nil, "expected value is not a list of packages"
	}
	var out []pkg
	for _, el := range lit.Elts {
		pl, ok := el.(*ast.CompositeLit)
		if !ok {
			return nil, fmt.Sprintf("an expected package is built by code (%T)", el)
		}
		kv := keyed(pl)
		p := pkg{Eco: c.Eco}
		if p.Name, ok = stringLit(kv["Name"]); !ok {
			return nil, "an expected package's Name is not a string literal"
		}
		if v, has := kv["Version"]; has {
			if p.Version, ok = stringLit(v); !ok {
				return nil, "an expected package's Version is not a string literal"
			}
		}
		if e, has := kv["Ecosystem"]; has {
			name, ok := r.constant(e, 0)
			if !ok {
				return nil, "an expected package's Ecosystem is not a constant"
			}
			// "Debian:12", "Alpine:v3.20": the release follows the colon.
			name, _, _ = strings.Cut(name, ":")
			eco, known := osvScannerEcosystems[name]
			if !known {
				return nil, "expects packages of ecosystem " + name + ", which berth has no analyzer for"
			}
			p.Eco = eco
		}
		if groups, ok := kv["DepGroups"].(*ast.CompositeLit); ok {
			for _, g := range groups.Elts {
				if s, _ := stringLit(g); s == "dev" {
					c.WantDev = true
				}
			}
		}
		out = append(out, p)
	}
	return out, ""
}

// constant resolves a string constant: a literal, a constant of the
// package (lockfile.PdmEcosystem = PipEcosystem = "PyPI"), or a sum of
// them (lockfile.DebianEcosystem + ":12").
func (r *osvReader) constant(e ast.Expr, depth int) (string, bool) {
	if depth > 8 { // a constant defined by itself: Go rejects it, the harness stops
		return "", false
	}
	switch x := e.(type) {
	case *ast.BasicLit:
		return stringLit(x)
	case *ast.ParenExpr:
		return r.constant(x.X, depth+1)
	case *ast.Ident:
		if v, ok := r.decls[x.Name]; ok {
			return r.constant(v, depth+1)
		}
	case *ast.SelectorExpr:
		if pkg, ok := x.X.(*ast.Ident); ok && pkg.Name == "lockfile" {
			if v, ok := r.decls[x.Sel.Name]; ok {
				return r.constant(v, depth+1)
			}
		}
	case *ast.BinaryExpr:
		if x.Op != token.ADD {
			return "", false
		}
		a, ok1 := r.constant(x.X, depth+1)
		b, ok2 := r.constant(x.Y, depth+1)
		return a + b, ok1 && ok2
	}
	return "", false
}

// isErrNil reports whether cond is err == nil: the test fails when the
// parser returns no error.
func isErrNil(cond ast.Expr) bool {
	b, ok := cond.(*ast.BinaryExpr)
	if !ok || b.Op != token.EQL {
		return false
	}
	x, ok1 := b.X.(*ast.Ident)
	y, ok2 := b.Y.(*ast.Ident)
	return ok1 && ok2 && x.Name == "err" && y.Name == "nil"
}

// osvPipIncludes lists a requirements file's -r and -c files, as
// pipIncludes does, with "./" dropped: osv-scanner's fixtures write
// "-r ./other.txt", which names the same file beside it.
func osvPipIncludes(fixture string, data []byte) map[string]string {
	if path.Ext(fixture) != ".txt" { // the requirements fixtures; the others are lockfiles
		return nil
	}
	out := map[string]string{}
	for from := range pipIncludes(fixture, data) {
		from = path.Clean(from)
		out[from] = from
	}
	return out
}
