package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/audit"
)

// TestDeletedProjectsRobotsDieWithIt is the attack of issue 10 item 1: a
// project admin's robot in project P, P deleted and created again by
// another owner who pushes an image. The robot must get nothing in the new
// P (its secret, the token it held and a new token alike), and it must be
// gone, not left where its creator can no longer see or revoke it.
func TestDeletedProjectsRobotsDieWithIt(t *testing.T) {
	a := startAuthServer(t, func(c *Config) { c.Auth.AutoCreateProjects = true })
	for _, u := range []string{"pa", "owner2"} {
		a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": u, "password": u + "-password"}), 201, "create "+u)
	}
	pa, owner2 := basicAuth("pa", "pa-password"), basicAuth("owner2", "owner2-password")
	a.expect(a.api(pa, "POST", "/projects", map[string]any{"name": "p"}), 201, "pa creates p")
	var created struct{ Secret string }
	r := a.expect(a.api(pa, "POST", "/robots", map[string]any{"name": "r",
		"permissions": []map[string]any{{"project": "p", "actions": []string{"pull", "push", "delete"}}}}), 201, "pa creates robot r")
	json.Unmarshal([]byte(r.body), &created)
	robot := basicAuth("robot$r", created.Secret)
	// Before: the robot may pull in p (the manifest is missing, so 404,
	// not a refusal) and holds a token for pull, push and delete.
	a.expect(a.do("GET", "/v2/p/app/manifests/v1", nil, robot...), 404, "robot pulls in p before")
	oldToken := a.token(robot, "repository:p/app:pull,push,delete")

	a.expect(a.api(pa, "DELETE", "/projects/p", nil), 204, "pa deletes p")
	img := makeImage("reborn")
	a.expect(a.push("p/app", "v1", img, owner2), 201, "owner2 pushes to p, creating it again")
	a.expect(a.do("GET", "/v2/p/app/manifests/v1", nil, owner2...), 200, "owner2 pulls")

	layer := "/v2/p/app/blobs/" + digest.FromBytes(img.layer).String()
	for name, creds := range map[string][]string{"secret": robot, "old token": oldToken} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/v2/p/app/manifests/v1"},
			{"GET", layer},
			{"DELETE", "/v2/p/app/manifests/" + img.digest()},
		} {
			got := a.do(req.method, req.path, nil, creds...)
			if got.status != http.StatusUnauthorized && got.status != http.StatusForbidden && got.status != http.StatusNotFound {
				t.Errorf("robot's %s: %s %s = %d %s, want 401, 403 or 404", name, req.method, req.path, got.status, got.body)
			}
		}
	}
	q := url.Values{"service": {"berth"}, "scope": {"repository:p/app:pull,push,delete"}}
	a.expect(a.do("GET", "/token?"+q.Encode(), nil, robot...), 401, "robot asks a new token")
	a.expect(a.api(pa, "GET", "/robots/robot$r", nil), 404, "the creator looks for the robot")
	a.expect(a.api(adminCreds, "GET", "/robots/robot$r", nil), 404, "an administrator looks for the robot")
	a.expect(a.do("GET", "/v2/p/app/manifests/v1", nil, owner2...), 200, "owner2's image is intact")

	var page struct{ Entries []audit.Entry }
	json.Unmarshal([]byte(a.expect(a.api(adminCreds, "GET", "/audit?action=project.delete", nil), 200, "audit").body), &page)
	if len(page.Entries) != 1 || !strings.Contains(page.Entries[0].Detail, "robot$r") {
		t.Errorf("the deletion's audit entry does not name the robot it took: %+v", page.Entries)
	}
}

// TestReusedUserNameInheritsNothing deletes a user holding a token, a
// refresh token and a cached Basic login, and creates another user of the
// same name in the same project: none of the old credentials work.
func TestReusedUserNameInheritsNothing(t *testing.T) {
	a := startAuthServer(t)
	a.expect(a.api(adminCreds, "POST", "/projects", map[string]any{"name": "team-u"}), 201, "create team-u")
	a.expect(a.push("team-u/app", "v1", makeImage("u"), adminCreds), 201, "seed")
	newAlice := func(password string) {
		a.expect(a.api(adminCreds, "POST", "/users", map[string]any{"name": "alice", "password": password}), 201, "create alice")
		a.expect(a.api(adminCreds, "PUT", "/projects/team-u/members/alice", map[string]any{"role": "developer"}), 200, "alice joins team-u")
	}
	newAlice("first-password")
	old := basicAuth("alice", "first-password")
	a.expect(a.do("GET", "/v2/team-u/app/manifests/v1", nil, old...), 200, "alice pulls with Basic (now cached)")
	tok := a.token(old, "repository:team-u/app:pull")
	a.expect(a.do("GET", "/v2/team-u/app/manifests/v1", nil, tok...), 200, "alice pulls with a token")
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"first-password"}, "access_type": {"offline"}, "service": {"berth"}}
	var grant struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.Unmarshal([]byte(a.expect(a.do("POST", "/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded"), 200, "refresh token").body), &grant)

	a.expect(a.api(adminCreds, "DELETE", "/users/alice", nil), 204, "delete alice")
	newAlice("second-password")

	a.expect(a.do("GET", "/v2/team-u/app/manifests/v1", nil, tok...), 401, "the deleted alice's token")
	a.expect(a.do("GET", "/v2/team-u/app/manifests/v1", nil, old...), 401, "the deleted alice's cached Basic login")
	a.expect(a.api(tok, "GET", "/me", nil), 401, "the deleted alice's token on the admin API")
	refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {grant.RefreshToken}, "service": {"berth"}}
	a.expect(a.do("POST", "/token", []byte(refresh.Encode()), "Content-Type", "application/x-www-form-urlencoded"), 401, "the deleted alice's refresh token")
	a.expect(a.do("GET", "/v2/team-u/app/manifests/v1", nil, basicAuth("alice", "second-password")...), 200, "the new alice")
}
