package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"berth.dev/berth/internal/testpeers"
)

// TestRelease runs scripts/release.sh for this machine's target only (all
// four take minutes on two cores; the script builds them on request) and
// checks what a user downloading the release would: the checksums, the
// signature (with berth and with cosign), a static binary that reports its
// version and commit, and an SBOM made by berth that lists berth's modules.
func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("release targets are linux and darwin")
	}
	cosign := testpeers.Tool(t, "cosign2")
	const version = "v0.0.0-e2e"
	target := runtime.GOOS + "/" + runtime.GOARCH
	name := "berth_" + version + "_" + runtime.GOOS + "_" + runtime.GOARCH
	out := t.TempDir()
	script, err := filepath.Abs("../scripts/release.sh")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-o", out, "--version", version, target}
	imageName := "berth_" + version + "_image.oci.tar"
	if runtime.GOOS == "linux" {
		args = append(args, "--image")
	}
	log := run(t, nil, script, args...)
	t.Logf("release.sh:\n%s", log)

	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	want := []string{"SHA256SUMS", "SHA256SUMS.sig", "berth-release.pub", name + ".cdx.json", name + ".tar.gz"}
	if runtime.GOOS == "linux" {
		want = append(want, imageName)
		slices.Sort(want)
	}
	if !slices.Equal(files, want) {
		t.Fatalf("release files %v, want %v", files, want)
	}

	// Checksums, computed here rather than trusted from the script.
	sums, err := os.ReadFile(filepath.Join(out, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", line)
		}
		data, err := os.ReadFile(filepath.Join(out, file))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(data)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s: checksum %s, listed %s", file, hex.EncodeToString(h[:]), sum)
		}
		listed[file] = true
	}
	if !listed[name+".tar.gz"] || !listed[name+".cdx.json"] || (runtime.GOOS == "linux" && !listed[imageName]) {
		t.Errorf("SHA256SUMS lists %v", listed)
	}

	// The signature, with berth and with cosign.
	sig, pub, sumsPath := filepath.Join(out, "SHA256SUMS.sig"), filepath.Join(out, "berth-release.pub"), filepath.Join(out, "SHA256SUMS")
	run(t, nil, berthBin, "verify-blob", sumsPath, "--key", pub, "--signature", sig)
	home := t.TempDir()
	cosignEnv := []string{"HOME=" + home, "TUF_ROOT=" + filepath.Join(home, "tuf")}
	run(t, cosignEnv, cosign, "verify-blob", "--key", pub, "--signature", sig, "--insecure-ignore-tlog", sumsPath)
	tampered := filepath.Join(t.TempDir(), "SHA256SUMS")
	if err := os.WriteFile(tampered, append(sums, "0000  extra\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runErr(nil, berthBin, "verify-blob", tampered, "--key", pub, "--signature", sig); err == nil {
		t.Errorf("a changed SHA256SUMS verified:\n%s", out)
	}

	// The archive: berth and the README, the binary static and stamped.
	dir := t.TempDir()
	extract(t, filepath.Join(out, name+".tar.gz"), dir)
	bin := filepath.Join(dir, name, "berth")
	if _, err := os.Stat(filepath.Join(dir, name, "README.md")); err != nil {
		t.Errorf("README.md not in the archive: %v", err)
	}
	if runtime.GOOS == "linux" {
		assertStatic(t, bin)
	}
	commit := strings.TrimSpace(run(t, nil, "git", "rev-parse", "HEAD"))
	v := run(t, nil, bin, "version")
	if !strings.HasPrefix(v, "berth "+version+"\n") || !strings.Contains(v, "commit: "+commit) {
		t.Errorf("berth version of the release:\n%s\nwant %s and commit %s", v, version, commit)
	}
	if got := run(t, nil, bin, "--version"); got != v {
		t.Errorf("--version %q differs from version %q", got, v)
	}

	// The SBOM, made by berth, lists the modules berth is built from.
	var bom struct {
		Metadata struct {
			Tools struct {
				Components []struct{ Name string } `json:"components"`
			} `json:"tools"`
		} `json:"metadata"`
		Components []struct {
			Purl string `json:"purl"`
		} `json:"components"`
	}
	raw, err := os.ReadFile(filepath.Join(out, name+".cdx.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &bom); err != nil {
		t.Fatal(err)
	}
	if len(bom.Metadata.Tools.Components) == 0 || bom.Metadata.Tools.Components[0].Name != "berth" {
		t.Errorf("SBOM not made by berth: %+v", bom.Metadata.Tools)
	}
	var purls []string
	for _, c := range bom.Components {
		purls = append(purls, c.Purl)
	}
	for _, want := range []string{"pkg:golang/berth.dev/berth", "pkg:golang/github.com/spf13/cobra@v1.10.2", "pkg:golang/stdlib@"} {
		if !slices.ContainsFunc(purls, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("SBOM lacks %s: %v", want, purls)
		}
	}
	if strings.Contains(string(raw), out) || strings.Contains(string(raw), os.TempDir()+"/") {
		t.Errorf("the SBOM names a path of the build machine")
	}

	if runtime.GOOS == "linux" {
		checkReleaseImage(t, filepath.Join(out, imageName), version, bin)
	}
}

// checkReleaseImage does with the release's container image what its
// README paragraph says: skopeo pushes it to a berth, which scans it on
// push; berth signs it, berth and cosign verify the signature. The binary
// in the image is the archive's, byte for byte.
func checkReleaseImage(t *testing.T, archive, version, archiveBin string) {
	skopeo, crane, cosign := testpeers.Tool(t, "skopeo"), testpeers.Tool(t, "crane"), testpeers.Tool(t, "cosign2")
	lay, err := layout.FromPath(untar(t, archive))
	if err != nil {
		t.Fatal(err)
	}
	outer, err := lay.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	om, err := outer.IndexManifest()
	if err != nil || len(om.Manifests) != 1 || om.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != version {
		t.Fatalf("the image archive's index %+v, %v", om, err)
	}
	indexDigest := om.Manifests[0].Digest
	idx, err := outer.ImageIndex(indexDigest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(hostImage(t, idx))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/berth"}) ||
		cf.Config.Labels["org.opencontainers.image.version"] != version {
		t.Errorf("image config %+v", cf.Config)
	}
	want, err := os.ReadFile(archiveBin)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileInImage(t, img, "usr/local/bin/berth"); !bytes.Equal(got, want) {
		t.Errorf("the image's berth (%d bytes) is not the archive's (%d bytes)", len(got), len(want))
	}

	s := startBerthAuth(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "BERTH_KEY_PASSWORD=release-image-key"}
	if _, stderr, code := berthRun(t, env, s.Password, "login", s.Addr, "-u", "admin", "--password-stdin"); code != 0 {
		t.Fatalf("berth login: %s", stderr)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ref := s.Addr + "/library/berth:" + version
	run(t, env, skopeo, "--policy", policy, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
		"oci-archive:"+archive+":"+version, "docker://"+ref)
	if got := strings.TrimSpace(run(t, env, crane, "digest", "--insecure", ref)); got != indexDigest.String() {
		t.Fatalf("pushed index %s, the archive's %s", got, indexDigest)
	}

	// Scanned from the registry, for this machine's platform: berth's own
	// modules are found (the findings depend on the day's advisories).
	vulndata := testpeers.Shared(t, "vulndata", "osv")
	scanEnv := append(env, "BERTH_DB_SOURCES="+vulndata, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	stdout, stderr, code := berthRun(t, scanEnv, "", "scan", "-q", "-f", "json", "--platform", cf.OS+"/"+cf.Architecture, ref)
	if code != 0 {
		t.Fatalf("berth scan %s: exit %d\n%s", ref, code, stderr)
	}
	var rep struct {
		Inventory struct {
			Packages []struct{ PURL string }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("scan report: %v\n%s", err, stdout)
	}
	var purls []string
	for _, p := range rep.Inventory.Packages {
		purls = append(purls, p.PURL)
	}
	for _, want := range []string{"pkg:golang/berth.dev/berth", "pkg:golang/github.com/google/go-containerregistry@", "pkg:golang/stdlib@"} {
		if !slices.ContainsFunc(purls, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("the scan of berth's image lacks %s: %v", want, purls)
		}
	}

	keys := t.TempDir()
	run(t, env, berthBin, "key", "generate", "--output-key-prefix", filepath.Join(keys, "release"))
	pub := filepath.Join(keys, "release.pub")
	signed := s.Addr + "/library/berth@" + indexDigest.String()
	run(t, env, berthBin, "sign", "--key", filepath.Join(keys, "release.key"), signed)
	run(t, env, berthBin, "verify", "--key", pub, signed)
	run(t, append(env, "COSIGN_PASSWORD="), cosign, "verify", "--key", pub, "--insecure-ignore-tlog", "--allow-http-registry", signed)
}

// hostImage returns the digest of idx's image for this machine.
func hostImage(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == runtime.GOOS && d.Platform.Architecture == runtime.GOARCH {
			return d.Digest
		}
	}
	t.Fatalf("no %s/%s image in %+v", runtime.GOOS, runtime.GOARCH, im.Manifests)
	return v1.Hash{}
}

// fileInImage returns the content of name in img's flattened filesystem.
func fileInImage(t *testing.T, img v1.Image, name string) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the image: %v", name, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// extract unpacks a .tar.gz into dir.
func extract(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s: owner %d/%d %q in the archive, want 0/0", h.Name, h.Uid, h.Gid, h.Uname)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		}
	}
}

// assertStatic fails unless bin is an ELF executable with no interpreter
// and no shared libraries: it runs on any Linux.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter: not static", bin)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %v", bin, libs)
	}
}
