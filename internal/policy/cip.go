package policy

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"berth.dev/berth/internal/sign"
	"berth.dev/berth/internal/sign/attestation"
)

// cipDocument is policy-controller's ClusterImagePolicy, field for field
// (JSON names), so its documents load unchanged. Fields berth cannot honour
// offline are accepted by the decoder and refused by compile with a reason,
// never ignored.
type cipDocument struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   objectMeta `yaml:"metadata"`
	Spec       struct {
		Images      []Glob         `yaml:"images"`
		Authorities []cipAuthority `yaml:"authorities"`
		Policy      *cipPolicy     `yaml:"policy"`
		Mode        Text           `yaml:"mode"`
		Match       []anyNode      `yaml:"match"`
	} `yaml:"spec"`
}

type cipAuthority struct {
	Name             Text        `yaml:"name"`
	Key              *cipKey     `yaml:"key"`
	Keyless          *anyNode    `yaml:"keyless"`
	Static           *cipStatic  `yaml:"static"`
	Source           []anyNode   `yaml:"source"`
	CTLog            *anyNode    `yaml:"ctlog"`
	Attestations     []cipAttest `yaml:"attestations"`
	RFC3161Timestamp *anyNode    `yaml:"rfc3161timestamp"`
	SignatureFormat  Text        `yaml:"signatureFormat"`
	line             int
}

type cipKey struct {
	Data      Text `yaml:"data"`
	SecretRef *struct {
		Name      Text   `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"secretRef"`
	KMS           Text `yaml:"kms"`
	HashAlgorithm Text `yaml:"hashAlgorithm"`
}

type cipStatic struct {
	Action  Text   `yaml:"action"`
	Message string `yaml:"message"`
}

type cipAttest struct {
	Name          Text       `yaml:"name"`
	PredicateType Text       `yaml:"predicateType"`
	Policy        *cipPolicy `yaml:"policy"`
}

type cipPolicy struct {
	Type              Text     `yaml:"type"`
	Data              Text     `yaml:"data"`
	URL               Text     `yaml:"url"`
	Sha256sum         string   `yaml:"sha256sum"`
	ConfigMapRef      *anyNode `yaml:"configMapRef"`
	FetchConfigFile   *bool    `yaml:"fetchConfigFile"`
	IncludeSpec       *bool    `yaml:"includeSpec"`
	IncludeObjectMeta *bool    `yaml:"includeObjectMeta"`
	IncludeTypeMeta   *bool    `yaml:"includeTypeMeta"`
}

// anyNode is a field berth reads only to refuse it with its line (keyless,
// ctlog, ...): its content is not checked.
type anyNode struct{ Line int }

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *anyNode) UnmarshalYAML(n *yaml.Node) error {
	a.Line = n.Line
	return nil
}

// cipSpec is a compiled ClusterImagePolicy.
type cipSpec struct {
	authorities []*authority
	policy      *engine // spec.policy over the authorities' results
}

// authority is one way to satisfy a ClusterImagePolicy: signatures by its
// keys, or its attestations, or a static answer.
type authority struct {
	name         string
	keys         []sign.TrustedKey
	attestations []*attestRule
	static       string // "pass" or "fail"
	staticMsg    string
}

// attestRule requires a verified attestation of a predicate type, which
// passes its policy when it has one.
type attestRule struct {
	name          string
	predicateType string
	policy        *engine
}

