package sign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"berth.dev/berth/internal/sign/attestation"
	"berth.dev/berth/internal/sign/bundle"
	"berth.dev/berth/internal/sign/store"
)

// VerifyOptions tune Verify and VerifyAttestations.
type VerifyOptions struct {
	// Annotations must all be present, with these values, in a signature's
	// payload (cosign verify -a).
	Annotations map[string]string
	// PredicateType keeps only attestations of this type (a URI); empty
	// keeps all. Verify ignores it.
	PredicateType string
	// Now is the time key validity windows are checked at; zero means
	// time.Now.
	Now time.Time
	// ArrivedAt, when set, says when the registry first stored the
	// signature or attestation named by an ArrivalKey: a trusted time,
	// which a signature's own claim is not. A key whose window has closed
	// by Now still vouches for what arrived inside its window, so a
	// rotated key's signatures keep counting after its overlap. Only the
	// registry that received them can say (berth serve does); nil checks
	// every window at Now.
	ArrivedAt func(ctx context.Context, key string) (time.Time, bool)
}

// Verified is one signature or attestation that a trusted key vouches for.
type Verified struct {
	// Key is the trusted key's name, KeyID its sigstore hint.
	Key, KeyID string
	// Source says where it was found.
	Source string
	// PredicateType is the statement's predicate type (attestations and
	// bundle signatures); empty for simple signing payloads.
	PredicateType string
	// ArrivedAt is when the registry first stored it, when
	// VerifyOptions.ArrivedAt knows; zero otherwise.
	ArrivedAt time.Time
	// Payload is what cosign prints: for a signature the simple signing
	// payload (bundle signatures are shown in that shape, as cosign v3
	// does); for an attestation the in-toto statement.
	Payload json.RawMessage
}

// Rejected is a candidate that did not verify, and why.
type Rejected struct {
	Source string
	Err    error
}

// Result is the outcome of Verify or VerifyAttestations.
type Result struct {
	Target   Target
	Verified []Verified
	Rejected []Rejected
	// Skipped counts valid attestations left out by the predicate type
	// filter.
	Skipped int
}

// Keys returns the distinct names of the keys that vouched, sorted.
func (r *Result) Keys() []string {
	seen := map[string]bool{}
	var names []string
	for _, v := range r.Verified {
		if !seen[v.Key] {
			seen[v.Key] = true
			names = append(names, v.Key)
		}
	}
	sort.Strings(names)
	return names
}

// Verify checks that at least trust.Require distinct trusted keys signed
// exactly the target's manifest digest, looking at every place cosign
// writes signatures: the "sha256-<hex>.sig" tag (cosign v2) and sigstore
// bundles among the referrers (cosign v3; the registry's referrers API or
// the referrers tag schema). On failure the error wraps ErrNotVerified and
// every rejection's reason; the Result is returned either way.
func Verify(ctx context.Context, r store.Reader, t Target, trust Trust, opts VerifyOptions) (*Result, error) {
	if err := trust.check(); err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := &Result{Target: t}
	candidates := 0

	tag := Tag(t.Manifest.Digest, SignatureSuffix)
	// A place that cannot be read is reported, not fatal: signatures found
	// elsewhere may still be enough.
	layers, err := readTagLayers(ctx, r, t.Repo, tag, SimpleSigningMediaType)
	if err != nil {
		candidates++
		res.Rejected = append(res.Rejected, Rejected{t.Name + ":" + tag, err})
	}
	for i, l := range layers {
		candidates++
		src := fmt.Sprintf("%s:%s layer %d", t.Name, tag, i)
		key, _ := ArrivalKey(l)
		vs, err := verifySimpleSigning(ctx, r, t, l, trust, now, opts.Annotations, newArrival(ctx, opts, key))
		res.add(src, vs, err)
	}

	bundles, err := bundleCandidates(ctx, r, t, true)
	if err != nil {
		candidates++
		res.Rejected = append(res.Rejected, Rejected{"referrers of " + t.String(), err})
	}
	for _, c := range bundles {
		if c.err != nil {
			candidates++
			res.Rejected = append(res.Rejected, Rejected{c.source, c.err})
			continue
		}
		vs, st, err := verifyStatement(ctx, c, t, trust, now, newArrival(ctx, opts, c.arrival))
		if err == nil && st.PredicateType != attestation.PredicateCosignSign {
			continue // an attestation, not a signature
		}
		candidates++
		if err == nil {
			err = checkAnnotations(subjectAnnotations(st, t), opts.Annotations)
		}
		if err == nil {
			shown, merr := bundleAsSimpleSigning(t, st)
			if merr != nil {
				err = merr
			}
			for i := range vs {
				vs[i].Payload = shown
			}
		}
		res.add(c.source, vs, err)
	}
	return res, res.judge(trust, candidates, ErrNoSignatures)
}

