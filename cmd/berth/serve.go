package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"berth.dev/berth/internal/server"
)

func newServeCmd() *cobra.Command {
	var configPath string
	values := map[string]*settingValue{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the registry (OCI distribution v1.1) with health, metrics and garbage collection",
		Long: `Run the registry: the OCI distribution API under /v2/, /healthz, /readyz and
/metrics. Settings come from defaults, then --config FILE (YAML), then BERTH_*
environment variables, then flags. SIGTERM or SIGINT finish in-flight requests
and stop; SIGUSR1 runs garbage collection now.

Settings (YAML key, environment variable):
` + settingsHelp(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(configPath)
			if err != nil {
				return err
			}
			for _, s := range server.Settings() {
				if v := values[s.Flag]; cmd.Flags().Changed(s.Flag) {
					if err := s.Set(&cfg, v.raw); err != nil {
						return fmt.Errorf("--%s: %w", s.Flag, err)
					}
				}
			}
			ctx := cmd.Context()
			srv, err := server.New(ctx, cfg, server.Options{Logger: slog.Default(), Version: version})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Addr)
			if err != nil {
				srv.Close()
				return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
			}
			usr1 := make(chan os.Signal, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			defer signal.Stop(usr1)
			go func() {
				for range usr1 {
					slog.Info("SIGUSR1: collecting garbage")
					srv.TriggerGC()
				}
			}()
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "YAML configuration file (default $BERTH_CONFIG)")
	defaults := server.DefaultConfig()
	for _, s := range server.Settings() {
		v := &settingValue{kind: s.Kind, raw: s.Get(&defaults)}
		values[s.Flag] = v
		f := cmd.Flags().VarPF(v, s.Flag, "", s.Help)
		if s.Kind == "bool" {
			f.NoOptDefVal = "true"
		}
	}
	return cmd
}

// settingValue holds a flag's text until the configuration is assembled,
// so that flags override the file and the environment whatever their order.
type settingValue struct {
	kind string
	raw  string
	set  bool
}

func (v *settingValue) String() string { return v.raw }

// Set keeps the flag's text; a repeated setting's flags add up.
func (v *settingValue) Set(s string) error {
	if v.kind == "repeated" && v.set {
		v.raw += " " + s
	} else {
		v.raw = s
	}
	v.set = true
	return nil
}
func (v *settingValue) Type() string { return v.kind }

func settingsHelp() string {
	width := 0
	for _, s := range server.Settings() {
		width = max(width, len(s.Key))
	}
	out := ""
	for _, s := range server.Settings() {
		out += fmt.Sprintf("  %-*s %s\n", width, s.Key, s.Env())
	}
	return out
}

// loadConfig assembles defaults, the YAML file (path, or $BERTH_CONFIG) and
// the environment.
func loadConfig(path string) (server.Config, error) {
	cfg := server.DefaultConfig()
	if path == "" {
		path = os.Getenv("BERTH_CONFIG")
	}
	if path != "" {
		if err := cfg.LoadFile(path); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// openOffline opens the storage cfg names for a command that must not run
// beside a server on the same embedded data directory (a shared database
// is not locked: its stores are safe for replicas and commands at once).
func openOffline(cmd *cobra.Command, cfg server.Config, what string) (*server.Storage, error) {
	st, err := server.OpenBackends(cmd.Context(), cfg.Backends())
	if errors.Is(err, server.ErrDataDirInUse) {
		return nil, fmt.Errorf("%w\n%s", err, what)
	}
	return st, err
}
