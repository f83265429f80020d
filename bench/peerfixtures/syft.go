package main

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
)

// syft's cataloger tests (syft/pkg/cataloger/<ecosystem>/*_test.go) do
// not write tables of fixture and expected list as the other peers do:
// they hand both to its pkgtest helpers, as
//
//	pkgtest.TestFileParser(t, fixture, parser, expectedPkgs, rels)
//	pkgtest.TestCataloger(t, dir, cataloger, expectedPkgs, rels)
//	pkgtest.NewCatalogTester().FromFile(t, fixture).Expects(pkgs, rels).TestParser(t, parser)
//	pkgtest.NewCatalogTester().FromDirectory(t, dir).ExpectsPackageStrings(s).TestCataloger(t, c)
//
// with the arguments written as literals, as local variables assigned
// once in the same function, or as fields of the table a loop ranges
// over. readSyft follows these forms and no others; a call whose
// arguments it cannot follow is a skipped case with the reason.

// syftCall is one pkgtest call, its chain unwound: the methods called
// (their arguments by name) and what the test hands as parser or
// cataloger.
type syftCall struct {
	node    ast.Node
	methods map[string][]ast.Expr
	dir     bool     // the fixture is a directory (FromDirectory, TestCataloger)
	runner  ast.Expr // the parser or cataloger
}

// syftTypes maps syft's package types (pkg.NpmPkg) to berth's ecosystems.
// The others (Arch, Nix, Homebrew, Haskell, …) have no berth analyzer.
var syftTypes = map[string]string{
	"NpmPkg": "npm", "PythonPkg": "pypi", "GoModulePkg": "golang", "JavaPkg": "maven",
	"JenkinsPluginPkg": "maven", "GemPkg": "gem", "RustPkg": "cargo", "PhpComposerPkg": "composer",
	"DotnetPkg": "nuget", "DartPubPkg": "pub", "HexPkg": "hex", "ConanPkg": "conan",
	"DebPkg": "deb", "ApkPkg": "apk", "RpmPkg": "rpm",
}

// purlEcosystems maps purl types to berth's ecosystems, for expected
// packages that give a PURL and no Type.
var purlEcosystems = map[string]string{
	"npm": "npm", "pypi": "pypi", "golang": "golang", "maven": "maven", "gem": "gem",
	"cargo": "cargo", "composer": "composer", "nuget": "nuget", "pub": "pub", "hex": "hex",
	"conan": "conan", "deb": "deb", "apk": "apk", "rpm": "rpm",
}

// syftReader reads one test function.
type syftReader struct {
	positions
	label, defEco, fn string
	globals           map[string]ast.Expr
	// locals are the function's variables, each with every value it is
	// assigned; ranges the tables its loops range over, by the loop's
	// value variable.
	locals map[string][]ast.Expr
	ranges map[string][]ast.Expr
	cases  []testCase
	skips  []skipped
	// depth counts the expected lists being read inside one another, so
	// that a list built from itself ends.
	depth int
}

// readSyft reads the cataloger tests of one syft package directory.
func readSyft(label, moduleDir, dir, defEco string) ([]testCase, []skipped, error) {
	fset := token.NewFileSet()
	files, globals, err := parsePackage(fset, dir, "_test.go")
	if err != nil {
		return nil, nil, err
	}
	r := &syftReader{positions: positions{fset, moduleDir}, label: label, defEco: defEco, globals: globals}
	for _, fd := range testFuncs(fset, files) {
		r.function(fd)
	}
	return r.cases, r.skips, nil
}

