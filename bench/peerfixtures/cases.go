package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// testCase is one extraction test of a peer's: the fixture it reads and
// the packages the test expects from it.
type testCase struct {
	Source  string // the source's label
	Func    string // the test function holding it
	Pos     string // file:line of the test case, inside the module
	Fixture string // path relative to the test's package directory
	Want    []pkg
	// WantDev says the test expects at least one package flagged dev
	// (Trivy's Dev: true): the parser reports dev dependencies.
	WantDev bool
	// Runner is the parser or cataloger a syft test runs (its placement
	// follows it: a parser of package-lock.json files takes fixtures of
	// any name); Tree says the fixture is a directory the test scans as
	// a whole (syft's FromDirectory).
	Runner string
	Tree   bool
	// Eco, when set, is the ecosystem the case is about, in place of the
	// source's (osv-scanner v1's one test package spans them all).
	Eco string
	// Partial says the test checks only the packages it lists, not the
	// whole list (osv-scanner's expectPackage): as a source's sample,
	// berth's findings count only under the names the test expects.
	Partial bool
}

// ecosystem is the ecosystem the case is about: its own, else its
// source's.
func (c testCase) ecosystem(src source) string {
	if c.Eco != "" {
		return c.Eco
	}
	return src.eco
}

// pkg is a package as the comparison sees it.
type pkg struct {
	Eco, Name, Version string
}

// skipped is a test case the harness found but cannot use, and why.
type skipped struct {
	Pos, Fixture, Why string
}

// Keys under which the peers' test tables name the fixture and the
// expected packages. A table entry is a test case only when it has a
// fixture key whose value is a string literal under testdata/.
var (
	fixtureKeys = []string{"Path", "path", "file", "inputPath", "InputPath", "filePath", "inputFile", "input"}
	wantKeys    = []string{"WantPackages", "wantPackages", "want", "wantPkgs", "pkgList", "WantInventory", "wantInventory"}
	errKeys     = []string{"WantErr", "wantErr", "wantError"}
	// optionKeys are fields of a table entry that run the parser with an
	// option other than its default (Trivy's pub parser taking the
	// lowest version of a range; osv-scalibr's gobinary test reading the
	// version from the binary's content).
	optionKeys = []string{"useMinVersion", "cfg"}
)

// purlTypes maps the purl type selectors of osv-scalibr's tests
// (purl.TypeNPM) to berth's ecosystems.
var purlTypes = map[string]string{
	"TypeNPM": "npm", "TypePyPi": "pypi", "TypeGolang": "golang", "TypeCargo": "cargo",
	"TypeComposer": "composer", "TypeGem": "gem", "TypeMaven": "maven", "TypeNuget": "nuget",
	"TypeHex": "hex", "TypePub": "pub", "TypeConan": "conan", "TypeConda": "conda",
	"TypeDebian": "deb", "TypeApk": "apk", "TypeRPM": "rpm",
}

// helper is what one of a test's own helper functions does with its
// arguments, for the tests whose expected lists are built by calls:
// osv-scalibr's gobinary test writes goPackage(name, version),
// createPackages(list, location) and createPackagesWithMain(list,
// location), which adds the binary's main module at "(devel)", named
// after the fixture up to its first "-"; its apk test getPackage(path,
// name, origin, version, …); its uv test pkg(t, name, version, …).
type helper struct {
	kind helperKind
	// nameArg and versionArg are the argument indexes of a
	// helperPackage.
	nameArg, versionArg int
}

type helperKind int

const (
	helperPackage      helperKind = iota + 1 // → one package
	helperList                               // (list, …) → the list
	helperListWithMain                       // (list, "testdata/NAME-…") → the list and NAME (devel)
)

// positional reads expected packages written as unkeyed struct literals
// (go-rpmdb's PackageInfo): the field indexes of epoch, name, version and
// release; a negative index is absent.
type positional struct{ Epoch, Name, Version, Release int }

