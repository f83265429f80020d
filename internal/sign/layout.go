package sign

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types and annotations of cosign's storage layout.
const (
	// SimpleSigningMediaType is the layer media type of a cosign v2
	// signature: the simple signing payload.
	SimpleSigningMediaType types.MediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	// DSSEMediaType is the layer media type of a cosign v2 attestation.
	DSSEMediaType types.MediaType = "application/vnd.dsse.envelope.v1+json"
	// EmptyMediaType is the OCI 1.1 empty descriptor's media type; "{}" is
	// its content.
	EmptyMediaType types.MediaType = "application/vnd.oci.empty.v1+json"

	// SignatureAnnotation carries a layer's base64 signature.
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// PredicateTypeAnnotation carries an attestation layer's predicate type.
	PredicateTypeAnnotation = "predicateType"
	// CreatedAnnotation is the OCI creation time annotation.
	CreatedAnnotation = "org.opencontainers.image.created"
)

// Suffixes of the tags cosign derives from a manifest digest.
const (
	SignatureSuffix   = "sig"
	AttestationSuffix = "att"
)

// Tag returns the tag cosign uses for what it attaches to the manifest with
// digest d: "sha256-<hex>.<suffix>".
func Tag(d v1.Hash, suffix string) string {
	return d.Algorithm + "-" + d.Hex + "." + suffix
}

func isBundleMediaType(mt string) bool {
	return strings.HasPrefix(mt, "application/vnd.dev.sigstore.bundle")
}
