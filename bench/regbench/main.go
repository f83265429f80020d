// Command regbench measures OCI registries side by side on loopback: manifest
// GET rate and latency at several concurrencies, blob push and pull
// throughput, and the servers' memory. bench/registry.sh starts berth and
// distribution's registry and runs it; it prints each figure for every target
// and the ratio of the first target to the second.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

type target struct {
	name  string
	addr  string
	pid   int
	token *tokenSource // nil: no credentials
}

// result holds one figure per target name.
type result struct {
	metric string
	unit   string
	higher bool // higher is better
	values map[string][]float64
}

func main() {
	var (
		targetsFlag = flag.String("targets", "", "name=host:port[:pid],… (the first is compared with the second)")
		duration    = flag.Duration("duration", 5*time.Second, "length of each manifest GET run")
		rounds      = flag.Int("rounds", 3, "alternating rounds; the median is reported")
		bigSize     = flag.Int("big", 256<<20, "size of the large blob in bytes")
		smallCount  = flag.Int("small", 200, "number of small blobs")
		smallSize   = flag.Int("small-size", 32<<10, "size of each small blob in bytes")
		authFlag    = flag.String("auth", "", "name=user:password,… targets that need credentials: requests carry a bearer token from the registry's token endpoint")
	)
	flag.Parse()
	targets, err := parseTargets(*targetsFlag)
	if err == nil {
		err = parseAuth(*authFlag, targets)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "regbench:", err)
		os.Exit(2)
	}
	if err := runAll(targets, *duration, *rounds, *bigSize, *smallCount, *smallSize); err != nil {
		fmt.Fprintln(os.Stderr, "regbench:", err)
		os.Exit(1)
	}
}

func parseTargets(s string) ([]target, error) {
	var out []target
	for _, part := range strings.Split(s, ",") {
		name, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("target %q: want name=host:port[:pid]", part)
		}
		t := target{name: name, addr: rest}
		if fields := strings.Split(rest, ":"); len(fields) == 3 {
			pid, err := strconv.Atoi(fields[2])
			if err != nil {
				return nil, fmt.Errorf("target %q: pid: %w", part, err)
			}
			t.addr, t.pid = fields[0]+":"+fields[1], pid
		}
		out = append(out, t)
	}
	if len(out) < 2 {
		return nil, errors.New("need at least two targets")
	}
	return out, nil
}

func newClient(conns int, targets []target) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	tr.DisableCompression = true
	tokens := map[string]*tokenSource{}
	for _, t := range targets {
		if t.token != nil {
			tokens[t.addr] = t.token
		}
	}
	if len(tokens) == 0 {
		return &http.Client{Transport: tr}
	}
	return &http.Client{Transport: &bearer{next: tr, tokens: tokens}}
}

// parseAuth gives the named targets a token source.
func parseAuth(s string, targets []target) error {
	if s == "" {
		return nil
	}
	for _, part := range strings.Split(s, ",") {
		name, creds, ok := strings.Cut(part, "=")
		user, password, ok2 := strings.Cut(creds, ":")
		i := slices.IndexFunc(targets, func(t target) bool { return t.name == name })
		if !ok || !ok2 || i < 0 {
			return fmt.Errorf("-auth %q: want name=user:password naming a target", part)
		}
		targets[i].token = &tokenSource{user: user, password: password, tokens: map[string]cachedToken{}}
	}
	return nil
}

// bearer adds a registry token to the requests for the hosts it has a
// token source for, one token per repository with pull and push, as
// docker asks after its first 401.
type bearer struct {
	next   http.RoundTripper
	tokens map[string]*tokenSource
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	ts := b.tokens[req.URL.Host]
	repo := repositoryOf(req.URL.Path)
	if ts == nil || repo == "" {
		return b.next.RoundTrip(req)
	}
	tok, err := ts.get(b.next, req.URL.Host, repo)
	if err != nil {
		return nil, err
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+tok)
	return b.next.RoundTrip(req)
}

// repositoryOf finds the repository in a distribution API path.
func repositoryOf(path string) string {
	p, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return ""
	}
	for _, endpoint := range []string{"/manifests/", "/blobs/"} {
		if i := strings.Index(p, endpoint); i > 0 {
			return p[:i]
		}
	}
	return ""
}

// tokenSource fetches tokens with Basic credentials from the realm the
// registry's challenge names, and fetches a new one when half its life is
// gone.
type tokenSource struct {
	user, password string

	mu     sync.Mutex
	tokens map[string]cachedToken // by repository
}

type cachedToken struct {
	token string
	renew time.Time
}

var challengeParam = regexp.MustCompile(`(realm|service)="([^"]*)"`)

