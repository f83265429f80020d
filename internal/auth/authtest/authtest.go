// Package authtest is the test suite every auth.Store runs.
package authtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/auth"
)

// Factory returns a fresh empty store.
type Factory func(t testing.TB) auth.Store

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("Users", func(t *testing.T) { testUsers(t, factory(t)) })
	t.Run("Projects", func(t *testing.T) { testProjects(t, factory(t)) })
	t.Run("Members", func(t *testing.T) { testMembers(t, factory(t)) })
	t.Run("Robots", func(t *testing.T) { testRobots(t, factory(t)) })
	t.Run("RefreshTokens", func(t *testing.T) { testRefreshTokens(t, factory(t)) })
	t.Run("DeletedProjectLeavesNothing", func(t *testing.T) { testDeletedProjectLeavesNothing(t, factory(t)) })
	t.Run("RobotsRacingProjectDeletion", func(t *testing.T) { testRobotsRacingProjectDeletion(t, factory(t)) })
	t.Run("Lockouts", func(t *testing.T) { testLockouts(t, factory(t)) })
	t.Run("Sessions", func(t *testing.T) { testSessions(t, factory(t)) })
	t.Run("SessionLimits", func(t *testing.T) { testSessionLimits(t, factory(t)) })
	t.Run("SessionsEndWithTheAccount", func(t *testing.T) { testSessionsEndWithTheAccount(t, factory(t)) })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: err = %v, want %v", what, err, target)
	}
}

// at is a time that survives a nanosecond round trip with no monotonic
// reading, for DeepEqual.
var at = time.Unix(0, time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC).UnixNano())

func testUsers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	alice := auth.User{ID: "u-alice", Name: "alice", PasswordHash: "$2a$hash", CreatedAt: at,
		AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}}
	must(t, s.CreateUser(ctx, alice))
	must(t, s.CreateUser(ctx, auth.User{ID: "u-admin", Name: "admin", PasswordHash: "$2a$other", Admin: true, CreatedAt: at}))
	wantErr(t, s.CreateUser(ctx, alice), auth.ErrExists, "duplicate user")
	dup := alice
	dup.Name = "alice2"
	wantErr(t, s.CreateUser(ctx, dup), auth.ErrExists, "duplicate user id")
	wantErr(t, s.CreateUser(ctx, auth.User{Name: "noid"}), auth.ErrInvalid, "user without an id")
	got, err := s.User(ctx, "alice")
	must(t, err)
	if !reflect.DeepEqual(got, alice) {
		t.Errorf("User = %+v\nwant   %+v", got, alice)
	}
	_, err = s.User(ctx, "nobody")
	wantErr(t, err, auth.ErrNotFound, "missing user")
	all, err := s.Users(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "admin" || !all[0].Admin || all[1].Name != "alice" {
		t.Errorf("Users = %+v", all)
	}
	// Refresh tokens end with the password or the account, in the
	// update's transaction; other changes keep them.
	refresh := func(hash string) {
		must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: hash, Subject: "alice", AccountID: alice.ID, CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	}
	kept := func(hash string, want bool, what string) {
		t.Helper()
		_, err := s.RefreshToken(ctx, hash)
		if got := err == nil; got != want {
			t.Errorf("%s: refresh token kept = %v (%v), want %v", what, got, err, want)
		}
	}
	refresh("r1")
	alice.AllowedCIDRs = nil
	must(t, s.UpdateUser(ctx, alice))
	kept("r1", true, "same password")
	alice.PasswordHash = "$2a$changed"
	must(t, s.UpdateUser(ctx, alice))
	kept("r1", false, "password changed")
	refresh("r2")
	alice.Disabled = true
	must(t, s.UpdateUser(ctx, alice))
	kept("r2", false, "disabled")
	alice.Disabled, alice.Admin, alice.PasswordHash, alice.AllowedCIDRs = true, true, "$2a$new", nil
	must(t, s.UpdateUser(ctx, alice))
	got, _ = s.User(ctx, "alice")
	if !reflect.DeepEqual(got, alice) {
		t.Errorf("after update = %+v\nwant         %+v", got, alice)
	}
	wantErr(t, s.UpdateUser(ctx, auth.User{ID: "u-nobody", Name: "nobody"}), auth.ErrNotFound, "update missing user")
	must(t, s.DeleteUser(ctx, "alice"))
	wantErr(t, s.DeleteUser(ctx, "alice"), auth.ErrNotFound, "delete deleted user")
	// A new alice is another account: an update addressed to the old
	// one's id changes nothing.
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice-2", Name: "alice", PasswordHash: "$2a$third", CreatedAt: at}))
	wantErr(t, s.UpdateUser(ctx, alice), auth.ErrNotFound, "update of a deleted user's id")
	if got, _ := s.User(ctx, "alice"); got.ID != "u-alice-2" || got.PasswordHash != "$2a$third" {
		t.Errorf("new alice = %+v", got)
	}
}

