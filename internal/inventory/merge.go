package inventory

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"berth.dev/berth/internal/image"
)

type setKey struct {
	analyzer int
	origin   string
}

type nameVersion struct{ name, version string }

// merge stacks the layers bottom up, as a container runtime does: each
// layer first deletes what its whiteouts name, then its package sets
// replace the sets of the same origin below. A package keeps the layer
// where its origin first held the same name and version (Trivy's applier
// does the same), so a base package rewritten into a later status file is
// still attributed to the base layer.
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
	live := map[setKey][]Package{}
	licenses := map[setKey]LicenseFile{}
	for i, out := range outcomes {
		l := img.Layers[i]
		inv.Layers = append(inv.Layers, Layer{DiffID: l.DiffID, Digest: l.Digest, Size: l.Size, CreatedBy: l.CreatedBy})
		if out.changes != nil {
			for _, w := range out.changes.Whiteouts {
				deleteUnder(live, w, true)
				deleteUnder(licenses, w, true)
			}
			for _, d := range out.changes.Opaque {
				deleteUnder(live, d, false)
				deleteUnder(licenses, d, false)
			}
			inv.Warnings = append(inv.Warnings, out.changes.Warnings...)
		}
		for ai, e := range out.results {
			if e == nil || e.Result == nil {
				continue
			}
			name := s.Analyzers[ai].Name()
			produced := map[string]bool{}
			for _, set := range e.Result.Sets {
				key := setKey{ai, set.Origin}
				earlier := map[nameVersion]string{}
				for _, p := range live[key] {
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
				live[key] = pkgs
				produced[set.Origin] = true
			}
			for _, lf := range e.Result.Licenses {
				licenses[setKey{ai, lf.Origin}] = lf
				produced[lf.Origin] = true
			}
			// A file the analyzer read again in this layer but found nothing
			// in no longer holds what it held below.
			for _, in := range e.Inputs {
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
	}
	for _, pkgs := range live {
		inv.Packages = append(inv.Packages, pkgs...)
	}
	byPackage := licensesByPackage(licenses)
	for i := range inv.Packages {
		p := &inv.Packages[i]
		p.PURL = PURL(*p, inv.Distro)
		if len(p.Licenses) == 0 {
			p.Licenses = slices.Clone(byPackage[ecoName{p.Ecosystem, p.Name}])
		}
	}
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

func firstLocation(p Package) string {
	if len(p.Locations) > 0 {
		return p.Locations[0]
	}
	return ""
}
