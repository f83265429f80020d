package sign

import "errors"

// Reasons a signature or attestation is rejected, and the ways signing can
// refuse to write. Every error berth's signing returns wraps one of these.
var (
	// ErrNotVerified means fewer trusted keys vouch for the image than
	// required; it wraps the reasons each candidate was rejected.
	ErrNotVerified = errors.New("verification failed")
	// ErrNoSignatures means nothing signature-shaped is attached.
	ErrNoSignatures = errors.New("no signatures found")
	// ErrNoAttestations means no attestation (of the asked type) is attached.
	ErrNoAttestations = errors.New("no attestations found")
	// ErrNoMatchingKey means a signature verifies with none of the keys.
	ErrNoMatchingKey = errors.New("signature does not verify with any given key")
	// ErrDigestMismatch means a validly signed payload is about another
	// manifest than the one being verified.
	ErrDigestMismatch = errors.New("signed payload names a different manifest digest")
	// ErrLayerMissing means a signature manifest lists a blob the registry
	// does not have.
	ErrLayerMissing = errors.New("signature layer is missing from the registry")
	// ErrMalformedSignature means a signature, payload or envelope cannot
	// be decoded.
	ErrMalformedSignature = errors.New("malformed signature")
	// ErrAnnotationMismatch means a valid signature lacks a required
	// annotation.
	ErrAnnotationMismatch = errors.New("signature annotations do not match")
	// ErrKeyNotValid means the verifying key is outside its validity window.
	ErrKeyNotValid = errors.New("key is outside its validity window")
	// ErrForeignManifest means the tag where cosign keeps signatures holds
	// something else; signing refuses to overwrite it.
	ErrForeignManifest = errors.New("not a cosign signature manifest")
	// ErrForeignIndex means the tag of the referrers tag schema
	// ("sha256-<hex>") holds something other than an OCI image index;
	// signing refuses to overwrite it.
	ErrForeignIndex = errors.New("not an OCI referrers index")
	// ErrTagUnsettled means concurrent writers kept replacing the manifest
	// of a .sig or .att tag, or the referrers index tagged sha256-<hex>, so
	// an appended signature or attestation could not be confirmed to stay.
	ErrTagUnsettled = errors.New("concurrent writers kept replacing the signature manifest")
	// ErrBadTrust means a trust set or trust file is unusable.
	ErrBadTrust = errors.New("bad trust configuration")
)
