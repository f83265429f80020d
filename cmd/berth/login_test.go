package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// isolateCredentials points the docker config (where berth login keeps
// credentials) at an empty directory and clears the password variables.
func isolateCredentials(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"BERTH_PASSWORD", "BERTH_USERNAME"} {
		t.Setenv(v, "")
		os.Unsetenv(v)
	}
	return dir
}

func loginCmd(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := newLoginCmd()
	cmd.SetIn(strings.NewReader(stdin))
	return runCmd(t, cmd, args...)
}

// TestLoginLogout is issue 18's anonymous admin CLI: without credentials it
// used to answer with public things only and exit 0, and a wrong password
// read "authentication required". berth login checks and keeps the
// credentials in the docker config; every admin command uses them; logout
// forgets them; each failure says plainly what is wrong and fails.
func TestLoginLogout(t *testing.T) {
	configDir := isolateCredentials(t)
	srvURL, _ := runningBerth(t, t.TempDir())
	host := strings.TrimPrefix(srvURL, "http://")
	admin := func(args ...string) (string, error) {
		t.Helper()
		return runCmd(t, newAdminCmd(), append(args, "--server", srvURL)...)
	}

	// Not logged in: a plain sentence and an error, not the public list.
	out, err := admin("project", "list")
	if err == nil || !strings.Contains(err.Error(), "not logged in to "+host+": run 'berth login "+host+"'") {
		t.Fatalf("project list without credentials = %v\n%s", err, out)
	}
	if strings.Contains(out, "library") {
		t.Errorf("an anonymous project list printed projects:\n%s", out)
	}

	// A wrong password stores nothing.
	if out, err := loginCmd(t, "not-the-password\n", host, "-u", "admin", "--password-stdin"); err == nil ||
		err.Error() != "wrong username or password for admin at "+host {
		t.Fatalf("login with a wrong password = %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(configDir, "config.json")); !os.IsNotExist(err) {
		t.Errorf("a refused login wrote the docker config: %v", err)
	}

	out, err = loginCmd(t, cmdAdminPassword+"\n", "http://"+host+"/", "-u", "admin", "--password-stdin")
	if err != nil || !strings.Contains(out, "logged in to "+host+" as admin") {
		t.Fatalf("login = %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(configDir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cf); err != nil || cf.Auths[host].Auth == "" {
		t.Fatalf("docker config after login: %v\n%s", err, raw)
	}
	if st, _ := os.Stat(filepath.Join(configDir, "config.json")); st.Mode().Perm() != 0o600 {
		t.Errorf("docker config mode %v, want 0600", st.Mode().Perm())
	}

	// Every admin command now uses the stored login.
	if out, err := admin("project", "create", "team-a"); err != nil || !strings.Contains(out, "team-a") {
		t.Fatalf("project create after login = %v\n%s", err, out)
	}
	if out, err := admin("project", "list"); err != nil || !strings.Contains(out, "team-a") {
		t.Errorf("project list after login = %v\n%s", err, out)
	}
	if out, err := runCmd(t, newAuditCmd(), "query", "--action", "project.create", "--server", srvURL); err != nil || !strings.Contains(out, "team-a") {
		t.Errorf("audit query after login = %v\n%s", err, out)
	}
	// Another user named explicitly does not get admin's stored password.
	if _, err := admin("project", "list", "--username", "alice"); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Errorf("--username alice with admin's stored login = %v", err)
	}
	// A password given for the command wins, and a wrong one says so.
	t.Setenv("BERTH_PASSWORD", "wrong-password")
	if _, err := admin("project", "list"); err == nil || err.Error() != "wrong username or password for admin at "+host {
		t.Errorf("a wrong BERTH_PASSWORD = %v", err)
	}
	os.Unsetenv("BERTH_PASSWORD")

	if out, err := runCmd(t, newLogoutCmd(), host); err != nil || !strings.Contains(out, "logged out of "+host) {
		t.Fatalf("logout = %v\n%s", err, out)
	}
	if _, err := admin("project", "list"); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Errorf("project list after logout = %v", err)
	}
	if out, err := runCmd(t, newLogoutCmd(), host); err != nil || !strings.Contains(out, "not logged in to "+host) {
		t.Errorf("second logout = %v\n%s", err, out)
	}
	if _, err := loginCmd(t, "", host, "-u", "admin"); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Errorf("login without a password or a terminal = %v", err)
	}
	if _, err := loginCmd(t, "", "http://x/y", "-u", "admin"); err == nil {
		t.Error("a host with a path was accepted")
	}
}

