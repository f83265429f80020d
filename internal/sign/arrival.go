package sign

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ArrivalKey names the signature or attestation that a manifest layer
// carries, for a registry to record when it first arrived
// (meta.Manifest.Signatures) and for a verifier to ask (VerifyOptions.
// ArrivedAt). A cosign v2 signature is its payload's digest with the
// signature annotation: the payload is the same for every signer of an
// image, so its digest alone would name a signature made years later over
// it. A DSSE envelope or a sigstore bundle holds its signatures, so its
// digest names them. ok is false for a layer that carries neither.
func ArrivalKey(l v1.Descriptor) (key string, ok bool) {
	switch {
	case l.MediaType == SimpleSigningMediaType:
		sig := l.Annotations[SignatureAnnotation]
		if sig == "" {
			return "", false
		}
		h := sha256.Sum256([]byte(l.Digest.String() + "\x00" + sig))
		return "simplesigning:" + hex.EncodeToString(h[:]), true
	case l.MediaType == DSSEMediaType || isBundleMediaType(string(l.MediaType)):
		return "envelope:" + l.Digest.String(), true
	}
	return "", false
}

// arrival looks up when the signature under key reached the registry, once,
// and only if a key's window needs it.
type arrival struct {
	ctx    context.Context
	lookup func(ctx context.Context, key string) (time.Time, bool)
	key    string
	done   bool
	at     time.Time
}

// newArrival is the arrival of the signature under key ("": none known).
func newArrival(ctx context.Context, opts VerifyOptions, key string) *arrival {
	if opts.ArrivedAt == nil || key == "" {
		return nil
	}
	return &arrival{ctx: ctx, lookup: opts.ArrivedAt, key: key}
}

// time is when the signature arrived, or zero when that is not known.
func (a *arrival) time() time.Time {
	if a == nil {
		return time.Time{}
	}
	if !a.done {
		a.done = true
		if at, ok := a.lookup(a.ctx, a.key); ok {
			a.at = at
		}
	}
	return a.at
}
