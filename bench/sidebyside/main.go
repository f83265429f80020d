// Command sidebyside runs several commands in alternating rounds on the same
// input and prints the median wall time and peak memory of each, and the
// ratios asked for. The bench/*.sh scripts use it to compare berth with its
// peers (syft, osv-scanner, cosign) in one run.
//
//	sidebyside -rounds 5 \
//	  -prep 'berth-cold=rm -rf /tmp/cache' \
//	  -run 'berth-cold=berth sbom --cache-dir /tmp/cache IMAGE -o /dev/null' \
//	  -run 'syft=syft scan IMAGE -o json=/dev/null' \
//	  -ratio syft/berth-cold
//
// Each command runs under `sh -c "exec …"`, so the measured process is the
// command itself; a -prep command runs untimed before every timed run of the
// command with the same name. The ratio a/b is median(a)/median(b): with a
// peer as a, a ratio above 1 means berth is that many times faster or smaller.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type command struct {
	name, run, prep string
	walls           []time.Duration
	cpus            []time.Duration // user + system
	rssKB           []int64
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var runs, preps, ratios listFlag
	rounds := flag.Int("rounds", 5, "alternating rounds")
	warmup := flag.Int("warmup", 1, "untimed rounds first")
	flag.Var(&runs, "run", "name=command (repeatable; timed)")
	flag.Var(&preps, "prep", "name=command run untimed before each run of name")
	flag.Var(&ratios, "ratio", "a/b: print median(a)/median(b) for time and memory")
	flag.Parse()
	if err := run(runs, preps, ratios, *rounds, *warmup); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}

func run(runs, preps, ratios []string, rounds, warmup int) error {
	var cmds []*command
	byName := map[string]*command{}
	for _, r := range runs {
		name, line, ok := strings.Cut(r, "=")
		if !ok {
			return fmt.Errorf("-run %q: want name=command", r)
		}
		c := &command{name: name, run: line}
		cmds = append(cmds, c)
		byName[name] = c
	}
	for _, p := range preps {
		name, line, ok := strings.Cut(p, "=")
		c := byName[name]
		if !ok || c == nil {
			return fmt.Errorf("-prep %q: want name=command for a -run name", p)
		}
		c.prep = line
	}
	if len(cmds) == 0 {
		return errors.New("nothing to run")
	}
	for round := -warmup; round < rounds; round++ {
		order := slices.Clone(cmds)
		if round%2 != 0 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if c.prep != "" {
				if out, err := exec.Command("sh", "-c", c.prep).CombinedOutput(); err != nil {
					return fmt.Errorf("%s: prep: %w\n%s", c.name, err, out)
				}
			}
			wall, cpu, rss, err := timed(c.run)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			if round >= 0 {
				c.walls = append(c.walls, wall)
				c.cpus = append(c.cpus, cpu)
				c.rssKB = append(c.rssKB, rss)
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "command\tmedian wall\tmin wall\tmedian CPU (user+sys)\tmedian peak RSS\t")
	for _, c := range cmds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f MB\t\n", c.name, ms(median(c.walls)), ms(slices.Min(c.walls)), ms(median(c.cpus)), float64(median(c.rssKB))/1024)
	}
	tw.Flush()
	for _, r := range ratios {
		a, b, ok := strings.Cut(r, "/")
		ca, cb := byName[a], byName[b]
		if !ok || ca == nil || cb == nil {
			return fmt.Errorf("-ratio %q: want a/b of -run names", r)
		}
		fmt.Printf("%s / %s: wall %.2f×, CPU %.2f×, peak RSS %.2f×\n", a, b,
			float64(median(ca.walls))/float64(median(cb.walls)),
			float64(median(ca.cpus))/float64(median(cb.cpus)),
			float64(median(ca.rssKB))/float64(median(cb.rssKB)))
	}
	return nil
}

// timed runs line and returns its wall time, CPU time (user + system) and
// peak resident set size.
func timed(line string) (wall, cpu time.Duration, rssKB int64, err error) {
	cmd := exec.Command("sh", "-c", "exec "+line)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w\n%s", line, err, stderr.String())
	}
	cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return wall, cpu, 0, nil
	}
	return wall, cpu, ru.Maxrss, nil
}

func median[T int64 | time.Duration](v []T) T {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