// VerifyAttestations checks in-toto attestations about the target: those in
// the "sha256-<hex>.att" tag (cosign v2) and in sigstore bundles among the
// referrers (cosign v3), keeping those of opts.PredicateType when set.
func VerifyAttestations(ctx context.Context, r store.Reader, t Target, trust Trust, opts VerifyOptions) (*Result, error) {
	if err := trust.check(); err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := &Result{Target: t}
	candidates := 0
	keep := func(src string, vs []Verified, st *attestation.Statement, err error) {
		if err == nil && opts.PredicateType != "" && st.PredicateType != opts.PredicateType {
			res.Skipped++
			return
		}
		candidates++
		res.add(src, vs, err)
	}

	tag := Tag(t.Manifest.Digest, AttestationSuffix)
	layers, err := readTagLayers(ctx, r, t.Repo, tag, DSSEMediaType)
	if err != nil {
		candidates++
		res.Rejected = append(res.Rejected, Rejected{t.Name + ":" + tag, err})
	}
	for i, l := range layers {
		src := fmt.Sprintf("%s:%s layer %d", t.Name, tag, i)
		c := envelopeCandidate{source: src}
		c.arrival, _ = ArrivalKey(l)
		c.env, c.err = fetchEnvelope(ctx, r, t.Repo, l)
		if c.err != nil {
			keep(src, nil, nil, c.err)
			continue
		}
		vs, st, err := verifyStatement(ctx, c, t, trust, now, newArrival(ctx, opts, c.arrival))
		keep(src, vs, st, err)
	}

	bundles, err := bundleCandidates(ctx, r, t, false)
	if err != nil {
		candidates++
		res.Rejected = append(res.Rejected, Rejected{"referrers of " + t.String(), err})
	}
	for _, c := range bundles {
		if c.err != nil {
			keep(c.source, nil, nil, c.err)
			continue
		}
		vs, st, err := verifyStatement(ctx, c, t, trust, now, newArrival(ctx, opts, c.arrival))
		if err == nil && st.PredicateType == attestation.PredicateCosignSign {
			continue // a signature, not an attestation
		}
		keep(c.source, vs, st, err)
	}
	return res, res.judge(trust, candidates, ErrNoAttestations)
}

func (res *Result) add(src string, vs []Verified, err error) {
	if err != nil {
		res.Rejected = append(res.Rejected, Rejected{src, err})
		return
	}
	for _, v := range vs {
		v.Source = src
		res.Verified = append(res.Verified, v)
	}
}

// judge turns the collected outcome into nil or an error that names every
// reason.
func (res *Result) judge(trust Trust, candidates int, none error) error {
	got := len(res.Keys())
	if got >= trust.Require {
		return nil
	}
	if candidates == 0 {
		msg := res.Target.String()
		if res.Skipped > 0 {
			msg += fmt.Sprintf(" (%d of other predicate types)", res.Skipped)
		}
		return fmt.Errorf("%w: %w for %s", ErrNotVerified, none, msg)
	}
	errs := []error{fmt.Errorf("%w: %s: %d of the %d required trusted keys vouch for it", ErrNotVerified, res.Target, got, trust.Require)}
	for _, r := range res.Rejected {
		errs = append(errs, fmt.Errorf("%s: %w", r.Source, r.Err))
	}
	return errors.Join(errs...)
}

