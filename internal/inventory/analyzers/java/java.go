// Package java finds Maven artifacts inside Java archives (.jar, .war,
// .ear and the plugin archives .jpi/.hpi), including the jars nested in
// fat jars, WARs and EARs.
//
// An archive's identity comes, in order of trust, from its
// META-INF/maven/<groupId>/<artifactId>/pom.properties files (a shaded or
// fat jar holds several, and each is a package), then from
// META-INF/MANIFEST.MF, then from the file name.
package java

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"sync"

	"berth.dev/berth/internal/inventory"
)

const (
	// maxArchiveSize bounds a top-level archive; the largest fat jars
	// and EARs seen in images stay well below it.
	maxArchiveSize = 2 << 30
	// maxNestedDepth counts archive levels: an EAR holding a WAR holding
	// a jar is three.
	maxNestedDepth = 3
	// maxNestedSize bounds one nested archive, which is read into memory.
	maxNestedSize = 256 << 20
	// maxInflated bounds everything inflated from one top-level archive,
	// so a zip bomb costs bounded memory and time.
	maxInflated = 1 << 30
	// maxMetadataSize bounds one pom.properties or MANIFEST.MF.
	maxMetadataSize = 1 << 20
)

// Analyzer reads Java archives.
type Analyzer struct{}

// Name implements inventory.Analyzer.
func (Analyzer) Name() string { return "java-archive" }

// Version implements inventory.Analyzer.
func (Analyzer) Version() int { return 2 }

// MaxFileBytes implements inventory.Analyzer.
func (Analyzer) MaxFileBytes() int64 { return maxArchiveSize }

// Required asks for regular files with an archive suffix. A symlink such as
// Debian's commons-lang3-3.12.0.jar → commons-lang3.jar is not a regular
// file, so the archive is read once, under its real name.
func (Analyzer) Required(p string, info fs.FileInfo) bool {
	return info.Mode().IsRegular() && isArchive(p)
}

func isArchive(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".jar", ".war", ".ear", ".jpi", ".hpi":
		return true
	}
	return false
}

// Analyze implements inventory.Analyzer.
func (a Analyzer) Analyze(ctx context.Context, files fs.FS) (*inventory.Result, error) {
	res := &inventory.Result{}
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isArchive(p) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pkgs, warns, err := a.readArchive(files, p)
		if err != nil {
			res.Warns = append(res.Warns, fmt.Sprintf("/%s: %v", p, err))
			return nil
		}
		res.Warns = append(res.Warns, warns...)
		if len(pkgs) > 0 {
			res.Sets = append(res.Sets, inventory.PackageSet{Origin: p, Packages: pkgs})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("java-archive: %w", err)
	}
	return res, nil
}

func (a Analyzer) readArchive(files fs.FS, p string) ([]inventory.Package, []string, error) {
	f, err := files.Open(p)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, nil, errors.New("file does not support random access")
	}
	zr, err := zip.NewReader(ra, info.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("not a zip archive: %w", err)
	}
	w := walker{location: "/" + p, analyzer: a.Name(), budget: maxInflated}
	w.archive(zr, path.Base(p), "/"+p, 1)
	return w.pkgs, w.warns, nil
}

// walker collects the packages of one top-level archive and its nested
// archives.
type walker struct {
	location, analyzer string
	budget             int64
	pkgs               []inventory.Package
	seen               map[string]bool
	warns              []string
}

func (w *walker) add(name, version string, licenses []string) {
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if name == "" || version == "" || w.seen[name+"@"+version] {
		return
	}
	w.seen[name+"@"+version] = true
	w.pkgs = append(w.pkgs, inventory.Package{
		Ecosystem: inventory.Maven,
		Name:      name,
		Version:   version,
		Licenses:  licenses,
		Locations: []string{w.location},
		Analyzer:  w.analyzer,
	})
}

// archive reads one (possibly nested) archive; fileName is its base name,
// display the path shown in warnings ("/a.war!/WEB-INF/lib/b.jar").
func (w *walker) archive(zr *zip.Reader, fileName, display string, depth int) {
	var (
		props    []*zip.File
		pomXML   = map[string]*zip.File{} // by directory
		manifest map[string]string
		nested   []*zip.File
	)
	for _, zf := range zr.File {
		name := zf.Name
		switch {
		case strings.HasPrefix(name, "META-INF/maven/") && path.Base(name) == "pom.properties":
			props = append(props, zf)
		case strings.HasPrefix(name, "META-INF/maven/") && path.Base(name) == "pom.xml":
			pomXML[path.Dir(name)] = zf
		case name == "META-INF/MANIFEST.MF":
			data, err := w.readMetadata(zf)
			if err != nil {
				w.warns = append(w.warns, fmt.Sprintf("%s!/%s: %v", display, name, err))
				continue
			}
			manifest = parseManifest(data)
		case isArchive(name) && !zf.FileInfo().IsDir():
			nested = append(nested, zf)
		}
	}
	// The manifest describes the archive itself, so its license belongs
	// to the archive's one artifact, not to the others a fat jar holds.
	bundleLicenses := splitBundleLicense(manifest["Bundle-License"])
	poms := 0
	for _, zf := range props {
		data, err := w.readMetadata(zf)
		if err != nil {
			w.warns = append(w.warns, fmt.Sprintf("%s!/%s: %v", display, zf.Name, err))
			continue
		}
		pp := parseProperties(data)
		if pp["groupId"] == "" || pp["artifactId"] == "" {
			continue
		}
		poms++
		var licenses []string
		if x, ok := pomXML[path.Dir(zf.Name)]; ok {
			if licenses, err = w.pomLicenses(x); err != nil {
				w.warns = append(w.warns, fmt.Sprintf("%s!/%s: %v", display, x.Name, err))
			}
		}
		if len(licenses) == 0 && len(props) == 1 {
			licenses = bundleLicenses
		}
		w.add(pp["groupId"]+":"+pp["artifactId"], pp["version"], licenses)
	}
	if poms == 0 {
		if name, version := fromManifest(manifest, fileName); name != "" {
			w.add(name, version, bundleLicenses)
		}
	}
	if depth >= maxNestedDepth {
		return
	}
	for _, zf := range nested {
		inner := display + "!/" + zf.Name
		data, err := w.inflate(zf, maxNestedSize)
		if err != nil {
			w.warns = append(w.warns, fmt.Sprintf("%s: %v", inner, err))
			continue
		}
		nzr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			w.warns = append(w.warns, fmt.Sprintf("%s: not a zip archive: %v", inner, err))
			continue
		}
		w.archive(nzr, path.Base(zf.Name), inner, depth+1)
	}
}

