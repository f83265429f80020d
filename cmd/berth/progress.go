package main

import (
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// progress draws what a long command is doing on standard error: a
// spinner while it waits (on a registry, a download that has not started),
// a bar of bytes while it downloads. Only on a terminal, and not when logs
// are JSON: CI logs and pipes get no control characters. A nil *progress
// draws nothing, so callers need not check.
type progress struct {
	w   io.Writer
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// progressEnabled reports whether progress is drawn for cmd.
func progressEnabled(cmd *cobra.Command) bool {
	if !term.IsTerminal(int(os.Stderr.Fd())) || os.Getenv("TERM") == "dumb" {
		return false
	}
	if f := cmd.Root().PersistentFlags().Lookup("log-format"); f != nil && !strings.EqualFold(f.Value.String(), "text") {
		return false
	}
	return true
}

// newProgress returns a progress display for cmd, or nil when none is
// drawn.
func newProgress(cmd *cobra.Command) *progress {
	if !progressEnabled(cmd) {
		return nil
	}
	return &progress{w: os.Stderr}
}

// replace ends the current bar and makes bar the current one.
func (p *progress) replace(bar *progressbar.ProgressBar) {
	if p.bar != nil {
		p.bar.Finish()
	}
	p.bar = bar
}

// spin shows a spinner with desc until the next call or done.
func (p *progress) spin(desc string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true))
	p.replace(bar)
}

// bytes shows a bar of total bytes (a counting spinner when total is
// unknown) with desc, and returns what to call with each chunk.
func (p *progress) bytes(desc string, total int64) func(n int64) {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true))
	p.replace(bar)
	return func(n int64) { bar.Add64(n) }
}

// done clears what is drawn.
func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replace(nil)
}
