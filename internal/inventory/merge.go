package inventory

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"berth.dev/berth/internal/image"
)

type setKey struct {
	analyzer int
	origin   string
}

type nameVersion struct{ name, version string }

// liveSet is a package set that a layer put in place and no later layer
// has removed.
type liveSet struct {
	pkgs []Package
	// origin, installedUnder and shadowedBy are the PackageSet's Origin,
	// InstalledUnder and ShadowedBy.
	origin, installedUnder, shadowedBy string
	// The layer, analyzer and position in the analyzer's result of the
	// set: the order in which packages are listed and collapsed.
	order [3]int
}

// merge stacks the layers bottom up, as a container runtime does: each
// layer first deletes what its whiteouts name, then its package sets
// replace the sets of the same origin below. A package keeps the layer
// where its origin first held the same name and version (Trivy's applier
// does the same), so a base package rewritten into a later status file is
// still attributed to the base layer. Once every layer is applied, the
// packages that share a purl are one package (collapse).
func (s *Scanner) merge(img *image.Image, outcomes []layerOutcome) *Inventory {
	inv := &Inventory{
		Digest:       img.Digest,
		ConfigDigest: img.ConfigDigest,
		Source:       img.Source,
		Layers:       make([]Layer, 0, len(img.Layers)),
		Packages:     []Package{},
	}
	if img.Config != nil {
		inv.OS, inv.Architecture = img.Config.OS, img.Config.Architecture
	}
	live := map[setKey]liveSet{}
	licenses := map[setKey]LicenseFile{}
	// The files a set's ShadowedBy names that are still in the image,
	// whether or not they held packages. Only the paths some set names
	// are tracked: every deletion walks the map.
	shadowing := shadowingPaths(outcomes)
	files := map[setKey]struct{}{}
	layerIndex := map[string]int{}
	for i, out := range outcomes {
		l := img.Layers[i]
		if _, ok := layerIndex[l.DiffID]; !ok {
			layerIndex[l.DiffID] = i
		}
		inv.Layers = append(inv.Layers, Layer{DiffID: l.DiffID, Digest: l.Digest, Size: l.Size, CreatedBy: l.CreatedBy})
		if out.changes != nil {
			for _, w := range out.changes.Whiteouts {
				deleteUnder(live, w, true)
				deleteUnder(licenses, w, true)
				deleteUnder(files, w, true)
			}
			for _, d := range out.changes.Opaque {
				deleteUnder(live, d, false)
				deleteUnder(licenses, d, false)
				deleteUnder(files, d, false)
			}
			inv.Warnings = append(inv.Warnings, out.changes.Warnings...)
		}
		if out.changes != nil && out.changes.Links.Len() > 0 {
			// A symlink replaces whatever its path held below: the files
			// there and under it are no longer reachable by that path.
			deleteUnderLinks(live, out.changes.Links)
			deleteUnderLinks(licenses, out.changes.Links)
			deleteUnderLinks(files, out.changes.Links)
		}
		apply := func(ai int, e *analyzerEntry) {
			name := s.Analyzers[ai].Name()
			produced := map[string]bool{}
			for si, set := range e.Result.Sets {
				key := setKey{ai, set.Origin}
				earlier := map[nameVersion]string{}
				for _, p := range live[key].pkgs {
					if _, ok := earlier[nameVersion{p.Name, p.Version}]; !ok {
						earlier[nameVersion{p.Name, p.Version}] = p.Layer
					}
				}
				pkgs := make([]Package, len(set.Packages))
				for pi, p := range set.Packages {
					if layer, ok := earlier[nameVersion{p.Name, p.Version}]; ok {
						p.Layer = layer
					} else {
						p.Layer = l.DiffID
					}
					if p.Analyzer == "" {
						p.Analyzer = name
					}
					pkgs[pi] = p
				}
				live[key] = liveSet{pkgs: pkgs, origin: set.Origin, installedUnder: set.InstalledUnder, shadowedBy: set.ShadowedBy, order: [3]int{i, ai, si}}
				produced[set.Origin] = true
			}
			for _, lf := range e.Result.Licenses {
				licenses[setKey{ai, lf.Origin}] = lf
				produced[lf.Origin] = true
			}
			// A file the analyzer read again in this layer but found nothing
			// in no longer holds what it held below.
			for _, in := range e.Inputs {
				if shadowing[setKey{ai, in}] {
					files[setKey{ai, in}] = struct{}{}
				}
				if !produced[in] {
					delete(live, setKey{ai, in})
					delete(licenses, setKey{ai, in})
				}
			}
			if e.Result.Distro != nil {
				inv.Distro = laterDistro(inv.Distro, *e.Result.Distro)
			}
			for _, w := range e.Result.Warns {
				inv.Warnings = append(inv.Warnings, fmt.Sprintf("layer %s: %s", l.Name(), w))
			}
		}
		for ai, e := range out.results {
			if e != nil && e.Result != nil {
				apply(ai, e)
			}
		}
		// After the layer's own files: an alias names a file elsewhere
		// that the runtime reaches through the fixed path.
		for _, al := range out.aliases {
			if al.entry != nil && al.entry.Result != nil {
				apply(al.analyzer, al.entry)
			}
		}
	}
	sets := make([]liveSet, 0, len(live))
	for _, set := range live {
		sets = append(sets, set)
	}
	slices.SortFunc(sets, func(a, b liveSet) int { return slices.Compare(a.order[:], b.order[:]) })
	sets = dropShadowed(sets, files)
	if w := dropOverlong(sets); w != "" {
		inv.Warnings = append(inv.Warnings, w)
	}
	dropUninstalled(sets)
	var pkgs []Package
	for _, set := range sets {
		pkgs = append(pkgs, set.pkgs...)
	}
	byPackage := licensesByPackage(licenses)
	for i := range pkgs {
		p := &pkgs[i]
		redactPackage(p)
		p.PURL = PURL(*p, inv.Distro)
		if len(p.Licenses) == 0 {
			p.Licenses = slices.Clone(byPackage[ecoName{p.Ecosystem, p.Name}])
		}
	}
	inv.Packages = append(inv.Packages, collapse(pkgs, layerIndex)...)
	sort.SliceStable(inv.Packages, func(i, j int) bool {
		a, b := inv.Packages[i], inv.Packages[j]
		if a.Ecosystem != b.Ecosystem {
			return a.Ecosystem < b.Ecosystem
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Version != b.Version {
			return a.Version < b.Version
		}
		return firstLocation(a) < firstLocation(b)
	})
	return inv
}

// collapse makes the packages that share a purl one package: the same
// npm package found in node_modules and in the lockfile, a jar and its
// hard link, one Go module in two binaries. pkgs come in set order; the
// first of a purl gives the fields that describe it (name as written,
// analyzer), and the others add to it:
//
//   - Locations: every location, in set order;
//   - Layer: the earliest, where the package first appeared;
//   - Dev: only if every finding was development-only (one installed
//     copy means it is there at run time);
//   - DependsOn and Licenses: the union, in order of appearance.
//
// It runs after the layers are stacked, so whiteouts and rewrites still
// act on each file's own set.
func collapse(pkgs []Package, layerIndex map[string]int) []Package {
	out := make([]Package, 0, len(pkgs))
	at := make(map[string]int, len(pkgs))
	for _, p := range pkgs {
		i, seen := at[p.PURL]
		if !seen {
			at[p.PURL] = len(out)
			out = append(out, p)
			continue
		}
		q := &out[i]
		q.Locations = union(q.Locations, p.Locations)
		q.DependsOn = union(q.DependsOn, p.DependsOn)
		q.Licenses = union(q.Licenses, p.Licenses)
		if li, ok := layerIndex[p.Layer]; ok && li < layerIndex[q.Layer] {
			q.Layer = p.Layer
		}
		q.Dev = q.Dev && p.Dev
		q.Local = q.Local && p.Local
		if q.SourceName == "" {
			q.SourceName, q.SourceVersion = p.SourceName, p.SourceVersion
		}
		if q.Arch == "" {
			q.Arch = p.Arch
		}
	}
	return out
}

// union appends to a the elements of b it lacks. It never shares b's
// storage with the result.
func union(a, b []string) []string {
	for _, x := range b {
		if !slices.Contains(a, x) {
			a = append(slices.Clip(a), x)
		}
	}
	return a
}

// laterDistro is what a layer's distro facts make of the ones below: the
// later layer wins, but when it only rewrote a version file
// (etc/debian_version) it keeps what os-release said about the same
// distribution.
func laterDistro(below *Distro, later Distro) *Distro {
	if below != nil && below.ID == later.ID {
		if later.VersionID == "" {
			later.VersionID = below.VersionID
		}
		if later.VersionID == below.VersionID {
			if later.Codename == "" {
				later.Codename = below.Codename
			}
			if later.PrettyName == "" {
				later.PrettyName = below.PrettyName
			}
		}
	}
	return &later
}

type ecoName struct {
	eco  Ecosystem
	name string
}

// licensesByPackage gathers the license files that survived the merge by
// package; several files naming one package are joined in origin order.
func licensesByPackage(files map[setKey]LicenseFile) map[ecoName][]string {
	keys := make([]setKey, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].origin < keys[j].origin })
	out := map[ecoName][]string{}
	for _, k := range keys {
		lf := files[k]
		key := ecoName{lf.Ecosystem, lf.Package}
		for _, l := range lf.Licenses {
			if !slices.Contains(out[key], l) {
				out[key] = append(out[key], l)
			}
		}
	}
	return out
}

