package server

import (
	"net/http"
	"strings"
	"testing"
)

// A project admin cannot point a webhook at the server's own network by
// default; webhooks.allow_private lets the operator allow it.
func TestWebhookReceiversOnPrivateAddresses(t *testing.T) {
	for _, c := range []struct {
		name         string
		allowPrivate bool
		want         int
	}{
		{"default", false, http.StatusBadRequest},
		{"allow_private", true, http.StatusCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := startAuthServer(t, func(cfg *Config) { cfg.Webhooks.AllowPrivate = c.allowPrivate })
			a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team"}), http.StatusCreated, "project")
			for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:5000/v2/", "http://localhost/hook"} {
				r := a.expect(a.api(adminCreds, "POST", "/projects/team/webhooks",
					map[string]any{"url": u, "events": []string{"dev.berth.scan.completed"}}), c.want, "webhook to "+u)
				if c.want == http.StatusBadRequest && !strings.Contains(r.body, "webhooks.allow_private") {
					t.Errorf("refusal of %s does not say how to allow it: %s", u, r.body)
				}
			}
			a.expect(a.api(adminCreds, "POST", "/projects/team/webhooks",
				map[string]any{"url": "https://hooks.example.com/berth", "events": []string{"dev.berth.scan.completed"}}),
				http.StatusCreated, "webhook to a public name")
		})
	}
}
