package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	sqlitedb "berth.dev/berth/internal/audit/sqlite"
	"berth.dev/berth/internal/auth"
)

// TestMigrationToIdentities writes a meta.db as the first schema left it,
// including a robot left over from a deleted project whose name was taken
// again (the state the flaw produced), and opens it with this version: the
// accounts and projects get ids, memberships and refresh tokens keep
// working, live robot permissions bind to their project's id, and the
// leftover permissions are gone.
func TestMigrationToIdentities(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	old, err := sqlitedb.OpenDB(ctx, path, "auth", migrations[:1])
	if err != nil {
		t.Fatal(err)
	}
	t1, t2, t3 := int64(1e18), int64(2e18), int64(3e18)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO users VALUES ('alice', '$2a$a', 0, 0, '', ?), ('admin', '$2a$b', 1, 0, '', ?)", []any{t1, t1}},
		{"INSERT INTO projects VALUES ('team-a', 0, ?, 'admin'), ('reborn', 0, ?, 'alice')", []any{t1, t3}},
		{"INSERT INTO project_members VALUES ('team-a', 'alice', 'developer'), ('reborn', 'alice', 'projectAdmin')", nil},
		{`INSERT INTO robots VALUES
			('robot$ci', '', '[{"project":"team-a","actions":["pull","push"]}]', 0, 0, '', 'h1', 'admin', ?),
			('robot$stale', '', '[{"project":"reborn","actions":["pull","push","delete"]}]', 0, 0, '', 'h2', 'alice', ?),
			('robot$mixed', '', '[{"project":"gone","actions":["pull"]},{"project":"team-a","actions":["pull"]}]', 0, 0, '', 'h3', 'admin', ?),
			('robot$all', '', '[{"project":"*","actions":["pull"]}]', 0, 0, '', 'h4', 'admin', ?)`, []any{t2, t2, t2, t2}},
		{`INSERT INTO refresh_tokens VALUES ('rt-alice', 'alice', ?, ?), ('rt-stale', 'robot$stale', ?, ?),
			('rt-ghost', 'ghost', ?, ?)`, []any{t1, t3, t2, t3, t1, t3}},
	} {
		if _, err := old.W.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	old.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	users, err := s.Users(ctx)
	if err != nil || len(users) != 2 || users[0].ID == "" || users[0].ID == users[1].ID {
		t.Fatalf("users after migration = %+v, %v", users, err)
	}
	byName := map[string]string{}
	for _, u := range users {
		byName[u.Name] = u.ID
	}
	projects, _ := s.Projects(ctx)
	for _, p := range projects {
		byName[p.Name] = p.ID
	}
	if byName["team-a"] == "" || byName["reborn"] == "" {
		t.Fatalf("projects after migration = %+v", projects)
	}
	members, _ := s.Members(ctx, "")
	want := []auth.Member{
		{Project: "reborn", User: "alice", Role: auth.ProjectAdmin, ProjectID: byName["reborn"], UserID: byName["alice"]},
		{Project: "team-a", User: "alice", Role: auth.Developer, ProjectID: byName["team-a"], UserID: byName["alice"]},
	}
	if !reflect.DeepEqual(members, want) {
		t.Errorf("members = %+v\nwant      %+v", members, want)
	}
	robots, _ := s.Robots(ctx)
	got := map[string][]auth.RobotPermission{}
	for _, r := range robots {
		if r.ID == "" {
			t.Errorf("robot %s has no id", r.Name)
		}
		got[r.Name] = r.Permissions
	}
	teamA := auth.RobotPermission{Project: "team-a", ProjectID: byName["team-a"], Actions: []auth.Action{auth.Pull}}
	wantRobots := map[string][]auth.RobotPermission{
		"robot$ci":    {{Project: "team-a", ProjectID: byName["team-a"], Actions: []auth.Action{auth.Pull, auth.Push}}},
		"robot$mixed": {teamA},
		"robot$all":   {{Project: auth.AllProjects, Actions: []auth.Action{auth.Pull}}},
	}
	if !reflect.DeepEqual(got, wantRobots) {
		t.Errorf("robots = %+v\nwant     %+v", got, wantRobots)
	}
	if rt, err := s.RefreshToken(ctx, "rt-alice"); err != nil || rt.AccountID != byName["alice"] || !rt.ExpiresAt.Equal(time.Unix(0, t3)) {
		t.Errorf("alice's refresh token = %+v, %v", rt, err)
	}
	for _, gone := range []string{"rt-stale", "rt-ghost"} {
		if _, err := s.RefreshToken(ctx, gone); err == nil {
			t.Errorf("refresh token %s survived the migration", gone)
		}
	}
	// The migrated schema takes new rows as a fresh one does.
	if err := s.CreateUser(ctx, auth.User{ID: "u-new", Name: "new"}); err != nil {
		t.Error(err)
	}
	if err := s.PutMember(ctx, auth.Member{ProjectID: byName["team-a"], UserID: "u-new", Role: auth.Guest}); err != nil {
		t.Error(err)
	}
}