// parsePackage parses the files of dir whose names end in suffix and
// returns them with the package-level variables and constants they
// declare, by name (a test table often names a list, or a fixture path, declared
// elsewhere in the package).
func parsePackage(fset *token.FileSet, dir, suffix string) ([]*ast.File, map[string]ast.Expr, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", dir, err)
	}
	var files []*ast.File
	decls := map[string]ast.Expr{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("parse %s: %w", e.Name(), err)
		}
		files = append(files, f)
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR && gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						decls[n.Name] = vs.Values[i]
					}
				}
			}
		}
	}
	return files, decls, nil
}

// readCases parses every .go file of dir (test tables often name a list
// declared in another file of the package) and returns the test cases of
// the test functions whose names match funcs.
func readCases(label, moduleDir, dir string, funcs, notFuncs *regexp.Regexp, pos *positional, defEco string, helpers map[string]helper) ([]testCase, []skipped, error) {
	fset := token.NewFileSet()
	files, vars, err := parsePackage(fset, dir, ".go")
	if err != nil {
		return nil, nil, err
	}
	r := &reader{positions: positions{fset, moduleDir}, label: label, vars: vars, pos: pos, defEco: defEco, helpers: helpers}
	for _, fd := range testFuncs(fset, files) {
		if !funcs.MatchString(fd.Name.Name) || notFuncs.MatchString(fd.Name.Name) {
			continue
		}
		r.fn = fd.Name.Name
		ast.Inspect(fd.Body, r.visit)
	}
	return r.cases, r.skips, nil
}

// testFuncs returns the test functions (TestX with a body) of the
// _test.go files among files, in source order.
func testFuncs(fset *token.FileSet, files []*ast.File) []*ast.FuncDecl {
	var out []*ast.FuncDecl
	for _, f := range files {
		if !strings.HasSuffix(fset.File(f.Pos()).Name(), "_test.go") {
			continue
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Body != nil && strings.HasPrefix(fd.Name.Name, "Test") {
				out = append(out, fd)
			}
		}
	}
	return out
}

type reader struct {
	positions
	label, defEco, fn string
	vars              map[string]ast.Expr
	pos               *positional
	helpers           map[string]helper
	dev               bool // an expected package of the current case is dev
	cases             []testCase
	skips             []skipped
}

// positions names the nodes of a peer's test files as the harness prints
// them: the file relative to the module's folder, and the line. Each
// reader embeds it.
type positions struct {
	fset      *token.FileSet
	moduleDir string
}

func (ps positions) where(n ast.Node) string {
	p := ps.fset.Position(n.Pos())
	rel, err := filepath.Rel(ps.moduleDir, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line)
}

func (r *reader) visit(n ast.Node) bool {
	lit, ok := n.(*ast.CompositeLit)
	if !ok {
		return true
	}
	kv := keyed(lit)
	fixture := fixtureOf(kv)
	if fixture == "" {
		return true
	}
	c := testCase{Source: r.label, Func: r.fn, Pos: r.where(lit), Fixture: fixture}
	if e, ok := kv["wantRequired"]; ok && e != nil {
		return false // a FileRequired test, not an extraction
	}
	for _, k := range errKeys {
		if e, ok := kv[k]; ok && !noError(e) {
			r.skips = append(r.skips, skipped{c.Pos, fixture, "expects an error"})
			return false
		}
	}
	var want ast.Expr
	for _, k := range wantKeys {
		if e, ok := kv[k]; ok {
			want = e
			break
		}
	}
	for _, k := range optionKeys {
		if e, ok := kv[k]; ok && !noError(e) {
			r.skips = append(r.skips, skipped{c.Pos, fixture, "runs the parser with a non-default option (" + k + ")"})
			return false
		}
	}
	// A table entry that leaves the expected list out expects none: the
	// tests compare the field's zero value with what was extracted.
	if want == nil {
		r.cases = append(r.cases, c)
		return false
	}
	r.dev = false
	pkgs, why := r.packages(want)
	if why != "" {
		r.skips = append(r.skips, skipped{c.Pos, fixture, why})
		return false
	}
	c.Want = pkgs
	c.WantDev = r.dev
	r.cases = append(r.cases, c)
	return false
}

