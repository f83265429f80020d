package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/sbomfile"
	"berth.dev/berth/internal/vulndb"
	"berth.dev/berth/internal/vulndb/update"
)

// registryCreds are Trivy's flags for a registry's credentials. They apply
// to the registry of the image named, never to another; without them the
// credentials 'berth login' (or docker login) stored are used.
type registryCreds struct {
	username, password, token string
	passwordStdin             bool
}

func (c *registryCreds) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&c.username, "username", "", "registry user (its password from --password, --password-stdin or BERTH_PASSWORD)")
	f.StringVar(&c.password, "password", "", "registry password (prefer --password-stdin or BERTH_PASSWORD: the process list shows flags)")
	f.BoolVar(&c.passwordStdin, "password-stdin", false, "read the registry password from standard input")
	f.StringVar(&c.token, "registry-token", "", "registry bearer token, instead of a user and password")
}

// authenticator returns the credentials the flags give, or nil when they
// give none (the stored ones are then used).
func (c *registryCreds) authenticator(cmd *cobra.Command) (authn.Authenticator, error) {
	switch {
	case c.token != "" && (c.username != "" || c.password != "" || c.passwordStdin):
		return nil, errors.New("--registry-token replaces --username and --password: give one or the other")
	case c.token != "":
		return &authn.Bearer{Token: c.token}, nil
	case c.username == "" && (c.password != "" || c.passwordStdin):
		return nil, errors.New("--password needs --username")
	case c.username == "":
		return nil, nil
	}
	password := c.password
	if c.passwordStdin {
		var err error
		if password, err = readSecret(cmd.InOrStdin()); err != nil {
			return nil, err
		}
	}
	if password == "" {
		password = os.Getenv(loginPasswordEnv)
	}
	if password == "" {
		return nil, errors.New("--username needs a password: --password-stdin, BERTH_PASSWORD or --password")
	}
	return &authn.Basic{Username: c.username, Password: password}, nil
}

// inputArchive checks that --input names an image tarball, as Trivy's
// --input does, and returns it as an image source (the archive's kind,
// docker or OCI, is read from the file). A JSON file is most likely a
// stored report, which berth read with --input before: say where it goes
// now.
func inputArchive(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("--input: %w", err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("--input %s: not a file; --input takes an image tarball (docker save, crane pull, oci-archive)", path)
	}
	head, _ := bufio.NewReader(f).Peek(512)
	if first := bytes.TrimLeft(head, " \t\r\n"); len(first) > 0 && first[0] == '{' {
		return "", fmt.Errorf("--input %s: a JSON document, not an image tarball; a stored report is read with --from-report, an SBOM with sbom:%s", path, path)
	}
	// A bare path is sniffed by image.Open; one that could be taken for a
	// registry reference gets the path prefix that makes it a file.
	if !strings.ContainsRune(path, '/') {
		path = "./" + path
	}
	return path, nil
}

// readSBOMFile reads the document of sbom:FILE.
func readSBOMFile(path string) (*inventory.Inventory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("sbom:%s: %w", path, err)
	}
	defer f.Close()
	inv, err := sbomfile.Read(f, path)
	if err != nil {
		return nil, fmt.Errorf("sbom:%w", err)
	}
	return inv, nil
}

// buildFirstDB builds the vulnerability database a scan found missing,
// from the sources 'berth db update' would read without --source, with
// progress on a terminal, and opens it.
func buildFirstDB(cmd *cobra.Command, info io.Writer, dir string, quiet bool) (*vulndb.DB, error) {
	sources := dbSources(nil)
	names := strings.Join(sources, " ")
	if names == "" {
		names = strings.Join(update.DefaultSources, " ")
	}
	fmt.Fprintf(info, "no vulnerability database in %s: building one from %s (as 'berth db update' does; once)\n", dir, names)
	opts := update.Options{Dir: dir, Sources: sources}
	var pr *progress
	if quiet {
		opts.Logger = slog.New(slog.DiscardHandler)
	} else {
		pr = newProgress(cmd)
		showUpdateProgress(pr, &opts)
	}
	_, err := update.Run(cmd.Context(), opts)
	pr.done()
	if err != nil {
		return nil, fmt.Errorf("no vulnerability database in %s, and building one failed: %w\nrun 'berth db update' (with --source for a mirror), or 'berth db import' a bundle", dir, err)
	}
	return vulndb.Open(dir)
}
