package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"berth.dev/berth/internal/sign/store"
)

// The referrers tag schema (OCI distribution spec 1.1): on a registry
// without the referrers API, the referrers of a manifest are listed in the
// OCI index tagged "sha256-<hex of its digest>". Adding one is a
// read-modify-write of that index, done with appendSettled like the layers
// of a .sig tag, so that concurrent signers keep each other's entries.

// schemaTag returns the tag of the referrers tag schema for the manifest
// with digest d: "sha256-<hex>".
func schemaTag(d v1.Hash) string {
	return d.Algorithm + "-" + d.Hex
}

// putReferrer stores a manifest with a subject. listed is false when the
// registry has no referrers API and the manifest is yet to be added to the
// referrers tag schema's index; stores that are not a store.ReferrerWriter
// list it themselves.
func putReferrer(ctx context.Context, st store.Store, repo string, body []byte) (d v1.Descriptor, listed bool, err error) {
	if rw, ok := st.(store.ReferrerWriter); ok {
		return rw.PutReferrer(ctx, repo, types.OCIManifestSchema1, body)
	}
	d, err = st.PutManifest(ctx, repo, types.OCIManifestSchema1, body)
	return d, true, err
}

// appendToSchemaIndex lists entry in the index of the referrers tag schema
// for t (creating it if absent), keeping every entry and every other
// member of the index already there; an entry with the same digest counts
// as ours. A tag holding something other than an OCI index is left alone
// and reported. It returns once the tag has held the same index, listing
// entry, for a settle time.
func appendToSchemaIndex(ctx context.Context, st store.Store, t Target, entry v1.Descriptor) (v1.Descriptor, error) {
	tag := schemaTag(t.Manifest.Digest)
	var existing schemaIndex
	return appendSettled(ctx, tagList{
		ref: t.Name + ":" + tag,
		read: func(ctx context.Context) (v1.Descriptor, bool, error) {
			cur, ix, err := readSchemaIndex(ctx, st, t.Repo, tag)
			existing = ix
			return cur, err == nil && ix.lists(entry.Digest), err
		},
		push: func(ctx context.Context) error {
			body, err := existing.with(entry)
			if err != nil {
				return err
			}
			_, err = st.PutTag(ctx, t.Repo, tag, types.OCIImageIndex, body)
			return err
		},
	})
}

// schemaIndex is an index of the referrers tag schema as read, kept member
// by member and entry by entry as raw JSON, so that writing it back with
// one entry added changes nothing else, fields berth does not know
// included.
type schemaIndex struct {
	// members are the index's top-level members, "manifests" included;
	// nil when there is no index yet.
	members map[string]json.RawMessage
	// manifests are the entries of "manifests", and digests their digests
	// in the same order.
	manifests []json.RawMessage
	digests   []string
}

// readSchemaIndex returns the index at tag and its descriptor (zero and an
// empty index if the tag does not exist). It refuses anything that is not
// an OCI image index.
func readSchemaIndex(ctx context.Context, r store.Reader, repo, tag string) (v1.Descriptor, schemaIndex, error) {
	m, err := r.Manifest(ctx, repo, tag)
	if errors.Is(err, store.ErrNotFound) {
		return v1.Descriptor{}, schemaIndex{}, nil
	}
	if err != nil {
		return v1.Descriptor{}, schemaIndex{}, err
	}
	ix, err := parseSchemaIndex(m.Descriptor.MediaType, m.Body)
	if err != nil {
		return v1.Descriptor{}, schemaIndex{}, err
	}
	return m.Descriptor, ix, nil
}

func parseSchemaIndex(mediaType types.MediaType, body []byte) (schemaIndex, error) {
	if mediaType != types.OCIImageIndex {
		return schemaIndex{}, fmt.Errorf("%w: media type %s", ErrForeignIndex, mediaType)
	}
	var ix schemaIndex
	if err := json.Unmarshal(body, &ix.members); err != nil {
		return schemaIndex{}, fmt.Errorf("%w: %v", ErrForeignIndex, err)
	}
	var head struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return schemaIndex{}, fmt.Errorf("%w: %v", ErrForeignIndex, err)
	}
	if head.SchemaVersion != 2 || (head.MediaType != "" && head.MediaType != types.OCIImageIndex) {
		return schemaIndex{}, fmt.Errorf("%w: schema version %d, media type %q", ErrForeignIndex, head.SchemaVersion, head.MediaType)
	}
	ix.manifests = head.Manifests
	ix.digests = make([]string, len(head.Manifests))
	for i, e := range head.Manifests {
		var d struct {
			Digest string `json:"digest"`
		}
		if err := json.Unmarshal(e, &d); err != nil {
			return schemaIndex{}, fmt.Errorf("%w: manifests[%d]: %v", ErrForeignIndex, i, err)
		}
		ix.digests[i] = d.Digest
	}
	return ix, nil
}

// lists reports whether an entry of ix has digest d.
func (ix schemaIndex) lists(d v1.Hash) bool {
	for _, got := range ix.digests {
		if got == d.String() {
			return true
		}
	}
	return false
}

// with returns ix encoded with entry appended to its manifests, unless an
// entry with its digest is already there; every other member and entry is
// kept as it is. ix is not modified.
func (ix schemaIndex) with(entry v1.Descriptor) ([]byte, error) {
	manifests := ix.manifests[:len(ix.manifests):len(ix.manifests)]
	if !ix.lists(entry.Digest) {
		e, err := json.Marshal(entry)
		if err != nil {
			return nil, fmt.Errorf("referrers index: %w", err)
		}
		manifests = append(manifests, e)
	}
	list, err := json.Marshal(manifests)
	if err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	members := make(map[string]json.RawMessage, len(ix.members)+3)
	if ix.members == nil {
		members["schemaVersion"] = json.RawMessage(`2`)
		members["mediaType"] = json.RawMessage(`"` + types.OCIImageIndex + `"`)
	}
	for k, v := range ix.members {
		members[k] = v
	}
	members["manifests"] = list
	body, err := json.Marshal(members)
	if err != nil {
		return nil, fmt.Errorf("referrers index: %w", err)
	}
	return body, nil
}

// referrerEntry returns the descriptor that lists the manifest d, whose
// content is body, among the referrers of its subject, as the referrers
// API would list it: with its artifact type (else its config's media type)
// and its annotations.
func referrerEntry(d v1.Descriptor, body []byte) (v1.Descriptor, error) {
	var mf v1.Manifest
	if err := json.Unmarshal(body, &mf); err != nil {
		return v1.Descriptor{}, fmt.Errorf("referrer manifest: %w", err)
	}
	e := v1.Descriptor{
		MediaType:    d.MediaType,
		Digest:       d.Digest,
		Size:         d.Size,
		ArtifactType: mf.ArtifactType,
		Annotations:  mf.Annotations,
	}
	if e.ArtifactType == "" {
		e.ArtifactType = string(mf.Config.MediaType)
	}
	return e, nil
}
