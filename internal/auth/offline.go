package auth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
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

// ResetPassword sets the password of the user called name in store, ends
// its refresh tokens and clears its lockout: what `berth admin
// reset-password` does to a stopped server's data directory. For
// InitialAdmin, initialPasswordFile (the kept first password; empty for
// none) goes too.
func ResetPassword(ctx context.Context, store Store, name, password, initialPasswordFile string) error {
	if strings.HasPrefix(name, RobotPrefix) {
		return fmt.Errorf("%w: %s is a robot: robots have secrets, not passwords; create a new robot instead", ErrInvalid, name)
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	u, err := store.User(ctx, name)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("hash password: %w", err)
	}
	u.PasswordHash = string(hash)
	if err := store.UpdateUser(ctx, u); err != nil {
		return err
	}
	if err := store.DeleteRefreshTokens(ctx, u.ID); err != nil {
		return err
	}
	if err := store.DeleteLockout(ctx, u.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if name == InitialAdmin && initialPasswordFile != "" {
		if err := os.Remove(initialPasswordFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the old first password: %w", err)
		}
	}
	return nil
}
