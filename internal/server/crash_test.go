package server

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// berthProcess is `berth serve` running as a child process.
type berthProcess struct {
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
}

func startBerth(t *testing.T, bin, data string) *berthProcess {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := &berthProcess{base: "http://" + addr, logs: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, "serve", "--addr", addr, "--data", data, "--log-level", "warn", "--no-auth")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	t.Fatalf("berth did not become ready:\n%s", p.logs)
	return nil
}

// crashPush is one client's image and how far its push got.
type crashPush struct {
	repo     string
	blobs    [][]byte
	manifest []byte
	done     bool // the manifest PUT was acknowledged
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// push uploads the blobs in 64 KiB chunks, then the manifest, stopping at
// the first failure (the server being killed).
func (c *crashPush) push(base string) {
	client := &http.Client{Timeout: time.Minute}
	send := func(method, url string, body []byte, headers ...string) (*http.Response, bool) {
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			return nil, false
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, true
	}
	for _, b := range c.blobs {
		resp, ok := send("POST", base+"/v2/"+c.repo+"/blobs/uploads/", nil)
		if !ok || resp.StatusCode != http.StatusAccepted {
			return
		}
		loc := resp.Header.Get("Location")
		for off := 0; off < len(b); off += 64 << 10 {
			end := min(off+64<<10, len(b))
			resp, ok = send("PATCH", base+loc, b[off:end], "Content-Range", fmt.Sprintf("%d-%d", off, end-1))
			if !ok || resp.StatusCode != http.StatusAccepted {
				return
			}
			loc = resp.Header.Get("Location")
		}
		resp, ok = send("PUT", base+loc+"?digest="+digest.FromBytes(b).String(), nil)
		if !ok || resp.StatusCode != http.StatusCreated {
			return
		}
	}
	resp, ok := send("PUT", base+"/v2/"+c.repo+"/manifests/latest", c.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	c.done = ok && resp.StatusCode == http.StatusCreated
}

// kill -9 during 50 parallel pushes, then a restart: no partial blob is
// ever served, every acknowledged push is intact, and berth fsck finds no
// problem.
func TestKill9DuringParallelPushes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the berth binary and kills it during parallel pushes (scripts/test.sh, as CI runs, does not pass -short)")
	}
	bin := filepath.Join(t.TempDir(), "berth")
	if out, err := exec.Command("go", "build", "-o", bin, "berth.dev/berth/cmd/berth").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := t.TempDir()
	proc := startBerth(t, bin, data)

	pushes := make([]*crashPush, 50)
	for i := range pushes {
		config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","n":%d}`, i))
		layers := [][]byte{randomBytes(t, 200<<10+i), randomBytes(t, 600<<10+i)}
		var descs []string
		for _, l := range layers {
			descs = append(descs, `{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"`+digest.FromBytes(l).String()+`","size":`+strconv.Itoa(len(l))+`}`)
		}
		manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
			digest.FromBytes(config).String() + `","size":` + strconv.Itoa(len(config)) + `},"layers":[` + strings.Join(descs, ",") + `]}`)
		pushes[i] = &crashPush{repo: fmt.Sprintf("crash/img%d", i), blobs: append([][]byte{config}, layers...), manifest: manifest}
	}

	var finished atomic.Int64
	var wg sync.WaitGroup
	for _, p := range pushes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.push(proc.base)
			if p.done {
				finished.Add(1)
			}
		}()
	}
	// Kill once some pushes are complete and the rest are in flight.
	for finished.Load() < 10 {
		time.Sleep(time.Millisecond)
	}
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	proc.cmd.Wait()
	wg.Wait()
	acknowledged := 0
	for _, p := range pushes {
		if p.done {
			acknowledged++
		}
	}
	t.Logf("%d of %d pushes were acknowledged before kill -9", acknowledged, len(pushes))
	if acknowledged == len(pushes) {
		t.Fatal("every push finished before the kill; the test proves nothing")
	}

	proc = startBerth(t, bin, data)
	get := func(path string) (int, []byte) {
		resp, err := http.Get(proc.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for _, p := range pushes {
		for _, b := range p.blobs {
			d := digest.FromBytes(b)
			status, got := get("/v2/" + p.repo + "/blobs/" + d.String())
			switch {
			case status == http.StatusOK && digest.FromBytes(got) != d:
				t.Errorf("%s: blob %s served with %d bytes of other content", p.repo, d, len(got))
			case status != http.StatusOK && status != http.StatusNotFound:
				t.Errorf("%s: blob %s answered %d", p.repo, d, status)
			case p.done && status != http.StatusOK:
				t.Errorf("%s: acknowledged push lost blob %s (%d)", p.repo, d, status)
			}
		}
		status, got := get("/v2/" + p.repo + "/manifests/latest")
		if p.done && (status != http.StatusOK || !bytes.Equal(got, p.manifest)) {
			t.Errorf("%s: acknowledged manifest answered %d", p.repo, status)
		}
	}
	// The offline commands refuse a directory a server holds.
	out, err := exec.Command(bin, "gc", "--data", data).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") || !strings.Contains(string(out), "SIGUSR1") {
		t.Errorf("berth gc beside a running server: %v\n%s", err, out)
	}
	proc.cmd.Process.Signal(syscall.SIGTERM)
	if err := proc.cmd.Wait(); err != nil {
		t.Errorf("berth serve after SIGTERM: %v\n%s", err, proc.logs)
	}
	out, err = exec.Command(bin, "fsck", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": 0 problems") {
		t.Errorf("berth fsck: %v\n%s", err, out)
	}
	t.Logf("fsck: %s", bytes.TrimSpace(out))
	// Collecting everything collectable keeps the acknowledged images and
	// leaves the store consistent.
	out, err = exec.Command(bin, "gc", "--data", data, "--grace", "0s", "--untagged", "--log-level", "warn").CombinedOutput()
	if err != nil {
		t.Fatalf("berth gc: %v\n%s", err, out)
	}
	t.Logf("gc: %s", bytes.TrimSpace(out))
	out, err = exec.Command(bin, "fsck", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": 0 problems") || !strings.Contains(string(out), fmt.Sprintf("and %d manifests", acknowledged)) {
		t.Errorf("berth fsck after gc: %v\n%s", err, out)
	}
}