func (r *syftReader) function(fd *ast.FuncDecl) {
	r.fn = fd.Name.Name
	r.locals = map[string][]ast.Expr{}
	r.ranges = map[string][]ast.Expr{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			for i, l := range s.Lhs {
				id, ok := l.(*ast.Ident)
				if !ok {
					continue
				}
				// a, b := f() assigns both from the call: built by code.
				v := s.Rhs[0]
				if len(s.Lhs) == len(s.Rhs) {
					v = s.Rhs[i]
				}
				r.locals[id.Name] = append(r.locals[id.Name], v)
			}
		case *ast.ValueSpec:
			// var x T starts x at its zero value: one assignment, so
			// that a later x = append(x, …) makes two.
			for i, id := range s.Names {
				var v ast.Expr = ast.NewIdent("nil")
				if i < len(s.Values) {
					v = s.Values[i]
				}
				r.locals[id.Name] = append(r.locals[id.Name], v)
			}
		case *ast.RangeStmt:
			if id, ok := s.Value.(*ast.Ident); ok {
				r.ranges[id.Name] = append(r.ranges[id.Name], s.X)
			}
		}
		return true
	})
	calls := 0
	fixture := ""
	pkgs := false
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		if s, ok := stringLit(asExpr(n)); ok && fixture == "" && (strings.HasPrefix(s, "test-fixtures/") || strings.HasPrefix(s, "testdata/")) {
			// syft renamed its test-fixtures folders to testdata (v1.3x).
			fixture = s
		}
		if lit, ok := n.(*ast.CompositeLit); ok && isPackageType(lit.Type) {
			pkgs = true
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		c, ok := syftCallOf(call)
		if !ok {
			return true
		}
		calls++
		r.call(c)
		return false
	})
	// A test that names a fixture and expects packages but hands them to
	// no pkgtest helper (it calls the parser and compares by itself) is
	// not read; it is counted, so that what the measurement leaves out
	// shows. Tests of metadata (copyright files, md5sums, RECORD) write
	// no pkg.Package nor a package database entry and are not counted.
	if calls == 0 && fixture != "" && pkgs {
		r.skips = append(r.skips, skipped{r.where(fd), fixture, "calls the parser itself, not through pkgtest: not read"})
	}
}

// isPackageType reports whether t is pkg.Package or a package database's
// entry (pkg.DpkgDBEntry, pkg.ApkDBEntry, …), or a list of them.
func isPackageType(t ast.Expr) bool {
	if a, ok := t.(*ast.ArrayType); ok {
		t = a.Elt
	}
	sel, ok := t.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "pkg" && (sel.Sel.Name == "Package" || strings.HasSuffix(sel.Sel.Name, "DBEntry"))
}

func asExpr(n ast.Node) ast.Expr {
	e, _ := n.(ast.Expr)
	return e
}

// syftCallOf recognises a pkgtest call: one of the package's functions,
// or a chain begun with pkgtest.NewCatalogTester() and ended with
// TestParser or TestCataloger.
func syftCallOf(call *ast.CallExpr) (syftCall, bool) {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return syftCall{}, false
	}
	c := syftCall{node: call, methods: map[string][]ast.Expr{}}
	if pkgtestFunc(sel) {
		a := call.Args
		switch sel.Sel.Name {
		case "TestFileParser", "TestCatalogerFromFileSource", "TestCataloger":
			if len(a) != 5 {
				return c, false
			}
			c.methods["Expects"] = a[3:5]
			c.runner = a[2]
		case "TestFileParserWithEnv":
			if len(a) != 6 {
				return c, false
			}
			c.methods["Expects"] = a[4:6]
			c.runner = a[2]
		default:
			return c, false
		}
		if sel.Sel.Name == "TestCataloger" {
			c.dir = true
			c.methods["FromDirectory"] = a[:2]
		} else {
			c.methods["FromFile"] = a[:2]
		}
		return c, true
	}
	if sel.Sel.Name != "TestParser" && sel.Sel.Name != "TestCataloger" || len(call.Args) != 2 {
		return c, false
	}
	c.runner = call.Args[1]
	c.dir = sel.Sel.Name == "TestCataloger"
	for x := sel.X; ; {
		m, ok := x.(*ast.CallExpr)
		if !ok {
			return c, false
		}
		s, ok := m.Fun.(*ast.SelectorExpr)
		if !ok {
			return c, false
		}
		if pkgtestFunc(s) && s.Sel.Name == "NewCatalogTester" {
			return c, true
		}
		c.methods[s.Sel.Name] = m.Args
		x = s.X
	}
}

func pkgtestFunc(sel *ast.SelectorExpr) bool {
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == "pkgtest"
}

// binding is the table entry a range variable stands for: a struct
// literal, or a string.
type binding map[string]ast.Expr

