// Package python finds Python packages: the metadata of installed
// distributions (*.dist-info/METADATA, *.egg-info/PKG-INFO or a one-file
// *.egg-info) in site-packages and Debian's dist-packages, and the
// lockfiles requirements.txt (pinned lines), poetry.lock, Pipfile.lock and
// uv.lock.
//
// Names are kept as the files write them ("charset-normalizer",
// "PyYAML"); the engine normalises them for purls.
package python

import (
	"berth.dev/berth/internal/inventory"
)

func pkg(name, version, location, analyzer string) inventory.Package {
	return inventory.Package{
		Ecosystem: inventory.PyPI,
		Name:      name,
		Version:   version,
		Locations: []string{location},
		Analyzer:  analyzer,
	}
}
