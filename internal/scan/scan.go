// Package scan is berth's scanning engine: it opens an image, inventories
// it (each layer read at most once, cached by diffID), and matches the
// inventory against the vulnerability database into a match.Report, the
// one stored result. Rematch recomputes a stored report's findings from its
// inventory alone, which is how the server rescans every stored image when
// the database changes without reading any image again.
//
// The CLI (`berth scan`) and the server share this package; neither adds
// matching rules of its own.
package scan

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/secret"
)

// Engine turns images and stored inventories into reports. It is safe for
// concurrent use when its Inventory scanner and Matcher are.
type Engine struct {
	// Inventory builds inventories; its Analyzers are usually
	// analyzers.All() and its Cache the layer cache.
	Inventory *inventory.Scanner
	// Matcher matches inventories against the vulnerability database.
	Matcher *match.Matcher
	// Logger receives one line per scan about packages left to their OS
	// package; nil means slog.Default().
	Logger *slog.Logger
	// Secrets, when set, finds secrets in every layer and in the config
	// with these rules (scanners.go). A nil Matcher matches nothing: a
	// scan for secrets alone needs no vulnerability database.
	Secrets *secret.Ruleset
	// Misconfig checks the image's config and layers (internal/misconfig).
	Misconfig bool
	// Licenses, when set, classifies every package's license and applies
	// the policy (internal/licensepolicy).
	Licenses *licensepolicy.Policy
}

