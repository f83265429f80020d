// Command scaleout measures berth scaled out on PostgreSQL and S3
// (bench/scaleout.sh starts the services and the replicas):
//
//	scaleout replicas -targets host:port:pid,...   manifest GET rate over 1..N replicas, with CPU per request
//	scaleout gc -pg URL -s3 URL -n 100000          garbage collection of n unreferenced blobs on S3
//	scaleout meta -pg URL -repos 100000 -tags 10   catalog and tag-list pages at the start, middle and end
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/blob/s3"
	"berth.dev/berth/internal/meta/postgres"
	"berth.dev/berth/internal/registry/gc"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: scaleout replicas|gc|meta [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "replicas":
		err = replicas(os.Args[2:])
	case "gc":
		err = collect(os.Args[2:])
	case "meta":
		err = metaPages(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scaleout:", err)
		os.Exit(1)
	}
}

// --- replicas ---

type replica struct {
	addr string
	pid  int
}

// cpuTicks returns a process's user+system time in clock ticks (1/100 s).
func cpuTicks(pid int) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u + st
}

// machineTicks returns the machine's busy time in clock ticks, all CPUs.
func machineTicks() float64 {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])[1:]
	var busy float64
	for i, v := range f {
		n, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy
}

func replicas(args []string) error {
	fs := flag.NewFlagSet("replicas", flag.ExitOnError)
	targets := fs.String("targets", "", "host:port:pid,… of the replicas")
	dur := fs.Duration("duration", 5*time.Second, "length of each run")
	conc := fs.Int("c", 32, "concurrent clients")
	rounds := fs.Int("rounds", 3, "rounds per replica count; the median is reported")
	fs.Parse(args)
	var rs []replica
	for _, t := range strings.Split(*targets, ",") {
		i := strings.LastIndexByte(t, ':')
		pid, err := strconv.Atoi(t[i+1:])
		if i < 0 || err != nil {
			return fmt.Errorf("target %q: want host:port:pid", t)
		}
		rs = append(rs, replica{addr: t[:i], pid: pid})
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}}
	ref, err := pushImage(client, rs[0].addr)
	if err != nil {
		return err
	}
	fmt.Printf("manifest GET by tag, %d clients spread over the replicas, %s runs, median of %d\n", *conc, *dur, *rounds)
	fmt.Println("replicas\treq/s\tberth CPU µs/req\tmachine CPU µs/req\treq per berth CPU-s")
	for n := 1; n <= len(rs); n++ {
		var rates, berthCPU, machineCPU []float64
		for range *rounds {
			var count atomic.Int64
			var failed atomic.Int64
			b0, m0 := 0.0, machineTicks()
			for _, r := range rs[:n] {
				b0 += cpuTicks(r.pid)
			}
			start := time.Now()
			deadline := start.Add(*dur)
			var wg sync.WaitGroup
			for c := range *conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					u := "http://" + rs[c%n].addr + ref
					for time.Now().Before(deadline) {
						req, _ := http.NewRequest("GET", u, nil)
						req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
						resp, err := client.Do(req)
						if err != nil {
							failed.Add(1)
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 {
							failed.Add(1)
							continue
						}
						count.Add(1)
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b1, m1 := 0.0, machineTicks()
			for _, r := range rs[:n] {
				b1 += cpuTicks(r.pid)
			}
			if failed.Load() > 0 {
				return fmt.Errorf("%d requests failed", failed.Load())
			}
			reqs := float64(count.Load())
			rates = append(rates, reqs/elapsed.Seconds())
			berthCPU = append(berthCPU, (b1-b0)*1e4/reqs) // ticks are 10 ms: µs per request
			machineCPU = append(machineCPU, (m1-m0)*1e4/reqs)
		}
		rate, bc, mc := median(rates), median(berthCPU), median(machineCPU)
		fmt.Printf("%d\t%.0f\t%.1f\t%.1f\t%.0f\n", n, rate, bc, mc, 1e6/bc)
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// pushImage pushes a small image to addr and returns the manifest's path
// by tag.
func pushImage(c *http.Client, addr string) (string, error) {
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := make([]byte, 4096)
	rand.Read(layer)
	for _, b := range [][]byte{config, layer} {
		resp, err := c.Post("http://"+addr+"/v2/bench/app/blobs/uploads/?digest="+digest.FromBytes(b).String(), "application/octet-stream", bytes.NewReader(b))
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			return "", fmt.Errorf("push blob: %s", resp.Status)
		}
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest.FromBytes(config), "size": len(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.FromBytes(layer), "size": len(layer)}}})
	req, _ := http.NewRequest("PUT", "http://"+addr+"/v2/bench/app/manifests/v1", bytes.NewReader(m))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", fmt.Errorf("push manifest: %s", resp.Status)
	}
	return "/v2/bench/app/manifests/v1", nil
}

