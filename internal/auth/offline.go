package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrNotLocked answers Unlock for an account that is not locked out.
var ErrNotLocked = errors.New("not locked out")

// Unlock clears the login lockout of the account called name (a user, or
// a robot named with RobotPrefix) in store: what `berth admin unlock`
// does to a stopped server's data directory, whose next start then
// knows no lockout of the account. It returns the lockout it cleared.
func Unlock(ctx context.Context, store Store, name string) (Lockout, error) {
	id, err := accountIDIn(ctx, store, name)
	if err != nil {
		return Lockout{}, err
	}
	lockouts, err := store.Lockouts(ctx)
	if err != nil {
		return Lockout{}, err
	}
	for _, l := range lockouts {
		if l.AccountID == id {
			return l, store.DeleteLockout(ctx, id)
		}
	}
	return Lockout{}, fmt.Errorf("%s: %w", name, ErrNotLocked)
}

// accountIDIn looks up the id of the user or robot called name.
func accountIDIn(ctx context.Context, store Store, name string) (string, error) {
	if strings.HasPrefix(name, RobotPrefix) {
		r, err := store.Robot(ctx, name)
		return r.ID, err
	}
	u, err := store.User(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("no user %s (a robot is named %sNAME): %w", name, RobotPrefix, ErrNotFound)
	}
	return u.ID, err
}