// TestAdminAnonymousNoAuth: without authentication on the server there is
// nothing to log in to, so the admin CLI runs without credentials (and gets
// the server's own answer).
func TestAdminAnonymousNoAuth(t *testing.T) {
	isolateCredentials(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":{"code":"NOT_FOUND","message":"berth runs without authentication"}}`))
	}))
	defer srv.Close()
	_, err := runCmd(t, newAdminCmd(), "project", "list", "--server", srv.URL)
	if err == nil || !strings.Contains(err.Error(), "berth runs without authentication") {
		t.Errorf("admin against a server without auth = %v", err)
	}
}

// TestExplainAuth: a registry's 401 becomes a sentence saying whether berth
// had credentials for the host.
func TestExplainAuth(t *testing.T) {
	isolateCredentials(t)
	u, _ := url.Parse("http://127.0.0.1:5999/v2/team/app/manifests/1")
	unauthorized := &transport.Error{StatusCode: http.StatusUnauthorized, Request: &http.Request{Method: "GET", URL: u}}
	if err := explainAuth(unauthorized, false); !strings.HasPrefix(err.Error(), "not logged in to 127.0.0.1:5999: run 'berth login 127.0.0.1:5999'") ||
		!errors.Is(err, unauthorized) {
		t.Errorf("no stored login: %v", err)
	}
	if err := explainAuth(unauthorized, true); !strings.HasPrefix(err.Error(), "wrong username or password for 127.0.0.1:5999") {
		t.Errorf("explicit credentials: %v", err)
	}
	other := errors.New("something else")
	if err := explainAuth(other, false); err != other {
		t.Errorf("another error was changed: %v", err)
	}
}

// TestScanRegistryCredentials: Trivy's --username/--password and
// --registry-token reach a registry that requires them, without a stored
// login; a wrong password is refused.
func TestScanRegistryCredentials(t *testing.T) {
	isolateCredentials(t)
	dbDir := npmDB(t)
	srvURL, _ := runningBerth(t, t.TempDir())
	host := strings.TrimPrefix(srvURL, "http://")
	ref, err := name.ParseReference(host + "/team-a/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, nodeImage(t, "amd64", "4.17.15"), remote.WithAuth(&authn.Basic{Username: "admin", Password: cmdAdminPassword})); err != nil {
		t.Fatal(err)
	}
	scanWith := func(stdin string, args ...string) scanRun {
		t.Helper()
		out := filepath.Join(t.TempDir(), "r.json")
		cmd := newScanCmd()
		cmd.SetIn(strings.NewReader(stdin))
		var so, se bytes.Buffer
		cmd.SetOut(&so)
		cmd.SetErr(&se)
		cmd.SetArgs(append([]string{"--db-dir", dbDir, "--no-cache", "--ignorefile=", "-f", "json", "-o", out}, append(args, ref.String())...))
		err := cmd.ExecuteContext(context.Background())
		r := scanRun{stderr: se.String(), err: err}
		if err != nil {
			r.code = 1
		}
		return r
	}
	if r := scanWith(""); r.err == nil || !strings.Contains(r.err.Error(), "UNAUTHORIZED") {
		t.Errorf("scan of a private image without credentials: %v", r.err)
	}
	if r := scanWith(cmdAdminPassword+"\n", "--username", "admin", "--password-stdin"); r.err != nil {
		t.Errorf("--username --password-stdin: %v\n%s", r.err, r.stderr)
	}
	t.Setenv("BERTH_PASSWORD", cmdAdminPassword)
	if r := scanWith("", "--username", "admin"); r.err != nil {
		t.Errorf("--username with BERTH_PASSWORD: %v\n%s", r.err, r.stderr)
	}
	os.Unsetenv("BERTH_PASSWORD")
	if r := scanWith("", "--username", "admin", "--password", "wrong-password"); r.err == nil {
		t.Error("a wrong password was accepted")
	}
	// A token from the registry's own token endpoint.
	req, _ := http.NewRequest("GET", srvURL+"/token?service=berth&scope=repository:team-a/app:pull", nil)
	req.SetBasicAuth("admin", cmdAdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.Token == "" {
		t.Fatal("no token")
	}
	if r := scanWith("", "--registry-token", tok.Token); r.err != nil {
		t.Errorf("--registry-token: %v\n%s", r.err, r.stderr)
	}
}