func (ts *tokenSource) get(rt http.RoundTripper, host, repo string) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if t, ok := ts.tokens[repo]; ok && time.Now().Before(t.renew) {
		return t.token, nil
	}
	c := &http.Client{Transport: rt}
	resp, err := c.Get("http://" + host + "/v2/")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	params := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(resp.Header.Get("WWW-Authenticate"), -1) {
		params[m[1]] = m[2]
	}
	if params["realm"] == "" {
		return "", fmt.Errorf("%s: no bearer challenge on /v2/ (%s)", host, resp.Status)
	}
	q := url.Values{"service": {params["service"]}, "scope": {"repository:" + repo + ":pull,push"}}
	req, _ := http.NewRequest(http.MethodGet, params["realm"]+"?"+q.Encode(), nil)
	req.SetBasicAuth(ts.user, ts.password)
	resp, err = c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Token == "" {
		return "", fmt.Errorf("%s: token: %s %v", host, resp.Status, err)
	}
	ts.tokens[repo] = cachedToken{token: body.Token, renew: time.Now().Add(time.Duration(body.ExpiresIn) * time.Second / 2)}
	return body.Token, nil
}

func runAll(targets []target, dur time.Duration, rounds, bigSize, smallCount, smallSize int) error {
	ctx := context.Background()
	var results []*result
	add := func(metric, unit string, higher bool) *result {
		r := &result{metric: metric, unit: unit, higher: higher, values: map[string][]float64{}}
		results = append(results, r)
		return r
	}
	idle := add("idle RSS", "MB", false)
	for _, t := range targets {
		if t.pid > 0 {
			idle.values[t.name] = append(idle.values[t.name], rssMB(t.pid, "VmRSS"))
		}
	}

	client := newClient(64, targets)
	digests := map[string]string{}
	for _, t := range targets {
		d, err := pushImage(ctx, client, t.addr, "bench/img", "latest")
		if err != nil {
			return fmt.Errorf("%s: push test image: %w", t.name, err)
		}
		digests[t.name] = d
	}

	big := randomBytes(bigSize)
	small := make([][]byte, smallCount)
	for i := range small {
		small[i] = randomBytes(smallSize)
	}

	for _, conc := range []int{1, 16, 64} {
		byDigest := add(fmt.Sprintf("manifest GET by digest c=%d", conc), "req/s", true)
		byDigestP50 := add(fmt.Sprintf("  p50 c=%d", conc), "µs", false)
		byDigestP99 := add(fmt.Sprintf("  p99 c=%d", conc), "µs", false)
		byDigestCPU := add(fmt.Sprintf("  server CPU c=%d", conc), "µs/req", false)
		byTag := add(fmt.Sprintf("manifest GET by tag c=%d", conc), "req/s", true)
		byTagP50 := add(fmt.Sprintf("  p50 c=%d", conc), "µs", false)
		byTagP99 := add(fmt.Sprintf("  p99 c=%d", conc), "µs", false)
		byTagCPU := add(fmt.Sprintf("  server CPU c=%d", conc), "µs/req", false)
		c := newClient(conc, targets)
		for round := 0; round < rounds; round++ {
			for _, t := range order(targets, round) {
				for _, ref := range []string{digests[t.name], "latest"} {
					cpuBefore := cpuMicros(t.pid)
					rate, p50, p99, err := manifestLoad(ctx, c, t.addr, "bench/img", ref, conc, dur)
					if err != nil {
						return fmt.Errorf("%s: manifest load: %w", t.name, err)
					}
					rr, r50, r99, rcpu := byTag, byTagP50, byTagP99, byTagCPU
					if strings.HasPrefix(ref, "sha256:") {
						rr, r50, r99, rcpu = byDigest, byDigestP50, byDigestP99, byDigestCPU
					}
					rr.values[t.name] = append(rr.values[t.name], rate)
					r50.values[t.name] = append(r50.values[t.name], p50)
					r99.values[t.name] = append(r99.values[t.name], p99)
					// The server's CPU time per request is steadier than
					// the rate on a shared machine.
					if t.pid > 0 && rate > 0 {
						rcpu.values[t.name] = append(rcpu.values[t.name], (cpuMicros(t.pid)-cpuBefore)/(rate*dur.Seconds()))
					}
				}
			}
		}
	}

	bigPush := add(fmt.Sprintf("blob push %d MiB", bigSize>>20), "MB/s", true)
	bigPull := add(fmt.Sprintf("blob pull %d MiB", bigSize>>20), "MB/s", true)
	smallPush := add(fmt.Sprintf("push %d small blobs (c=8)", smallCount), "blobs/s", true)
	smallPull := add(fmt.Sprintf("pull %d small blobs (c=8)", smallCount), "blobs/s", true)
	for round := 0; round < rounds; round++ {
		for _, t := range order(targets, round) {
			repo := fmt.Sprintf("bench/blobs%d", round)
			start := time.Now()
			d, err := pushBlob(ctx, client, t.addr, repo, big)
			if err != nil {
				return fmt.Errorf("%s: push big blob: %w", t.name, err)
			}
			bigPush.values[t.name] = append(bigPush.values[t.name], mbps(len(big), time.Since(start)))
			start = time.Now()
			if err := pullBlob(ctx, client, t.addr, repo, d, int64(len(big))); err != nil {
				return fmt.Errorf("%s: pull big blob: %w", t.name, err)
			}
			bigPull.values[t.name] = append(bigPull.values[t.name], mbps(len(big), time.Since(start)))

			start = time.Now()
			ds, err := parallel(small, 8, func(b []byte) (string, error) { return pushBlob(ctx, client, t.addr, repo, b) })
			if err != nil {
				return fmt.Errorf("%s: push small blobs: %w", t.name, err)
			}
			smallPush.values[t.name] = append(smallPush.values[t.name], float64(len(small))/time.Since(start).Seconds())
			start = time.Now()
			if _, err := parallel(ds, 8, func(d string) (string, error) {
				return "", pullBlob(ctx, client, t.addr, repo, d, int64(smallSize))
			}); err != nil {
				return fmt.Errorf("%s: pull small blobs: %w", t.name, err)
			}
			smallPull.values[t.name] = append(smallPull.values[t.name], float64(len(small))/time.Since(start).Seconds())
		}
	}

	peak := add("peak RSS", "MB", false)
	for _, t := range targets {
		if t.pid > 0 {
			peak.values[t.name] = append(peak.values[t.name], rssMB(t.pid, "VmHWM"))
		}
	}
	printTable(os.Stdout, targets, results)
	return nil
}