func testProjects(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", CreatedAt: at}))
	p := auth.Project{ID: "p-team-a", Name: "team-a", CreatedAt: at, CreatedBy: "alice"}
	must(t, s.CreateProject(ctx, p, "u-alice"))
	wantErr(t, s.CreateProject(ctx, p, ""), auth.ErrExists, "duplicate project")
	wantErr(t, s.CreateProject(ctx, auth.Project{ID: "p-other", Name: "team-a", CreatedAt: at}, ""), auth.ErrExists, "duplicate project name")
	// A missing admin fails the whole creation.
	wantErr(t, s.CreateProject(ctx, auth.Project{ID: "p-orphan", Name: "orphan", CreatedAt: at}, "u-nobody"), auth.ErrNotFound, "project with a missing admin")
	_, err := s.Project(ctx, "orphan")
	wantErr(t, err, auth.ErrNotFound, "project whose creation failed")
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-library", Name: "library", Public: true, CreatedAt: at}, ""))
	got, err := s.Project(ctx, "team-a")
	must(t, err)
	if !reflect.DeepEqual(got, p) {
		t.Errorf("Project = %+v, want %+v", got, p)
	}
	members, _ := s.Members(ctx, "p-team-a")
	if !reflect.DeepEqual(members, []auth.Member{{Project: "team-a", User: "alice", Role: auth.ProjectAdmin, ProjectID: "p-team-a", UserID: "u-alice"}}) {
		t.Errorf("creator's membership = %+v", members)
	}
	p.Public, p.AutoScan = true, !p.AutoScan
	must(t, s.UpdateProject(ctx, p))
	all, err := s.Projects(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "library" || !all[1].Public || all[1].AutoScan != p.AutoScan {
		t.Errorf("Projects = %+v", all)
	}
	wantErr(t, s.UpdateProject(ctx, auth.Project{ID: "p-nope", Name: "nope"}), auth.ErrNotFound, "update missing project")
	_, err = s.DeleteProject(ctx, "p-team-a")
	must(t, err)
	_, err = s.DeleteProject(ctx, "p-team-a")
	wantErr(t, err, auth.ErrNotFound, "delete deleted project")
	if members, _ := s.Members(ctx, ""); len(members) != 0 {
		t.Errorf("memberships outlived their project: %+v", members)
	}
}

func testMembers(t *testing.T, s auth.Store) {
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		must(t, s.CreateUser(ctx, auth.User{ID: "u-" + u, Name: u, CreatedAt: at}))
	}
	for _, p := range []string{"team-a", "team-b"} {
		must(t, s.CreateProject(ctx, auth.Project{ID: "p-" + p, Name: p, CreatedAt: at}, ""))
	}
	member := func(project, user string, role auth.Role) auth.Member {
		return auth.Member{Project: project, User: user, Role: role, ProjectID: "p-" + project, UserID: "u-" + user}
	}
	must(t, s.PutMember(ctx, member("team-a", "bob", auth.Guest)))
	must(t, s.PutMember(ctx, member("team-a", "alice", auth.Developer)))
	must(t, s.PutMember(ctx, member("team-b", "bob", auth.Maintainer)))
	must(t, s.PutMember(ctx, member("team-a", "bob", auth.LimitedGuest)))
	wantErr(t, s.PutMember(ctx, member("nope", "bob", auth.Guest)), auth.ErrNotFound, "member of a missing project")
	wantErr(t, s.PutMember(ctx, member("team-a", "nobody", auth.Guest)), auth.ErrNotFound, "missing user as member")
	got, err := s.Members(ctx, "p-team-a")
	must(t, err)
	want := []auth.Member{member("team-a", "alice", auth.Developer), member("team-a", "bob", auth.LimitedGuest)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Members(team-a) = %+v, want %+v", got, want)
	}
	all, _ := s.Members(ctx, "")
	if len(all) != 3 {
		t.Errorf("every membership = %+v", all)
	}
	must(t, s.RemoveMember(ctx, "p-team-a", "u-alice"))
	wantErr(t, s.RemoveMember(ctx, "p-team-a", "u-alice"), auth.ErrNotFound, "remove removed member")
	must(t, s.DeleteUser(ctx, "bob"))
	if all, _ := s.Members(ctx, ""); len(all) != 0 {
		t.Errorf("memberships outlived their user: %+v", all)
	}
	// A user created again under bob's name is not a member of anything.
	must(t, s.CreateUser(ctx, auth.User{ID: "u-bob-2", Name: "bob", CreatedAt: at}))
	if all, _ := s.Members(ctx, ""); len(all) != 0 {
		t.Errorf("a new user inherited memberships: %+v", all)
	}
}

