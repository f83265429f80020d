package misconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"berth.dev/berth/internal/secret"
)

// maxDockerfile bounds what LintDockerfile reads: real Dockerfiles are a
// few KiB; BuildKit refuses more than 32 MiB of context for them anyway.
const maxDockerfile = 4 << 20

// ErrSyntax is returned for a Dockerfile that does not parse; the message
// names the line.
var ErrSyntax = errors.New("syntax error")

// instructions BuildKit knows, lower case.
var instructions = []string{"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
	"label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir"}

// LintDockerfile parses a Dockerfile with BuildKit's parser (parser
// directives, line continuations with either escape character, heredocs)
// and runs the BD rules. name is how findings and errors name the file.
func LintDockerfile(name string, r io.Reader) ([]Finding, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxDockerfile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxDockerfile {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a Dockerfile", name, maxDockerfile)
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, syntaxError(name, data, err)
	}
	nodes := res.AST.Children
	for _, n := range nodes {
		inst := strings.ToLower(n.Value)
		if !slices.Contains(instructions, inst) {
			return nil, fmt.Errorf("%s:%d: %w: unknown instruction %q", name, n.StartLine, ErrSyntax, printableText(n.Value))
		}
		if n.Next == nil && inst != "healthcheck" && len(n.Heredocs) == 0 {
			return nil, fmt.Errorf("%s:%d: %w: %s needs arguments", name, n.StartLine, ErrSyntax, strings.ToUpper(inst))
		}
	}
	if len(nodes) == 0 || strings.ToLower(nodes[0].Value) != "from" && !onlyArgsBeforeFrom(nodes) {
		return nil, fmt.Errorf("%s:1: %w: a Dockerfile starts with FROM (ARG may come before it)", name, ErrSyntax)
	}
	l := &linter{name: name}
	l.run(nodes)
	return l.out, nil
}

func onlyArgsBeforeFrom(nodes []*parser.Node) bool {
	for _, n := range nodes {
		switch strings.ToLower(n.Value) {
		case "arg":
		case "from":
			return true
		default:
			return false
		}
	}
	return false
}

// syntaxError names the line of a parse error: the parser's messages
// for heredocs carry none.
func syntaxError(name string, data []byte, err error) error {
	line := 0
	if strings.Contains(err.Error(), "heredoc") {
		// The last heredoc opened is the one left open.
		for i, l := range strings.Split(string(data), "\n") {
			if heredocStart().MatchString(l) {
				line = i + 1
			}
		}
	}
	if line > 0 {
		return fmt.Errorf("%s:%d: %w: %v", name, line, ErrSyntax, err)
	}
	return fmt.Errorf("%s: %w: %v", name, ErrSyntax, err)
}

var heredocStart = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`<<-?["']?[A-Za-z_][A-Za-z0-9_]*`) })

type stage struct {
	from     *parser.Node
	name     string
	user     *parser.Node
	health   bool
	pipefail bool
}

type linter struct {
	name   string
	out    []Finding
	stages []*stage
}

func (l *linter) add(id string, n *parser.Node, evidence string) {
	f := finding(id, l.name, evidence)
	f.Line, f.EndLine = n.StartLine, n.EndLine
	l.out = append(l.out, f)
}

func (l *linter) run(nodes []*parser.Node) {
	var st *stage
	for _, n := range nodes {
		inst := strings.ToLower(n.Value)
		if inst == "from" {
			st = &stage{from: n}
			args := words(n)
			if len(args) >= 3 && strings.EqualFold(args[1], "as") {
				st.name = strings.ToLower(args[2])
			}
			l.checkFrom(n, args[0])
			l.stages = append(l.stages, st)
			continue
		}
		if st == nil {
			continue // ARG before the first FROM
		}
		switch inst {
		case "user":
			st.user = n
		case "healthcheck":
			st.health = true
		case "shell":
			st.pipefail = strings.Contains(strings.Join(words(n), " "), "pipefail")
		case "add":
			l.checkAdd(n)
		case "run":
			l.checkRun(n, st)
		case "cmd", "entrypoint":
			if !n.Attributes["json"] {
				l.add("BD012", n, strings.ToUpper(inst)+" "+cut(printableText(strings.Join(words(n), " ")), 80))
			}
		case "env":
			w := words(n)
			for i := 0; i+1 < len(w); i += 3 {
				if sensitiveName(w[i]) && realValue(w[i+1]) {
					l.add("BD013", n, "ENV "+w[i]+"="+secret.Mask(strings.Trim(w[i+1], `"'`)))
				}
			}
		case "arg":
			for _, a := range words(n) {
				if k, v, ok := strings.Cut(a, "="); ok && sensitiveName(k) && realValue(v) {
					l.add("BD013", n, "ARG "+k+"="+secret.Mask(strings.Trim(v, `"'`)))
				}
			}
		case "expose":
			for _, p := range words(n) {
				if port, _, _ := strings.Cut(p, "/"); port == "22" {
					l.add("BD016", n, "EXPOSE "+p)
				}
			}
		}
	}
	if len(l.stages) == 0 {
		return
	}
	last := l.stages[len(l.stages)-1]
	if u := last.user; u == nil {
		l.add("BD003", last.from, "the final stage sets no USER: it runs as root")
	} else if v := strings.Join(words(u), " "); v == "root" || v == "0" || strings.HasPrefix(v, "0:") || strings.HasPrefix(v, "root:") {
		l.add("BD003", u, "USER "+v)
	}
	if !last.health {
		l.add("BD014", last.from, "the final stage has no HEALTHCHECK")
	}
}

