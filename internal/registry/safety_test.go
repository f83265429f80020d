package registry_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// A push that fails must not change what the registry tells others about a
// blob: an attacker who knows the digest of someone else's layer claims it
// from a repository they may push to, with wrong bytes or a lying
// Content-Length, and HEAD of the real blob in the other repository must
// still give its true size.
func TestFailedUploadKeepsAnotherRepositorysBlobSize(t *testing.T) {
	e := newEnv(t)
	real := bytes.Repeat([]byte("victim layer "), 100)
	d := e.pushBlob("victim/app", real)
	want := strconv.Itoa(len(real))

	// Requests the attacker sends; each must have finished before HEAD is
	// asked, so they go through a server that reports when a request is
	// done.
	done := make(chan string, 8)
	attackSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.reg.ServeHTTP(w, r)
		done <- r.Method + " " + r.URL.Path
	}))
	defer attackSrv.Close()
	send := func(method, path string, body []byte, headers ...string) int {
		t.Helper()
		req, err := http.NewRequest(method, attackSrv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		resp.Body.Close()
		<-done
		return resp.StatusCode
	}

	attacks := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"monolithic POST with five wrong bytes", func(t *testing.T) {
			if status := send("POST", "/v2/attacker/app/blobs/uploads/?digest="+d.String(), []byte("wrong")); status != http.StatusBadRequest {
				t.Errorf("POST with wrong bytes = %d, want 400", status)
			}
		}},
		{"header-only POST claiming 9e18 bytes, then a disconnect", func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(attackSrv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(conn, "POST /v2/attacker/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"+
				"Content-Type: application/octet-stream\r\nContent-Length: 9000000000000000000\r\n\r\nabc", d)
			conn.Close()
			<-done
		}},
		{"session finished with the digest and wrong content", func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(attackSrv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v2/attacker/app/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			<-done
			loc := resp.Header.Get("Location")
			if status := send("PUT", loc+"?digest="+d.String(), []byte("wrong")); status != http.StatusBadRequest {
				t.Errorf("PUT with wrong bytes = %d, want 400", status)
			}
		}},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			a.run(t)
			r := e.do("HEAD", "/v2/victim/app/blobs/"+d.String(), nil)
			if r.status != http.StatusOK || r.header.Get("Content-Length") != want {
				t.Errorf("HEAD of the victim's blob = %d, Content-Length %q; want 200, %s", r.status, r.header.Get("Content-Length"), want)
			}
			r = e.do("GET", "/v2/victim/app/blobs/"+d.String(), nil)
			if r.status != http.StatusOK || !bytes.Equal(r.body, real) {
				t.Errorf("GET of the victim's blob = %d, %d bytes", r.status, len(r.body))
			}
			e.expect(e.do("HEAD", "/v2/attacker/app/blobs/"+d.String(), nil), http.StatusNotFound, "", "HEAD in the attacker's repository")
		})
	}
	// The attacker pushing the real content afterwards is an ordinary
	// push, and reports the true size too.
	e.pushBlob("attacker/app", real)
	if r := e.do("HEAD", "/v2/attacker/app/blobs/"+d.String(), nil); r.header.Get("Content-Length") != want {
		t.Errorf("HEAD after an honest push: Content-Length %q, want %s", r.header.Get("Content-Length"), want)
	}
}
