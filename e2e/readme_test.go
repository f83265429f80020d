package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/crane"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"berth.dev/berth/internal/testpeers"
)

// The README's walkthrough, as the test runs it. The commands are the
// README's own, in order, with three changes a machine needs and a reader
// does not:
//   - the port: 127.0.0.1:5000 becomes a free one (other tests, other
//     servers);
//   - the image: Docker Hub's debian:12 becomes a copy of a small test
//     image in a second, local registry (no network here);
//   - `berth serve` runs in the background (a reader opens a second
//     terminal), and the next command waits until it listens;
//
// and `go install ./cmd/berth` is the binary the tests built, on PATH.
const (
	readmeSection = "## Five minutes"
	readmeAddr    = "127.0.0.1:5000"
	readmeImage   = "docker.io/library/debian:12"
)

// readmeCommands returns the shell lines of the README's walkthrough: every
// ```sh block of its section, in order.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in, block := false, false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, readmeSection):
			in = true
		case in && strings.HasPrefix(line, "## "):
			in = false
		case in && line == "```sh":
			block = true
		case in && block && line == "```":
			block = false
		case in && block:
			lines = append(lines, line)
		}
	}
	if len(lines) == 0 {
		t.Fatalf("no ```sh blocks under %q in README.md", readmeSection)
	}
	return lines
}

// walkthroughScript turns the README's lines into the script the test
// runs, and checks that the README still holds the steps the issue asks
// for, in order.
func walkthroughScript(t *testing.T, lines []string, addr, image string) string {
	t.Helper()
	port := addr[strings.LastIndex(addr, ":")+1:]
	var b strings.Builder
	b.WriteString("set -euo pipefail\n")
	b.WriteString("trap 'if [ -n \"${berth_pid:-}\" ]; then kill $berth_pid; wait $berth_pid || true; fi' EXIT\n")
	steps := []string{"go install ./cmd/berth", "berth serve", "berth login", "crane copy", "berth scan", "--exit-code", "berth sign", "cosign verify"}
	next := 0
	for _, line := range lines {
		if next < len(steps) && strings.Contains(line, steps[next]) {
			next++
			// A line can hold two steps (the scan and its gate).
			for next < len(steps) && strings.Contains(line, steps[next]) {
				next++
			}
		}
		if strings.TrimSpace(line) == "go install ./cmd/berth" {
			continue
		}
		line = strings.ReplaceAll(line, readmeAddr, addr)
		line = strings.ReplaceAll(line, readmeImage, image)
		if strings.HasPrefix(line, "berth serve ") {
			b.WriteString(line + " >serve.log 2>&1 &\nberth_pid=$!\n")
			b.WriteString("until (exec 3<>/dev/tcp/127.0.0.1/" + port + ") 2>/dev/null; do sleep 0.1; done\n")
			continue
		}
		b.WriteString(line + "\n")
	}
	if next != len(steps) {
		t.Fatalf("the README's walkthrough lacks %q (or has it out of order): it must start, log in, push with crane, scan with a gate, sign and verify with cosign", steps[next])
	}
	return b.String()
}

// readmeImageFixture pushes a small image with a vulnerable npm package
// to a registry of its own, to stand in for Docker Hub's image.
func readmeImageFixture(t *testing.T) string {
	t.Helper()
	upstream := startBerth(t)
	layer, err := crane.Layer(map[string][]byte{
		"usr/lib/node_modules/lodash/package.json": []byte(`{"name":"lodash","version":"4.17.15"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(upstream.Addr + "/library/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// TestReadmeWalkthrough runs the README's five minutes from a fresh data
// directory and a fresh home: start, log in, push with crane, scan with a
// gate, sign, verify with berth and with cosign.
func TestReadmeWalkthrough(t *testing.T) {
	craneBin, cosignBin := testpeers.Tool(t, "crane"), testpeers.Tool(t, "cosign2")
	osvFeed := testpeers.Shared(t, "vulndata", "osv")
	image := readmeImageFixture(t)
	addr := freeAddr(t)
	script := walkthroughScript(t, readmeCommands(t), addr, image)

	work := t.TempDir()
	bin := filepath.Join(work, "bin")
	home := filepath.Join(work, "home")
	dir := filepath.Join(work, "clone")
	for _, d := range []string{bin, home, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, target := range map[string]string{"berth": berthBin, "crane": craneBin, "cosign": cosignBin} {
		if err := os.Symlink(target, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A newcomer's environment: nothing of berth's or docker's set, a home
	// of its own; the database's sources are the test feeds, where a
	// reader's come from osv.dev.
	env := []string{"HOME=" + home, "PATH=" + bin + ":/usr/bin:/bin", "XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "BERTH_DB_SOURCES=" + osvFeed + "#npm", "TMPDIR=" + os.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	// Its own process group, so that nothing it started outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	serveLog, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
	if err != nil {
		t.Fatalf("the README's walkthrough failed: %v\nscript:\n%s\noutput:\n%s\nberth serve:\n%s", err, script, out.String(), serveLog)
	}
	got := out.String()
	t.Logf("the walkthrough printed:\n%s", got)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`logged in to ` + regexp.QuoteMeta(addr) + ` as admin`),
		regexp.MustCompile(`CVE-2020-8203`),           // the scan's table
		regexp.MustCompile(`the gate failed: exit 2`), // HIGH findings remain
		regexp.MustCompile(`signed ` + regexp.QuoteMeta(addr) + `/team-a/app@sha256:[0-9a-f]{64}`),
		regexp.MustCompile(`"docker-manifest-digest":"sha256:[0-9a-f]{64}"`), // berth verify's payload
		regexp.MustCompile(`The following checks were performed`),            // cosign verify
	} {
		if !want.MatchString(got) {
			t.Errorf("the walkthrough's output lacks %s:\n%s", want, got)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "berth-data", "meta.db")); err != nil {
		t.Errorf("no data directory where the README says: %v", err)
	}
}