// call turns one pkgtest call into cases: one, or one per entry of the
// table a loop around it ranges over.
func (r *syftReader) call(c syftCall) {
	pos := r.where(c.node)
	// The range variables the call's arguments name.
	var vars []string
	for _, args := range c.methods {
		for _, a := range args {
			ast.Inspect(a, func(n ast.Node) bool {
				if id, ok := n.(*ast.Ident); ok && len(r.ranges[id.Name]) > 0 && !slices.Contains(vars, id.Name) {
					vars = append(vars, id.Name)
				}
				return true
			})
		}
	}
	switch len(vars) {
	case 0:
		r.one(c, pos, binding{})
		return
	case 1:
	default:
		r.skips = append(r.skips, skipped{pos, "?", "arguments from more than one table"})
		return
	}
	v := vars[0]
	if len(r.ranges[v]) != 1 {
		r.skips = append(r.skips, skipped{pos, "?", "table variable " + v + " ranges over more than one table"})
		return
	}
	table, why := r.table(r.ranges[v][0])
	if why != "" {
		r.skips = append(r.skips, skipped{pos, "?", why})
		return
	}
	for _, el := range table {
		r.one(c, r.where(el), binding{v: el})
	}
}

// table resolves what a loop ranges over to its entries.
func (r *syftReader) table(e ast.Expr) ([]ast.Expr, string) {
	e, why := r.resolve(e, binding{})
	if why != "" {
		return nil, why
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Sprintf("table is built by code (%T)", e)
	}
	var out []ast.Expr
	for _, el := range lit.Elts {
		if kv, ok := el.(*ast.KeyValueExpr); ok { // a map's entry
			el = kv.Value
		}
		if u, ok := el.(*ast.UnaryExpr); ok && u.Op == token.AND {
			el = u.X
		}
		out = append(out, el)
	}
	return out, ""
}

// resolve follows an identifier to the one value it is assigned (in the
// function, else in the package) and a range variable's field to the
// table entry's value. A field the entry leaves out is nil.
func (r *syftReader) resolve(e ast.Expr, b binding) (ast.Expr, string) {
	for range 8 {
		switch x := e.(type) {
		case *ast.Ident:
			if x.Name == "nil" {
				return x, ""
			}
			if v, ok := b[x.Name]; ok {
				e = v
				continue
			}
			if vs, ok := r.locals[x.Name]; ok {
				if len(vs) != 1 {
					return nil, x.Name + " is assigned more than once"
				}
				e = vs[0]
				continue
			}
			if v, ok := r.globals[x.Name]; ok {
				e = v
				continue
			}
			return nil, x.Name + " is not a variable of the test"
		case *ast.SelectorExpr:
			// A field of a struct literal: a table entry's, or of a
			// field of one (tt.expected.pkgs).
			base, why := r.resolve(x.X, b)
			lit, ok := base.(*ast.CompositeLit)
			if why != "" || !ok {
				return e, ""
			}
			v, has := keyed(lit)[x.Sel.Name]
			if !has {
				return ast.NewIdent("nil"), ""
			}
			e = v
			continue
		case *ast.ParenExpr:
			e = x.X
			continue
		}
		return e, ""
	}
	return nil, "variables refer to each other too deeply"
}

// str resolves a string: a literal, a variable holding one, a table
// field, or filepath.Join / path.Join of those.
func (r *syftReader) str(e ast.Expr, b binding) (string, bool) {
	e, why := r.resolve(e, b)
	if why != "" {
		return "", false
	}
	if isNil(e) {
		return "", true // a field the entry leaves out
	}
	if call, ok := e.(*ast.CallExpr); ok {
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Join" {
			if pk, ok := sel.X.(*ast.Ident); ok && (pk.Name == "filepath" || pk.Name == "path") {
				var parts []string
				for _, a := range call.Args {
					s, ok := r.str(a, b)
					if !ok {
						return "", false
					}
					parts = append(parts, s)
				}
				return path.Join(parts...), true
			}
		}
		return "", false
	}
	return stringLit(e)
}

