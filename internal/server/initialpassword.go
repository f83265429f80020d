package server

import (
	"os"
	"path/filepath"

	"berth.dev/berth/internal/auth"
)

// InitialPasswordPath is where the data directory keeps the first
// administrator's generated password (mode 0600) until it is changed.
func InitialPasswordPath(dataDir string) string {
	return filepath.Join(dataDir, "initial-admin-password")
}

// announceInitialPassword logs the first administrator's generated
// password once the server is serving, never before: a start that fails
// (the port is taken) must not show it and then leave the next start with
// nothing to show. While the password is unchanged, later starts say where
// it is kept, without repeating it.
func (s *Server) announceInitialPassword() {
	if s.sec.auth == nil {
		return
	}
	path := InitialPasswordPath(s.storage.Dir)
	if pw := s.sec.initialPassword; pw != "" {
		s.sec.initialPassword = ""
		s.log.Warn("created the first administrator; its password is shown only this once in the log and kept in "+path+
			" until it is changed (or set "+AdminPasswordEnv+" on first start to choose it)", "user", auth.InitialAdmin, "password", pw)
		return
	}
	if _, err := os.Stat(path); err == nil {
		s.log.Warn("the first administrator still has its generated password, kept in "+path+
			"; change it (berth admin user update "+auth.InitialAdmin+" --new-password …) and the file goes", "user", auth.InitialAdmin)
	}
}
