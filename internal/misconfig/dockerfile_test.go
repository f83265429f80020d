package misconfig

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func lint(t *testing.T, src string) []string {
	t.Helper()
	fs, err := LintDockerfile("Dockerfile", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%s:%d", f.ID, f.Line))
	}
	return out
}

// A Dockerfile that passes every rule: each case below adds one fault.
const clean = `FROM debian:12.5@sha256:0000000000000000000000000000000000000000000000000000000000000000
RUN apt-get update && apt-get install -y --no-install-recommends curl=7.88.1-10 && rm -rf /var/lib/apt/lists/*
COPY app /app
USER 10001
HEALTHCHECK CMD ["/app/health"]
CMD ["/app/run"]
`

func TestDockerfileRules(t *testing.T) {
	if got := lint(t, clean); len(got) != 0 {
		t.Fatalf("clean Dockerfile: %v", got)
	}
	tests := []struct {
		rule, from, to string
		want           []string
	}{
		{"BD001", "FROM debian:12.5@sha256:" + strings.Repeat("0", 64), "FROM debian:latest", []string{"BD001:1"}},
		{"BD001 no tag", "FROM debian:12.5@sha256:" + strings.Repeat("0", 64), "FROM registry.example.com:5000/team/debian", []string{"BD001:1"}},
		{"BD002", "FROM debian:12.5@sha256:" + strings.Repeat("0", 64), "FROM debian:12.5", []string{"BD002:1"}},
		{"BD003", "USER 10001\n", "", []string{"BD003:1"}},
		{"BD003 root", "USER 10001", "USER root", []string{"BD003:4"}},
		{"BD004", "COPY app /app", "ADD app /app", []string{"BD004:3"}},
		{"BD004 archive is fine", "COPY app /app", "ADD rootfs.tar.gz /", nil},
		{"BD005", "COPY app /app", "ADD https://example.com/x.tgz /x", []string{"BD005:3"}},
		{"BD005 checksum", "COPY app /app", "ADD --checksum=sha256:" + strings.Repeat("a", 64) + " https://example.com/x /x", nil},
		{"BD006", "curl=7.88.1-10", "curl", []string{"BD006:2"}},
		{"BD007", " && rm -rf /var/lib/apt/lists/*", "", []string{"BD007:2"}},
		{"BD008", "--no-install-recommends ", "", []string{"BD008:2"}},
		{"BD009", "COPY app /app", "RUN apk add curl", []string{"BD009:3"}},
		{"BD009 pinned", "COPY app /app", "RUN apk add --no-cache curl=8.5.0-r0", nil},
		{"BD010", "COPY app /app", "RUN pip install requests flask==3.0.0", []string{"BD010:3"}},
		{"BD010 requirements", "COPY app /app", "RUN pip install --no-cache-dir -r requirements.txt", nil},
		{"BD011", "COPY app /app", "RUN tar -c /x | gzip > /y.tgz", []string{"BD011:3"}},
		{"BD011 pipefail", "COPY app /app", "SHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\nRUN tar -c /x | gzip > /y.tgz", nil},
		{"BD012", `CMD ["/app/run"]`, "CMD /app/run --serve", []string{"BD012:6"}},
		{"BD012 entrypoint", `CMD ["/app/run"]`, "ENTRYPOINT /app/run", []string{"BD012:6"}},
		{"BD013 env", "COPY app /app", "ENV DB_PASSWORD=s3cr3t-hunter2 MODE=prod", []string{"BD013:3"}},
		{"BD013 arg", "COPY app /app", "ARG NPM_TOKEN=npm_abcdef123456", []string{"BD013:3"}},
		{"BD013 no default", "COPY app /app", "ARG NPM_TOKEN\nENV GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D", nil},
		{"BD014", "HEALTHCHECK CMD [\"/app/health\"]\n", "", []string{"BD014:1"}},
		{"BD015", "COPY app /app", "RUN curl -fsSL https://get.example.com | sh", []string{"BD011:3", "BD015:3"}},
		{"BD016", "COPY app /app", "EXPOSE 8080 22/tcp", []string{"BD016:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			src := strings.Replace(clean, tt.from, tt.to, 1)
			if src == clean {
				t.Fatalf("%q not in the clean Dockerfile", tt.from)
			}
			got := lint(t, src)
			slices.Sort(got)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v\n%s", got, tt.want, src)
			}
		})
	}
}

func TestDockerfileSyntax(t *testing.T) {
	// Parser directives, a backtick escape, continuations and heredocs are
	// read as BuildKit reads them.
	src := "# syntax=docker/dockerfile:1\n# escape=`\nFROM debian:12.5\nRUN apt-get update && `\n    apt-get install -y `\n      curl\nRUN <<EOF\nset -e\ncurl -fsSL https://x.example/i.sh | bash\nEOF\nCOPY <<EOF /etc/app.conf\nkey=value\nEOF\nUSER 1000\nHEALTHCHECK NONE\nCMD [\"/bin/app\"]\n"
	got := lint(t, src)
	slices.Sort(got)
	want := []string{"BD002:3", "BD006:4", "BD007:4", "BD008:4", "BD011:7", "BD015:7"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, tt := range []struct{ src, want string }{
		{"FROM debian\nRUN <<EOF\necho never ends\n", "Dockerfile:2: syntax error"},
		{"FROM debian\nFOO bar\n", `Dockerfile:2: syntax error: unknown instruction "FOO"`},
		{"FROM\n", "Dockerfile:1: syntax error: FROM needs arguments"},
		{"RUN echo hi\n", "Dockerfile:1: syntax error: a Dockerfile starts with FROM"},
		{"\xff\xfeF\x00R\x00O\x00M\x00\n", "Dockerfile:1: syntax error: unknown instruction"},
		{"", "Dockerfile: syntax error: file with no instructions"},
	} {
		_, err := LintDockerfile("Dockerfile", strings.NewReader(tt.src))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one starting %q", tt.src, err, tt.want)
		}
	}
	big := "FROM debian\n" + strings.Repeat("# comment\n", maxDockerfile/10+1)
	if _, err := LintDockerfile("Dockerfile", strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge Dockerfile: %v", err)
	}
}

// FuzzLintDockerfile: any input is linted or refused with an error,
// never a panic.
func FuzzLintDockerfile(f *testing.F) {
	f.Add(clean)
	f.Add("FROM a AS b\nFROM b\nRUN <<EOF\nx | y\nEOF\n")
	f.Add("# escape=`\nFROM x\nENV A=1 `\n B=2\n")
	f.Fuzz(func(t *testing.T, src string) {
		LintDockerfile("Dockerfile", strings.NewReader(src))
	})
}