// Scan opens the image named by src (any transport image.Open accepts),
// inventories it and matches the inventory.
func (e *Engine) Scan(ctx context.Context, src string, opts image.Options) (*match.Report, error) {
	img, err := image.Open(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	r, err := e.ScanImage(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return r, nil
}

// ScanImage inventories an opened image (the server's own stores are an
// image source too) and runs every scanner the engine has on it.
func (e *Engine) ScanImage(ctx context.Context, img *image.Image) (*match.Report, error) {
	invScanner, is := e.inventoryScanner()
	inv, err := invScanner.Scan(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	r, err := e.Match(ctx, inv)
	if err != nil {
		return nil, err
	}
	e.finish(r, img, is)
	return r, nil
}

// Match finds the vulnerabilities of an inventory. The report keeps the
// whole inventory, but language packages that the image's OS package
// manager installed are not matched against their language's feed (see
// OSManaged): their OS package is, against the distro's feed.
func (e *Engine) Match(ctx context.Context, inv *inventory.Inventory) (*match.Report, error) {
	r, _, err := e.match(ctx, inv, func(toMatch inventory.Inventory) (*match.Report, []match.Piece, error) {
		r, err := e.Matcher.Match(ctx, toMatch)
		return r, nil, err
	})
	return r, err
}

// MatchDelta is Match for an inventory whose report was matched against a
// database that differs from the engine's only under the lookups changed
// reports (match.Matcher.MatchDelta): prev are reports.PackageKey of that
// report's findings' packages, in order. The report holds the findings of
// the packages matched again, and pieces how they interleave with prev's
// (match.Splice); it fails with match.ErrNoDelta when prev does not line
// up with the inventory.
func (e *Engine) MatchDelta(ctx context.Context, inv *inventory.Inventory, prev []string, keyOf func(*inventory.Package) string,
	changed func(match.Lookup) bool) (*match.Report, []match.Piece, error) {
	if e.Matcher == nil {
		return nil, nil, fmt.Errorf("match: %w: no vulnerability database", match.ErrNoDelta)
	}
	return e.match(ctx, inv, func(toMatch inventory.Inventory) (*match.Report, []match.Piece, error) {
		return e.Matcher.MatchDelta(ctx, toMatch, prev, keyOf, changed)
	})
}

// match runs do on the packages of inv that are matched (what the OS
// package manager installed left out) and completes its report.
func (e *Engine) match(ctx context.Context, inv *inventory.Inventory,
	do func(inventory.Inventory) (*match.Report, []match.Piece, error)) (*match.Report, []match.Piece, error) {
	if inv == nil {
		return nil, nil, fmt.Errorf("match: no inventory")
	}
	if e.Matcher == nil {
		return inventoryOnly(inv), nil, nil
	}
	// The matcher does not modify the packages: most inventories, with
	// no package to leave out, are matched without a copy (a re-match
	// matches thousands).
	toMatch := *inv
	skipped := map[inventory.Ecosystem]int{}
	osManaged := osManagedRule(inv)
	first := -1
	for i := range inv.Packages {
		if osManaged(&inv.Packages[i]) {
			first = i
			break
		}
	}
	if first >= 0 {
		toMatch.Packages = append(make([]inventory.Package, 0, len(inv.Packages)), inv.Packages[:first]...)
		for i := first; i < len(inv.Packages); i++ {
			p := &inv.Packages[i]
			if osManaged(p) {
				skipped[p.Ecosystem]++
				continue
			}
			toMatch.Packages = append(toMatch.Packages, *p)
		}
	}
	r, pieces, err := do(toMatch)
	if err != nil {
		return nil, nil, fmt.Errorf("match %s: %w", cmp.Or(inv.Source, "inventory"), err)
	}
	r.Inventory = *inv
	if len(skipped) > 0 {
		parts := make([]string, 0, len(skipped))
		for _, eco := range slices.Sorted(maps.Keys(skipped)) {
			parts = append(parts, fmt.Sprintf("%d %s", skipped[eco], eco))
		}
		list := strings.Join(parts, ", ")
		e.logger().Info("language packages installed by the OS package manager are matched through their OS package",
			"image", inv.Source, "packages", list)
		// Their OS packages cannot be matched either (the matcher says
		// why): say that these were left to them, or a database without
		// the distro's feed would make them look clean.
		if !e.Matcher.DistroCovered(inv.Distro, osEcosystem[inv.Distro.ID]) {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s packages installed by the OS package manager were not matched either: they are matched through their OS packages, not their language feeds", list))
		}
	}
	return r, pieces, nil
}

// Rematch recomputes the findings of a stored report against the current
// database from the report's inventory; the image is not read. Filters are
// not carried over: apply them to the result, as to a fresh scan.
func (e *Engine) Rematch(ctx context.Context, stored *match.Report) (*match.Report, error) {
	if stored == nil {
		return nil, fmt.Errorf("rematch: no report")
	}
	if stored.SchemaVersion > match.ReportSchemaVersion {
		return nil, fmt.Errorf("rematch: report schema %d is newer than this berth reads (%d)",
			stored.SchemaVersion, match.ReportSchemaVersion)
	}
	inv := stored.Inventory
	r, err := e.Match(ctx, &inv)
	if err != nil {
		return nil, err
	}
	// What was found in the image itself stays as stored: the database
	// says nothing about it.
	r.Scanners, r.Secrets, r.Misconfigurations = stored.Scanners, stored.Secrets, stored.Misconfigurations
	if e.Licenses != nil {
		// The policy is this run's; the licenses are the inventory's.
		r.Licenses = licensepolicy.Check(&r.Inventory, *e.Licenses)
	} else {
		r.Licenses = stored.Licenses
	}
	return r, nil
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// Unjudged is what a report could not judge: the packages of an OS
// release the database holds no records for (or of a release berth does
// not know), with the language packages the OS package manager installed,
// which are matched only through them. A clean report of such an image
// says nothing about those packages, so a CI gate must not pass it.
type Unjudged struct {
	// Packages counts them.
	Packages int
	// Release names the OS release ("debian 12"), or "" when none is known.
	Release string
}

// Unjudged finds what the database cannot judge in inv.
func (e *Engine) Unjudged(inv *inventory.Inventory) Unjudged {
	var u Unjudged
	if e.Matcher == nil {
		// No vulnerability scan: nothing was to be judged.
		return u
	}
	if inv.Distro != nil {
		u.Release = strings.TrimSpace(inv.Distro.ID + " " + inv.Distro.VersionID)
	}
	covered := map[inventory.Ecosystem]bool{}
	judged := func(eco inventory.Ecosystem) bool {
		c, ok := covered[eco]
		if !ok {
			c = e.Matcher.DistroCovered(inv.Distro, eco)
			covered[eco] = c
		}
		return c
	}
	osManaged := osManagedRule(inv)
	for i := range inv.Packages {
		p := &inv.Packages[i]
		switch {
		case p.Ecosystem == inventory.Deb || p.Ecosystem == inventory.APK || p.Ecosystem == inventory.RPM:
			if !judged(p.Ecosystem) {
				u.Packages++
			}
		case osManaged(p):
			if !judged(osEcosystem[inv.Distro.ID]) {
				u.Packages++
			}
		}
	}
	return u
}