// one makes the case of one call under one binding of its table.
func (r *syftReader) one(c syftCall, pos string, b binding) {
	from := "FromFile"
	if c.dir {
		from = "FromDirectory"
	}
	args, ok := c.methods[from]
	if !ok {
		switch _, str := c.methods["FromString"]; {
		case str:
			r.skips = append(r.skips, skipped{pos, "-", "fixture is a string in the test, not a file"})
		case c.methods["FromFileSource"] != nil:
			r.skips = append(r.skips, skipped{pos, "-", "fixture is read as a file source (one archive)"})
		case c.methods["WithImageResolver"] != nil:
			r.skips = append(r.skips, skipped{pos, "-", "fixture is a container image the test builds"})
		default:
			r.skips = append(r.skips, skipped{pos, "-", "no fixture named"})
		}
		return
	}
	if len(args) != 2 {
		r.skips = append(r.skips, skipped{pos, "?", "fixture call has unexpected arguments"})
		return
	}
	fixture, ok := r.str(args[1], b)
	if !ok {
		r.skips = append(r.skips, skipped{pos, "?", "fixture path is built by code"})
		return
	}
	if fixture == "" {
		r.skips = append(r.skips, skipped{pos, "-", "no fixture named"})
		return
	}
	tc := testCase{Source: r.label, Func: r.fn, Pos: pos, Fixture: fixture, Runner: runnerName(c.runner), Tree: c.dir}
	has := func(m string) bool { _, ok := c.methods[m]; return ok }
	if has("WithError") {
		r.skips = append(r.skips, skipped{pos, fixture, "expects an error"})
		return
	}
	if k := nonDefaultOption(b); k != "" {
		r.skips = append(r.skips, skipped{pos, fixture, "runs the parser with a non-default option (" + k + ")"})
		return
	}
	if a := c.methods["WithErrorAssertion"]; len(a) == 1 {
		e, why := r.resolve(a[0], b)
		if why != "" || !noError(e) {
			r.skips = append(r.skips, skipped{pos, fixture, "expects an error"})
			return
		}
	}
	switch {
	case has("Expects"):
		a := c.methods["Expects"]
		pkgs, why := r.packages(a[0], b)
		if why != "" {
			r.skips = append(r.skips, skipped{pos, fixture, why})
			return
		}
		tc.Want = pkgs
	case has("ExpectsPackageStrings"):
		pkgs, why := r.packageStrings(c.methods["ExpectsPackageStrings"][0], b)
		if why != "" {
			r.skips = append(r.skips, skipped{pos, fixture, why})
			return
		}
		tc.Want = pkgs
	case has("ExpectsAssertion"):
		r.skips = append(r.skips, skipped{pos, fixture, "expected list built by code (ExpectsAssertion)"})
		return
	case has("ExpectsRelationshipStrings"):
		r.skips = append(r.skips, skipped{pos, fixture, "checks relationships only, not the package list"})
		return
	default:
		r.skips = append(r.skips, skipped{pos, fixture, "checks which files are searched, not packages"})
		return
	}
	r.cases = append(r.cases, tc)
}

// syftOptionKeys are the table fields syft's tests configure the parser
// or cataloger with (GuessUnpinnedRequirements, UseNetwork, …).
var syftOptionKeys = []string{"cfg", "config"}

// nonDefaultOption names the table field of a case that configures the
// parser with anything but zero values: false, "", 0 and nil are the
// defaults syft's configurations start from.
func nonDefaultOption(b binding) string {
	for _, entry := range b {
		lit, ok := entry.(*ast.CompositeLit)
		if !ok {
			continue
		}
		kv := keyed(lit)
		for _, k := range syftOptionKeys {
			cfg, ok := kv[k]
			if !ok {
				continue
			}
			cl, ok := cfg.(*ast.CompositeLit)
			if !ok {
				return k
			}
			for _, el := range cl.Elts {
				v := el
				if x, ok := el.(*ast.KeyValueExpr); ok {
					v = x.Value
				}
				if !zeroValue(v) {
					return k
				}
			}
		}
	}
	return ""
}

func zeroValue(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "false" || x.Name == "nil"
	case *ast.BasicLit:
		return x.Value == `""` || x.Value == "0"
	}
	return false
}

func runnerName(e ast.Expr) string {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name
	case *ast.SelectorExpr:
		return x.Sel.Name
	case *ast.CallExpr:
		return runnerName(x.Fun) + "()"
	}
	return ""
}

