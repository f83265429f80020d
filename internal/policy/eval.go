package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/secret"
	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/store"
)

// ErrNotScanned is what a report source returns for an image it holds no
// scan report of.
var ErrNotScanned = errors.New("no scan report")

// SignedAtAnnotation is the signed payload annotation a signature states
// its time in, for signature freshness (signers.maxAge): `berth sign -a
// dev.berth.signed-at=$(date -u +%FT%TZ)` or cosign's -a alike. Offline
// signatures carry no trusted timestamp, so the signer's own statement is
// what there is.
const SignedAtAnnotation = "dev.berth.signed-at"

// StageAnnotation is the signed payload annotation of a signature a
// stage of berth serve made (custody.AnnotationStage, "dev.berth.stage":
// the value is the stage, "scan"), and the subject annotation of an
// attestation it made. Such a signature or attestation stands for the
// stage's approval, and counts only while the approval does
// (Facts.StageRevoked).
const StageAnnotation = "dev.berth.stage"

// ErrStageRevoked rejects a valid signature whose stage approval was
// revoked.
var ErrStageRevoked = errors.New("stage approval revoked")

// MaxValidity bounds how long a verdict may be reused even when nothing it
// depends on changes.
const MaxValidity = 10 * time.Minute

// Image names the image decided on.
type Image struct {
	// Registry is the registry host as clients name it
	// ("registry.example", "localhost:5000", "index.docker.io").
	Registry string
	// Repository is the path inside the registry ("team/app").
	Repository string
	// Tag is the tag it was asked for by, if any.
	Tag string
	// Pinned says the reference itself carried the digest (asked for by
	// digest, or tag@digest).
	Pinned bool
	// Digest is the manifest digest the reference resolved to.
	Digest string
}

// Name is registry/repository; the repository alone without a registry
// (an image not pushed yet, named by its file).
func (i Image) Name() string {
	if i.Registry == "" {
		return i.Repository
	}
	return i.Registry + "/" + i.Repository
}