func testRobots(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-team-a", Name: "team-a", CreatedAt: at}, ""))
	wantErr(t, s.CreateRobot(ctx, auth.Robot{ID: "r-gone", Name: "robot$gone", CreatedAt: at,
		Permissions: []auth.RobotPermission{{Project: "gone", ProjectID: "p-gone", Actions: []auth.Action{auth.Pull}}}}),
		auth.ErrNotFound, "robot of a project that does not exist")
	r := auth.Robot{ID: "r-ci", Name: "robot$ci", Description: "CI pushes", CreatedBy: "admin", CreatedAt: at, SecretHash: "abc",
		Permissions:  []auth.RobotPermission{{Project: "team-a", ProjectID: "p-team-a", Actions: []auth.Action{auth.Pull, auth.Push}}},
		ExpiresAt:    at.Add(time.Hour),
		AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	must(t, s.CreateRobot(ctx, r))
	wantErr(t, s.CreateRobot(ctx, r), auth.ErrExists, "duplicate robot")
	must(t, s.CreateRobot(ctx, auth.Robot{ID: "r-forever", Name: "robot$forever", CreatedBy: "admin", CreatedAt: at}))
	got, err := s.Robot(ctx, "robot$ci")
	must(t, err)
	if !reflect.DeepEqual(got, r) {
		t.Errorf("Robot = %+v\nwant    %+v", got, r)
	}
	forever, err := s.Robot(ctx, "robot$forever")
	must(t, err)
	if !forever.ExpiresAt.IsZero() || len(forever.Permissions) != 0 {
		t.Errorf("robot without expiry or permissions = %+v", forever)
	}
	r.Revoked, r.SecretHash, r.Permissions = true, "def", nil
	must(t, s.UpdateRobot(ctx, r))
	got, _ = s.Robot(ctx, "robot$ci")
	if !got.Revoked || got.SecretHash != "def" || len(got.Permissions) != 0 {
		t.Errorf("after update = %+v", got)
	}
	all, err := s.Robots(ctx)
	must(t, err)
	if len(all) != 2 || all[0].Name != "robot$ci" {
		t.Errorf("Robots = %+v", all)
	}
	wantErr(t, s.UpdateRobot(ctx, auth.Robot{ID: "r-nope", Name: "robot$nope"}), auth.ErrNotFound, "update missing robot")
	must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: "h", Subject: "robot$ci", AccountID: "r-ci", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	must(t, s.DeleteRobot(ctx, "robot$ci"))
	_, err = s.Robot(ctx, "robot$ci")
	wantErr(t, err, auth.ErrNotFound, "deleted robot")
	_, err = s.RefreshToken(ctx, "h")
	wantErr(t, err, auth.ErrNotFound, "refresh token of a deleted robot")
	wantErr(t, s.DeleteRobot(ctx, "robot$ci"), auth.ErrNotFound, "delete deleted robot")
}

func testRefreshTokens(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", CreatedAt: at}))
	live := auth.RefreshToken{Hash: "live", Subject: "alice", AccountID: "u-alice", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	must(t, s.PutRefreshToken(ctx, live))
	must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: "old", Subject: "alice", AccountID: "u-alice", CreatedAt: at, ExpiresAt: at.Add(-time.Hour)}))
	must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: "bob's", Subject: "bob", AccountID: "u-bob", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	wantErr(t, s.PutRefreshToken(ctx, live), auth.ErrExists, "duplicate refresh token")
	got, err := s.RefreshToken(ctx, "live")
	must(t, err)
	if !reflect.DeepEqual(got, live) {
		t.Errorf("RefreshToken = %+v, want %+v", got, live)
	}
	must(t, s.DeleteExpiredRefreshTokens(ctx, at))
	_, err = s.RefreshToken(ctx, "old")
	wantErr(t, err, auth.ErrNotFound, "expired refresh token")
	must(t, s.DeleteRefreshTokens(ctx, "u-alice"))
	_, err = s.RefreshToken(ctx, "live")
	wantErr(t, err, auth.ErrNotFound, "refresh token of a subject whose tokens were deleted")
	if _, err := s.RefreshToken(ctx, "bob's"); err != nil {
		t.Errorf("another subject's token went too: %v", err)
	}
	must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: "again", Subject: "alice", AccountID: "u-alice", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))
	must(t, s.DeleteUser(ctx, "alice"))
	_, err = s.RefreshToken(ctx, "again")
	wantErr(t, err, auth.ErrNotFound, "refresh token of a deleted user")
}