// packages reads an expected list: nil, a []pkg.Package literal, or
// append of those, through variables and table fields.
func (r *syftReader) packages(e ast.Expr, b binding) ([]pkg, string) {
	if r.depth > 8 {
		return nil, "expected list built by code (built from itself)"
	}
	r.depth++
	defer func() { r.depth-- }()
	e, why := r.resolve(e, b)
	if why != "" {
		return nil, "expected list built by code (" + why + ")"
	}
	if isNil(e) {
		return nil, ""
	}
	switch x := e.(type) {
	case *ast.CallExpr:
		if fn, ok := x.Fun.(*ast.Ident); ok && fn.Name == "append" && len(x.Args) > 0 {
			out, why := r.packages(x.Args[0], b)
			if why != "" {
				return nil, why
			}
			for i, a := range x.Args[1:] {
				if x.Ellipsis.IsValid() && i == len(x.Args)-2 {
					more, why := r.packages(a, b)
					if why != "" {
						return nil, why
					}
					out = append(out, more...)
					continue
				}
				p, why := r.element(a, b)
				if why != "" {
					return nil, why
				}
				out = append(out, p)
			}
			return out, ""
		}
		return nil, fmt.Sprintf("expected list built by code (%s)", types.ExprString(x))
	case *ast.CompositeLit:
		if _, ok := x.Type.(*ast.ArrayType); !ok {
			return nil, "expected value is not a list of packages"
		}
		var out []pkg
		for _, el := range x.Elts {
			p, why := r.element(el, b)
			if why != "" {
				return nil, why
			}
			out = append(out, p)
		}
		return out, ""
	}
	return nil, fmt.Sprintf("expected list built by code (%s)", types.ExprString(e))
}

// element reads one expected pkg.Package.
func (r *syftReader) element(e ast.Expr, b binding) (pkg, string) {
	e, why := r.resolve(e, b)
	if why != "" {
		return pkg{}, "an expected package is built by code (" + why + ")"
	}
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		return r.element(u.X, b)
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		if call, ok := e.(*ast.CallExpr); ok {
			return pkg{}, fmt.Sprintf("an expected package is built by code (%s)", callName(call))
		}
		return pkg{}, fmt.Sprintf("an expected package is built by code (%T)", e)
	}
	kv := keyed(lit)
	p := pkg{Eco: r.defEco}
	nameExpr, has := kv["Name"]
	name, ok := r.str(nameExpr, b)
	switch {
	case !has || ok && name == "":
		// syft raises a package.json without a name, and drops it
		// later by its compliance rules; no SBOM of it names one.
		return p, "expects a package without a name"
	case !ok:
		return p, "an expected package's Name is not a string literal"
	}
	p.Name = name
	if v, has := kv["Version"]; has {
		s, ok := r.str(v, b)
		if !ok {
			return p, "an expected package's Version is not a string literal"
		}
		p.Version = s
	}
	purl := ""
	if v, has := kv["PURL"]; has {
		purl, _ = r.str(v, b)
	}
	typ := ""
	if sel, ok := kv["Type"].(*ast.SelectorExpr); ok {
		typ = sel.Sel.Name
	}
	switch eco, known := syftTypes[typ]; {
	case known:
		p.Eco = eco
	case typ != "":
		return p, "package type pkg." + typ + " has no berth ecosystem"
	case purl != "":
		t, _, _ := strings.Cut(strings.TrimPrefix(purl, "pkg:"), "/")
		eco, known := purlEcosystems[t]
		if !known {
			return p, "purl type " + t + " has no berth ecosystem"
		}
		p.Eco = eco
	}
	// syft names a Java package by its artifactId and keeps the groupId
	// in the PURL; berth names it group:artifact, as Maven does.
	if p.Eco == "maven" && purl != "" {
		if g, a, ok := mavenCoordinates(purl); ok {
			p.Name = g + ":" + a
		}
	}
	return p, ""
}