// order alternates which target goes first, so neither always runs on a
// warmer machine.
func order(targets []target, round int) []target {
	out := slices.Clone(targets)
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

func printTable(w io.Writer, targets []target, results []*result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "metric\tunit\t")
	for _, t := range targets {
		fmt.Fprintf(tw, "%s\t", t.name)
	}
	fmt.Fprintf(tw, "%s/%s\t\n", targets[0].name, targets[1].name)
	for _, r := range results {
		a, b := median(r.values[targets[0].name]), median(r.values[targets[1].name])
		if a == 0 && b == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t", r.metric, r.unit)
		for _, t := range targets {
			fmt.Fprintf(tw, "%.1f\t", median(r.values[t.name]))
		}
		ratio := "-"
		if b != 0 {
			ratio = fmt.Sprintf("%.2f×", a/b)
		}
		fmt.Fprintf(tw, "%s\t\n", ratio)
	}
	tw.Flush()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func mbps(n int, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func rssMB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuMicros is a process's user and system CPU time in microseconds, from
// /proc/PID/stat (in clock ticks of 10 ms); 0 when unknown.
func cpuMicros(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; count from after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) * 1e4
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// pushBlob uploads b with a POST that opens a session and a PUT that closes
// it, the two-step monolithic upload every registry supports.
func pushBlob(ctx context.Context, c *http.Client, addr, repo string, b []byte) (string, error) {
	d := digestOf(b)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v2/"+repo+"/blobs/uploads/", nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	if strings.HasPrefix(loc, "/") {
		loc = "http://" + addr + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, loc+sep+"digest="+d, bytes.NewReader(b))
	req.ContentLength = int64(len(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = c.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT upload: %s", resp.Status)
	}
	return d, nil
}

func pullBlob(ctx context.Context, c *http.Client, addr, repo, d string, size int64) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v2/"+repo+"/blobs/"+d, nil)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != size {
		return fmt.Errorf("GET blob: %s, %d bytes", resp.Status, n)
	}
	return nil
}

func pushImage(ctx context.Context, c *http.Client, addr, repo, tag string) (string, error) {
	layer := randomBytes(1024)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(layer) + `"]}}`)
	for _, b := range [][]byte{layer, config} {
		if _, err := pushBlob(ctx, c, addr, repo, b); err != nil {
			return "", err
		}
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digestOf(config), "size": len(config)},
		"layers":        []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digestOf(layer), "size": len(layer)}},
	})
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("PUT manifest: %s", resp.Status)
	}
	return digestOf(manifest), nil
}

// manifestLoad GETs one manifest from conc goroutines for dur and returns the
// rate and the 50th and 99th percentile latencies in microseconds.
func manifestLoad(ctx context.Context, c *http.Client, addr, repo, ref string, conc int, dur time.Duration) (rate, p50, p99 float64, err error) {
	url := "http://" + addr + "/v2/" + repo + "/manifests/" + ref
	deadline := time.Now().Add(dur)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<14)
			for time.Now().Before(deadline) {
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				resp, err := c.Do(req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					firstErr.CompareAndSwap(nil, fmt.Errorf("GET %s: %s", url, resp.Status))
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return 0, 0, 0, e
	}
	elapsed := time.Since(start)
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		return float64(latencies[int(p*float64(len(latencies)-1))].Microseconds())
	}
	return float64(len(latencies)) / elapsed.Seconds(), pct(0.50), pct(0.99), nil
}

// parallel applies f to every item with conc workers and returns the results
// in order.
func parallel[T any](items []T, conc int, f func(T) (string, error)) ([]string, error) {
	out := make([]string, len(items))
	errs := make([]error, len(items))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				out[i], errs[i] = f(items[i])
			}
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}