// testDeletedProjectLeavesNothing deletes a project with members and
// robots: its memberships go, a robot that had permissions only there is
// deleted with its refresh tokens, a robot with others keeps those, and a
// project created again under the name has none of it.
func testDeletedProjectLeavesNothing(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", CreatedAt: at}))
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-doomed", Name: "doomed", CreatedAt: at}, "u-alice"))
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-kept", Name: "kept", CreatedAt: at}, ""))
	perm := func(project string) auth.RobotPermission {
		return auth.RobotPermission{Project: project, ProjectID: "p-" + project, Actions: []auth.Action{auth.Pull}}
	}
	must(t, s.CreateRobot(ctx, auth.Robot{ID: "r-only", Name: "robot$only", CreatedAt: at, Permissions: []auth.RobotPermission{perm("doomed")}}))
	must(t, s.CreateRobot(ctx, auth.Robot{ID: "r-both", Name: "robot$both", CreatedAt: at, Permissions: []auth.RobotPermission{perm("doomed"), perm("kept")}}))
	must(t, s.CreateRobot(ctx, auth.Robot{ID: "r-all", Name: "robot$all", CreatedAt: at,
		Permissions: []auth.RobotPermission{{Project: auth.AllProjects, Actions: []auth.Action{auth.Pull}}}}))
	must(t, s.PutRefreshToken(ctx, auth.RefreshToken{Hash: "only's", Subject: "robot$only", AccountID: "r-only", CreatedAt: at, ExpiresAt: at.Add(time.Hour)}))

	deleted, err := s.DeleteProject(ctx, "p-doomed")
	must(t, err)
	if !reflect.DeepEqual(deleted, []string{"robot$only"}) {
		t.Errorf("deleted robots = %v, want [robot$only]", deleted)
	}
	_, err = s.Robot(ctx, "robot$only")
	wantErr(t, err, auth.ErrNotFound, "robot whose only project was deleted")
	_, err = s.RefreshToken(ctx, "only's")
	wantErr(t, err, auth.ErrNotFound, "refresh token of a robot deleted with its project")
	both, err := s.Robot(ctx, "robot$both")
	must(t, err)
	if !reflect.DeepEqual(both.Permissions, []auth.RobotPermission{perm("kept")}) {
		t.Errorf("robot with two projects keeps %+v, want only kept", both.Permissions)
	}
	if all, err := s.Robot(ctx, "robot$all"); err != nil || len(all.Permissions) != 1 {
		t.Errorf("robot of every project = %+v, %v", all, err)
	}
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-doomed-2", Name: "doomed", CreatedAt: at}, ""))
	if m, _ := s.Members(ctx, "p-doomed-2"); len(m) != 0 {
		t.Errorf("a project created again under the name has members %+v", m)
	}
	robots, _ := s.Robots(ctx)
	for _, r := range robots {
		for _, p := range r.Permissions {
			if p.Project == "doomed" {
				t.Errorf("robot %s still names the deleted project: %+v", r.Name, p)
			}
		}
	}
}

