// Package testpeers gives tests what lies outside the repository: the real
// services the scale-out backends run on (a fresh PostgreSQL database or S3
// bucket per test, on the throwaway servers scripts/services.sh starts;
// scripts/test.sh exports BERTH_TEST_POSTGRES and BERTH_TEST_S3), the peer
// tools scripts/peers.sh installs (Tool), and the shared fixtures in
// ../shared (Shared).
//
// Without a service or a tool a test is skipped with the reason and how to
// get it, unless BERTH_REQUIRE_PEERS is set (as scripts/test.sh does): then
// it fails, so a CI run without its peers cannot pass by testing nothing
// (Missing). A missing shared fixture always fails the test.
package testpeers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Environment variables scripts/services.sh prints.
const (
	PostgresEnv = "BERTH_TEST_POSTGRES"
	S3Env       = "BERTH_TEST_S3"
)

func missing(t testing.TB, env, what string) {
	t.Helper()
	Missing(t, what+" ("+env+" is not set)", "run the tests through scripts/test.sh, which starts one, or eval \"$(scripts/services.sh start DIR)\"")
}

func name(prefix string) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// Postgres creates an empty database for the test, dropped when it ends,
// and returns its connection URL.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(PostgresEnv)
	if admin == "" {
		missing(t, PostgresEnv, "PostgreSQL server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL (%s): %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	db := name("berth_test_")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", db, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", db, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	u.Path = "/" + db
	return u.String()
}

// S3Server is the test S3 server: its endpoint URL and credentials.
type S3Server struct {
	Endpoint  string // http://host:port
	AccessKey string
	SecretKey string
}

// S3 returns the test S3 server, skipping or failing the test as the
// package comment says when there is none.
func S3(t testing.TB) S3Server {
	t.Helper()
	raw := os.Getenv(S3Env)
	if raw == "" {
		missing(t, S3Env, "S3 server")
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		t.Fatalf("%s: want http://ACCESS:SECRET@HOST:PORT", S3Env)
	}
	secret, _ := u.User.Password()
	return S3Server{Endpoint: u.Scheme + "://" + u.Host, AccessKey: u.User.Username(), SecretKey: secret}
}

// Client returns a minio client for the server.
func (s S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Bucket creates an empty bucket for the test, emptied and removed when it
// ends, and returns the server and the bucket's name.
func Bucket(t testing.TB) (S3Server, string) {
	t.Helper()
	srv := S3(t)
	c := srv.Client(t)
	bucket := name("berth-test-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("create test bucket: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		objects := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
		for e := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
			t.Errorf("empty test bucket %s: %s: %v", bucket, e.ObjectName, e.Err)
		}
		// Multipart uploads left open by a test.
		for u := range c.ListIncompleteUploads(ctx, bucket, "", true) {
			if u.Err == nil {
				c.RemoveIncompleteUpload(ctx, bucket, u.Key)
			}
		}
		if err := c.RemoveBucket(ctx, bucket); err != nil {
			t.Errorf("remove test bucket %s: %v", bucket, err)
		}
	})
	return srv, bucket
}

// String describes the server without its secret.
func (s S3Server) String() string { return fmt.Sprintf("S3 at %s", s.Endpoint) }

// Proxy forwards TCP connections to a server and can cut them, as a
// restarted server or a lost network does, for fault tests.
type Proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  map[net.Conn]struct{}
}

// NewProxy forwards a loopback port to target (host:port) until the test
// ends; Addr is the port's address.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *Proxy) pipe(dst, src net.Conn) {
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// Cut closes every connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = map[net.Conn]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// PostgresVia returns the database URL rawURL reached through the proxy.
func PostgresVia(t testing.TB, rawURL string, p *Proxy) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.Addr()
	return u.String()
}