// mavenCoordinates reads group and artifact from pkg:maven/GROUP/ARTIFACT@….
func mavenCoordinates(purl string) (group, artifact string, ok bool) {
	rest, ok := strings.CutPrefix(purl, "pkg:maven/")
	if !ok {
		return "", "", false
	}
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "@")
	g, a, ok := strings.Cut(rest, "/")
	if !ok || g == "" || a == "" {
		return "", "", false
	}
	g, err1 := url.PathUnescape(g)
	a, err2 := url.PathUnescape(a)
	return g, a, err1 == nil && err2 == nil
}

// packageString is how pkgtest prints a package for ExpectsPackageStrings:
// "name @ version (location)".
var packageString = regexp.MustCompile(`^(.+?) @ (.*?) \(.*\)$`)

// packageStrings reads the []string of ExpectsPackageStrings; those name
// no type, so the source's ecosystem is theirs.
func (r *syftReader) packageStrings(e ast.Expr, b binding) ([]pkg, string) {
	e, why := r.resolve(e, b)
	if why != "" {
		return nil, "expected list built by code (" + why + ")"
	}
	if isNil(e) {
		return nil, ""
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Sprintf("expected list built by code (%T)", e)
	}
	var out []pkg
	for _, el := range lit.Elts {
		s, ok := r.str(el, b)
		m := packageString.FindStringSubmatch(s)
		if !ok || m == nil {
			return nil, "an expected package string is not \"name @ version (location)\""
		}
		out = append(out, pkg{Eco: r.defEco, Name: m[1], Version: m[2]})
	}
	return out, ""
}

// syftSources are syft's cataloger test packages, in the order of its
// folders; those of ecosystems berth has no analyzer for are read too, so
// that their cases are counted as skipped with the reason.
func syftSources() []source {
	src := func(dir, eco string, place func(testCase) (string, bool, string)) source {
		return source{module: "syft", dir: "syft/pkg/cataloger/" + dir, eco: eco, placeCase: place}
	}
	none := func(what string) func(testCase) (string, bool, string) {
		return func(testCase) (string, bool, string) { return "", false, "berth has no analyzer for " + what }
	}
	return []source{
		src("alpine", "apk", placeSyft(map[string]string{"parseApkDB": "lib/apk/db/installed", "NewDBCataloger()": "/"})),
		src("cpp", "conan", placeSyft(map[string]string{"parseConanLock": "app/conan.lock",
			"parseConanfile": "-conanfile.txt (a recipe's requirements, not a lock)", "parseConaninfo": "-conaninfo.txt (a Conan cache's package record)"})),
		src("dart", "pub", placeSyft(map[string]string{"parsePubspecLock": "app/pubspec.lock",
			"parsePubspec": "-pubspec.yaml (the manifest; berth reads pubspec.lock)"})),
		src("debian", "deb", placeSyft(nil)),
		src("dotnet", "nuget", placeSyft(map[string]string{"parseDotnetPackagesLock": "app/packages.lock.json",
			"NewDotnetDepsCataloger()": "/", "NewDotnetPortableExecutableCataloger()": "-.NET assemblies (PE version resources)"})),
		src("elixir", "hex", placeSyft(map[string]string{"parseMixLock": "app/mix.lock"})),
		src("erlang", "hex", placeSyft(map[string]string{"parseRebarLock": "-rebar.lock (berth reads mix.lock)"})),
		src("golang", "golang", placeSyft(map[string]string{"parseGoModFile": "app/go.mod", "NewGoModuleFileCataloger()": "/"})),
		// cat is Test_parsePomXML's NewPomCataloger.
		src("java", "maven", placeSyft(map[string]string{"parseGradleLockfile": "app/gradle.lockfile", "cat": "/"})),
		noDev(src("javascript", "npm", placeSyft(map[string]string{"parsePackageJSON": "app/node_modules/fixture/package.json",
			"parsePackageLock": "app/package-lock.json", "parsePnpmLock": "app/pnpm-lock.yaml", "parseYarnLock": "app/yarn.lock", "NewLockCataloger()": "/"})),
			"parsePackageLock", "package-lock.json's dev entries (IncludeDevDependencies is off by default)"),
		noDev(src("php", "composer", placeSyft(map[string]string{"parseComposerLock": "app/composer.lock",
			"parseInstalledJSON": "app/vendor/composer/installed.json"})),
			"parseComposerLock", "composer.lock's packages-dev"),
		noDev(source{module: "syft", dir: "syft/pkg/cataloger/python", eco: "pypi", companions: pipIncludes,
			placeCase: placeSyft(map[string]string{"parsePipfileLock": "app/Pipfile.lock", "parsePoetryLock": "app/poetry.lock",
				"parseRequirementsTxt": "app/requirements.txt", "parseUvLock": "app/uv.lock", "NewInstalledPackageCataloger()": "/+",
				"parseSetup": "-setup.py (a build script; berth reads installed metadata and lockfiles)"})},
			"parsePipfileLock", "Pipfile.lock's develop section"),
		src("redhat", "rpm", placeSyft(map[string]string{"parseRpmDB": "rpmdb",
			"parseRpmManifest": "-CBL-Mariner's container-manifest-2", "NewArchiveCataloger()": "-.rpm package files"})),
		src("ruby", "gem", placeSyft(map[string]string{"parseGemFileLockEntries": "app/Gemfile.lock", "parseGemSpecEntries": "gemspec"})),
		src("rust", "cargo", placeSyft(map[string]string{"parseCargoLock": "app/Cargo.lock"})),
		src("arch", "", none("Arch Linux's pacman database")),
		src("binary", "", none("binaries classified by their content")),
		src("bitnami", "", none("Bitnami's SPDX files")),
		src("gentoo", "", none("Gentoo's portage database")),
		src("githubactions", "", none("GitHub Actions workflows")),
		src("haskell", "", none("Haskell's cabal and stack files")),
		src("homebrew", "", none("Homebrew formulae")),
		src("kernel", "", none("Linux kernels and modules")),
		src("lua", "", none("LuaRocks rockspecs")),
		src("nix", "", none("the Nix store")),
		src("ocaml", "", none("opam files")),
		src("r", "", none("R packages")),
		src("swift", "", none("Swift and CocoaPods lockfiles")),
		src("swipl", "", none("SWI-Prolog packs")),
		src("terraform", "", none("Terraform lockfiles")),
		src("wordpress", "", none("WordPress plugins")),
		src("sbom", "", none("SBOM documents as input")),
	}
}