// testRobotsRacingProjectDeletion creates a robot in a project, and
// updates one read before, while the project is being deleted: whichever
// commits first, no robot is left with a permission in the deleted
// project (permissions are not foreign keys: the store must order the
// two itself). The caller's check that the project exists is long past.
func testRobotsRacingProjectDeletion(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateProject(ctx, auth.Project{ID: "p-kept", Name: "kept", CreatedAt: at}, ""))
	kept := auth.RobotPermission{Project: "kept", ProjectID: "p-kept", Actions: []auth.Action{auth.Pull}}
	const rounds = 50
	created, refused := 0, 0
	for i := range rounds {
		project := fmt.Sprint("doomed-", i)
		id := "p-" + project
		must(t, s.CreateProject(ctx, auth.Project{ID: id, Name: project, CreatedAt: at}, ""))
		perm := auth.RobotPermission{Project: project, ProjectID: id, Actions: []auth.Action{auth.Pull, auth.Push}}
		// Read before the deletion: in both projects.
		older := auth.Robot{ID: fmt.Sprint("r-older-", i), Name: fmt.Sprint("robot$older-", i), CreatedAt: at,
			Permissions: []auth.RobotPermission{perm, kept}}
		must(t, s.CreateRobot(ctx, older))
		older.Revoked = true
		fresh := auth.Robot{ID: fmt.Sprint("r-new-", i), Name: fmt.Sprint("robot$new-", i), CreatedAt: at,
			Permissions: []auth.RobotPermission{perm}}

		var wg sync.WaitGroup
		start := make(chan struct{})
		var delErr, createErr, updateErr error
		wg.Add(3)
		go func() { defer wg.Done(); <-start; _, delErr = s.DeleteProject(ctx, id) }()
		go func() { defer wg.Done(); <-start; createErr = s.CreateRobot(ctx, fresh) }()
		go func() { defer wg.Done(); <-start; updateErr = s.UpdateRobot(ctx, older) }()
		close(start)
		wg.Wait()
		must(t, delErr)
		for what, err := range map[string]error{"create": createErr, "update": updateErr} {
			if err != nil && !errors.Is(err, auth.ErrNotFound) {
				t.Fatalf("round %d: %s racing the deletion: %v, want success or ErrNotFound", i, what, err)
			}
		}
		if createErr == nil {
			created++
		} else {
			refused++
		}
		robots, err := s.Robots(ctx)
		must(t, err)
		for _, r := range robots {
			for _, p := range r.Permissions {
				if p.ProjectID == id {
					t.Fatalf("round %d: robot %s outlives project %s with %+v (create: %v, update: %v)",
						i, r.Name, project, p, createErr, updateErr)
				}
			}
		}
		if _, err := s.Robot(ctx, fresh.Name); err == nil {
			t.Fatalf("round %d: robot %s, whose only project was deleted, exists", i, fresh.Name)
		}
		if o, err := s.Robot(ctx, older.Name); err != nil || !reflect.DeepEqual(o.Permissions, []auth.RobotPermission{kept}) {
			t.Fatalf("round %d: robot of two projects after one was deleted: %+v, %v", i, o, err)
		}
	}
	t.Logf("%d rounds: robot created before the deletion %d times, refused after it %d times", rounds, created, refused)
}