// fixtureOf finds the fixture path of a table entry, directly or in its
// InputConfig (osv-scalibr's extracttest.ScanInputMockConfig).
func fixtureOf(kv map[string]ast.Expr) string {
	if ic, ok := kv["InputConfig"].(*ast.CompositeLit); ok {
		kv = keyed(ic)
	}
	for _, k := range fixtureKeys {
		if s, ok := stringLit(kv[k]); ok && strings.HasPrefix(s, "testdata/") {
			return s
		}
	}
	return ""
}

// packages reads an expected list; why says what made it unreadable.
func (r *reader) packages(e ast.Expr) ([]pkg, string) {
	if isNil(e) {
		return nil, ""
	}
	if id, ok := e.(*ast.Ident); ok {
		v, ok := r.vars[id.Name]
		if !ok {
			return nil, "expected list is " + id.Name + ", not a package-level variable"
		}
		e = v
	}
	if call, ok := e.(*ast.CallExpr); ok {
		return r.call(call)
	}
	lit, ok := e.(*ast.CompositeLit)
	if !ok {
		return nil, fmt.Sprintf("expected list is built by code (%T)", e)
	}
	// An inventory.Inventory{Packages: [...]}.
	if p, ok := keyed(lit)["Packages"]; ok {
		return r.packages(p)
	}
	if _, ok := lit.Type.(*ast.ArrayType); !ok && lit.Type != nil {
		return nil, "expected value is not a list of packages"
	}
	var out []pkg
	for _, el := range lit.Elts {
		p, why := r.element(el)
		if why != "" {
			return nil, why
		}
		out = append(out, p)
	}
	return out, ""
}

// element reads one expected package: a literal, a package-level
// variable holding one, or a call of a helper that makes one.
func (r *reader) element(el ast.Expr) (pkg, string) {
	if id, ok := el.(*ast.Ident); ok {
		v, ok := r.vars[id.Name]
		if !ok {
			return pkg{}, "an expected package is " + id.Name + ", not a package-level variable"
		}
		el = v
	}
	if u, ok := el.(*ast.UnaryExpr); ok && u.Op == token.AND {
		el = u.X
	}
	if call, ok := el.(*ast.CallExpr); ok {
		if fn, ok := call.Fun.(*ast.Ident); ok {
			if h := r.helpers[fn.Name]; h.kind == helperPackage && h.nameArg < len(call.Args) && h.versionArg < len(call.Args) {
				name, ok1 := stringLit(call.Args[h.nameArg])
				version, ok2 := stringLit(call.Args[h.versionArg])
				if ok1 && ok2 {
					return pkg{Eco: r.defEco, Name: name, Version: version}, ""
				}
			}
		}
		return pkg{}, fmt.Sprintf("an expected package is built by code (%s)", callName(call))
	}
	pl, ok := el.(*ast.CompositeLit)
	if !ok {
		return pkg{}, fmt.Sprintf("an expected package is built by code (%T)", el)
	}
	return r.onePackage(pl)
}

// call reads an expected list built by append or by a known helper.
func (r *reader) call(call *ast.CallExpr) ([]pkg, string) {
	fn, ok := call.Fun.(*ast.Ident)
	if !ok || len(call.Args) == 0 {
		return nil, fmt.Sprintf("expected list is built by code (%s)", callName(call))
	}
	switch {
	case fn.Name == "append":
		out, why := r.packages(call.Args[0])
		if why != "" {
			return nil, why
		}
		for i, a := range call.Args[1:] {
			if call.Ellipsis.IsValid() && i == len(call.Args)-2 {
				more, why := r.packages(a)
				if why != "" {
					return nil, why
				}
				out = append(out, more...)
				continue
			}
			p, why := r.element(a)
			if why != "" {
				return nil, why
			}
			out = append(out, p)
		}
		return out, ""
	case r.helpers[fn.Name].kind == helperList:
		return r.packages(call.Args[0])
	case r.helpers[fn.Name].kind == helperListWithMain && len(call.Args) == 2:
		out, why := r.packages(call.Args[0])
		if why != "" {
			return nil, why
		}
		loc, ok := stringLit(call.Args[1])
		if !ok {
			return nil, "the main module's location is not a string literal"
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(loc, "testdata/"), "-")
		return append(out, pkg{Eco: r.defEco, Name: name, Version: "(devel)"}), ""
	}
	return nil, fmt.Sprintf("expected list is built by code (%s)", callName(call))
}