func (w *walker) readMetadata(zf *zip.File) ([]byte, error) {
	return w.inflate(zf, maxMetadataSize)
}

// inflate reads a zip entry, refusing entries larger than limit and
// charging what it reads to the archive's budget.
func (w *walker) inflate(zf *zip.File, limit int64) ([]byte, error) {
	if zf.UncompressedSize64 > uint64(limit) {
		return nil, fmt.Errorf("entry of %d bytes exceeds the %d-byte limit", zf.UncompressedSize64, limit)
	}
	if int64(zf.UncompressedSize64) > w.budget {
		return nil, errors.New("archive inflates to more than the limit; rest skipped")
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// The header's size can lie; never read past the limit.
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("entry inflates past the %d-byte limit", limit)
	}
	w.budget -= int64(len(data))
	return data, nil
}

// pomLicenses reads the <licenses> a pom.xml declares itself; licenses
// inherited from a parent POM are not resolved.
func (w *walker) pomLicenses(zf *zip.File) ([]string, error) {
	data, err := w.readMetadata(zf)
	if err != nil {
		return nil, err
	}
	// Most POMs inherit their licenses; skip the XML decoding then.
	if !bytes.Contains(data, []byte("<licenses>")) {
		return nil, nil
	}
	var pom struct {
		Licenses []string `xml:"licenses>license>name"`
	}
	if err := xml.Unmarshal(data, &pom); err != nil {
		return nil, fmt.Errorf("parse pom.xml: %w", err)
	}
	var out []string
	for _, l := range pom.Licenses {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// splitBundleLicense reads the OSGi Bundle-License header: comma-separated
// licenses (SPDX ids or URLs), each with optional ";attribute=value"
// parameters.
func splitBundleLicense(v string) []string {
	var out []string
	for _, part := range strings.Split(v, ",") {
		l, _, _ := strings.Cut(part, ";")
		if l = strings.Trim(strings.TrimSpace(l), `"`); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// parseProperties reads the subset of java.util.Properties that Maven
// writes: "key=value" or "key:value" lines and "#" or "!" comments.
func parseProperties(data []byte) map[string]string {
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			continue
		}
		props[strings.TrimSpace(line[:i])] = strings.TrimSpace(line[i+1:])
	}
	return props
}

// parseManifest reads the main section of a JAR manifest: "Name: value"
// headers whose long values continue on lines starting with one space.
func parseManifest(data []byte) map[string]string {
	h := map[string]string{}
	var key string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), maxMetadataSize)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break // the main section ends at the first blank line
		}
		if line[0] == ' ' {
			if key != "" {
				h[key] += line[1:]
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			key = ""
			continue
		}
		key = strings.TrimSpace(k)
		h[key] = strings.TrimSpace(v)
	}
	return h
}

// fileVersion splits "commons-lang3-3.12.0.jar" into the artifact and the
// version that follows the last "-" before a digit.
var fileVersion = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.+?)-(\d[\w.\-+]*)$`) })

// fromManifest names an archive that has no pom.properties. The artifactId
// is the file name without its version; the groupId is
// Implementation-Vendor-Id or, for OSGi bundles, the Bundle-SymbolicName
// without its last segment (bundles are conventionally named
// groupId.artifactId). Without a groupId the name is the artifactId alone.
func fromManifest(m map[string]string, fileName string) (name, version string) {
	base := strings.TrimSuffix(fileName, path.Ext(fileName))
	artifact := base
	if sm := fileVersion().FindStringSubmatch(base); sm != nil {
		artifact, version = sm[1], sm[2]
	}
	for _, k := range []string{"Implementation-Version", "Bundle-Version", "Specification-Version"} {
		if v := m[k]; v != "" {
			version = v
			break
		}
	}
	group := m["Implementation-Vendor-Id"]
	if group == "" {
		sym, _, _ := strings.Cut(m["Bundle-SymbolicName"], ";") // drop directives
		if i := strings.LastIndex(sym, "."); i > 0 {
			group = strings.TrimSpace(sym[:i])
		}
	}
	if version == "" || artifact == "" {
		return "", ""
	}
	if group != "" {
		return group + ":" + artifact, version
	}
	return artifact, version
}