func testLockouts(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", CreatedAt: at}))
	must(t, s.CreateRobot(ctx, auth.Robot{ID: "r-ci", Name: "robot$ci", CreatedAt: at}))
	must(t, s.PutLockout(ctx, auth.Lockout{AccountID: "u-alice", Level: 1, Until: at}))
	must(t, s.PutLockout(ctx, auth.Lockout{AccountID: "u-alice", Level: 2, Until: at.Add(time.Hour)}))
	must(t, s.PutLockout(ctx, auth.Lockout{AccountID: "r-ci", Level: 1, Until: at}))
	got, err := s.Lockouts(ctx)
	must(t, err)
	want := []auth.Lockout{{AccountID: "r-ci", Level: 1, Until: at}, {AccountID: "u-alice", Level: 2, Until: at.Add(time.Hour)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Lockouts = %+v, want %+v", got, want)
	}
	must(t, s.DeleteLockout(ctx, "r-ci"))
	wantErr(t, s.DeleteLockout(ctx, "r-ci"), auth.ErrNotFound, "delete a deleted lockout")
	must(t, s.DeleteUser(ctx, "alice"))
	if got, _ := s.Lockouts(ctx); len(got) != 0 {
		t.Errorf("a lockout outlived its user: %+v", got)
	}
	must(t, s.PutLockout(ctx, auth.Lockout{AccountID: "r-ci", Level: 1, Until: at}))
	must(t, s.DeleteRobot(ctx, "robot$ci"))
	if got, _ := s.Lockouts(ctx); len(got) != 0 {
		t.Errorf("a lockout outlived its robot: %+v", got)
	}
}

// session is a session of alice (u-alice) created at created.
func session(hash string, created time.Time) auth.Session {
	return auth.Session{Hash: hash, AccountID: "u-alice", AccountName: "alice", PasswordHash: "$2a$one",
		CSRF: "csrf-" + hash, CreatedAt: created, LastSeen: created}
}

// noLimits lets CreateSession delete nothing.
var noLimits = auth.SessionLimits{PerAccount: 100, Total: 100}

// sessionHashes returns which of hashes the store still has.
func sessionHashes(t testing.TB, s auth.Store, hashes ...string) []string {
	t.Helper()
	var out []string
	for _, h := range hashes {
		_, err := s.Session(context.Background(), h)
		switch {
		case err == nil:
			out = append(out, h)
		case !errors.Is(err, auth.ErrNotFound):
			t.Fatalf("Session(%s): %v", h, err)
		}
	}
	return out
}

func testSessions(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", PasswordHash: "$2a$one", CreatedAt: at}))
	v := session("h1", at)
	must(t, s.CreateSession(ctx, v, noLimits))
	wantErr(t, s.CreateSession(ctx, v, noLimits), auth.ErrExists, "duplicate session hash")
	ghost := session("h-ghost", at)
	ghost.AccountID = "u-nobody"
	wantErr(t, s.CreateSession(ctx, ghost, noLimits), auth.ErrNotFound, "session of a missing user")
	got, err := s.Session(ctx, "h1")
	must(t, err)
	if !reflect.DeepEqual(got, v) {
		t.Errorf("Session = %+v\nwant      %+v", got, v)
	}
	_, err = s.Session(ctx, "h-none")
	wantErr(t, err, auth.ErrNotFound, "missing session")

	must(t, s.TouchSession(ctx, "h1", at.Add(time.Minute)))
	got, _ = s.Session(ctx, "h1")
	if want := at.Add(time.Minute); !got.LastSeen.Equal(want) || !got.CreatedAt.Equal(at) {
		t.Errorf("after a touch: created %v, last seen %v; want %v, %v", got.CreatedAt, got.LastSeen, at, want)
	}
	wantErr(t, s.TouchSession(ctx, "h-none", at), auth.ErrNotFound, "touch a missing session")

	must(t, s.CreateSession(ctx, session("h2", at), noLimits))
	deleted, err := s.DeleteSession(ctx, "h1")
	must(t, err)
	if deleted.Hash != "h1" || deleted.AccountName != "alice" || deleted.AccountID != "u-alice" {
		t.Errorf("DeleteSession returned %+v", deleted)
	}
	_, err = s.DeleteSession(ctx, "h1")
	wantErr(t, err, auth.ErrNotFound, "delete a deleted session")
	if got := sessionHashes(t, s, "h1", "h2"); !reflect.DeepEqual(got, []string{"h2"}) {
		t.Errorf("after logging out h1 the store has %v, want [h2]", got)
	}
}

// testSessionLimits: CreateSession deletes expired sessions, then the
// oldest of the account beyond its limit, then the oldest of all beyond
// the total, keeping room for the new one.
func testSessionLimits(t *testing.T, s auth.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, auth.User{ID: "u-alice", Name: "alice", PasswordHash: "$2a$one", CreatedAt: at}))
	must(t, s.CreateUser(ctx, auth.User{ID: "u-bob", Name: "bob", PasswordHash: "$2a$bob", CreatedAt: at}))
	minute := func(n int) time.Time { return at.Add(time.Duration(n) * time.Minute) }

	// Expiry: idle (last seen before IdleSince) or old (created before
	// CreatedSince) sessions go; one touched recently stays.
	idle, old, touched := session("idle", minute(10)), session("old", minute(1)), session("touched", minute(2))
	idle.LastSeen = minute(10)
	old.LastSeen = minute(50)
	touched.LastSeen = minute(40)
	for _, v := range []auth.Session{idle, old, touched} {
		must(t, s.CreateSession(ctx, v, noLimits))
	}
	must(t, s.CreateSession(ctx, session("new", minute(60)),
		auth.SessionLimits{IdleSince: minute(30), CreatedSince: minute(2), PerAccount: 100, Total: 100}))
	if got := sessionHashes(t, s, "idle", "old", "touched", "new"); !reflect.DeepEqual(got, []string{"touched", "new"}) {
		t.Errorf("after expiry the store has %v, want [touched new]", got)
	}

	// Per account: with a limit of 3, alice's oldest go; bob's stay.
	bob := session("bob1", minute(0))
	bob.AccountID, bob.AccountName, bob.PasswordHash = "u-bob", "bob", "$2a$bob"
	must(t, s.CreateSession(ctx, bob, noLimits))
	perAccount := auth.SessionLimits{PerAccount: 3, Total: 100}
	must(t, s.CreateSession(ctx, session("a3", minute(61)), perAccount))
	must(t, s.CreateSession(ctx, session("a4", minute(62)), perAccount))
	want := []string{"new", "a3", "a4", "bob1"}
	if got := sessionHashes(t, s, "touched", "new", "a3", "a4", "bob1"); !reflect.DeepEqual(got, want) {
		t.Errorf("with 3 per account the store has %v, want %v", got, want)
	}

	// In all: with a total of 3, the oldest go whoever they belong to.
	must(t, s.CreateSession(ctx, session("a5", minute(63)), auth.SessionLimits{PerAccount: 100, Total: 3}))
	want = []string{"a3", "a4", "a5"}
	if got := sessionHashes(t, s, "new", "a3", "a4", "a5", "bob1"); !reflect.DeepEqual(got, want) {
		t.Errorf("with 3 in all the store has %v, want %v", got, want)
	}
}