// verifySimpleSigning checks one layer of a cosign v2 signature manifest.
func verifySimpleSigning(ctx context.Context, r store.Reader, t Target, l v1.Descriptor, trust Trust, now time.Time, want map[string]string, arrived *arrival) ([]Verified, error) {
	b64, ok := l.Annotations[SignatureAnnotation]
	if !ok || b64 == "" {
		return nil, fmt.Errorf("%w: no %s annotation", ErrMalformedSignature, SignatureAnnotation)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: signature annotation is not base64: %v", ErrMalformedSignature, err)
	}
	p, err := fetchBlob(ctx, r, t.Repo, l)
	if err != nil {
		return nil, err
	}
	vs, err := vouchers(trust, now, arrived, func(k TrustedKey) bool {
		return k.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(p), options.WithContext(ctx)) == nil
	})
	if err != nil {
		return nil, err
	}
	var sp payload.SimpleContainerImage
	if err := json.Unmarshal(p, &sp); err != nil {
		return nil, fmt.Errorf("%w: payload is not simple signing JSON: %v", ErrMalformedSignature, err)
	}
	if sp.Critical.Type != payload.CosignSignatureType {
		return nil, fmt.Errorf("%w: payload type %q", ErrMalformedSignature, sp.Critical.Type)
	}
	if got := sp.Critical.Image.DockerManifestDigest; got != t.Manifest.Digest.String() {
		return nil, fmt.Errorf("%w: payload is about %s, the image is %s", ErrDigestMismatch, got, t.Manifest.Digest)
	}
	if err := checkAnnotations(sp.Optional, want); err != nil {
		return nil, err
	}
	for i := range vs {
		vs[i].Payload = p
	}
	return vs, nil
}

// vouchers returns a Verified for each trusted key that verifies and is
// valid now, or was when the signature arrived (when that is known); the
// error says why none does.
func vouchers(trust Trust, now time.Time, arrived *arrival, verifies func(TrustedKey) bool) ([]Verified, error) {
	var (
		vs      []Verified
		invalid []error
	)
	for _, k := range trust.Keys {
		if !verifies(k) {
			continue
		}
		v := Verified{Key: k.Name, KeyID: k.id, ArrivedAt: arrived.time()}
		if err := k.Counts(v, now); err != nil {
			invalid = append(invalid, err)
			continue
		}
		vs = append(vs, v)
	}
	if len(vs) > 0 {
		return vs, nil
	}
	if len(invalid) > 0 {
		return nil, errors.Join(invalid...)
	}
	return nil, ErrNoMatchingKey
}

func fetchBlob(ctx context.Context, r store.Reader, repo string, l v1.Descriptor) ([]byte, error) {
	b, err := r.Blob(ctx, repo, l.Digest)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrLayerMissing, l.Digest)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != l.Size {
		return nil, fmt.Errorf("%w: blob %s is %d bytes, descriptor says %d", ErrMalformedSignature, l.Digest, len(b), l.Size)
	}
	return b, nil
}