// Reference is the name with the tag and the digest.
func (i Image) Reference() string {
	s := i.Name()
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// Facts are what an evaluation may read, each only when a rule needs it.
type Facts struct {
	Image Image
	// Store reads the signatures and attestations beside the image.
	Store store.Reader
	// Target is the image's manifest as signing names it.
	Target sign.Target
	// Report returns the image's scan report, or ErrNotScanned.
	Report func(ctx context.Context) (*match.Report, error)
	// Now is the time of the decision; zero is time.Now.
	Now time.Time
	// StageRevoked says whether the approval that a stage's signature or
	// attestation of the image stands for (annotated StageAnnotation=stage,
	// made by the key whose id, sigstore's key hint, is keyID) was revoked
	// since, and why: the signature stays in the registry, but it does
	// not count then. nil when nothing revokes stage signatures (they
	// count as any other).
	StageRevoked func(ctx context.Context, stage, keyID string) (reason string, revoked bool, err error)
	// ArrivedAt says when the registry first stored a signature (see
	// sign.VerifyOptions.ArrivedAt): a key whose window has closed still
	// vouches for what arrived inside it. nil judges every window at Now.
	ArrivedAt func(ctx context.Context, key string) (time.Time, bool)
}

// Violation is one failed rule.
type Violation struct {
	// Policy is the document, "ClusterImagePolicy/NAME" or "ImagePolicy/NAME".
	Policy  string `json:"policy"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
	Mode    Mode   `json:"mode"`
}

// String is what users read: "ImagePolicy/prod: signature: not signed by 2 of [ci, scan]".
func (v Violation) String() string { return v.Policy + ": " + v.Rule + ": " + v.Message }

// Verdict is the outcome for one image.
type Verdict struct {
	Image   string `json:"image"`
	Digest  string `json:"digest"`
	Allowed bool   `json:"allowed"`
	// Policies are the documents that applied.
	Policies []string `json:"policies"`
	// Violations are failed rules of documents in enforce mode; Warnings
	// those of documents in warn mode.
	Violations []Violation `json:"violations,omitempty"`
	Warnings   []Violation `json:"warnings,omitempty"`
	// Notes say which exceptions and allow-list entries were used.
	Notes []string `json:"notes,omitempty"`
	// Signers are the trusted keys whose signatures verified.
	Signers []string `json:"signers,omitempty"`
	// ValidUntil is when the verdict may change by time alone (a key's
	// window, an exception's expiry, a signature growing too old).
	ValidUntil time.Time `json:"-"`
	// Transient is set when reading the registry failed, or the image
	// has no scan report yet: the verdict is a refusal for now, not a
	// judgement of the image, and is not cached.
	Transient bool `json:"-"`
}

// Message joins the violations for an error message.
func (v *Verdict) Message() string {
	var parts []string
	for _, x := range v.Violations {
		parts = append(parts, x.String())
	}
	return strings.Join(parts, "; ")
}

func (v *Verdict) until(t time.Time) {
	if !t.IsZero() && t.Before(v.ValidUntil) {
		v.ValidUntil = t
	}
}

// Applies reports whether any document applies to the image.
func (p *Policy) Applies(img Image) bool {
	for _, d := range p.Docs {
		if d.matches(img) {
			return true
		}
	}
	return false
}

func (d *Document) matches(img Image) bool {
	if len(d.Images) == 0 {
		return true
	}
	name, ref := img.Name(), img.Reference()
	for _, g := range d.Images {
		if g.Match(name, ref) {
			return true
		}
	}
	return false
}

// Evaluate decides on an image: every document whose images match must
// pass. A document in warn mode that fails adds warnings, not violations.
// The error is for evaluations that could not run at all (a cancelled
// context); failures to read signatures are violations, so callers fail
// closed.
func (p *Policy) Evaluate(ctx context.Context, f Facts) (*Verdict, error) {
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	v := &Verdict{Image: f.Image.Reference(), Digest: f.Image.Digest, Allowed: true, ValidUntil: now.Add(MaxValidity)}
	e := &evaluation{p: p, f: f, now: now, v: v}
	for _, d := range p.Docs {
		if !d.matches(f.Image) {
			continue
		}
		v.Policies = append(v.Policies, d.Kind+"/"+d.Name)
		var out []Violation
		switch {
		case d.cip != nil:
			out = e.cip(ctx, d)
		case d.berth != nil:
			out = e.berth(ctx, d)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, x := range out {
			x.Policy, x.Mode = d.Kind+"/"+d.Name, d.Mode
			if d.Mode == Warn {
				v.Warnings = append(v.Warnings, x)
			} else {
				v.Violations = append(v.Violations, x)
			}
		}
	}
	v.Allowed = len(v.Violations) == 0
	if e.sigs != nil {
		v.Signers = e.signerNames(nil)
	}
	return v, nil
}

// evaluation holds what one Evaluate read, so that every document shares
// one pass over the signatures, the attestations and the report.
type evaluation struct {
	p   *Policy
	f   Facts
	now time.Time
	v   *Verdict

	sigs, atts       *sign.Result
	sigsRead         bool
	attsRead         bool
	report           *match.Report
	reportErr        error
	reportRead       bool
	transientReasons []string
	// revoked says, by key id, why a key's stage signatures do not count.
	revoked map[string]string
}

// union is the trust set of every key of the policy, without validity
// windows: each document checks the windows of its own keys.
func (e *evaluation) union() sign.Trust {
	ks := make([]sign.TrustedKey, 0, len(e.p.keys))
	for _, k := range e.p.keys {
		// Errors are impossible: the key was accepted once already.
		tk, _ := sign.NewTrustedKey(k.Name, k.Public(), time.Time{}, time.Time{})
		ks = append(ks, tk)
	}
	return sign.Trust{Keys: ks, Require: 1}
}

func (e *evaluation) signatures(ctx context.Context) *sign.Result {
	if !e.sigsRead {
		e.sigsRead = true
		if len(e.p.keys) > 0 {
			e.sigs, _ = sign.Verify(ctx, e.f.Store, e.f.Target, e.union(), sign.VerifyOptions{Now: e.now, ArrivedAt: e.f.ArrivedAt})
			e.noteTransient(e.sigs)
			e.dropRevoked(ctx, e.sigs, "signature", signatureStage)
		}
		if e.sigs == nil {
			e.sigs = &sign.Result{Target: e.f.Target}
		}
	}
	return e.sigs
}

// dropRevoked moves the verified stage signatures or attestations (what
// says which kind; stageOf reads the stage a payload was made for) whose
// approval was revoked to the rejected ones. A revocation that cannot be
// read refuses for now (Transient), as a signature that cannot be read
// does.
func (e *evaluation) dropRevoked(ctx context.Context, r *sign.Result, what string, stageOf func(json.RawMessage) string) {
	if e.f.StageRevoked == nil || r == nil {
		return
	}
	type answer struct {
		why string
		err error
	}
	asked := map[[2]string]answer{} // by stage and key: a key may have signed more than once
	kept := r.Verified[:0]
	for _, vf := range r.Verified {
		stage := stageOf(vf.Payload)
		if stage == "" {
			kept = append(kept, vf)
			continue
		}
		q := [2]string{stage, vf.KeyID}
		a, ok := asked[q]
		if !ok {
			reason, revoked, err := e.f.StageRevoked(ctx, stage, vf.KeyID)
			switch {
			case err != nil:
				a.err = fmt.Errorf("%s stage approval of the %s by %s: %w", stage, what, vf.Key, err)
			case revoked:
				a.why = fmt.Sprintf("%s stage approval revoked: %s", stage, reason)
			}
			asked[q] = a
		}
		switch {
		case a.err != nil:
			e.v.Transient = true
			e.transientReasons = append(e.transientReasons, a.err.Error())
			r.Rejected = append(r.Rejected, sign.Rejected{Source: vf.Source, Err: a.err})
		case a.why != "":
			if e.revoked == nil {
				e.revoked = map[string]string{}
			}
			e.revoked[vf.KeyID] = a.why
			r.Rejected = append(r.Rejected, sign.Rejected{Source: vf.Source, Err: fmt.Errorf("%w: %s", ErrStageRevoked, a.why)})
		default:
			kept = append(kept, vf)
		}
	}
	r.Verified = kept
}

// signatureStage reads the stage a simple signing payload was made for.
func signatureStage(payload json.RawMessage) string {
	return payloadAnnotation(payload, StageAnnotation)
}

// statementStage reads the stage an in-toto statement was made for: the
// annotation on its subject (berth serve's stage attests so), inside what
// is signed.
func statementStage(statement json.RawMessage) string {
	var doc struct {
		Subject []struct {
			Annotations map[string]any `json:"annotations"`
		} `json:"subject"`
	}
	if json.Unmarshal(statement, &doc) != nil {
		return ""
	}
	for _, sub := range doc.Subject {
		if v, _ := sub.Annotations[StageAnnotation].(string); v != "" {
			return v
		}
	}
	return ""
}

// payloadAnnotation reads an annotation from a simple signing payload's
// optional section; "" when it has none.
func payloadAnnotation(payload json.RawMessage, name string) string {
	var doc struct {
		Optional map[string]any `json:"optional"`
	}
	if json.Unmarshal(payload, &doc) != nil {
		return ""
	}
	v, _ := doc.Optional[name].(string)
	return v
}

func (e *evaluation) attestations(ctx context.Context) *sign.Result {
	if !e.attsRead {
		e.attsRead = true
		if len(e.p.keys) > 0 {
			e.atts, _ = sign.VerifyAttestations(ctx, e.f.Store, e.f.Target, e.union(), sign.VerifyOptions{Now: e.now, ArrivedAt: e.f.ArrivedAt})
			e.noteTransient(e.atts)
			e.dropRevoked(ctx, e.atts, "attestation", statementStage)
		}
		if e.atts == nil {
			e.atts = &sign.Result{Target: e.f.Target}
		}
	}
	return e.atts
}

// noteTransient marks the verdict when a place could not be read for a
// reason that is not about the signature itself (the registry timed out).
func (e *evaluation) noteTransient(r *sign.Result) {
	if r == nil {
		return
	}
	for _, rj := range r.Rejected {
		if !isJudgement(rj.Err) {
			e.v.Transient = true
			e.transientReasons = append(e.transientReasons, rj.Err.Error())
		}
	}
}

func isJudgement(err error) bool {
	for _, s := range []error{ErrStageRevoked, sign.ErrNoMatchingKey, sign.ErrDigestMismatch, sign.ErrLayerMissing, sign.ErrMalformedSignature,
		sign.ErrAnnotationMismatch, sign.ErrKeyNotValid, store.ErrNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func (e *evaluation) getReport(ctx context.Context) (*match.Report, error) {
	if !e.reportRead {
		e.reportRead = true
		if e.f.Report == nil {
			e.reportErr = ErrNotScanned
		} else {
			e.report, e.reportErr = e.f.Report(ctx)
		}
	}
	return e.report, e.reportErr
}

// vouching returns, for keys ks, the names of those whose signature
// verified and that are valid now (and fresh, when maxAge is set), and
// notes why others do not count.
func (e *evaluation) vouching(ctx context.Context, ks []sign.TrustedKey, maxAge time.Duration) (names []string, why []string) {
	res := e.signatures(ctx)
	byID := map[string][]sign.Verified{}
	var payloads = map[string][]json.RawMessage{}
	otherRepo := map[string]string{}
	for _, vf := range res.Verified {
		if other := otherRepository(vf.Payload, e.f.Image.Repository); other != "" {
			// A valid signature, but the signer vouched for the digest as
			// another repository's image: copied here, it does not count.
			otherRepo[vf.KeyID] = other
			continue
		}
		byID[vf.KeyID] = append(byID[vf.KeyID], vf)
		payloads[vf.KeyID] = append(payloads[vf.KeyID], vf.Payload)
	}
	for _, k := range ks {
		if other, ok := otherRepo[k.ID()]; ok {
			if _, alsoHere := byID[k.ID()]; !alsoHere {
				why = append(why, fmt.Sprintf("the signature by %s is for %s, not %s", k.Name, other, e.f.Image.Repository))
			}
		}
		vfs, ok := byID[k.ID()]
		if !ok {
			if msg, revoked := e.revoked[k.ID()]; revoked && !slices.Contains(why, msg) {
				why = append(why, msg)
			}
			continue
		}
		if !k.NotBefore.IsZero() && e.now.Before(k.NotBefore) {
			why = append(why, fmt.Sprintf("key %s is valid from %s", k.Name, k.NotBefore.Format(time.RFC3339)))
			e.v.until(k.NotBefore)
			continue
		}
		// A key past its window still vouches for a signature the
		// registry received inside it (sign.TrustedKey.Counts).
		if !slices.ContainsFunc(vfs, func(vf sign.Verified) bool { return k.Counts(vf, e.now) == nil }) {
			why = append(why, fmt.Sprintf("key %s expired at %s", k.Name, k.NotAfter.Format(time.RFC3339)))
			continue
		}
		e.v.until(k.NotAfter)
		if maxAge > 0 {
			newest, ok := newestSignedAt(payloads[k.ID()])
			switch {
			case !ok:
				why = append(why, fmt.Sprintf("the signature by %s states no time (annotation %s), so its age is unknown", k.Name, SignedAtAnnotation))
				continue
			case e.now.Sub(newest) > maxAge:
				why = append(why, fmt.Sprintf("the signature by %s is from %s, older than %s", k.Name, newest.Format(time.RFC3339), maxAge))
				continue
			}
			e.v.until(newest.Add(maxAge))
		}
		names = append(names, k.Name)
	}
	return names, why
}

// otherRepository returns the repository a simple signing payload names
// when it is not repo (registry hosts aside: one registry has many names),
// or "".
func otherRepository(payload json.RawMessage, repo string) string {
	var doc struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
		} `json:"critical"`
	}
	if json.Unmarshal(payload, &doc) != nil || doc.Critical.Identity.DockerReference == "" {
		return ""
	}
	r, err := name.NewRepository(doc.Critical.Identity.DockerReference, name.WeakValidation)
	if err != nil {
		return doc.Critical.Identity.DockerReference
	}
	if r.RepositoryStr() == repo {
		return ""
	}
	return r.RepositoryStr()
}

// newestSignedAt reads the signed time from simple signing payloads (and
// bundle signatures shown in that shape).
func newestSignedAt(ps []json.RawMessage) (time.Time, bool) {
	var newest time.Time
	for _, p := range ps {
		var doc struct {
			Optional map[string]any `json:"optional"`
		}
		if json.Unmarshal(p, &doc) != nil {
			continue
		}
		s, _ := doc.Optional[SignedAtAnnotation].(string)
		if t, err := time.Parse(time.RFC3339, s); err == nil && t.After(newest) {
			newest = t
		}
	}
	return newest, !newest.IsZero()
}

// rejections summarises why signatures did not count, for messages.
func rejections(r *sign.Result) string {
	if r == nil || len(r.Rejected) == 0 {
		return ""
	}
	seen := map[string]bool{}
	var reasons []string
	for _, rj := range r.Rejected {
		msg := rj.Err.Error()
		if errors.Is(rj.Err, store.ErrNotFound) {
			continue // the tag that would hold them does not exist
		}
		if !seen[msg] {
			seen[msg] = true
			reasons = append(reasons, msg)
		}
	}
	if len(reasons) == 0 {
		return ""
	}
	if len(reasons) > 3 {
		reasons = append(reasons[:3], fmt.Sprintf("and %d more", len(reasons)-3))
	}
	return "rejected: " + strings.Join(reasons, "; ")
}

// signerNames returns the names of the keys among ks (every key when nil)
// that verified, sorted.
func (e *evaluation) signerNames(ks []sign.TrustedKey) []string {
	if e.sigs == nil {
		return nil
	}
	ids := map[string]bool{}
	for _, vf := range e.sigs.Verified {
		ids[vf.KeyID] = true
	}
	var out []string
	if ks == nil {
		ks = e.p.keys
	}
	for _, k := range ks {
		if ids[k.ID()] {
			out = append(out, k.Name)
		}
	}
	sort.Strings(out)
	return out
}

func keyNames(ks []sign.TrustedKey) string {
	names := make([]string, len(ks))
	for i, k := range ks {
		names[i] = k.Name
	}
	return "[" + strings.Join(dedupe(names), ", ") + "]"
}

// checkAttestation looks for a verified attestation of the rule's type by
// one of ks that passes its policy; it returns the statements that passed
// and, when none did, why.
func (e *evaluation) checkAttestation(ctx context.Context, r *attestRule, ks []sign.TrustedKey) ([]json.RawMessage, string) {
	res := e.attestations(ctx)
	allowed := map[string]sign.TrustedKey{}
	for _, k := range ks {
		allowed[k.ID()] = k
	}
	var passed []json.RawMessage
	var failures []string
	found := 0
	for _, vf := range res.Verified {
		k, ok := allowed[vf.KeyID]
		if !ok || vf.PredicateType != r.predicateType {
			continue
		}
		if k.Counts(vf, e.now) != nil {
			failures = append(failures, "key "+k.Name+" is outside its validity window")
			continue
		}
		found++
		if r.policy != nil {
			if err := r.policy.eval(ctx, vf.Payload); err != nil {
				failures = append(failures, err.Error())
				continue
			}
		}
		passed = append(passed, vf.Payload)
	}
	if len(passed) > 0 {
		return passed, ""
	}
	if found == 0 && len(failures) == 0 {
		msg := fmt.Sprintf("%s: no %s attestation signed by %s", r.name, r.predicateType, keyNames(ks))
		if rj := rejections(res); rj != "" {
			msg += " (" + rj + ")"
		}
		return nil, msg
	}
	return nil, fmt.Sprintf("%s: %s", r.name, strings.Join(dedupe(failures), "; "))
}

func distinct(ss []string) []string { return dedupe(ss) }

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// cip evaluates a ClusterImagePolicy as policy-controller does: without
// spec.policy one passing authority suffices; with it, the authorities
// that passed are handed to the policy, which decides.
func (e *evaluation) cip(ctx context.Context, d *Document) []Violation {
	matches := map[string]any{}
	var failures []string
	passed := 0
	for _, a := range d.cip.authorities {
		m, why := e.authority(ctx, a)
		if why != "" {
			failures = append(failures, "authority "+a.name+": "+why)
			continue
		}
		passed++
		matches[a.name] = m
	}
	if d.cip.policy != nil {
		doc, err := json.Marshal(map[string]any{"authorityMatches": matches})
		if err == nil {
			err = d.cip.policy.eval(ctx, doc)
		}
		if err != nil {
			msg := err.Error()
			if len(failures) > 0 {
				msg += " (" + strings.Join(failures, "; ") + ")"
			}
			return []Violation{{Rule: RulePolicy, Message: msg}}
		}
		return nil
	}
	if passed > 0 {
		return nil
	}
	return []Violation{{Rule: RuleAuthority, Message: "no authority passed: " + strings.Join(failures, "; ")}}
}

// authority checks one authority; the map is its entry in
// policy-controller's authorityMatches.
func (e *evaluation) authority(ctx context.Context, a *authority) (map[string]any, string) {
	switch a.static {
	case "pass":
		return map[string]any{"static": true}, ""
	case "fail":
		msg := a.staticMsg
		if msg == "" {
			msg = "disallowed by static policy"
		}
		return nil, msg
	}
	if len(a.attestations) == 0 {
		names, why := e.vouching(ctx, a.keys, 0)
		if len(names) == 0 {
			msg := "not signed by " + keyNames(a.keys)
			if len(why) > 0 {
				msg += " (" + strings.Join(why, "; ") + ")"
			} else if rj := rejections(e.sigs); rj != "" {
				msg += " (" + rj + ")"
			}
			return nil, msg
		}
		sigs := make([]any, len(names))
		for i, n := range names {
			sigs[i] = map[string]any{"key": n}
		}
		return map[string]any{"signatures": sigs}, ""
	}
	atts := map[string]any{}
	for _, r := range a.attestations {
		passed, why := e.checkAttestation(ctx, r, a.keys)
		if why != "" {
			return nil, "attestation " + why
		}
		var statements []any
		for _, p := range passed {
			var st any
			if json.Unmarshal(p, &st) == nil {
				statements = append(statements, st)
			}
		}
		atts[r.name] = statements
	}
	return map[string]any{"attestations": atts}, ""
}

// berth evaluates an ImagePolicy; each failed rule is one violation
// unless an exception in force waives it.
func (e *evaluation) berth(ctx context.Context, d *Document) []Violation {
	b := d.berth
	var out []Violation
	fail := func(rule, msg string) {
		if note, waived := e.waive(b, rule); waived {
			e.v.Notes = append(e.v.Notes, note)
			return
		} else if note != "" {
			msg += " (" + note + ")"
		}
		out = append(out, Violation{Rule: rule, Message: msg})
	}
	img := e.f.Image
	if len(b.registries) > 0 {
		ok := false
		for _, g := range b.registries {
			if globMatch(g.norm, img.Registry) {
				ok = true
			}
		}
		if !ok {
			fail(RuleRegistry, fmt.Sprintf("registry %s is not allowed (allowed: %s)", img.Registry, globList(b.registries)))
		}
	}
	if img.Tag != "" {
		for _, g := range b.tagDeny {
			if globMatch(g.norm, img.Tag) {
				fail(RuleTag, fmt.Sprintf("tag %q is refused (mutable: pin the image by digest or use a release tag)", img.Tag))
				break
			}
		}
	}
	if b.digestOnly && !img.Pinned {
		fail(RuleTag, fmt.Sprintf("%s is referenced by tag %q, not by digest", img.Name(), img.Tag))
	}
	if len(b.keys) > 0 {
		names, why := e.vouching(ctx, b.keys, b.maxAge)
		names = distinct(names) // a rotated signer has several keys under one name
		if len(names) < b.require {
			msg := fmt.Sprintf("not signed by %d of %s", b.require, keyNames(b.keys))
			if len(names) > 0 {
				msg += " (signed by " + strings.Join(names, ", ") + ")"
			}
			if len(why) > 0 {
				msg += " (" + strings.Join(why, "; ") + ")"
			} else if rj := rejections(e.sigs); rj != "" {
				msg += " (" + rj + ")"
			}
			fail(RuleSignature, msg)
		}
	}
	for _, r := range b.attestations {
		if _, why := e.checkAttestation(ctx, r, b.keys); why != "" {
			fail(RuleAttestation, why)
		}
	}
	if rules := b.reportRules(); len(rules) > 0 {
		rep, err := e.getReport(ctx)
		switch {
		case errors.Is(err, ErrNotScanned):
			// Refused for now: the report is on its way, and a cached
			// refusal could outlive its arrival (the cache forgets a
			// digest's verdicts only after its report is stored).
			e.v.Transient = true
			for _, r := range rules {
				fail(r, "the image has not been scanned yet, so its "+ruleFacts[r]+" are unknown")
			}
		case err != nil:
			e.v.Transient = true
			fail(rules[0], "reading the scan report: "+err.Error())
		default:
			if b.vulns != nil {
				if msg := e.vulnerabilities(b.vulns, rep); msg != "" {
					fail(RuleVulnerability, msg)
				}
			}
			if b.secrets != nil {
				if msg := e.secrets(b.secrets, rep); msg != "" {
					fail(RuleSecret, msg)
				}
			}
			if b.misconfig != nil {
				if msg := e.misconfigurations(b.misconfig, rep); msg != "" {
					fail(RuleMisconfig, msg)
				}
			}
			if len(b.licenseDeny) > 0 {
				if msg := deniedLicenses(b.licenseDeny, rep); msg != "" {
					fail(RuleLicense, msg)
				}
			}
		}
	}
	if len(b.conditions) > 0 {
		vars := e.celVars(ctx, b)
		for _, c := range b.conditions {
			if why := e.unscanned(ctx, c.needsScanners); why != "" {
				fail(RuleCondition, c.name+": "+why)
				continue
			}
			ok, err := c.eval(vars)
			switch {
			case err != nil:
				fail(RuleCondition, fmt.Sprintf("%s: %v", c.name, err))
			case !ok:
				msg := c.message
				if msg == "" {
					msg = "is false"
				}
				fail(RuleCondition, c.name+": "+msg)
			}
		}
	}
	return out
}

// Scanners are what a scan report must hold for the policy's rules, in
// the scanners' order: "vuln" for vulnerability and license rules (and
// conditions reading them), "secret" and "misconfig" for secrets and
// misconfigurations rules. A CLI that scans for the policy runs these.
func (p *Policy) Scanners() []string {
	need := map[string]bool{}
	for _, d := range p.Docs {
		b := d.berth
		if b == nil {
			continue
		}
		need["vuln"] = need["vuln"] || b.vulns != nil || len(b.licenseDeny) > 0
		need[scannerSecret] = need[scannerSecret] || b.secrets != nil
		need[scannerMisconfig] = need[scannerMisconfig] || b.misconfig != nil
		for _, c := range b.conditions {
			need["vuln"] = need["vuln"] || c.needsVulns
			for _, s := range c.needsScanners {
				need[s] = true
			}
		}
	}
	var out []string
	for _, s := range []string{"vuln", scannerSecret, scannerMisconfig} {
		if need[s] {
			out = append(out, s)
		}
	}
	return out
}

// ruleFacts name what a report rule reads, for "not scanned" messages.
var ruleFacts = map[string]string{RuleVulnerability: "vulnerabilities", RuleSecret: "secrets",
	RuleMisconfig: "misconfigurations", RuleLicense: "licenses"}

// reportRules are the rules of b that read the scan report, in the order
// they are evaluated.
func (b *berthSpec) reportRules() []string {
	var out []string
	if b.vulns != nil {
		out = append(out, RuleVulnerability)
	}
	if b.secrets != nil {
		out = append(out, RuleSecret)
	}
	if b.misconfig != nil {
		out = append(out, RuleMisconfig)
	}
	if len(b.licenseDeny) > 0 {
		out = append(out, RuleLicense)
	}
	return out
}

// waive finds an exception in force for rule; the note says which one, or
// which one expired.
func (e *evaluation) waive(b *berthSpec, rule string) (string, bool) {
	expired := ""
	for _, x := range b.exceptions {
		if !x.rules[rule] && !x.rules["*"] {
			continue
		}
		if len(x.images) > 0 {
			ok := false
			for _, g := range x.images {
				if g.Match(e.f.Image.Name(), e.f.Image.Reference()) {
					ok = true
				}
			}
			if !ok {
				continue
			}
		}
		if !e.now.Before(x.expires) {
			expired = fmt.Sprintf("exception %s expired at %s", x.name, x.expires.Format(time.RFC3339))
			continue
		}
		e.v.until(x.expires)
		note := fmt.Sprintf("exception %s waives %s until %s", x.name, rule, x.expires.Format(time.RFC3339))
		if x.reason != "" {
			note += ": " + x.reason
		}
		return note, true
	}
	return expired, false
}

func globList(gs []Glob) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = g.Pattern
	}
	return strings.Join(s, ", ")
}

// vulnerabilities lists the findings the rule denies, most severe first.
func (e *evaluation) vulnerabilities(r *vulnRule, rep *match.Report) string {
	type hit struct {
		f    *match.Finding
		note string
	}
	var hits []hit
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if r.fixableOnly && f.Status != match.StatusFixed {
			continue
		}
		denied := r.severity != "" && f.Severity.Rank() >= r.severity.Rank()
		if r.maxCVSS != nil && maxScore(f) > *r.maxCVSS {
			denied = true
		}
		if !denied {
			continue
		}
		note := ""
		allowed := false
		for _, a := range r.allow {
			if !hasID(f, a.id) {
				continue
			}
			if a.expires.IsZero() || e.now.Before(a.expires) {
				allowed = true
				e.v.until(a.expires)
				e.v.Notes = append(e.v.Notes, fmt.Sprintf("%s allowed%s", f.ID, untilText(a.expires, a.reason)))
				break
			}
			note = fmt.Sprintf(" (allow-list entry expired at %s)", a.expires.Format(time.RFC3339))
		}
		if !allowed {
			hits = append(hits, hit{f, note})
		}
	}
	if len(hits) == 0 {
		return ""
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].f.Severity.Rank() > hits[j].f.Severity.Rank() })
	var parts []string
	for i, h := range hits {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(hits)-3))
			break
		}
		f := h.f
		s := fmt.Sprintf("%s %s in %s %s", f.ID, f.Severity, f.Package.Name, f.Package.Version)
		if score := maxScore(f); score > 0 {
			s += " (CVSS " + strconv.FormatFloat(score, 'f', 1, 64) + ")"
		}
		if len(f.FixedVersions) > 0 {
			s += ", fixed in " + strings.Join(f.FixedVersions, ", ")
		} else {
			s += ", no fix yet"
		}
		parts = append(parts, s+h.note)
	}
	return strings.Join(parts, "; ")
}

func untilText(t time.Time, reason string) string {
	s := ""
	if !t.IsZero() {
		s = " until " + t.Format(time.RFC3339)
	}
	if reason != "" {
		s += ": " + reason
	}
	return s
}

func hasID(f *match.Finding, id string) bool {
	for _, x := range f.IDs() {
		if strings.EqualFold(x, id) {
			return true
		}
	}
	return false
}

func maxScore(f *match.Finding) float64 {
	m := 0.0
	for _, c := range f.CVSS {
		if c.Score > m {
			m = c.Score
		}
	}
	return m
}

// deniedLicenses lists packages whose license expression cannot be met
// without a denied license.
func deniedLicenses(deny []Glob, rep *match.Report) string {
	denied := func(id string) bool {
		for _, g := range deny {
			if globMatch(g.norm, strings.ToLower(id)) {
				return true
			}
		}
		return false
	}
	var parts []string
	n := 0
	for _, p := range rep.Inventory.Packages {
		for _, l := range p.Licenses {
			if !licenseAcceptable(l, denied) {
				n++
				if len(parts) < 3 {
					parts = append(parts, fmt.Sprintf("%s %s is licensed %s", p.Name, p.Version, l))
				}
				break
			}
		}
	}
	if n == 0 {
		return ""
	}
	if n > 3 {
		parts = append(parts, fmt.Sprintf("and %d more", n-3))
	}
	return "denied license: " + strings.Join(parts, "; ")
}

// celVars are what conditions see.
func (e *evaluation) celVars(ctx context.Context, b *berthSpec) map[string]any {
	needReport, needSigs := false, false
	for _, c := range b.conditions {
		needReport = needReport || c.needsReport
		needSigs = needSigs || c.needsSigs
	}
	img := e.f.Image
	vars := map[string]any{
		"image": map[string]string{"registry": img.Registry, "repository": img.Repository, "name": img.Name(),
			"tag": img.Tag, "digest": img.Digest, "reference": img.Reference()},
		"signers": []string{}, "attestations": []string{}, "vulnerabilities": []map[string]any{},
		"licenses": []string{}, "secrets": []map[string]any{}, "misconfigurations": []map[string]any{},
		"scanned": false, "now": e.now,
	}
	if needSigs {
		e.signatures(ctx)
		ks := b.keys
		if len(ks) == 0 {
			ks = e.p.keys
		}
		if names := e.signerNames(ks); names != nil {
			vars["signers"] = names
		}
		types := map[string]bool{}
		for _, vf := range e.attestations(ctx).Verified {
			types[vf.PredicateType] = true
		}
		var ts []string
		for t := range types {
			ts = append(ts, t)
		}
		sort.Strings(ts)
		if ts != nil {
			vars["attestations"] = ts
		}
	}
	if needReport {
		if rep, err := e.getReport(ctx); err == nil {
			vars["scanned"] = true
			vulns := make([]map[string]any, 0, len(rep.Findings))
			for i := range rep.Findings {
				f := &rep.Findings[i]
				fixed := f.FixedVersions
				if fixed == nil {
					fixed = []string{}
				}
				vulns = append(vulns, map[string]any{"id": f.ID, "ids": f.IDs(), "severity": string(f.Severity),
					"package": f.Package.Name, "version": f.Package.Version, "fixable": f.Status == match.StatusFixed,
					"fixedVersions": fixed, "cvss": maxScore(f)})
			}
			vars["vulnerabilities"] = vulns
			seen := map[string]bool{}
			ls := []string{}
			for _, p := range rep.Inventory.Packages {
				for _, l := range p.Licenses {
					if !seen[l] {
						seen[l] = true
						ls = append(ls, l)
					}
				}
			}
			sort.Strings(ls)
			vars["licenses"] = ls
			secrets := make([]map[string]any, 0, len(rep.Secrets))
			for _, f := range rep.Secrets {
				if f.Allowed == "" { // the scanner's allow rules: no secret
					secrets = append(secrets, map[string]any{"ruleId": f.RuleID, "severity": f.Severity,
						"kind": f.Kind, "path": f.Path, "line": f.StartLine, "removed": f.RemovedBy != ""})
				}
			}
			vars["secrets"] = secrets
			mis := make([]map[string]any, 0, len(rep.Misconfigurations))
			for _, f := range rep.Misconfigurations {
				mis = append(mis, map[string]any{"id": f.ID, "severity": f.Severity, "title": f.Title,
					"target": f.Target, "path": f.Path})
			}
			vars["misconfigurations"] = mis
		}
	}
	return vars
}

// Scanner names as reports list them (internal/scan's, which reads
// images; policy only reads reports).
const (
	scannerSecret    = "secret"
	scannerMisconfig = "misconfig"
)

// notScanned says why a report holds no findings of a scanner: the
// configuration to change. A report without findings of it is not a
// clean image, so rules that read them refuse (fail closed).
func notScanned(scanner string) string {
	what := map[string]string{scannerSecret: "secrets", scannerMisconfig: "misconfigurations"}[scanner]
	return fmt.Sprintf("not scanned for %s: add %s to scan.scanners (berth scan --scanners ...,%s)", what, scanner, scanner)
}

// unscanned says why the report cannot answer for the scanners a
// condition reads, or "" when it can.
func (e *evaluation) unscanned(ctx context.Context, scanners []string) string {
	if len(scanners) == 0 {
		return ""
	}
	rep, err := e.getReport(ctx)
	switch {
	case errors.Is(err, ErrNotScanned):
		return "the image has not been scanned yet"
	case err != nil:
		e.v.Transient = true
		return "reading the scan report: " + err.Error()
	}
	for _, s := range scanners {
		if !slices.Contains(rep.Scanners, s) {
			return notScanned(s)
		}
	}
	return ""
}

// allowedFinding finds the allow entry in force for a finding, noting it;
// the string is the note of an expired entry.
func (e *evaluation) allowedFinding(entries []findingAllowEntry, id, path, what string) (bool, string) {
	note := ""
	for _, a := range entries {
		if !strings.EqualFold(a.id, id) || a.path != "" && !globMatch(a.path, path) {
			continue
		}
		if a.expires.IsZero() || e.now.Before(a.expires) {
			e.v.until(a.expires)
			// One note per entry: an allowed rule often matches several
			// files.
			if n := fmt.Sprintf("%s %s allowed%s", what, id, untilText(a.expires, a.reason)); !slices.Contains(e.v.Notes, n) {
				e.v.Notes = append(e.v.Notes, n)
			}
			return true, ""
		}
		note = fmt.Sprintf(" (allow-list entry expired at %s)", a.expires.Format(time.RFC3339))
	}
	return false, note
}

// listHits joins up to three descriptions, worst first.
func listHits(parts []string) string {
	if len(parts) > 3 {
		parts = append(parts[:3], fmt.Sprintf("and %d more", len(parts)-3))
	}
	return strings.Join(parts, "; ")
}

// secrets lists the secrets the rule denies, by rule id and where they
// are; never the secret, not even masked.
func (e *evaluation) secrets(r *findingRule, rep *match.Report) string {
	if !slices.Contains(rep.Scanners, scannerSecret) {
		return notScanned(scannerSecret)
	}
	fs := slices.Clone(rep.Secrets)
	slices.SortStableFunc(fs, func(a, b secret.Finding) int {
		return secret.SeverityRank(a.Severity) - secret.SeverityRank(b.Severity)
	})
	var parts []string
	for _, f := range fs {
		// The scanner's own allow rules (placeholders, documentation
		// examples) already say the match is no secret.
		if f.Allowed != "" || !r.denies(f.RuleID, f.Severity) {
			continue
		}
		ok, note := e.allowedFinding(r.allow, f.RuleID, f.Path, "secret")
		if ok {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s (%s) in %s%s", f.RuleID, f.Severity, secretPlace(f), note))
	}
	if len(parts) == 0 {
		return ""
	}
	return listHits(parts)
}

// secretPlace says where a secret is, as the scanner located it.
func secretPlace(f secret.Finding) string {
	switch f.Kind {
	case secret.KindEnv:
		return "ENV " + f.Path
	case secret.KindLabel:
		return "LABEL " + f.Path
	case secret.KindHistory:
		if f.History != nil {
			return fmt.Sprintf("history entry %d", *f.History)
		}
		return "the image history"
	case secret.KindName:
		return "the file name " + f.Path
	}
	s := f.Path
	if f.StartLine > 0 {
		s += ":" + strconv.Itoa(f.StartLine)
	}
	if f.RemovedBy != "" {
		s += " (deleted by a later layer, still in the image)"
	}
	return s
}

// misconfigurations lists the failed checks the rule denies.
func (e *evaluation) misconfigurations(r *findingRule, rep *match.Report) string {
	if !slices.Contains(rep.Scanners, scannerMisconfig) {
		return notScanned(scannerMisconfig)
	}
	fs := slices.Clone(rep.Misconfigurations)
	slices.SortStableFunc(fs, func(a, b misconfig.Finding) int {
		if d := misconfig.SeverityRank(a.Severity) - misconfig.SeverityRank(b.Severity); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	var parts []string
	for _, f := range fs {
		if !r.denies(f.ID, f.Severity) {
			continue
		}
		ok, note := e.allowedFinding(r.allow, f.ID, f.Path, "misconfiguration")
		if ok {
			continue
		}
		s := fmt.Sprintf("%s %s (%s)", f.ID, f.Title, f.Severity)
		if f.Path != "" {
			s += ": " + f.Path
		}
		parts = append(parts, s+note)
	}
	if len(parts) == 0 {
		return ""
	}
	return listHits(parts)
}
