package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"berth.dev/berth/internal/image"
	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/analyzers"
	"berth.dev/berth/internal/report"
)

// progressThreshold is the amount of layer data below which no progress
// bar is drawn: small images are done before a bar would be read.
const progressThreshold = 32 << 20

func newSBOMCmd() *cobra.Command {
	var (
		format, output, platform, cacheDir string
		attestType                         string
		insecure, noCache                  bool
		att                                attestFlags
	)
	cmd := &cobra.Command{
		Use:   "sbom IMAGE",
		Short: "List the packages inside an image",
		Long: `List the packages inside an image, as an SBOM.

IMAGE is one of:
  host:port/repo:tag, repo@sha256:…   an image in a registry (docker://… and registry:… too)
  oci-archive:PATH[:REF]              an OCI layout in a tar (skopeo's oci-archive)
  docker-archive:PATH[:REPO:TAG]      a docker save / crane pull tarball
  oci-dir:PATH[:REF]                  an OCI layout directory (also oci:PATH)
  dir:PATH                            a root filesystem
A bare path to a .tar file or a directory is recognised as one of these.

Layer results are cached in --cache-dir (default $BERTH_CACHE_DIR, else
<user cache dir>/berth), so layers shared with images scanned before are
not read again.

--attest --key KEY also signs the SBOM (--attest-type, CycloneDX by
default) as an in-toto attestation and attaches it to the image, as
'berth attest' would: the reference is resolved to a digest once, that
digest is read, and the attestation is about it. Registry images only.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format = sbomFormat(format, output)
			if _, err := report.LookupSBOM(format); err != nil {
				return fmt.Errorf("--format: %w", err)
			}
			if err := att.check(cmd); err != nil {
				return err
			}
			attestType = canonicalSBOMFormat(attestType)
			attestKind, ok := sbomAttestKinds[attestType]
			switch {
			case !ok:
				return fmt.Errorf("--attest-type %q: want cyclonedx or spdx", attestType)
			case !att.on && cmd.Flags().Changed("attest-type"):
				return errors.New("--attest-type only means something with --attest")
			}
			var err error
			var cache *inventory.Cache
			if !noCache {
				if cache, err = openSBOMCache(cacheDir); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			src := args[0]
			var pending *pendingAttestation
			if att.on {
				if pending, err = att.prepare(cmd, src, insecure); err != nil {
					return err
				}
				if err := pending.resolve(); err != nil {
					return err
				}
				src = pending.source()
			}
			img, err := image.Open(ctx, src, image.Options{Platform: platform, Insecure: insecure})
			if err != nil {
				return err
			}
			defer img.Close()
			img.Source = args[0]
			s := &inventory.Scanner{Analyzers: analyzers.All(), Cache: cache}
			var bar *progressbar.ProgressBar
			if progressEnabled(cmd) {
				s.OnPlan = func(toRead []image.Layer) {
					var total int64
					for _, l := range toRead {
						total += l.Size
					}
					if total < progressThreshold {
						return
					}
					bar = progressbar.NewOptions64(total,
						progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionSetDescription("reading layers"),
						progressbar.OptionShowBytes(true),
						progressbar.OptionClearOnFinish(),
						progressbar.OptionThrottle(100_000_000))
					s.Progress = func(n int64) { bar.Add64(n) }
				}
			}
			inv, err := s.Scan(ctx, img)
			if bar != nil {
				bar.Finish()
			}
			if err != nil {
				return err
			}
			// What the SBOM leaves out and why (files skipped for size,
			// damaged databases), as berth scan says it.
			for _, w := range inv.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			opts := report.Options{ToolVersion: version}
			var predicate bytes.Buffer
			if pending != nil {
				// One creation time and serial number, so that when -f
				// names the attested format, the file and the
				// attestation hold the same document.
				opts.Created, opts.DocumentID = time.Now(), uuid.New()
				if err := report.EncodeSBOM(&predicate, attestType, inv, opts); err != nil {
					return err
				}
			}
			if err := writeSBOMOutput(output, func(w io.Writer) error {
				return report.EncodeSBOM(w, format, inv, opts)
			}); err != nil {
				return err
			}
			if pending != nil {
				return pending.finish(img.Digest, attestKind, predicate.Bytes())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "output format: "+strings.Join(report.SBOMFormatNames(), ", ")+
		" (also cyclonedx-json, spdx-json); default: table on a terminal, cyclonedx into a pipe or -o")
	f.StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	f.StringVar(&platform, "platform", image.DefaultPlatform, "platform to pick from a multi-arch image, os/arch[/variant]")
	f.StringVar(&cacheDir, "cache-dir", "", "layer cache directory (default $BERTH_CACHE_DIR or <user cache dir>/berth)")
	f.BoolVar(&noCache, "no-cache", false, "neither read nor write the layer cache")
	f.BoolVar(&insecure, "insecure", false, "allow plain HTTP and unverified TLS for registries off the loopback interface")
	att.add(cmd, "the SBOM")
	f.StringVar(&attestType, "attest-type", "cyclonedx", "with --attest: the SBOM format attested, cyclonedx or spdx (also cyclonedx-json, spdx-json; whatever --format prints)")
	return cmd
}

// sbomFormat is the format berth sbom writes: the one asked for (Trivy's
// and syft's names spdx-json and cyclonedx-json too), else a table for a
// person at a terminal and CycloneDX for a pipe or a file, as syft does.
func sbomFormat(asked, output string) string {
	if asked != "" {
		return canonicalSBOMFormat(asked)
	}
	if output == "" && term.IsTerminal(int(os.Stdout.Fd())) {
		return "table"
	}
	return "cyclonedx"
}

// canonicalSBOMFormat maps the format names other tools use to berth's.
func canonicalSBOMFormat(name string) string {
	switch strings.ToLower(name) {
	case "cyclonedx-json":
		return "cyclonedx"
	case "spdx-json":
		return "spdx"
	}
	return name
}

// sbomAttestKinds maps --attest-type to the predicate kind cosign names
// the same document with.
var sbomAttestKinds = map[string]string{"cyclonedx": "cyclonedx", "spdx": "spdxjson"}

// openSBOMCache opens the layer cache in dir. Without --cache-dir, a cache
// that cannot be opened (no home directory, a read-only one) only costs
// speed: the scan goes on without it.
func openSBOMCache(dir string) (*inventory.Cache, error) {
	if dir != "" {
		return inventory.OpenCache(dir)
	}
	dir, err := inventory.DefaultCacheDir()
	if err == nil {
		var cache *inventory.Cache
		if cache, err = inventory.OpenCache(dir); err == nil {
			return cache, nil
		}
	}
	slog.Warn("scanning without the layer cache", "err", err)
	return nil, nil
}

// writeSBOMOutput writes to path (see writeOutput), or to standard output
// when path is empty.
func writeSBOMOutput(path string, write func(io.Writer) error) error {
	if path == "" {
		return write(os.Stdout)
	}
	return writeOutput(path, outputFile{Perm: 0o644}, write)
}