func callName(call *ast.CallExpr) string {
	switch f := call.Fun.(type) {
	case *ast.Ident:
		return f.Name + "(…)"
	case *ast.SelectorExpr:
		return f.Sel.Name + "(…)"
	}
	return "a call"
}

func (r *reader) onePackage(pl *ast.CompositeLit) (pkg, string) {
	p := pkg{Eco: r.defEco}
	if r.pos != nil && len(pl.Elts) > 0 {
		if _, isKV := pl.Elts[0].(*ast.KeyValueExpr); !isKV {
			at := func(i int) (string, bool) {
				if i < 0 || i >= len(pl.Elts) {
					return "", i < 0
				}
				if s, ok := stringLit(pl.Elts[i]); ok {
					return s, true
				}
				if b, ok := pl.Elts[i].(*ast.BasicLit); ok && b.Kind == token.INT {
					return b.Value, true
				}
				return "", false
			}
			name, ok1 := at(r.pos.Name)
			ver, ok2 := at(r.pos.Version)
			rel, ok3 := at(r.pos.Release)
			epoch, ok4 := at(r.pos.Epoch)
			if !ok1 || !ok2 || !ok3 || !ok4 {
				return p, "an expected package's fields are not literals"
			}
			p.Name, p.Version = name, ver
			if rel != "" {
				p.Version += "-" + rel
			}
			if epoch != "" && epoch != "0" {
				p.Version = epoch + ":" + p.Version
			}
			return p, ""
		}
	}
	kv := keyed(pl)
	name, ok := stringLit(kv["Name"])
	if !ok {
		return p, "an expected package's Name is not a string literal"
	}
	p.Name = name
	if v, has := kv["Version"]; has {
		s, ok := stringLit(v)
		if !ok {
			return p, "an expected package's Version is not a string literal"
		}
		p.Version = s
	}
	if id, ok := kv["Dev"].(*ast.Ident); ok && id.Name == "true" {
		r.dev = true
	}
	if sel, ok := kv["PURLType"].(*ast.SelectorExpr); ok {
		eco, known := purlTypes[sel.Sel.Name]
		if !known {
			return p, "purl type " + sel.Sel.Name + " has no berth ecosystem"
		}
		p.Eco = eco
	}
	// osv-scalibr keeps an rpm epoch in the metadata; berth writes it
	// into the version as rpm does (E:V-R).
	if m, ok := kv["Metadata"]; ok && p.Eco == "rpm" {
		if u, ok := m.(*ast.UnaryExpr); ok {
			m = u.X
		}
		if ml, ok := m.(*ast.CompositeLit); ok {
			if b, ok := keyed(ml)["Epoch"].(*ast.BasicLit); ok && b.Kind == token.INT && b.Value != "0" {
				p.Version = b.Value + ":" + p.Version
			}
		}
	}
	return p, ""
}

func keyed(lit *ast.CompositeLit) map[string]ast.Expr {
	m := map[string]ast.Expr{}
	for _, el := range lit.Elts {
		kv, ok := el.(*ast.KeyValueExpr)
		if !ok {
			continue
		}
		if id, ok := kv.Key.(*ast.Ident); ok {
			m[id.Name] = kv.Value
		}
	}
	return m
}

func stringLit(e ast.Expr) (string, bool) {
	b, ok := e.(*ast.BasicLit)
	if !ok || b.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(b.Value)
	return s, err == nil
}

func isNil(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == "nil"
}

// noError reads a test's wantErr that expects none: nil, false, "" or
// testify's assert.NoError.
func noError(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.Ident:
		return x.Name == "nil" || x.Name == "false"
	case *ast.SelectorExpr:
		return x.Sel.Name == "NoError"
	}
	s, ok := stringLit(e)
	return ok && s == ""
}