func fetchEnvelope(ctx context.Context, r store.Reader, repo string, l v1.Descriptor) (*attestation.Envelope, error) {
	b, err := fetchBlob(ctx, r, repo, l)
	if err != nil {
		return nil, err
	}
	env, err := attestation.ParseEnvelope(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	return env, nil
}

func checkAnnotations(have map[string]any, want map[string]string) error {
	for k, v := range want {
		got, ok := have[k]
		if !ok {
			return fmt.Errorf("%w: %s missing", ErrAnnotationMismatch, k)
		}
		if s := fmt.Sprint(got); s != v {
			return fmt.Errorf("%w: %s=%q, want %q", ErrAnnotationMismatch, k, s, v)
		}
	}
	return nil
}

// envelopeCandidate is a DSSE envelope found next to the image, or the
// reason it could not be read.
type envelopeCandidate struct {
	source string
	env    *attestation.Envelope
	hint   string
	// arrival is the envelope's ArrivalKey ("" when it has none).
	arrival string
	err     error
}

// bundleCandidates reads the sigstore bundles among the target's referrers.
// signatures selects those whose manifest claims cosign's sign predicate
// (true) or any other (false); the claim is only a filter, the verified
// statement decides.
func bundleCandidates(ctx context.Context, r store.Reader, t Target, signatures bool) ([]envelopeCandidate, error) {
	refs, err := r.Referrers(ctx, t.Repo, t.Manifest.Digest)
	if err != nil {
		return nil, err
	}
	var out []envelopeCandidate
	for _, d := range refs {
		if d.ArtifactType != "" && !isBundleMediaType(d.ArtifactType) && d.ArtifactType != string(EmptyMediaType) {
			continue // an SBOM or other artifact; not ours to judge
		}
		if pt, ok := d.Annotations[bundle.AnnotationPredicateType]; ok && (pt == attestation.PredicateCosignSign) != signatures {
			continue
		}
		src := t.Name + "@" + d.Digest.String()
		m, err := r.Manifest(ctx, t.Repo, d.Digest.String())
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("%w: referrer manifest", ErrLayerMissing)
		}
		if err != nil {
			out = append(out, envelopeCandidate{source: src, err: err})
			continue
		}
		var mf v1.Manifest
		if err := json.Unmarshal(m.Body, &mf); err != nil {
			out = append(out, envelopeCandidate{source: src, err: fmt.Errorf("%w: referrer manifest: %v", ErrMalformedSignature, err)})
			continue
		}
		if mf.Subject == nil || mf.Subject.Digest != t.Manifest.Digest {
			// The referrers tag schema is an ordinary tag anyone can
			// write; a listed manifest must really point at the target.
			out = append(out, envelopeCandidate{source: src, err: fmt.Errorf("%w: referrer's subject is not %s", ErrDigestMismatch, t.Manifest.Digest)})
			continue
		}
		for _, l := range mf.Layers {
			if !isBundleMediaType(string(l.MediaType)) {
				continue
			}
			c := envelopeCandidate{source: src}
			c.arrival, _ = ArrivalKey(l)
			b, err := fetchBlob(ctx, r, t.Repo, l)
			if err == nil {
				var bd *bundle.Bundle
				if bd, err = bundle.Decode(b); err == nil {
					c.env, c.hint = bd.Envelope, bd.KeyHint
				} else {
					err = fmt.Errorf("%w: %v", ErrMalformedSignature, err)
				}
			}
			c.err = err
			out = append(out, c)
		}
	}
	return out, nil
}

// verifyStatement verifies a DSSE envelope with the trusted keys and checks
// that the in-toto statement inside is about the target.
func verifyStatement(ctx context.Context, c envelopeCandidate, t Target, trust Trust, now time.Time, arrived *arrival) ([]Verified, *attestation.Statement, error) {
	var body []byte
	vs, err := vouchers(trust, now, arrived, func(k TrustedKey) bool {
		p, err := attestation.Verify(ctx, c.env, k.verifier)
		if err != nil {
			return false
		}
		body = p
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	if c.env.PayloadType != attestation.PayloadType {
		return nil, nil, fmt.Errorf("%w: DSSE payload type %q, want %q", ErrMalformedSignature, c.env.PayloadType, attestation.PayloadType)
	}
	st, err := attestation.ParseStatement(body)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformedSignature, err)
	}
	if !st.About(t.Manifest.Digest.String()) {
		return nil, nil, fmt.Errorf("%w: statement subjects do not include %s", ErrDigestMismatch, t.Manifest.Digest)
	}
	for i := range vs {
		vs[i].PredicateType = st.PredicateType
		vs[i].Payload = body
	}
	return vs, st, nil
}

// subjectAnnotations returns the annotations of the statement's subject
// that names the target.
func subjectAnnotations(st *attestation.Statement, t Target) map[string]any {
	for _, s := range st.Subject {
		if strings.EqualFold(s.Digest[t.Manifest.Digest.Algorithm], t.Manifest.Digest.Hex) {
			return s.Annotations
		}
	}
	return nil
}

// bundleAsSimpleSigning renders a bundle signature as cosign v3 prints it:
// a simple signing document whose type is the predicate type.
func bundleAsSimpleSigning(t Target, st *attestation.Statement) (json.RawMessage, error) {
	doc := payload.SimpleContainerImage{
		Critical: payload.Critical{
			Identity: payload.Identity{DockerReference: t.Name},
			Image:    payload.Image{DockerManifestDigest: t.Manifest.Digest.String()},
			Type:     st.PredicateType,
		},
		Optional: subjectAnnotations(st, t),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("render bundle payload: %w", err)
	}
	return b, nil
}
