package server

import (
	"net/http"

	"berth.dev/berth/internal/ui"
)

// newUI builds the web UI over the API. Its pages call the API in
// process through the same audit gate as requests from outside: while the
// audit log cannot be written, a form's change is refused as the API's is.
func (s *Server) newUI(version string) (*ui.UI, error) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse := s.auditRefusal(r, "api", false); refuse != nil {
			refuse.ServeHTTP(w, r)
			return
		}
		s.api.ServeHTTP(w, r)
	})
	return ui.New(ui.Options{API: api, Auth: s.sec.auth, Logger: s.log, Version: version})
}
