package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"berth.dev/berth/internal/auth"
	"berth.dev/berth/internal/sign"
)

// projectTrust reads the trusted signing keys of project from
// <trust_dir>/<project>.yaml: nil when there is no such file (or no
// directory configured). Read on every call, so an operator edits keys
// without a restart; a trust file is a few hundred bytes.
func (s *Server) projectTrust(project string) (*sign.Trust, error) {
	if s.cfg.TrustDir == "" || auth.ValidateProjectName(project) != nil {
		return nil, nil
	}
	path := filepath.Join(s.cfg.TrustDir, project+".yaml")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	t, err := sign.LoadTrustFile(path)
	if err != nil {
		return nil, err
	}
	return &t, nil
}