// deleteUnder drops the entries whose origin is p or lies below it; with
// self false (an opaque directory) only those below. "" is the root.
func deleteUnder[V any](live map[setKey]V, p string, self bool) {
	for k := range live {
		switch {
		case p == "":
			delete(live, k)
		case self && k.origin == p, strings.HasPrefix(k.origin, p+"/"):
			delete(live, k)
		}
	}
}

// deleteUnderLinks drops the entries whose origin is a symlink's path or
// lies below one: per entry, its origin and each directory above it are
// looked up, rather than every entry scanned for every link.
func deleteUnderLinks[V any](live map[setKey]V, links *image.Links) {
	for k := range live {
		for p := k.origin; ; {
			if _, ok := links.Lookup(p); ok {
				delete(live, k)
				break
			}
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
}

func firstLocation(p Package) string {
	if len(p.Locations) > 0 {
		return p.Locations[0]
	}
	return ""
}

// shadowingPaths is every (analyzer, path) that a package set of any
// layer names as its ShadowedBy.
func shadowingPaths(outcomes []layerOutcome) map[setKey]bool {
	out := map[setKey]bool{}
	add := func(ai int, e *analyzerEntry) {
		if e == nil || e.Result == nil {
			return
		}
		for _, set := range e.Result.Sets {
			if set.ShadowedBy != "" {
				out[setKey{ai, set.ShadowedBy}] = true
			}
		}
	}
	for _, o := range outcomes {
		for ai, e := range o.results {
			add(ai, e)
		}
		for _, al := range o.aliases {
			add(al.analyzer, al.entry)
		}
	}
	return out
}

// dropShadowed removes the sets whose ShadowedBy names a file the same
// analyzer read that is still in the image: npm reads only the
// npm-shrinkwrap.json of a project that holds both it and a
// package-lock.json. It works on what is live after every layer, so the
// two files may come from any layers, in either order, and a later
// layer's deletion of the shrinkwrap gives the package-lock.json back.
func dropShadowed(sets []liveSet, files map[setKey]struct{}) []liveSet {
	return slices.DeleteFunc(sets, func(s liveSet) bool {
		if s.shadowedBy == "" {
			return false
		}
		_, ok := files[setKey{s.order[1], s.shadowedBy}]
		return ok
	})
}

// dropUninstalled removes from each lockfile set (one with InstalledUnder)
// the packages that have no installed copy in the lockfile's project,
// when the directory it names holds installed packages of the ecosystem
// at all: `npm prune --omit=dev`, or a later layer's whiteout, removed
// them, and the lockfile still lists them. A copy counts wherever it lies
// in the project (a workspace member's own node_modules too). A lockfile
// without an installed tree beside it (a bundled application) keeps all
// its packages.
func dropUninstalled(sets []liveSet) {
	for i := range sets {
		lock := &sets[i]
		if lock.installedUnder == "" || len(lock.pkgs) == 0 {
			continue
		}
		eco := lock.pkgs[0].Ecosystem
		project := ""
		if dir := path.Dir(lock.installedUnder); dir != "." {
			project = dir + "/"
		}
		beside := false
		installed := map[nameVersion]bool{}
		for _, s := range sets {
			if s.installedUnder != "" || !strings.HasPrefix(s.origin, project) {
				continue
			}
			for _, p := range s.pkgs {
				if p.Ecosystem != eco {
					continue
				}
				installed[nameVersion{p.Name, p.Version}] = true
				beside = beside || strings.HasPrefix(s.origin, lock.installedUnder+"/")
			}
		}
		if !beside {
			continue
		}
		kept := make([]Package, 0, len(lock.pkgs))
		for _, p := range lock.pkgs {
			// A workspace member is the project's own folder, linked
			// from node_modules, never a copy installed there.
			if p.Local || installed[nameVersion{p.Name, p.Version}] {
				kept = append(kept, p)
			}
		}
		lock.pkgs = kept
	}
}

// maxNameVersionBytes bounds a package's name and version. Analyzers take
// them from files the image's author wrote and accept any length, so one
// lockfile could carry a version of megabytes into every stored
// inventory and report, SPDX and CycloneDX documents and the matcher's
// lookups. No registry's names or versions come near it; 1,024 is also
// the longest version CycloneDX 1.6 allows.
const maxNameVersionBytes = 1024

// overlongShown is how many names of one ecosystem the warning about
// overlong packages quotes, and overlongHead how many bytes of each: the
// warning must not carry what the bound keeps out.
const (
	overlongShown = 5
	overlongHead  = 40
)

// dropOverlong removes from the live sets every package whose name or
// version is longer than maxNameVersionBytes, and the dependency names
// that long (they name a package no set can list). It is the one place
// every analyzer's output passes, so no analyzer needs a bound of its
// own. It returns the scan's one warning about them, or "".
func dropOverlong(sets []liveSet) string {
	var o overlong
	for i := range sets {
		sets[i].pkgs = o.filter(sets[i].pkgs)
	}
	return o.warning()
}

// DropOverlong applies the merge's bound to packages that did not pass
// the merge (an SBOM file read back into an inventory): it returns pkgs
// without those whose name or version is longer than
// maxNameVersionBytes (1,024), and
// without dependency names that long, and the one warning about them
// for the inventory's Warnings, or "". pkgs itself is not modified.
func DropOverlong(pkgs []Package) (kept []Package, warning string) {
	var o overlong
	kept = o.filter(pkgs)
	return kept, o.warning()
}

// overlong gathers, over the package lists it filters, the packages left
// out for their length, so one warning covers them all.
type overlong struct {
	seen  map[overlongKey]bool
	byEco map[Ecosystem][]string // names, in order of first appearance
}

type overlongKey struct {
	eco           Ecosystem
	name, version string
}

func tooLong(s string) bool { return len(s) > maxNameVersionBytes }

// filter returns pkgs without the overlong packages and dependency names,
// recording the packages left out. pkgs is returned as is when nothing in
// it is too long, and never modified.
func (o *overlong) filter(pkgs []Package) []Package {
	if !slices.ContainsFunc(pkgs, func(p Package) bool {
		return tooLong(p.Name) || tooLong(p.Version) || slices.ContainsFunc(p.DependsOn, tooLong)
	}) {
		return pkgs
	}
	if o.seen == nil {
		o.seen, o.byEco = map[overlongKey]bool{}, map[Ecosystem][]string{}
	}
	kept := make([]Package, 0, len(pkgs))
	for _, p := range pkgs {
		if tooLong(p.Name) || tooLong(p.Version) {
			if k := (overlongKey{p.Ecosystem, p.Name, p.Version}); !o.seen[k] {
				o.seen[k] = true
				o.byEco[p.Ecosystem] = append(o.byEco[p.Ecosystem], p.Name)
			}
			continue
		}
		p.DependsOn = slices.DeleteFunc(slices.Clone(p.DependsOn), tooLong)
		kept = append(kept, p)
	}
	return kept
}

// warning says how many packages filter left out, of which ecosystems,
// quoting the head of a few names of each; "" when it left out none.
func (o *overlong) warning() string {
	if len(o.seen) == 0 {
		return ""
	}
	ecos := slices.Sorted(maps.Keys(o.byEco))
	parts := make([]string, 0, len(ecos))
	for _, eco := range ecos {
		names := o.byEco[eco]
		quoted := make([]string, 0, min(len(names), overlongShown)+1)
		for _, n := range names[:min(len(names), overlongShown)] {
			quoted = append(quoted, quoteHead(n, overlongHead))
		}
		if len(names) > overlongShown {
			quoted = append(quoted, "…")
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", len(names), eco, strings.Join(quoted, ", ")))
	}
	counted := fmt.Sprintf("%d packages left out, their", len(o.seen))
	if len(o.seen) == 1 {
		counted = "1 package left out, its"
	}
	return fmt.Sprintf("%s name or version longer than %d bytes: %s", counted, maxNameVersionBytes, strings.Join(parts, "; "))
}

// quoteHead quotes the first n bytes of s (fewer, to end on a whole
// character), followed by "…" when that is not all of s.
func quoteHead(s string, n int) string {
	if len(s) <= n {
		return strconv.Quote(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strconv.Quote(s[:n]) + "…"
}