// testSessionsEndWithTheAccount: a password change ends the sessions
// started with the old password, disabling the user ends all, deleting it
// too; other changes and other users' sessions are left alone.
func testSessionsEndWithTheAccount(t *testing.T, s auth.Store) {
	ctx := context.Background()
	alice := auth.User{ID: "u-alice", Name: "alice", PasswordHash: "$2a$one", CreatedAt: at}
	must(t, s.CreateUser(ctx, alice))
	must(t, s.CreateUser(ctx, auth.User{ID: "u-bob", Name: "bob", PasswordHash: "$2a$bob", CreatedAt: at}))
	bob := session("bob1", at)
	bob.AccountID, bob.AccountName, bob.PasswordHash = "u-bob", "bob", "$2a$bob"
	must(t, s.CreateSession(ctx, bob, noLimits))
	must(t, s.CreateSession(ctx, session("a1", at), noLimits))

	alice.Admin = true
	must(t, s.UpdateUser(ctx, alice))
	if got := sessionHashes(t, s, "a1"); len(got) != 1 {
		t.Errorf("making alice an administrator ended her session")
	}
	alice.PasswordHash = "$2a$two"
	must(t, s.UpdateUser(ctx, alice))
	if got := sessionHashes(t, s, "a1"); len(got) != 0 {
		t.Errorf("a session survived a password change")
	}
	withNew := session("a2", at)
	withNew.PasswordHash = "$2a$two"
	must(t, s.CreateSession(ctx, withNew, noLimits))
	alice.Admin = false
	must(t, s.UpdateUser(ctx, alice))
	if got := sessionHashes(t, s, "a2"); len(got) != 1 {
		t.Errorf("a session started with the current password ended on another change")
	}
	alice.Disabled = true
	must(t, s.UpdateUser(ctx, alice))
	if got := sessionHashes(t, s, "a2"); len(got) != 0 {
		t.Errorf("a session survived disabling its user")
	}
	alice.Disabled = false
	must(t, s.UpdateUser(ctx, alice))
	must(t, s.CreateSession(ctx, withNew, noLimits))
	must(t, s.DeleteUser(ctx, "alice"))
	if got := sessionHashes(t, s, "a2"); len(got) != 0 {
		t.Errorf("a session survived deleting its user")
	}
	if got := sessionHashes(t, s, "bob1"); len(got) != 1 {
		t.Errorf("another user's session ended with alice's")
	}
}
