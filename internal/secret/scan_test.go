package secret

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// Fake credentials are generated here, never written in the source: a
// literal token in a test file is one more thing for every scanner (and
// every reviewer) to trip on.
type gen struct{ r *mrand.Rand }

func newGen(seed uint64) *gen { return &gen{mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) from(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(b)
}

const (
	alnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b64    = alnum + "+/"
	hexLow = "0123456789abcdef"
	b32    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

func ecPEM(t testing.TB, typ string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var der []byte
	switch typ {
	case "EC PRIVATE KEY":
		der, err = x509.MarshalECPrivateKey(k)
	default:
		der, err = x509.MarshalPKCS8PrivateKey(k)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func mustDefault(t testing.TB) *Ruleset {
	t.Helper()
	rs, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return rs.built()
}

func scan(t testing.TB, rs *Ruleset, path, content string) []Finding {
	t.Helper()
	fs, err := rs.NewFileScanner().ScanFile(path, strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func ruleIDs(fs []Finding) []string {
	var ids []string
	for _, f := range fs {
		id := f.RuleID
		if f.Allowed != "" {
			id += "(allowed)"
		}
		ids = append(ids, id)
	}
	return ids
}

func TestEveryRuleCompiles(t *testing.T) {
	rs := mustDefault(t)
	if len(rs.Rules) < 230 {
		t.Errorf("%d rules, want gitleaks' 222 and berth's", len(rs.Rules))
	}
	for _, r := range rs.Rules {
		if r.regex != nil {
			r.regex.get()
		}
		if r.path != nil {
			r.path.get()
		}
		if r.anchored != nil {
			r.anchored.get()
		}
		for _, a := range r.allow {
			compileAll(a)
		}
	}
	for _, a := range rs.global {
		compileAll(a)
	}
}

func compileAll(a *allowlist) {
	for _, re := range append(a.regexes, a.paths...) {
		re.get()
	}
}

func TestDetects(t *testing.T) {
	g := newGen(1)
	rs := mustDefault(t)
	gcp, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "demo", "private_key_id": g.from(hexLow, 40),
		"private_key": ecPEM(t, "PRIVATE KEY"), "client_email": "svc@demo.iam.gserviceaccount.com",
	})
	dockerAuth := base64.StdEncoding.EncodeToString([]byte("robot:" + g.from(alnum, 24)))
	kubeKey := base64.StdEncoding.EncodeToString([]byte(ecPEM(t, "EC PRIVATE KEY")))
	jwtPart := func(v string) string { return base64.RawURLEncoding.EncodeToString([]byte(v)) }
	jwt := jwtPart(`{"alg":"HS256","typ":"JWT"}`) + "." + jwtPart(`{"sub":"1234567890","name":"berth test","iat":1516239022}`) + "." + g.from(alnum, 43)
	tests := []struct {
		name, path, content, want string
	}{
		{"rsa pem", "root/.ssh/id_rsa", "-----BEGIN RSA PRIVATE KEY-----\n" + wrap(g.from(b64, 1600)) + "\n-----END RSA PRIVATE KEY-----\n", "private-key"},
		{"ec pem", "etc/app/key.pem", ecPEM(t, "EC PRIVATE KEY"), "private-key"},
		{"pkcs8", "etc/app/tls.key", ecPEM(t, "PRIVATE KEY"), "private-key"},
		{"openssh", "home/u/.ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + wrap(g.from(b64, 400)) + "\n-----END OPENSSH PRIVATE KEY-----\n", "private-key"},
		{"pgp", "keys/secring.asc", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n" + wrap(g.from(b64, 900)) + "\n-----END PGP PRIVATE KEY BLOCK-----\n", "private-key"},
		{"aws key id", "app/settings.sh", "export AWS_ACCESS_KEY_ID=AKIA" + g.from(b32, 16) + "\n", "aws-access-token"},
		{"aws secret", "app/settings.sh", "aws_secret_access_key = " + g.from(b64, 40) + "\n", "aws-secret-access-key"},
		{"gcp sa", "secrets/sa.json", string(gcp), "gcp-service-account-key"},
		{"azure", "app/appsettings.json", `"conn": "DefaultEndpointsProtocol=https;AccountName=demo;AccountKey=` + g.from(b64, 86) + `==;EndpointSuffix=core.windows.net"`, "azure-storage-account-key"},
		{"github pat", "app/ci.sh", "GH=ghp_" + g.from(alnum, 36) + "\n", "github-pat"},
		{"github fine", "app/ci.sh", "GH=github_pat_" + g.from(alnum, 82) + "\n", "github-fine-grained-pat"},
		{"github oauth", "app/ci.sh", "GH=gho_" + g.from(alnum, 36) + "\n", "github-oauth"},
		{"github app", "app/ci.sh", "GH=ghs_" + g.from(alnum, 36) + "\n", "github-app-token"},
		{"github user", "app/ci.sh", "GH=ghu_" + g.from(alnum, 36) + "\n", "github-app-token"},
		{"gitlab", "app/ci.sh", "GL=glpat-" + g.from(alnum, 20) + "\n", "gitlab-pat"},
		{"slack bot", "app/bot.py", `TOKEN = "xoxb-` + g.from("0123456789", 11) + "-" + g.from("0123456789", 12) + "-" + g.from(alnum, 24) + `"`, "slack-bot-token"},
		{"slack webhook", "app/notify.sh", "curl https://hooks.slack.com/services/T" + g.from(alnum, 8) + "/B" + g.from(alnum, 8) + "/" + g.from(alnum, 24) + "\n", "slack-webhook-url"},
		{"stripe", "app/pay.js", `const k = "sk_live_` + g.from(alnum, 24) + `";`, "stripe-access-token"},
		{"twilio", "app/sms.rb", "TWILIO = 'SK" + g.from(hexLow, 32) + "'\n", "twilio-api-key"},
		{"sendgrid", "app/mail.py", `KEY = "SG.` + g.from(alnum, 22) + "." + g.from(alnum, 43) + `"`, "sendgrid-api-token"},
		{"npm token", "app/publish.sh", "NPM=npm_" + g.from("abcdefghijklmnopqrstuvwxyz0123456789", 36) + "\n", "npm-access-token"},
		{"npmrc", "root/.npmrc", "//registry.npmjs.org/:_authToken=" + g.from(alnum, 30) + "\n", "npmrc-auth-token"},
		{"pypi", "root/.pypirc", "password = pypi-AgEIcHlwaS5vcmc" + g.from(alnum, 60) + "\n", "pypi-upload-token"},
		{"docker auths", "root/.docker/config.json", `{"auths":{"registry.example.com":{"auth":"` + dockerAuth + `"}}}`, "docker-config-auth"},
		{"kube key", "root/.kube/config", "users:\n- name: admin\n  user:\n    client-key-data: " + kubeKey + "\n", "kubeconfig-client-key"},
		{"kube token", "root/.kube/config", "users:\n- name: ci\n  user:\n    token: " + g.from(alnum, 40) + "\n", "kubeconfig-token"},
		{"jwt", "app/test.http", "Authorization: Bearer " + jwt + "\n", "jwt"},
		{"db url", "app/.env", "DATABASE_URL=postgres://app:" + g.from(alnum, 16) + "@db.internal:5432/app\n", "database-url-password"},
		{"generic password", "etc/app/app.ini", "[db]\npassword = " + g.from(alnum, 14) + "\n", "generic-password"},
		{"generic api key", "app/config.yaml", "api_key: " + g.from(alnum, 32) + "\n", "generic-api-key"},
		{"pkcs12", "certs/client.p12", "binary-ish", "pkcs12-file"},
		// A rule whose regexp is the assignment template OR a bare token:
		// the bare token matches without any assignment.
		{"atlassian bare token", "app/notes.txt", "token ATATT3" + g.from(alnum+"_-=", 186) + "\n", "atlassian-api-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := scan(t, rs, tt.path, tt.content)
			ids := ruleIDs(fs)
			found := false
			for _, id := range ids {
				found = found || id == tt.want
			}
			if !found {
				t.Fatalf("found %v, want %s", ids, tt.want)
			}
			for _, f := range fs {
				assertMasked(t, f, tt.content)
			}
		})
	}
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteByte('\n')
		s = s[64:]
	}
	b.WriteString(s)
	return b.String()
}

// assertMasked fails when a finding shows more of the content's secrets
// than a short prefix: no run of 12 characters of the finding's text may
// come from a high-entropy token of the content.
func assertMasked(t *testing.T, f Finding, content string) {
	t.Helper()
	b, _ := json.Marshal(f)
	text := string(b)
	for _, tok := range strings.FieldsFunc(content, func(r rune) bool {
		return strings.ContainsRune(" \n\t\"'=:,;{}@/", r)
	}) {
		if len(tok) < 20 || entropy([]byte(tok)) < 3.5 {
			continue
		}
		for i := 0; i+12 <= len(tok); i++ {
			if strings.Contains(text, tok[i:i+12]) {
				t.Fatalf("finding shows %q of secret-looking token: %s", tok[i:i+12], text)
			}
		}
	}
}

func TestDecoys(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(2)
	tests := []struct{ name, path, content string }{
		{"env reference", "app/config.py", `password = os.environ["DB_PASSWORD"]` + "\n"},
		{"shell reference", "app/.env", "DB_PASSWORD=${DB_PASSWORD}\nAPI_TOKEN=$API_TOKEN\n"},
		{"empty value", "etc/app/app.ini", "password =\ntoken = \"\"\n"},
		{"placeholder", "etc/app/app.ini", "password = changeme\napi_key = <your-api-key>\nsecret = xxxxxxxxxxxx\n"},
		{"public key", "root/.ssh/id_rsa.pub", "ssh-rsa " + g.from(b64, 372) + " user@host\n"},
		{"certificate", "etc/ssl/app.crt", "-----BEGIN CERTIFICATE-----\n" + wrap(g.from(b64, 900)) + "\n-----END CERTIFICATE-----\n"},
		{"public pem", "etc/app/pub.pem", "-----BEGIN PUBLIC KEY-----\n" + wrap(g.from(b64, 300)) + "\n-----END PUBLIC KEY-----\n"},
		{"db url placeholder", "app/README", "postgres://user:password@localhost/db and mysql://root:${MYSQL_PASSWORD}@db/x\n"},
		{"node_modules test key", "app/node_modules/jws/test/keys/private.pem", ecPEM(t, "EC PRIVATE KEY")},
		{"dpkg database", "var/lib/dpkg/info/openssl.md5sums", "password = " + g.from(alnum, 20) + "\n"},
		{"prose", "usr/local/share/app/README.md", "Set the password in the config file; the token is read at start.\n"},
		{"identifier without digit", "app/config.yaml", "api_key: someLongIdentifierName\n"},
		{"sops ciphertext", "deploy/secrets.yaml", "stringData:\n    db-password: ENC[AES256_GCM,data:O+5l4g==,iv:" + g.from(b64, 43) + "=,type:str]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if fs := scan(t, rs, tt.path, tt.content); len(fs) > 0 {
				t.Fatalf("decoy reported: %+v", fs)
			}
		})
	}
}

func TestAWSDocumentationExampleIsAllowedNotDropped(t *testing.T) {
	rs := mustDefault(t)
	fs := scan(t, rs, "app/config.env", "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n")
	got := ruleIDs(fs)
	want := []string{"aws-access-token(allowed)", "aws-secret-access-key(allowed)"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if !strings.Contains(fs[0].Allowed, "documentation example") {
		t.Errorf("reason %q", fs[0].Allowed)
	}
	if fs[0].Secret != "AKIA************" || strings.Contains(fs[1].Match, "K7MDENG") {
		t.Errorf("not masked: %+v", fs)
	}
}

func TestLinesAndMasking(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(3)
	tok := "ghp_" + g.from(alnum, 36)
	fs := scan(t, rs, "app/x.sh", "#!/bin/sh\n\n# deploy\nexport GITHUB_TOKEN="+tok+"\n")
	if len(fs) != 1 {
		t.Fatalf("got %+v", fs)
	}
	f := fs[0]
	if f.StartLine != 4 || f.EndLine != 4 {
		t.Errorf("lines %d-%d, want 4-4", f.StartLine, f.EndLine)
	}
	if f.Secret != "ghp_************" || strings.Contains(f.Match, tok[4:]) {
		t.Errorf("secret %q match %q", f.Secret, f.Match)
	}
	if f.Fingerprint == "" || strings.Contains(f.Fingerprint, tok) {
		t.Errorf("fingerprint %q", f.Fingerprint)
	}
}

func TestMask(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "****"},
		{"abc", "****"},
		{"abcdefgh", "ab******"},
		{"AKIAIOSFODNN7EXAMPLE", "AKIA************"},
		{"\x1b[31mred\x1b[0m", "?[3*********"},
	} {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Bad input.

func TestRandomBase64IsNotAFlood(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(4)
	raw := make([]byte, 4<<20)
	for i := range raw {
		raw[i] = byte(g.r.Uint32())
	}
	for _, content := range []string{
		base64.StdEncoding.EncodeToString(raw),       // one line
		wrap(base64.StdEncoding.EncodeToString(raw)), // PEM-like lines
		string(raw), // binary
		strings.ReplaceAll(string(raw), "\x00", "\x01"), // binary without NUL
	} {
		fs := scan(t, rs, "app/blob.dat", content)
		if len(fs) > 2 {
			t.Errorf("%d findings in %d random bytes: %v", len(fs), len(content), ruleIDs(fs))
		}
	}
}

func TestOneVeryLongLine(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(5)
	tok := "glpat-" + g.from(alnum, 20)
	// 24 MiB on one line, keywords everywhere, the secret in the middle.
	filler := strings.Repeat("token key secret password api auth access ", 24<<20/44/2)
	content := filler + " " + tok + " " + filler
	fs := scan(t, rs, "app/min.js", content)
	ids := ruleIDs(fs)
	found := false
	for _, f := range fs {
		found = found || (f.RuleID == "gitlab-pat" && f.StartLine == 1)
	}
	if !found {
		t.Fatalf("gitlab-pat on line 1 not found: %v", ids)
	}
}

func TestUnterminatedPEM(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(6)
	// A header and 3 MiB of base64 with no END line: bounded work, and
	// the header is still reported as what it is.
	content := "-----BEGIN RSA PRIVATE KEY-----\n" + wrap(g.from(b64, 3<<20))
	fs := scan(t, rs, "root/.ssh/id_rsa", content)
	for _, f := range fs {
		assertMasked(t, f, content)
	}
	if len(fs) > 2 {
		t.Errorf("%d findings: %v", len(fs), ruleIDs(fs))
	}
	// Many headers without ends, at every line: still linear.
	many := strings.Repeat("-----BEGIN PRIVATE KEY-----\n", 100000)
	scan(t, rs, "x.pem", many)
}

func TestNonUTF8(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(7)
	tok := "ghp_" + g.from(alnum, 36)
	content := "caf\xe9 \xff\xfe token: " + tok + " \xc3\x28\n"
	fs := scan(t, rs, "etc/latin1.conf", content)
	if len(fs) == 0 || fs[0].RuleID != "github-pat" {
		t.Fatalf("got %v", ruleIDs(fs))
	}
	b, err := json.Marshal(fs)
	if err != nil || !bytes.Contains(b, []byte("ghp_")) {
		t.Fatalf("json %s %v", b, err)
	}
	for _, f := range fs {
		if !strings.HasPrefix(f.Secret, "ghp_") {
			t.Errorf("secret %q", f.Secret)
		}
	}
}

// zeroTextReader yields n bytes of text lines, made as they are read.
type textReader struct {
	left int64
	line []byte
	pos  int
}

func (r *textReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && r.left > 0 {
		c := copy(p[n:min(len(p), n+int(min(r.left, int64(len(r.line)-r.pos))))], r.line[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.line)
		r.left -= int64(c)
	}
	return n, nil
}

// TestTwoGiBFileStreams scans 2 GiB of text with a secret at its end and
// measures the heap: the file is never held, only a chunk of it.
func TestTwoGiBFileStreams(t *testing.T) {
	if testing.Short() || raceEnabled {
		// Under -race it takes ~20 minutes; scripts/test.sh (CI) runs it
		// in a step of its own without -race.
		t.Skip("2 GiB of scanning, too slow under -short or -race; scripts/test.sh runs it without -race: go test -count=1 -run TestTwoGiBFileStreams ./internal/secret/")
	}
	rs := mustDefault(t)
	g := newGen(8)
	tok := "glpat-" + g.from(alnum, 20)
	const size = 2 << 30
	body := io.MultiReader(
		&textReader{left: size, line: []byte("log line: request served, auth ok, key cache warm\n")},
		strings.NewReader("token="+tok+"\n"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s := rs.NewFileScanner()
	peak := uint64(0)
	s.Begin("var/log/huge.log")
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, err := body.Read(buf)
		s.Write(buf[:n])
		total += int64(n)
		if total%(256<<20) < int64(n) {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
		if err == io.EOF {
			break
		}
	}
	fs := s.End()
	runtime.ReadMemStats(&after)
	if len(fs) != 1 || fs[0].RuleID != "gitlab-pat" {
		t.Fatalf("got %v", ruleIDs(fs))
	}
	wantLine := size/len("log line: request served, auth ok, key cache warm\n") + 1
	if fs[0].StartLine != wantLine {
		t.Errorf("line %d, want %d", fs[0].StartLine, wantLine)
	}
	if grown := int64(peak) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB scanning 2 GiB", grown>>20)
	}
}

func TestSecretAcrossChunkBoundary(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(9)
	tok := "ghp_" + g.from(alnum, 36)
	for _, at := range []int{chunkSize - overlap - 10, chunkSize - 20, chunkSize + 5, 2*chunkSize - overlap - 3} {
		pad := strings.Repeat("a", at-len("x="))
		content := pad + "\nx=" + tok + "\n" + strings.Repeat("b\n", chunkSize)
		fs := scan(t, rs, "f.txt", content)
		if len(fs) != 1 || fs[0].StartLine != 2 {
			t.Errorf("at %d: %v (want one finding on line 2) %+v", at, ruleIDs(fs), fs)
		}
	}
}

func TestUserConfig(t *testing.T) {
	cfg := `
disabledRules = ["jwt"]
[[allowlists]]
description = "our test fixtures"
paths = ['''^srv/fixtures/''']
[[allowlists]]
id = "team-demo-token"
description = "the demo tenant's published token"
regexes = ['''^ghp_DEMO''']
[[rules]]
id = "acme-token"
description = "ACME internal token"
regex = '''acme_[a-z0-9]{20}'''
keywords = ["acme_"]
severity = "critical"
`
	rs, err := Load([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(10)
	tok := "acme_" + g.from("abcdefghijklmnopqrstuvwxyz0123456789", 20)
	if fs := scan(t, rs, "srv/app/x", tok+"\n"); len(fs) != 1 || fs[0].Severity != SeverityCritical {
		t.Errorf("custom rule: %+v", fs)
	}
	if fs := scan(t, rs, "srv/fixtures/x", tok+"\n"); len(fs) != 0 {
		t.Errorf("allowed path: %+v", fs)
	}
	demo := "ghp_DEMO" + g.from(alnum, 32)
	if fs := scan(t, rs, "srv/app/y", demo+"\n"); len(fs) != 1 || fs[0].Allowed != "the demo tenant's published token" {
		t.Errorf("named allow: %+v", fs)
	}
	def := mustDefault(t)
	if rs.Version() == def.Version() {
		t.Error("a user config must change the rule set version")
	}
	for _, bad := range []string{
		"[[rules]]\nid = \"x\"\nregex = '''(['''\nkeywords=[\"x\"]\n",
		"[[rules]]\nid = \"x\"\nregex = '''x'''\n",
		"[[allowlists]]\ndescription = \"nothing\"\n",
		"unknown = 1\n",
		"[[rules]]\nid = \"x\"\nregex = '''x'''\nkeywords=[\"x\"]\nseverity=\"urgent\"\n",
	} {
		if _, err := Load([]byte(bad)); err == nil {
			t.Errorf("Load(%q) succeeded", bad)
		}
	}
}

// TestManyMatchesAreCapped: a file with thousands of secrets reports the
// first maxPerFile and says how many more there were.
func TestManyMatchesAreCapped(t *testing.T) {
	rs := mustDefault(t)
	g := newGen(12)
	var b strings.Builder
	for range 500 {
		b.WriteString("GH=ghp_" + g.from(alnum, 36) + "\n")
	}
	fs := scan(t, rs, "app/tokens.txt", b.String())
	if len(fs) != maxPerFile || !strings.Contains(fs[len(fs)-1].Match, "and 400 more matches") {
		t.Fatalf("%d findings, last %q", len(fs), fs[len(fs)-1].Match)
	}
}
