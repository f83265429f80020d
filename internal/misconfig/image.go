package misconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/secret"
)

// passVersion is bumped whenever the layer pass records something else.
const passVersion = 2

// CheckConfig runs the rules that read the image config: user, ENV and
// build arguments, health check, exposed ports, history.
func CheckConfig(cfg *v1.ConfigFile) []Finding {
	if cfg == nil {
		return nil
	}
	var out []Finding
	c := cfg.Config
	if u := strings.TrimSpace(c.User); u == "" || u == "root" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root:") {
		ev := "no USER: the default user is root"
		if u != "" {
			ev = "USER " + u
		}
		out = append(out, finding("BI001", TargetImage, ev))
	}
	for _, e := range c.Env {
		name, value, _ := strings.Cut(e, "=")
		if sensitiveName(name) && realValue(value) {
			out = append(out, finding("BI002", TargetImage, "ENV "+name+"="+secret.Mask(value)))
		}
	}
	for _, h := range cfg.History {
		for _, a := range buildArgs(h.CreatedBy) {
			if sensitiveName(a[0]) && realValue(a[1]) {
				out = append(out, finding("BI002", TargetImage, "build argument "+a[0]+"="+secret.Mask(a[1])+" kept in the history"))
			}
		}
	}
	if c.Healthcheck == nil || len(c.Healthcheck.Test) == 0 {
		out = append(out, finding("BI003", TargetImage, "no HEALTHCHECK in the config"))
	}
	for p := range c.ExposedPorts {
		if port, _, _ := strings.Cut(p, "/"); port == "22" {
			out = append(out, finding("BI004", TargetImage, "EXPOSE "+p))
		}
	}
	for _, h := range cfg.History {
		if ev := remoteContent(h.CreatedBy); ev != "" {
			f := finding("BI005", TargetImage, ev)
			f.CreatedBy = h.CreatedBy
			out = append(out, f)
		}
	}
	if base := c.Labels["org.opencontainers.image.base.name"]; base != "" && !pinnedRef(base) {
		out = append(out, finding("BI006", TargetImage, "base image "+base))
	}
	return out
}

// sensitiveName reports whether a variable's name says it holds a
// credential: DB_PASSWORD, GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY, API_KEY;
// not GPG_KEY (a public fingerprint), PASSWORD_FILE or TOKEN_URL.
func sensitiveName(name string) bool {
	parts := strings.FieldsFunc(strings.ToUpper(name), func(r rune) bool { return r == '_' || r == '-' || r == '.' })
	if len(parts) == 0 {
		return false
	}
	switch parts[len(parts)-1] {
	case "FILE", "PATH", "DIR", "URL", "URI", "HOST", "USER", "USERNAME", "NAME", "ID", "TYPE", "LENGTH", "SIZE", "TTL",
		"EXPIRY", "ENABLED", "MODE", "ENDPOINT", "HEADER", "PORT", "FINGERPRINT", "ALGORITHM", "VERSION", "POLICY":
		return false
	}
	for i, p := range parts {
		switch p {
		case "PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "TOKEN", "APIKEY", "CREDENTIALS", "CREDENTIAL", "PASSPHRASE":
			return true
		case "KEY":
			if i > 0 {
				switch parts[i-1] {
				case "API", "ACCESS", "SECRET", "PRIVATE", "ENCRYPTION", "SIGNING", "MASTER", "LICENSE", "ACCOUNT":
					return true
				}
			}
		}
	}
	return false
}

// realValue: not empty, not a reference to another variable, not an
// obvious placeholder.
func realValue(v string) bool {
	v = strings.Trim(strings.TrimSpace(v), `"'`)
	if v == "" || strings.HasPrefix(v, "$") || strings.HasPrefix(v, "/run/secrets/") {
		return false
	}
	switch strings.ToLower(v) {
	case "changeme", "change_me", "placeholder", "none", "null", "false", "true", "xxx", "secret", "password", "token":
		return false
	}
	return true
}

