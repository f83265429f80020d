// Package analyzers is the table of every package analyzer berth runs.
// Adding an ecosystem means adding its folder beside this file and one line
// to All.
package analyzers

import (
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers/apk"
	"berth.dev/berth/internal/inventory/analyzers/bun"
	"berth.dev/berth/internal/inventory/analyzers/conan"
	"berth.dev/berth/internal/inventory/analyzers/conda"
	"berth.dev/berth/internal/inventory/analyzers/dotnet"
	"berth.dev/berth/internal/inventory/analyzers/dpkg"
	"berth.dev/berth/internal/inventory/analyzers/egg"
	"berth.dev/berth/internal/inventory/analyzers/gobinary"
	"berth.dev/berth/internal/inventory/analyzers/gomod"
	"berth.dev/berth/internal/inventory/analyzers/gradle"
	"berth.dev/berth/internal/inventory/analyzers/java"
	"berth.dev/berth/internal/inventory/analyzers/mavenpom"
	"berth.dev/berth/internal/inventory/analyzers/mix"
	"berth.dev/berth/internal/inventory/analyzers/npm"
	"berth.dev/berth/internal/inventory/analyzers/osrelease"
	"berth.dev/berth/internal/inventory/analyzers/packagesconfig"
	"berth.dev/berth/internal/inventory/analyzers/pdm"
	"berth.dev/berth/internal/inventory/analyzers/php"
	"berth.dev/berth/internal/inventory/analyzers/pubspec"
	"berth.dev/berth/internal/inventory/analyzers/pylock"
	"berth.dev/berth/internal/inventory/analyzers/python"
	"berth.dev/berth/internal/inventory/analyzers/rpm"
	"berth.dev/berth/internal/inventory/analyzers/ruby"
	"berth.dev/berth/internal/inventory/analyzers/rust"
)

// All returns a fresh instance of every analyzer, OS analyzers first.
func All() []inventory.Analyzer {
	return []inventory.Analyzer{
		osrelease.Analyzer{},
		dpkg.Analyzer{},
		apk.Analyzer{},
		rpm.Analyzer{},
		gobinary.Analyzer{},
		gomod.Analyzer{},
		npm.InstalledAnalyzer{},
		npm.LockAnalyzer{},
		npm.YarnAnalyzer{},
		npm.PNPMAnalyzer{},
		bun.Analyzer{},
		python.InstalledAnalyzer{},
		python.RequirementsAnalyzer{},
		python.PoetryAnalyzer{},
		python.PipenvAnalyzer{},
		python.UVAnalyzer{},
		pdm.Analyzer{},
		pylock.Analyzer{},
		egg.Analyzer{},
		conda.Analyzer{},
		java.Analyzer{},
		gradle.Analyzer{},
		mavenpom.Analyzer{},
		rust.LockAnalyzer{},
		rust.AuditableAnalyzer{},
		php.LockAnalyzer{},
		php.InstalledAnalyzer{},
		ruby.GemspecAnalyzer{},
		ruby.LockAnalyzer{},
		dotnet.Analyzer{},
		dotnet.LockAnalyzer{},
		packagesconfig.Analyzer{},
		mix.Analyzer{},
		pubspec.Analyzer{},
		conan.Analyzer{},
	}
}
