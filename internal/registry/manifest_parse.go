package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"berth.dev/berth/internal/meta"
	"berth.dev/berth/internal/sign"
)

// The manifest media types berth stores.
const (
	mediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex       = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// arrivalKey names the signature or attestation a layer carries (cosign
// v2 signatures and attestations, sigstore bundles), so the meta store can
// record when it first arrived: the trusted time a rotated key's window is
// judged at (sign.VerifyOptions.ArrivedAt).
func arrivalKey(l wireDescriptor) (string, bool) {
	h, err := v1.NewHash(l.Digest)
	if err != nil {
		return "", false
	}
	return sign.ArrivalKey(v1.Descriptor{MediaType: types.MediaType(l.MediaType), Digest: h, Annotations: l.Annotations})
}

func isIndex(mediaType string) bool {
	return mediaType == mediaTypeOCIIndex || mediaType == mediaTypeDockerList
}

// wireDescriptor is a content descriptor as manifests write it.
type wireDescriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         *int64            `json:"size"`
	URLs         []string          `json:"urls"`
	Data         []byte            `json:"data"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
}

// wireManifest holds the fields of every manifest kind berth reads; which
// ones may be present depends on the media type.
type wireManifest struct {
	SchemaVersion *int              `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *wireDescriptor   `json:"config"`
	Layers        []wireDescriptor  `json:"layers"`
	Manifests     []wireDescriptor  `json:"manifests"`
	Subject       *wireDescriptor   `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// parseManifest validates a pushed manifest and describes it for the meta
// store. contentType is the request's Content-Type. A problem is returned
// as a MANIFEST_INVALID *apiError that says what is wrong.
func parseManifest(body []byte, contentType string, requireLayers bool) (*meta.Manifest, error) {
	invalid := func(format string, args ...any) error {
		return newError(errManifestInvalid, "manifest invalid: "+fmt.Sprintf(format, args...))
	}
	var doc wireManifest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		return nil, invalid("not a JSON manifest: %v", err)
	}
	if dec.More() {
		return nil, invalid("trailing data after the JSON document")
	}
	if doc.SchemaVersion == nil || *doc.SchemaVersion != 2 {
		return nil, invalid("schemaVersion must be 2")
	}

	declared := ""
	if contentType != "" {
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil {
			return nil, invalid("Content-Type %q: %v", contentType, err)
		}
		declared = mt
	}
	mediaType := doc.MediaType
	switch {
	case mediaType == "" && declared == "":
		return nil, invalid("no media type: set Content-Type or the manifest's mediaType")
	case mediaType == "":
		mediaType = declared
	case declared != "" && declared != mediaType:
		return nil, invalid("Content-Type %q does not match the manifest's mediaType %q", declared, mediaType)
	}

	m := &meta.Manifest{MediaType: mediaType, Annotations: doc.Annotations}
	switch mediaType {
	case mediaTypeOCIManifest, mediaTypeDockerManifest:
		if doc.Manifests != nil {
			return nil, invalid("an image manifest has no manifests field")
		}
		if doc.Config == nil {
			return nil, invalid("config descriptor missing")
		}
		if err := checkDescriptor(*doc.Config); err != nil {
			return nil, invalid("config: %v", err)
		}
		kind := meta.RefBlob
		if doc.Config.Data != nil {
			kind = meta.RefExternal // carried inline: the registry need not hold it
		}
		m.References = append(m.References, meta.Reference{Digest: digest.Digest(doc.Config.Digest), Kind: kind})
		for i, l := range doc.Layers {
			if err := checkDescriptor(l); err != nil {
				return nil, invalid("layer %d: %v", i, err)
			}
			kind := meta.RefLayer
			switch {
			case l.Data != nil || len(l.URLs) > 0 || nonDistributable(l.MediaType):
				kind = meta.RefExternal
			case requireLayers:
				kind = meta.RefBlob
			}
			m.References = append(m.References, meta.Reference{Digest: digest.Digest(l.Digest), Kind: kind})
			if key, ok := arrivalKey(l); ok {
				m.Signatures = append(m.Signatures, key)
			}
		}
		m.ArtifactType = doc.ArtifactType
		if m.ArtifactType == "" {
			m.ArtifactType = doc.Config.MediaType
		}
	case mediaTypeOCIIndex, mediaTypeDockerList:
		if doc.Config != nil || doc.Layers != nil {
			return nil, invalid("an index has no config or layers")
		}
		if doc.Manifests == nil {
			return nil, invalid("manifests list missing")
		}
		for i, c := range doc.Manifests {
			if err := checkDescriptor(c); err != nil {
				return nil, invalid("manifests[%d]: %v", i, err)
			}
			m.References = append(m.References, meta.Reference{Digest: digest.Digest(c.Digest), Kind: meta.RefManifest})
		}
		m.ArtifactType = doc.ArtifactType
	default:
		return nil, invalid("unsupported manifest media type %q (berth stores %s, %s, %s and %s)",
			mediaType, mediaTypeOCIManifest, mediaTypeOCIIndex, mediaTypeDockerManifest, mediaTypeDockerList)
	}
	if doc.Subject != nil {
		if err := checkDescriptor(*doc.Subject); err != nil {
			return nil, invalid("subject: %v", err)
		}
		m.Subject = digest.Digest(doc.Subject.Digest)
	}
	return m, nil
}

// checkDescriptor validates one descriptor: a media type, a digest berth can
// verify, a size, and inline data matching both when present.
func checkDescriptor(d wireDescriptor) error {
	if !validMediaType(d.MediaType) {
		return fmt.Errorf("media type %q is not type/subtype", d.MediaType)
	}
	if !validDigest(d.Digest) {
		return fmt.Errorf("digest %q is not a sha256 or sha512 digest", d.Digest)
	}
	if d.Size == nil || *d.Size < 0 {
		return fmt.Errorf("size missing or negative")
	}
	if d.Data != nil {
		if int64(len(d.Data)) != *d.Size {
			return fmt.Errorf("data holds %d bytes, size says %d", len(d.Data), *d.Size)
		}
		dg := digest.Digest(d.Digest)
		if dg.Algorithm().FromBytes(d.Data) != dg {
			return fmt.Errorf("data does not match digest %s", d.Digest)
		}
	}
	return nil
}

// validMediaType checks the RFC 6838 shape type/subtype[+suffix] loosely:
// two restricted-name tokens around one slash.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if s == "" || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
		if !alnum && (i == 0 || !strings.ContainsRune("!#$&-^_.+", rune(c))) {
			return false
		}
	}
	return true
}

// nonDistributable reports layer media types whose content registries are
// not expected to hold.
func nonDistributable(mediaType string) bool {
	return strings.Contains(mediaType, ".nondistributable.") ||
		strings.HasPrefix(mediaType, "application/vnd.docker.image.rootfs.foreign.")
}
