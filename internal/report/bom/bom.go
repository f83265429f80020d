// Package bom prepares an inventory for the SBOM encoders: the packages in
// one stable order, each with a reference that is unique within the
// document and the same on every run, the dependency names resolved to
// those references, and the image described as a subject (name, version,
// digest, purl).
//
// CycloneDX and SPDX both need exactly this, and computing it once keeps
// the two documents describing the same graph.
package bom

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/package-url/packageurl-go"

	"berth.dev/berth/internal/inventory"
)

// BOM is an inventory ready to be written as an SBOM.
type BOM struct {
	Inventory *inventory.Inventory
	Image     Image
	// ImageRef and OSRef identify the image and its operating system
	// (OSRef is "" without a distro); both differ from every package Ref.
	ImageRef, OSRef string
	// Packages are in a stable order: ecosystem, name, version, then the
	// fields that tell equal names apart.
	Packages []Package
}

// Package is one inventory package with its document-wide identity.
type Package struct {
	inventory.Package
	// Ref is unique within the BOM and stable across runs: the purl when
	// no other package shares it, otherwise the purl with a
	// "package-id" qualifier derived from where the package was found.
	Ref string
	// Deps are the resolved Package.DependsOn: indexes into BOM.Packages,
	// ascending.
	Deps []int
}

// Image is the subject of the SBOM.
type Image struct {
	// Name is the repository for a registry reference ("ghcr.io/org/app")
	// or the archive or directory name for a local source ("kitchen-sink").
	Name string
	// Version is the tag when the source names one, else the digest.
	Version string
	// Digest is the manifest digest, "" when the image had no manifest.
	Digest string
	// PURL is a pkg:oci purl, set when the digest is known.
	PURL string
}

// SHA256 returns the hex of the image digest when it is a well-formed
// sha256 digest, for the hash fields of the documents.
func (i Image) SHA256() (string, bool) {
	d, err := digest.Parse(i.Digest)
	if err != nil || d.Algorithm() != digest.SHA256 {
		return "", false
	}
	return d.Encoded(), true
}

// Build prepares inv. It never modifies inv.
func Build(inv *inventory.Inventory) *BOM {
	b := &BOM{Inventory: inv, Image: describeImage(inv)}
	// Sort indexes, not the packages themselves: a Package is a few
	// hundred bytes, and moving them costs more than comparing them.
	order := make([]int, len(inv.Packages))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int { return Compare(&inv.Packages[x], &inv.Packages[y]) })
	b.Packages = make([]Package, len(inv.Packages))
	for i, j := range order {
		b.Packages[i].Package = inv.Packages[j]
	}
	assignRefs(b.Packages)
	resolveDependencies(b.Packages)
	taken := make(map[string]bool, len(b.Packages))
	for i := range b.Packages {
		taken[b.Packages[i].Ref] = true
	}
	b.ImageRef = freeRef(taken, cmp.Or(b.Image.PURL, "berth-image:"+b.Image.Name))
	if d := inv.Distro; d != nil {
		b.OSRef = freeRef(taken, "berth-os:"+d.ID+"@"+d.VersionID)
	}
	return b
}

// freeRef returns ref, suffixed if needed so that it is not taken, and
// marks it taken.
func freeRef(taken map[string]bool, ref string) string {
	candidate := ref
	for n := 2; taken[candidate]; n++ {
		candidate = ref + "-" + strconv.Itoa(n)
	}
	taken[candidate] = true
	return candidate
}

// Compare orders packages the way every berth report lists them: by
// ecosystem, name and version, then by the fields that tell equal names
// apart, so that the order never depends on how the inventory was built.
func Compare(x, y *inventory.Package) int {
	return cmp.Or(
		cmp.Compare(x.Ecosystem, y.Ecosystem),
		cmp.Compare(x.Name, y.Name),
		cmp.Compare(x.Version, y.Version),
		cmp.Compare(x.PURL, y.PURL),
		cmp.Compare(x.Arch, y.Arch),
		cmp.Compare(x.Layer, y.Layer),
		slices.Compare(x.Locations, y.Locations),
		cmp.Compare(x.Analyzer, y.Analyzer),
		cmp.Compare(x.SourceName, y.SourceName),
		cmp.Compare(x.SourceVersion, y.SourceVersion),
		compareBool(x.Dev, y.Dev),
		compareBool(x.Local, y.Local),
		slices.Compare(x.Licenses, y.Licenses),
		slices.Compare(x.DependsOn, y.DependsOn),
	)
}

func compareBool(x, y bool) int {
	switch {
	case x == y:
		return 0
	case !x:
		return -1
	default:
		return 1
	}
}

// baseRef is the purl, or for a package without one a string in the same
// spirit that cannot be mistaken for a purl.
func baseRef(p *inventory.Package) string {
	if p.PURL != "" {
		return p.PURL
	}
	return "berth-package:" + string(p.Ecosystem) + "/" + p.Name + "@" + p.Version
}

// assignRefs gives every package its Ref. Packages that share a purl (the
// same npm package in two lockfiles, a jar copied twice) all get a
// disambiguator, not just the second one, so a ref never depends on which
// copy happened to sort first.
func assignRefs(pkgs []Package) {
	groups := map[string][]int{}
	for i := range pkgs {
		base := baseRef(&pkgs[i].Package)
		groups[base] = append(groups[base], i)
	}
	used := map[string]bool{}
	for i := range pkgs {
		base := baseRef(&pkgs[i].Package)
		if len(groups[base]) == 1 {
			pkgs[i].Ref = base
			used[base] = true
		}
	}
	for i := range pkgs {
		if pkgs[i].Ref != "" {
			continue
		}
		base := baseRef(&pkgs[i].Package)
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		// Two packages identical in every field still get two refs.
		pkgs[i].Ref = freeRef(used, base+sep+"package-id="+fingerprint(&pkgs[i].Package))
	}
}