// --- gc ---

func collect(args []string) error {
	fs := flag.NewFlagSet("gc", flag.ExitOnError)
	pg := fs.String("pg", "", "PostgreSQL URL of an empty database")
	s3url := fs.String("s3", "", "http://ACCESS:SECRET@HOST:PORT of the S3 server")
	bucket := fs.String("bucket", "berth-gc-bench", "bucket to create and fill")
	n := fs.Int("n", 100000, "unreferenced blobs")
	workers := fs.Int("workers", 32, "concurrent object writes while filling")
	fs.Parse(args)
	ctx := context.Background()
	u, err := url.Parse(*s3url)
	if err != nil || u.User == nil {
		return fmt.Errorf("-s3: want http://ACCESS:SECRET@HOST:PORT")
	}
	secret, _ := u.User.Password()
	raw, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(u.User.Username(), secret, ""),
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	if err := raw.MakeBucket(ctx, *bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return err
	}
	ms, err := postgres.Open(ctx, *pg)
	if err != nil {
		return err
	}
	defer ms.Close()
	bs, err := s3.Open(ctx, s3.Config{Bucket: *bucket, Endpoint: u.Scheme + "://" + u.Host, Region: "us-east-1",
		AccessKey: u.User.Username(), SecretKey: secret})
	if err != nil {
		return err
	}
	fmt.Printf("filling: %d objects and rows\n", *n)
	start := time.Now()
	ds := make([]string, *n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var fillErr atomic.Value
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return
				}
				content := []byte("unreferenced blob " + strconv.Itoa(i))
				d := digest.FromBytes(content)
				ds[i] = d.String()
				key := "blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded()
				if _, err := raw.PutObject(ctx, *bucket, key, bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
					fillErr.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := fillErr.Load().(error); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, *pg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows := make([][]any, len(ds))
	for i, d := range ds {
		rows[i] = []any{d, int64(len("unreferenced blob ") + len(strconv.Itoa(i))), int64(0)}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"blobs"}, []string{"digest", "size", "last_used"}, pgx.CopyFromRows(rows)); err != nil {
		return err
	}
	fmt.Printf("filled in %s\n", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	rep, err := gc.Run(ctx, ms, bs, gc.Options{Grace: time.Minute, UploadTTL: 24 * time.Hour})
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Printf("gc: %d blobs deleted in %s: %.0f deletes/s\n", rep.Blobs, elapsed.Round(time.Millisecond), float64(rep.Blobs)/elapsed.Seconds())
	left := 0
	for o := range raw.ListObjects(ctx, *bucket, minio.ListObjectsOptions{Prefix: "blobs/", Recursive: true}) {
		if o.Err != nil {
			return o.Err
		}
		left++
	}
	fmt.Printf("objects left under blobs/: %d\n", left)
	return raw.RemoveBucket(ctx, *bucket)
}

// --- meta ---

func metaPages(args []string) error {
	fs := flag.NewFlagSet("meta", flag.ExitOnError)
	pg := fs.String("pg", "", "PostgreSQL URL of an empty database")
	repos := fs.Int("repos", 100000, "repositories")
	tags := fs.Int("tags", 10, "tags per repository")
	big := fs.Int("big", 100000, "tags of one more repository, bench/big")
	page := fs.Int("page", 100, "page size")
	fs.Parse(args)
	ctx := context.Background()
	ms, err := postgres.Open(ctx, *pg)
	if err != nil {
		return err
	}
	defer ms.Close()
	conn, err := pgx.Connect(ctx, *pg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	start := time.Now()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO repositories (name, created_at) SELECT 'bench/repo' || lpad(i::text, 7, '0'), 0 FROM generate_series(1, $1::int) i`, []any{*repos}},
		{`INSERT INTO repositories (name, created_at) VALUES ('bench/big', 0)`, nil},
		{`INSERT INTO manifests (repository_id, digest, media_type, artifact_type, size, content, pushed_at)
			SELECT id, 'sha256:' || md5(id::text) || md5(name), 'application/vnd.oci.image.manifest.v1+json', '', 2, '{}'::bytea, 0 FROM repositories`, nil},
		{`INSERT INTO tags (repository_id, name, digest, updated_at)
			SELECT m.repository_id, 'v' || lpad(t::text, 6, '0'), m.digest, 0 FROM manifests m, generate_series(1, $1::int) t
			WHERE m.repository_id <> (SELECT id FROM repositories WHERE name = 'bench/big')`, []any{*tags}},
		{`INSERT INTO tags (repository_id, name, digest, updated_at)
			SELECT m.repository_id, 'v' || lpad(t::text, 7, '0'), m.digest, 0 FROM manifests m, generate_series(1, $1::int) t
			WHERE m.repository_id = (SELECT id FROM repositories WHERE name = 'bench/big')`, []any{*big}},
		{`ANALYZE`, nil},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("fill: %w", err)
		}
	}
	fmt.Printf("%d repositories, %d tags, filled in %s\n", *repos+1, *repos**tags+*big, time.Since(start).Round(time.Millisecond))
	timeIt := func(what string, f func() (int, error)) error {
		var times []float64
		n := 0
		for range 21 {
			t := time.Now()
			var err error
			if n, err = f(); err != nil {
				return err
			}
			times = append(times, float64(time.Since(t).Microseconds()))
		}
		fmt.Printf("%-44s %4d names  %7.0f µs (median of 21)\n", what, n, median(times))
		return nil
	}
	name := func(i int) string { return fmt.Sprintf("bench/repo%07d", i) }
	for _, c := range []struct {
		what string
		f    func() (int, error)
	}{
		{"catalog, first page", func() (int, error) { r, err := ms.Repositories(ctx, "", *page); return len(r), err }},
		{"catalog, page after the middle", func() (int, error) { r, err := ms.Repositories(ctx, name(*repos/2), *page); return len(r), err }},
		{"catalog, page near the end", func() (int, error) { r, err := ms.Repositories(ctx, name(*repos-*page/2), *page); return len(r), err }},
		{"tags of a repository of " + strconv.Itoa(*tags), func() (int, error) { r, err := ms.Tags(ctx, name(*repos/2), "", *page); return len(r), err }},
		{"tags of bench/big, first page", func() (int, error) { r, err := ms.Tags(ctx, "bench/big", "", *page); return len(r), err }},
		{"tags of bench/big, page after the middle", func() (int, error) {
			r, err := ms.Tags(ctx, "bench/big", fmt.Sprintf("v%07d", *big/2), *page)
			return len(r), err
		}},
		{"tags of bench/big, page near the end", func() (int, error) {
			r, err := ms.Tags(ctx, "bench/big", fmt.Sprintf("v%07d", *big-*page/2), *page)
			return len(r), err
		}},
	} {
		if err := timeIt(c.what, c.f); err != nil {
			return err
		}
	}
	return nil
}