func (l *linter) checkFrom(n *parser.Node, ref string) {
	lower := strings.ToLower(ref)
	if lower == "scratch" || strings.Contains(ref, "$") {
		return
	}
	for _, s := range l.stages {
		if s.name != "" && s.name == lower {
			return // an earlier stage
		}
	}
	switch {
	case strings.Contains(ref, "@sha256:"):
	case !pinnedRef(ref):
		l.add("BD001", n, "FROM "+ref)
	default:
		l.add("BD002", n, "FROM "+ref)
	}
}

func (l *linter) checkAdd(n *parser.Node) {
	w := words(n)
	if len(w) < 2 {
		return
	}
	checksum := slices.ContainsFunc(n.Flags, func(f string) bool { return strings.HasPrefix(f, "--checksum") })
	for _, src := range w[:len(w)-1] {
		switch {
		case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
			if !checksum {
				l.add("BD005", n, "ADD "+src)
			}
		case strings.HasPrefix(src, "git@") || strings.HasSuffix(src, ".git") || strings.HasPrefix(src, "<<"):
		case isArchive(src):
		default:
			l.add("BD004", n, "ADD "+src)
		}
	}
}

func isArchive(p string) bool {
	for _, s := range []string{".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst"} {
		if strings.HasSuffix(strings.ToLower(p), s) {
			return true
		}
	}
	return false
}

var (
	aptInstall = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bapt(?:-get)?\s+(?:-\S+\s+)*install\b`) })
	aptUpdate  = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bapt(?:-get)?\s+(?:-\S+\s+)*update\b`) })
	apkAdd     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\bapk\s+(?:-\S+\s+)*add\b`) })
	pipInstall = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`\b(?:pip3?|python3?\s+-m\s+pip)\s+(?:-\S+\s+)*install\b`)
	})
	singlePipe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^|]\|[^|]`) })
)

// checkRun applies the RUN rules to the shell command, heredocs included.
func (l *linter) checkRun(n *parser.Node, st *stage) {
	if n.Attributes["json"] {
		return // exec form: no shell, no pipes
	}
	cmd := strings.Join(words(n), " ")
	for _, h := range n.Heredocs {
		cmd += "\n" + h.Content
	}
	for _, seg := range commands(cmd) {
		seg = strings.TrimSpace(seg)
		args := strings.Fields(seg)
		switch {
		case aptInstall().MatchString(seg):
			pkgs := packagesAfter(args, "install")
			if unpinned := slices.DeleteFunc(pkgs, func(p string) bool { return strings.Contains(p, "=") }); len(unpinned) > 0 {
				l.add("BD006", n, "apt-get install "+strings.Join(unpinned, " "))
			}
			if !strings.Contains(seg, "--no-install-recommends") && !strings.Contains(seg, "Install-Recommends=false") {
				l.add("BD008", n, cut(seg, 100))
			}
		case apkAdd().MatchString(seg):
			pkgs := packagesAfter(args, "add")
			unpinned := slices.DeleteFunc(pkgs, func(p string) bool { return strings.Contains(p, "=") })
			if len(unpinned) > 0 || !strings.Contains(seg, "--no-cache") {
				l.add("BD009", n, cut(seg, 100))
			}
		case pipInstall().MatchString(seg):
			if slices.ContainsFunc(args, func(a string) bool {
				return a == "-r" || a == "-c" || strings.HasPrefix(a, "--requirement") || strings.HasPrefix(a, "--constraint")
			}) {
				break
			}
			pkgs := packagesAfter(args, "install")
			unpinned := slices.DeleteFunc(pkgs, func(p string) bool {
				return strings.ContainsAny(p, "=<>~") || strings.HasPrefix(p, ".") || strings.HasPrefix(p, "/") || strings.Contains(p, "://")
			})
			if len(unpinned) > 0 {
				l.add("BD010", n, "pip install "+strings.Join(unpinned, " "))
			}
		}
	}
	if (aptUpdate().MatchString(cmd) || aptInstall().MatchString(cmd)) && !strings.Contains(cmd, "/var/lib/apt/lists") {
		l.add("BD007", n, "apt-get without rm -rf /var/lib/apt/lists/* in the same RUN")
	}
	if m := pipeToShell().FindString(cmd); m != "" {
		l.add("BD015", n, cut(m, 100))
	}
	if singlePipe().MatchString(cmd) && !st.pipefail && !strings.Contains(cmd, "pipefail") {
		l.add("BD011", n, cut(firstLine(cmd), 100))
	}
}

// commands splits a shell command at &&, ||, ; and line breaks.
func commands(cmd string) []string {
	return strings.FieldsFunc(strings.NewReplacer("&&", "\n", "||", "\n", ";", "\n").Replace(cmd), func(r rune) bool { return r == '\n' })
}

// packagesAfter lists the words after the verb that are not options.
func packagesAfter(args []string, verb string) []string {
	i := slices.Index(args, verb)
	if i < 0 {
		return nil
	}
	var out []string
	for _, a := range args[i+1:] {
		if strings.HasPrefix(a, "-") || a == "\\" || strings.HasPrefix(a, "$") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// words are an instruction's arguments as the parser split them.
func words(n *parser.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// printableText makes a word from a Dockerfile safe to show.
func printableText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}