// buildArgs reads the build arguments BuildKit and docker keep in a RUN
// entry of the history: "RUN |2 A=1 B=2 /bin/sh -c …", and ARG entries
// with a default ("ARG NAME=value").
func buildArgs(createdBy string) [][2]string {
	s := strings.TrimSpace(createdBy)
	s = strings.TrimPrefix(s, "/bin/sh -c #(nop) ")
	var out [][2]string
	if rest, ok := strings.CutPrefix(s, "ARG "); ok {
		if name, value, ok := strings.Cut(strings.TrimSpace(rest), "="); ok {
			out = append(out, [2]string{name, value})
		}
		return out
	}
	s = strings.TrimPrefix(s, "RUN ")
	if !strings.HasPrefix(s, "|") {
		return nil
	}
	fields := strings.Fields(s[1:])
	if len(fields) == 0 {
		return nil
	}
	n := 0
	if _, err := fmt.Sscanf(fields[0], "%d", &n); err != nil {
		return nil
	}
	for _, f := range fields[1:min(len(fields), n+1)] {
		if name, value, ok := strings.Cut(f, "="); ok {
			out = append(out, [2]string{name, value})
		}
	}
	return out
}

var (
	pipeToShell = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+)?(?:/bin/|/usr/bin/)?(?:ba|z|da|k)?sh\b`)
	})
	addURL = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(?i)^(?:/bin/sh -c #\(nop\) )?ADD\s+(?:--[a-z-]+(?:=\S+)?\s+)*(?:file:\S+ in )?https?://`)
	})
)

// remoteContent says how a history entry fetched remote content, or "".
func remoteContent(createdBy string) string {
	s := strings.TrimSpace(createdBy)
	if addURL().MatchString(s) && !strings.Contains(s, "--checksum") {
		return "ADD from a URL: " + cut(s, 120)
	}
	if m := pipeToShell().FindString(s); m != "" {
		return "download piped into a shell: " + cut(m, 120)
	}
	return ""
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// pinnedRef reports whether an image reference has a digest, or a tag
// other than latest.
func pinnedRef(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	return ok && tag != "" && tag != "latest"
}

// Pass is the inventory.Pass that records, per layer, the files the
// layer rules care about: setuid/setgid and world-writable files,
// package manager caches, sudo. Make one per scan; Findings has the
// result.
type Pass struct {
	findings []Finding
}

// NewPass returns a layer pass.
func NewPass() *Pass { return &Pass{} }

// Key names the pass in the layer cache.
func (p *Pass) Key() string { return fmt.Sprintf("misconfig-v%d", passVersion) }

// maxPerLayer bounds what one layer records: a layer that makes every
// file world-writable needs a few examples, not a million.
const maxPerLayer = 200

type layerFile struct {
	Rule string      `json:"rule"`
	Path string      `json:"path"`
	Mode fs.FileMode `json:"mode"`
}

type layerFiles struct {
	Files   []layerFile `json:"files,omitempty"`
	Dropped int         `json:"dropped,omitempty"`
	// Dockerfiles' findings: a root filesystem (dir:PATH) that is a
	// source tree is linted as `berth lint` would.
	Dockerfiles []Finding `json:"dockerfiles,omitempty"`
}

type layerPass struct {
	r   layerFiles
	doc dockerfileWriter
}

// dockerfileWriter collects a Dockerfile's content, then lints it.
type dockerfileWriter struct {
	lp   *layerPass
	path string
	buf  bytes.Buffer
}

func (w *dockerfileWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) <= maxDockerfile {
		w.buf.Write(p)
	}
	return len(p), nil
}

func (w *dockerfileWriter) Close() error {
	fs, err := LintDockerfile(w.path, &w.buf)
	if err != nil {
		f := finding("BD000", w.path, err.Error())
		fs = []Finding{f}
	}
	for i := range fs {
		fs[i].Path = w.path
	}
	w.lp.r.Dockerfiles = append(w.lp.r.Dockerfiles, fs...)
	return nil
}

// Layer starts the pass over a layer.
func (p *Pass) Layer(image.Layer) inventory.LayerPass { return &layerPass{} }

