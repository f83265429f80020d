package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"berth.dev/berth/internal/audit"
	auditsqlite "berth.dev/berth/internal/audit/sqlite"
	authsqlite "berth.dev/berth/internal/auth/sqlite"
	"berth.dev/berth/internal/auth/token"
)

// Offline is a stopped server's accounts and audit log, opened under the
// data directory's lock, for the commands that repair accounts without a
// server (berth admin unlock, berth admin reset-password). What they
// change is audited, as the admin API's changes are.
type Offline struct {
	Dir        string
	Auth       *authsqlite.Store
	auditStore *auditsqlite.Store
	audit      *audit.Log
	lock       *os.File
}

// OpenOffline opens the data directory dir of a stopped server. It
// refuses a directory a server holds (ErrDataDirInUse: the server's own
// state would overwrite the change) and one that is not a data directory
// (a typo must not create an empty one).
func OpenOffline(ctx context.Context, dir string) (*Offline, error) {
	db := filepath.Join(dir, "meta.db")
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("%s is not a berth data directory: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	o := &Offline{Dir: dir, lock: lock}
	fail := func(err error) (*Offline, error) {
		return nil, errors.Join(err, o.Close())
	}
	key, err := token.LoadKey(SigningKeyPath(dir))
	if err != nil {
		return fail(err)
	}
	if o.Auth, err = authsqlite.Open(ctx, db); err != nil {
		return fail(err)
	}
	if o.auditStore, err = auditsqlite.Open(ctx, db); err != nil {
		return fail(err)
	}
	if o.audit, err = audit.Open(ctx, o.auditStore, key, audit.Options{}); err != nil {
		return fail(err)
	}
	return o, nil
}

// Record audits an offline change, by "berth" on behalf of the operating
// system user who ran the command.
func (o *Offline) Record(action, detail string) error {
	who := "unknown"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	return o.audit.Record(audit.Entry{Actor: "berth", Action: action, Detail: detail + " (offline, by OS user " + who + ")"})
}

// Close writes the audit entries, closes the stores and releases the
// directory.
func (o *Offline) Close() error {
	var errs []error
	if o.audit != nil {
		errs = append(errs, o.audit.Close())
	}
	if o.auditStore != nil {
		errs = append(errs, o.auditStore.Close())
	}
	if o.Auth != nil {
		errs = append(errs, o.Auth.Close())
	}
	return errors.Join(append(errs, unlock(o.lock))...)
}
