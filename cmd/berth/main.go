// Command berth is a container registry that knows what is inside every image,
// what is wrong with it, who vouches for it and what may run.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version and commit are set at build time by scripts/release.sh with
// -ldflags "-X main.version=… -X main.commit=…"; otherwise they come from
// the build information the Go toolchain stamps (see resolveVersion).
var (
	version = "dev"
	commit  = ""
)

// exitError carries a process exit code out of a command without printing
// anything more: the command has already said what went wrong.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	version = resolveVersion(version, readBuildInfo())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, err := newRootCmd().ExecuteContextC(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "berth:", explainAuth(err, explicitCredentials(cmd)))
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	var logLevel, logFormat string
	root := &cobra.Command{
		Use:           "berth",
		Short:         "A container registry that knows what is inside every image",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			slog.SetDefault(logger)
			return nil
		},
	}
	root.SetVersionTemplate(versionText(version, commit, readBuildInfo()))
	root.PersistentFlags().StringVar(&logLevel, "log-level", envOr("BERTH_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&logFormat, "log-format", envOr("BERTH_LOG_FORMAT", "text"), "log format: text or json")
	root.AddCommand(
		newVersionCmd(),
		newLintCmd(),
		newDBCmd(),
		newSBOMCmd(),
		newScanCmd(),
		newKeyCmd(),
		newSignCmd(),
		newVerifyCmd(),
		newAttestCmd(),
		newVerifyAttestationCmd(),
		newSignBlobCmd(),
		newVerifyBlobCmd(),
		newServeCmd(),
		newGCCmd(),
		newFsckCmd(),
		newAdminCmd(),
		newAuditCmd(),
		newLoginCmd(),
		newLogoutCmd(),
		newPolicyCmd(),
		newAdmissionCmd(),
	)
	// cobra adds `berth completion SHELL` on first execution; the values
	// of flags with a known set complete too.
	registerCompletions(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of berth, the commit it was built from and the Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprint(cmd.OutOrStdout(), versionText(version, commit, readBuildInfo()))
		},
	}
}

// readBuildInfo is the binary's build information, or nil.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// resolveVersion is the version berth reports (in reports, attestations,
// the User-Agent and berth version): what a release build set with
// -ldflags "-X main.version=…", else the module version the Go toolchain
// stamped (go install …@v1.2.3, or a pseudo-version from the git checkout
// it was built in), else "dev".
func resolveVersion(set string, bi *debug.BuildInfo) string {
	if set != "dev" && set != "" {
		return set
	}
	if bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionText is what berth version and berth --version print: the
// version, the commit (stamped by the toolchain, else set by the release
// build: the toolchain stamps nothing in a git worktree or a source
// tarball) and the Go version and platform.
func versionText(ver, setCommit string, bi *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "berth %s\n", ver)
	settings := map[string]string{}
	goVersion := runtime.Version()
	if bi != nil {
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		goVersion = bi.GoVersion
	}
	if settings["vcs.revision"] == "" && setCommit != "" {
		settings["vcs.revision"] = setCommit
	}
	if rev := settings["vcs.revision"]; rev != "" {
		commit := rev
		if t := settings["vcs.time"]; t != "" {
			commit += " (" + t + ")"
		}
		if settings["vcs.modified"] == "true" {
			commit += ", with uncommitted changes"
		}
		fmt.Fprintf(&b, "commit: %s\n", commit)
	}
	fmt.Fprintf(&b, "go:     %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
