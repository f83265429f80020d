package policy

import (
	"context"
	"errors"
	"time"
)

// ErrNoPolicy means a project has no policy.
var ErrNoPolicy = errors.New("no policy")

// Stored is a project's policy as the server keeps it: the YAML as it was
// put, bound to the project's immutable id (a project deleted and created
// again under its name starts without one).
type Stored struct {
	ProjectID string
	Project   string
	Body      []byte
	// Version identifies the body (Policy.Version of it).
	Version   string
	UpdatedAt time.Time
	UpdatedBy string
}

// Store keeps project policies. Implementations: internal/policy/sqlite
// and internal/policy/postgres; policystoretest is the suite both pass.
type Store interface {
	Put(ctx context.Context, s Stored) error
	// Get returns the project's policy or ErrNoPolicy.
	Get(ctx context.Context, projectID string) (Stored, error)
	// Delete forgets the project's policy; deleting none is no error.
	Delete(ctx context.Context, projectID string) error
	// All returns every stored policy.
	All(ctx context.Context) ([]Stored, error)
	Close() error
}
