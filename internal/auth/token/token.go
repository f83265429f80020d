package token

import (
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are a registry token's claims: the registered ones and Docker's
// access list.
type Claims struct {
	jwt.RegisteredClaims
	Access []Scope `json:"access"`
	// Account is the immutable id of the subject's account: a token
	// names the account it was issued to, not just a name that a later
	// account may reuse.
	Account string `json:"account,omitempty"`
}

// leeway forgives clock skew between berth instances behind one service
// name; a single berth needs none, and a minute is what distribution
// allows.
const leeway = time.Minute

// Service issues and verifies tokens for one service (the JWT audience).
type Service struct {
	key     *ecdsa.PrivateKey
	kid     string
	issuer  string
	service string
	ttl     time.Duration
	cache   *cache
}

// New returns a Service signing with key. ttl is the life of an access
// token.
func New(key *ecdsa.PrivateKey, issuer, service string, ttl time.Duration) (*Service, error) {
	kid, err := KeyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Service{key: key, kid: kid, issuer: issuer, service: service, ttl: ttl, cache: newCache(cacheSize)}, nil
}

// Name is the service name tokens are issued for.
func (s *Service) Name() string { return s.service }

// TTL is the life of an access token.
func (s *Service) TTL() time.Duration { return s.ttl }

// Issue signs a token for subject (empty for anonymous), whose account id
// is account, granting access.
func (s *Service) Issue(subject, account string, access []Scope, now time.Time) (token string, expires time.Time, err error) {
	var jti [16]byte
	rand.Read(jti[:])
	if access == nil {
		access = []Scope{}
	}
	expires = now.Add(s.ttl)
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{s.service},
			ExpiresAt: jwt.NewNumericDate(expires),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		Access:  access,
		Account: account,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, expires, nil
}

// ErrInvalid wraps every reason a token is refused.
var ErrInvalid = errors.New("invalid token")

// maxTokenLength bounds what is parsed: berth's tokens are well under
// 4 KiB even with the most scopes a request may ask.
const maxTokenLength = 16 << 10

// Verify checks a token's signature, algorithm, issuer, audience and
// times, and returns its grant. Verified tokens are cached until they
// expire, so repeated use costs a map lookup.
func (s *Service) Verify(token string, now time.Time) (*Grant, error) {
	if g := s.cache.get(token); g != nil {
		if now.Before(g.Expires) {
			return g, nil
		}
		return nil, fmt.Errorf("%w: token has expired", ErrInvalid)
	}
	if len(token) > maxTokenLength {
		return nil, fmt.Errorf("%w: token too long", ErrInvalid)
	}
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, errors.New("unknown signing key")
		}
		return &s.key.PublicKey, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.service),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	g := newGrant(claims.Subject, claims.Account, claims.ExpiresAt.Time, claims.Access)
	if !now.Before(g.Expires) {
		// Inside the leeway the library accepts it; berth's own tokens
		// never need it, so expiry is exact.
		return nil, fmt.Errorf("%w: token has expired", ErrInvalid)
	}
	s.cache.put(token, g)
	return g, nil
}

// ActionSet is a set of repository actions.
type ActionSet uint8

// Action bits.
const (
	CanPull ActionSet = 1 << iota
	CanPush
	CanDelete
)

func actionBit(a string) ActionSet {
	switch a {
	case ActionPull:
		return CanPull
	case ActionPush:
		return CanPush
	case ActionDelete:
		return CanDelete
	case ActionAll:
		return CanPull | CanPush | CanDelete
	}
	return 0
}

// Grant is what a verified token allows, indexed for per-request checks.
// It is immutable and shared between requests.
type Grant struct {
	Subject string
	Account string // the subject's account id
	Expires time.Time
	Catalog bool
	repos   map[string]ActionSet
}

func newGrant(subject, account string, expires time.Time, access []Scope) *Grant {
	g := &Grant{Subject: subject, Account: account, Expires: expires, repos: map[string]ActionSet{}}
	for _, a := range access {
		switch {
		case a.Type == TypeRepository:
			for _, act := range a.Actions {
				g.repos[a.Name] |= actionBit(act)
			}
		case a.Type == TypeRegistry && a.Name == CatalogName && slices.Contains(a.Actions, ActionAll):
			g.Catalog = true
		}
	}
	return g
}

// Allows reports whether the grant holds every action in want on repo.
func (g *Grant) Allows(repo string, want ActionSet) bool { return g.repos[repo]&want == want }

// cacheSize bounds the verified-token cache. An entry is a few hundred
// bytes plus the token; 16 Ki entries is a few tens of MiB at worst.
const cacheSize = 16 << 10

// cache maps token strings to verified grants.
type cache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]*Grant
}

func newCache(max int) *cache { return &cache{max: max, entries: make(map[string]*Grant)} }

func (c *cache) get(token string) *Grant {
	c.mu.RLock()
	g := c.entries[token]
	c.mu.RUnlock()
	return g
}

func (c *cache) put(token string, g *Grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Drop the expired; if that frees nothing, drop half (map order
		// is random, so this is random eviction, which is fine for
		// tokens that are re-verified cheaply).
		now := time.Now()
		for k, v := range c.entries {
			if !now.Before(v.Expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max/2 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[token] = g
}