var cacheDirs = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:var/lib/apt/lists/[^/]+$|var/cache/apt/archives/[^/]+\.deb$|var/cache/apt/[^/]+\.bin$|` +
		`(?:root|home/[^/]+)/\.cache/pip/|(?:root|home/[^/]+)/\.npm/_cacache/|var/cache/apk/[^/]+$|var/cache/(?:yum|dnf)/)`)
})

func (lp *layerPass) Entry(e *image.Entry) io.WriteCloser {
	file, dir := e.Kind == image.KindFile, e.Kind == image.KindDir
	if file && e.Mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
		lp.add("BI007", e)
	}
	if (file || dir) && e.Mode.Perm()&0o002 != 0 && e.Mode&fs.ModeSticky == 0 {
		lp.add("BI008", e)
	}
	if file && e.Path == "usr/bin/sudo" {
		lp.add("BI010", e)
	}
	if file && cacheDirs().MatchString(e.Path) && !strings.HasSuffix(e.Path, "/lock") {
		lp.add("BI009", e)
	}
	if file && IsDockerfile(path.Base(e.Path)) && e.Size <= maxDockerfile {
		lp.doc = dockerfileWriter{lp: lp, path: e.Path}
		return &lp.doc
	}
	return nil
}

// IsDockerfile reports whether a file name is one docker build takes for
// a Dockerfile: Dockerfile, Containerfile, NAME.Dockerfile, Dockerfile.NAME.
func IsDockerfile(name string) bool {
	lower := strings.ToLower(name)
	return lower == "dockerfile" || lower == "containerfile" || strings.HasSuffix(lower, ".dockerfile") ||
		strings.HasPrefix(lower, "dockerfile.") || strings.HasPrefix(lower, "containerfile.")
}

func (lp *layerPass) add(rule string, e *image.Entry) {
	if len(lp.r.Files) < maxPerLayer {
		lp.r.Files = append(lp.r.Files, layerFile{Rule: rule, Path: e.Path, Mode: e.Mode})
	} else {
		lp.r.Dropped++
	}
}

// octal writes a mode as chmod takes it: 4755, 0777.
func octal(m fs.FileMode) string {
	n := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		n |= 0o1000
	}
	return fmt.Sprintf("%04o", n)
}

func (lp *layerPass) Result() (json.RawMessage, error) { return json.Marshal(lp.r) }

// Done turns each layer's files into findings: those still in the image
// (no later whiteout), setuid files only from layers after the first
// (the base's own are the distribution's), caches once per cache.
func (p *Pass) Done(layers []inventory.PassLayer) error {
	p.findings = p.findings[:0]
	caches := map[string]int{}
	var cacheLayer = map[string]inventory.PassLayer{}
	for i, l := range layers {
		if l.Result == nil {
			continue
		}
		var r layerFiles
		if err := json.Unmarshal(l.Result, &r); err != nil {
			return fmt.Errorf("layer %s: cached misconfiguration facts: %w", l.Layer.Name(), err)
		}
		for _, f := range r.Files {
			if deleted(f.Path, layers[i+1:]) {
				continue
			}
			switch f.Rule {
			case "BI007":
				if i == 0 {
					continue
				}
			case "BI009":
				dir := f.Path[:strings.LastIndexByte(f.Path, '/')+1]
				if caches[dir] == 0 {
					cacheLayer[dir] = l
				}
				caches[dir]++
				continue
			}
			fd := finding(f.Rule, TargetLayer, fmt.Sprintf("/%s (mode %s)", f.Path, octal(f.Mode)))
			fd.Path, fd.Layer, fd.CreatedBy = f.Path, l.Layer.DiffID, l.Layer.CreatedBy
			if f.Rule == "BI010" {
				fd.Evidence = "/" + f.Path
			}
			p.findings = append(p.findings, fd)
		}
		for _, f := range r.Dockerfiles {
			if !deleted(f.Path, layers[i+1:]) {
				f.Layer, f.CreatedBy = l.Layer.DiffID, l.Layer.CreatedBy
				p.findings = append(p.findings, f)
			}
		}
		if r.Dropped > 0 {
			fd := finding("BI008", TargetLayer, fmt.Sprintf("%d more files of this layer not listed", r.Dropped))
			fd.Layer, fd.CreatedBy = l.Layer.DiffID, l.Layer.CreatedBy
			p.findings = append(p.findings, fd)
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(caches)) {
		l := cacheLayer[dir]
		fd := finding("BI009", TargetLayer, fmt.Sprintf("/%s: %d files", dir, caches[dir]))
		fd.Path, fd.Layer, fd.CreatedBy = dir, l.Layer.DiffID, l.Layer.CreatedBy
		p.findings = append(p.findings, fd)
	}
	return nil
}

func deleted(p string, later []inventory.PassLayer) bool {
	for _, l := range later {
		if l.Changes == nil {
			continue
		}
		for _, w := range l.Changes.Whiteouts {
			if p == w || strings.HasPrefix(p, w+"/") {
				return true
			}
		}
		for _, d := range l.Changes.Opaque {
			if d == "" || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
	}
	return false
}

// Findings returns what the pass found.
func (p *Pass) Findings() []Finding { return p.findings }
