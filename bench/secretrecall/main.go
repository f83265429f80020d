// Command secretrecall measures berth's secret scanner on gitleaks' own
// examples: the true and false positives each gitleaks rule is validated
// with (cmd/generate/config/rules), dumped as JSON lines
// {"rule","kind":"tp"|"fp","path","text"}. With -gitleaks it also reads
// gitleaks' report on the same examples (written as files by -write) and
// prints both side by side. docs/benchmarks.md gives the commands.
//
//	secretrecall -corpus corpus.jsonl -write DIR          # one file per example
//	gitleaks dir DIR -f json -r gitleaks.json --no-banner --exit-code 0
//	secretrecall -corpus corpus.jsonl -gitleaks gitleaks.json -dir DIR
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"berth.dev/berth/internal/secret"
)

type example struct {
	Rule string `json:"rule"`
	Kind string `json:"kind"`
	Path string `json:"path"`
	Text string `json:"text"`
}

// fileOf is where -write puts example i: its own directory, under its
// path when the rule validated it with one.
func fileOf(dir string, i int, e example) string {
	name := e.Path
	if name == "" {
		name = "sample.txt"
	}
	return filepath.Join(dir, strconv.Itoa(i), filepath.FromSlash(name))
}

func main() {
	corpus := flag.String("corpus", "", "gitleaks' examples, JSON lines")
	write := flag.String("write", "", "write each example to a file under this directory and exit")
	gl := flag.String("gitleaks", "", "gitleaks' JSON report on the -write directory")
	dir := flag.String("dir", "", "the -write directory the gitleaks report names")
	diff := flag.Bool("diff", false, "list the examples on which berth and gitleaks disagree (text masked)")
	flag.Parse()
	exs, err := read(*corpus)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *write != "" {
		for i, e := range exs {
			p := fileOf(*write, i, e)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, []byte(e.Text), 0o644)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		return
	}
	rs, err := secret.Default()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	glFound := map[int][]string{}
	if *gl != "" {
		if glFound, err = gitleaksReport(*gl, *dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	s := rs.NewFileScanner()
	type tally struct{ n, berthSame, berthAny, berthAllowed, glSame, glAny int }
	var tp, fp tally
	missed := map[string]int{}
	for i, e := range exs {
		name := e.Path
		if name == "" {
			name = "sample.txt"
		}
		fs, _ := s.ScanFile(name, strings.NewReader(e.Text))
		var ids []string
		allowed := false
		for _, f := range fs {
			if f.Allowed != "" {
				allowed = true
				continue
			}
			ids = append(ids, f.RuleID)
		}
		t := &tp
		if e.Kind == "fp" {
			t = &fp
		}
		t.n++
		if slices.Contains(ids, e.Rule) {
			t.berthSame++
		}
		if len(ids) > 0 {
			t.berthAny++
		} else if allowed {
			t.berthAllowed++
		}
		if slices.Contains(glFound[i], e.Rule) {
			t.glSame++
		}
		if len(glFound[i]) > 0 {
			t.glAny++
		}
		if e.Kind == "tp" && len(ids) == 0 && !allowed {
			missed[e.Rule]++
		}
		if *diff && *gl != "" && (len(ids) > 0) != (len(glFound[i]) > 0) {
			fmt.Printf("%s %s #%d: berth %v, gitleaks %v: %s\n", e.Kind, e.Rule, i, ids, glFound[i], secret.Mask(e.Text))
		}
	}
	pct := func(a, b int) string { return fmt.Sprintf("%d (%.1f%%)", a, 100*float64(a)/float64(max(b, 1))) }
	fmt.Printf("true positives: %d\n", tp.n)
	fmt.Printf("  berth, same rule:      %s\n", pct(tp.berthSame, tp.n))
	fmt.Printf("  berth, any rule:       %s (+%d listed as allowed)\n", pct(tp.berthAny, tp.n), tp.berthAllowed)
	if *gl != "" {
		fmt.Printf("  gitleaks, same rule:   %s\n", pct(tp.glSame, tp.n))
		fmt.Printf("  gitleaks, any rule:    %s\n", pct(tp.glAny, tp.n))
	}
	fmt.Printf("false positives: %d\n", fp.n)
	fmt.Printf("  berth flags:           %s\n", pct(fp.berthAny, fp.n))
	if *gl != "" {
		fmt.Printf("  gitleaks flags:        %s\n", pct(fp.glAny, fp.n))
	}
	var rules []string
	for r := range missed {
		rules = append(rules, r)
	}
	slices.SortFunc(rules, func(a, b string) int { return missed[b] - missed[a] })
	fmt.Println("true positives berth misses, by rule:")
	for _, r := range rules {
		fmt.Printf("  %-40s %d\n", r, missed[r])
	}
}

func read(path string) ([]example, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []example
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e example
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// gitleaksReport maps example index → the rule ids gitleaks reported.
func gitleaksReport(path, dir string) (map[int][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var findings []struct {
		RuleID string `json:"RuleID"`
		File   string `json:"File"`
	}
	if err := json.Unmarshal(data, &findings); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := map[int][]string{}
	for _, f := range findings {
		rel, err := filepath.Rel(dir, f.File)
		if err != nil {
			rel = f.File
		}
		first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		i, err := strconv.Atoi(first)
		if err != nil {
			continue
		}
		out[i] = append(out[i], f.RuleID)
	}
	return out, nil
}