// placeSyft places a syft case by the parser it runs: a parser's fixture
// goes to dest (a fixture's own name says nothing: package-lock-2.json);
// a dest "-what" means berth has no analyzer for what. "rpmdb" and
// "gemspec" keep the fixture's name as placeRPM and placeGemspec do. A
// cataloger's directory fixture is scanned whole, as syft's test scans
// it: as the root filesystem (dest "/"), or under its own name ("/+"),
// for syft's globs see the directory's name (a fixture directory
// partial.dist-info holds a bare METADATA).
func placeSyft(byRunner map[string]string) func(testCase) (string, bool, string) {
	return func(c testCase) (string, bool, string) {
		switch dest := byRunner[c.Runner]; {
		case c.Tree != strings.HasPrefix(dest, "/") && !strings.HasPrefix(dest, "-"):
			return "", false, "runs " + c.Runner + " on a " + map[bool]string{true: "directory", false: "file"}[c.Tree] + ", which berth has no placement for"
		case dest == "/":
			return ".", false, ""
		case dest == "/+":
			return path.Base(c.Fixture), false, ""
		case dest == "":
			return "", false, "runs " + c.Runner + ", which berth has no placement for"
		case strings.HasPrefix(dest, "-"):
			return "", false, "berth has no analyzer for " + dest[1:]
		case dest == "rpmdb":
			return placeRPM(c.Fixture)
		case dest == "gemspec":
			return placeGemspec(c.Fixture)
		default:
			return dest, false, ""
		}
	}
}

// noDev says that syft's parser runner leaves development dependencies
// out (what), where berth lists them flagged dev: those are not counted
// in the cases that run it, as for Trivy's pnpm, conan and
// packages.config parsers. syft's other parsers (pnpm's, for one) list
// them, so the allowance is per parser.
func noDev(s source, runner, what string) source {
	s.noDev = "syft's " + runner + " leaves out " + what + "; berth's, flagged dev, are not counted there"
	s.noDevRunners = map[string]bool{runner: true}
	return s
}