// fingerprint hashes what tells two packages with one purl apart.
func fingerprint(p *inventory.Package) string {
	h := sha256.New()
	for _, s := range []string{string(p.Ecosystem), p.Name, p.Version, p.Arch, p.Layer, p.Analyzer,
		p.SourceName, p.SourceVersion, strconv.FormatBool(p.Dev)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, l := range p.Locations {
		h.Write([]byte(l))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

type nameKey struct {
	eco  inventory.Ecosystem
	name string
}

// resolveDependencies turns DependsOn names into indexes. The inventory
// names dependencies within one analyzer's package set, and the merged
// inventory no longer groups packages by set, so among packages of the
// same ecosystem and name the one sharing a location (the same lockfile or
// database) wins, then one from the same layer, then the first in order.
// Names that match no package (dpkg virtual packages, for one) are left out.
func resolveDependencies(pkgs []Package) {
	byName := map[nameKey][]int{}
	for i := range pkgs {
		k := nameKey{pkgs[i].Ecosystem, pkgs[i].Name}
		byName[k] = append(byName[k], i)
	}
	for i := range pkgs {
		p := &pkgs[i]
		var deps []int
		for _, name := range p.DependsOn {
			best, bestScore := -1, -1
			for _, j := range byName[nameKey{p.Ecosystem, name}] {
				if j == i {
					continue
				}
				score := 0
				if sharesLocation(p.Locations, pkgs[j].Locations) {
					score += 2
				}
				if p.Layer != "" && p.Layer == pkgs[j].Layer {
					score++
				}
				if score > bestScore {
					best, bestScore = j, score
				}
			}
			if best >= 0 {
				deps = append(deps, best)
			}
		}
		slices.Sort(deps)
		p.Deps = slices.Compact(deps)
	}
}

func sharesLocation(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func describeImage(inv *inventory.Inventory) Image {
	img := Image{Digest: inv.Digest}
	src := strings.TrimSpace(inv.Source)
	var tag, repoURL string
	local := false
	// Transports that name a local path rather than a registry reference
	// (the skopeo/syft conventions the CLI accepts).
	for _, t := range []string{"oci-archive:", "docker-archive:", "oci-dir:", "oci:", "dir:"} {
		if rest, ok := strings.CutPrefix(src, t); ok {
			local = true
			img.Name, tag = localName(rest)
			break
		}
	}
	if !local {
		src = strings.TrimPrefix(src, "docker://")
		if at := strings.Index(src, "@"); at >= 0 {
			if d, err := digest.Parse(src[at+1:]); err == nil && img.Digest == "" {
				img.Digest = d.String()
			}
			src = src[:at]
		}
		if c := strings.LastIndex(src, ":"); c > strings.LastIndex(src, "/") {
			src, tag = src[:c], src[c+1:]
		}
		img.Name = src
		if hasRegistryHost(src) {
			repoURL = src
		}
	}
	img.Version = cmp.Or(tag, img.Digest)
	if img.Name == "" {
		img.Name = cmp.Or(inv.Source, "image")
	}
	img.PURL = ociPURL(img.Name, img.Digest, tag, repoURL, inv.Architecture)
	return img
}

// hasRegistryHost applies the docker rule: the first path component of a
// reference is a registry host when it has a dot or a port, or is
// localhost. "app" and "team/app" name no registry, and a purl
// repository_url guessed for them would be wrong as often as right.
func hasRegistryHost(ref string) bool {
	host, _, found := strings.Cut(ref, "/")
	return found && (strings.ContainsAny(host, ".:") || host == "localhost")
}

// localName turns "path/to/kitchen-sink.oci.tar:latest" into
// ("kitchen-sink", "latest"). Only archives carry a ":tag" suffix, and only
// when what follows the colon has no slash.
func localName(p string) (name, tag string) {
	if c := strings.LastIndex(p, ":"); c >= 0 && !strings.Contains(p[c+1:], "/") {
		p, tag = p[:c], p[c+1:]
	}
	name = path.Base(strings.TrimRight(p, "/"))
	for _, ext := range []string{".oci.tar", ".docker.tar", ".tar.gz", ".tgz", ".tar"} {
		if trimmed, ok := strings.CutSuffix(name, ext); ok && trimmed != "" {
			name = trimmed
			break
		}
	}
	if name == "." || name == "/" {
		name = ""
	}
	return name, tag
}

// ociPURL follows the purl spec's oci type: the name is the last path
// segment in lower case, the version is the manifest digest, and the
// repository and tag go into qualifiers.
func ociPURL(name, digest, tag, repoURL, arch string) string {
	if digest == "" || name == "" {
		return ""
	}
	q := map[string]string{}
	if arch != "" {
		q["arch"] = arch
	}
	if repoURL != "" {
		q["repository_url"] = strings.ToLower(repoURL)
	}
	if tag != "" {
		q["tag"] = tag
	}
	last := strings.ToLower(path.Base(name))
	return packageurl.NewPackageURL(packageurl.TypeOCI, "", last, digest, packageurl.QualifiersFromMap(q), "").ToString()
}