func (c *cipDocument) compile(line int, opts Options) (*Document, error) {
	d := &Document{Kind: KindCIP, Name: c.Metadata.Name, Images: c.Spec.Images, line: line, cip: &cipSpec{}}
	if d.Name == "" {
		return nil, fmt.Errorf("%d: %s needs metadata.name", line, KindCIP)
	}
	var err error
	if d.Mode, err = parseMode(c.Spec.Mode); err != nil {
		return nil, err
	}
	if len(c.Spec.Images) == 0 {
		return nil, fmt.Errorf("%d: %s %s: spec.images is required (use glob \"**\" for every image)", line, KindCIP, d.Name)
	}
	if len(c.Spec.Authorities) == 0 {
		return nil, fmt.Errorf("%d: %s %s: spec.authorities is required", line, KindCIP, d.Name)
	}
	for i := range c.Spec.Authorities {
		a, err := c.Spec.Authorities[i].compile(i, opts)
		if err != nil {
			return nil, err
		}
		d.cip.authorities = append(d.cip.authorities, a)
	}
	if c.Spec.Policy != nil {
		if d.cip.policy, err = c.Spec.Policy.compile(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (p *cipPolicy) compile() (*engine, error) {
	switch {
	case p.URL.S != "":
		return nil, fmt.Errorf("%d: policy.url: fetching policies is not supported offline; put the policy in data", p.URL.Line)
	case p.ConfigMapRef != nil:
		return nil, fmt.Errorf("%d: policy.configMapRef: not supported; put the policy in data", p.ConfigMapRef.Line)
	}
	line := p.Data.Line
	if line == 0 {
		line = p.Type.Line
	}
	if p.Data.S == "" {
		return nil, fmt.Errorf("%d: policy.data is empty", line)
	}
	return newEngine(p.Type.S, p.Data)
}

// UnmarshalYAML records the authority's line for messages.
func (a *cipAuthority) UnmarshalYAML(unmarshal func(any) error) error {
	var hdr map[string]headerValue
	if err := unmarshal(&hdr); err != nil {
		return err
	}
	for _, v := range hdr {
		if a.line == 0 || v.line < a.line {
			a.line = v.line
		}
	}
	type plain cipAuthority
	return unmarshal((*plain)(a))
}

func (a *cipAuthority) compile(i int, opts Options) (*authority, error) {
	out := &authority{name: a.Name.S}
	if out.name == "" {
		// policy-controller names unnamed authorities by position.
		out.name = fmt.Sprintf("authority-%d", i)
	}
	set := 0
	for _, present := range []bool{a.Key != nil, a.Keyless != nil, a.Static != nil} {
		if present {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%d: authority %s: give exactly one of key, keyless or static", a.line, out.name)
	}
	if opts.ReportOnly && a.Static == nil {
		return nil, fmt.Errorf("%d: authority %s: %s", a.line, out.name, errReportOnly)
	}
	switch {
	case a.Keyless != nil:
		return nil, fmt.Errorf("%d: authority %s: keyless verification (Fulcio certificates, Rekor) is not supported offline; use key authorities", a.Keyless.Line, out.name)
	case a.CTLog != nil:
		return nil, fmt.Errorf("%d: authority %s: ctlog (transparency log verification) is not supported offline; remove it to verify by key alone", a.CTLog.Line, out.name)
	case a.RFC3161Timestamp != nil:
		return nil, fmt.Errorf("%d: authority %s: rfc3161timestamp is not supported", a.RFC3161Timestamp.Line, out.name)
	case len(a.Source) > 0:
		return nil, fmt.Errorf("%d: authority %s: source (signatures in another repository) is not supported; signatures are read beside the image", a.Source[0].Line, out.name)
	}
	switch a.SignatureFormat.S {
	case "", "simplesigning", "bundle":
		// Both forms are always read.
	default:
		return nil, fmt.Errorf("%d: authority %s: signatureFormat %q: want simplesigning or bundle", a.SignatureFormat.Line, out.name, a.SignatureFormat.S)
	}
	if a.Static != nil {
		switch a.Static.Action.S {
		case "pass", "fail":
			out.static, out.staticMsg = a.Static.Action.S, a.Static.Message
		default:
			return nil, fmt.Errorf("%d: authority %s: static action %q: want pass or fail", a.Static.Action.Line, out.name, a.Static.Action.S)
		}
		if len(a.Attestations) > 0 {
			return nil, fmt.Errorf("%d: authority %s: a static authority has no attestations", a.line, out.name)
		}
		return out, nil
	}
	k := a.Key
	switch k.HashAlgorithm.S {
	case "", "sha256":
	default:
		return nil, fmt.Errorf("%d: authority %s: hashAlgorithm %q: berth verifies sha256 signatures (what cosign writes)", k.HashAlgorithm.Line, out.name, k.HashAlgorithm.S)
	}
	switch {
	case k.KMS.S != "":
		return nil, fmt.Errorf("%d: authority %s: kms keys are not supported; give the public key in data", k.KMS.Line, out.name)
	case k.Data.S != "" && k.SecretRef != nil:
		return nil, fmt.Errorf("%d: authority %s: key has both data and secretRef", k.Data.Line, out.name)
	case k.Data.S != "":
		tk, err := pemKey(out.name, k.Data, time.Time{}, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("%s (authority %s)", err, out.name)
		}
		out.keys = []sign.TrustedKey{tk}
	case k.SecretRef != nil:
		ks, err := refKeys(k.SecretRef.Name, opts)
		if err != nil {
			return nil, err
		}
		if out.keys, err = renameKeys(ks, out.name); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%d: authority %s: key needs data (a PEM public key) or secretRef", a.line, out.name)
	}
	for _, at := range a.Attestations {
		r, err := compileAttest(at.Name, at.PredicateType, at.Policy)
		if err != nil {
			return nil, fmt.Errorf("%s (authority %s)", err, out.name)
		}
		out.attestations = append(out.attestations, r)
	}
	return out, nil
}

func compileAttest(name, predicateType Text, pol *cipPolicy) (*attestRule, error) {
	if name.S == "" {
		return nil, fmt.Errorf("%d: an attestation needs a name", predicateType.Line)
	}
	if predicateType.S == "" {
		return nil, fmt.Errorf("%d: attestation %s needs a predicateType", name.Line, name.S)
	}
	uri, err := attestation.PredicateTypeURI(predicateType.S)
	if err != nil {
		return nil, fmt.Errorf("%d: attestation %s: %v", predicateType.Line, name.S, err)
	}
	r := &attestRule{name: name.S, predicateType: uri}
	if pol != nil {
		if r.policy, err = pol.compile(); err != nil {
			return nil, err
		}
	}
	return r, nil
}
