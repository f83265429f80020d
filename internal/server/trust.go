package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

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

// signatureTrust is what the API and the web UI verify a project's
// signatures with: its trust file's keys and every signing key the server
// holds for it (each version of a rotation), those named by purpose, so
// the scan stage's own signatures show as verified by "scan".
func (s *Server) signatureTrust(project string) (*sign.Trust, error) {
	t, err := s.projectTrust(project)
	if err != nil || s.bg == nil || s.bg.custody == nil || s.sec.auth == nil {
		return t, err
	}
	p, err := s.sec.auth.Project(project)
	if err != nil {
		// No such project: it has no keys (the caller answers for it).
		return t, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, err := s.bg.custody.List(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("signing keys of project %s: %w", project, err)
	}
	var out sign.Trust
	if t != nil {
		out = *t
	}
	seen := map[string]bool{}
	for _, k := range held {
		if seen[k.Purpose] {
			continue
		}
		seen[k.Purpose] = true
		pt, err := s.bg.custody.Trust(ctx, p.ID, k.Purpose)
		if err != nil {
			return nil, fmt.Errorf("signing keys of project %s: %w", project, err)
		}
		for _, tk := range pt.Keys {
			tk.Name = k.Purpose
			out.Keys = append(out.Keys, tk)
		}
	}
	if len(out.Keys) == 0 {
		return nil, nil
	}
	out.Require = max(out.Require, 1)
	return &out, nil
}
