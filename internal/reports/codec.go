package reports

import (
	"fmt"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/klauspost/compress/zstd"

	"berth.dev/berth/internal/inventory"
	"berth.dev/berth/internal/inventory/invcodec"
	"berth.dev/berth/internal/licensepolicy"
	"berth.dev/berth/internal/match"
	"berth.dev/berth/internal/misconfig"
	"berth.dev/berth/internal/secret"
)

// Codec is how the stores write a report: three zstd-compressed values,
// the inventory (written once per scan, in invcodec's form, which a
// re-match decodes five times faster than CBOR), the rest
// (findings, warnings, which a re-match rewrites alone) and what the scan
// found in the image itself besides packages (secrets,
// misconfigurations, license verdicts: a re-match reads no image and
// leaves them), plus the findings' identities as text, so a re-match
// never decodes the findings it replaces.
//
// The rest and the image results are CBOR (RFC 8949) rather than JSON:
// fxamacker/cbor decodes four times faster than encoding/json, from half
// the bytes, with the same struct tags. Inventories were CBOR too before
// invcodec, and such stored inventories still decode.
//
// A Codec is safe for concurrent use.
type Codec struct {
	enc  *zstd.Encoder
	dec  *zstd.Decoder
	cenc cbor.EncMode
	cdec cbor.DecMode
}

// NewCodec returns a Codec; Close releases its decoder.
func NewCodec() (*Codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	// Times keep their nanoseconds and zone, as in JSON.
	cenc, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.EncMode()
	if err != nil {
		dec.Close()
		return nil, err
	}
	cdec, err := cbor.DecOptions{MaxArrayElements: 1 << 24, MaxMapPairs: 1 << 20}.DecMode()
	if err != nil {
		dec.Close()
		return nil, err
	}
	return &Codec{enc: enc, dec: dec, cenc: cenc, cdec: cdec}, nil
}

// Close releases the decoder's goroutines.
func (c *Codec) Close() { c.dec.Close() }

// imageResults are what a scan found in the image itself besides the
// packages.
type imageResults struct {
	Scanners          []string                `json:"scanners,omitempty"`
	Secrets           []secret.Finding        `json:"secrets,omitempty"`
	Misconfigurations []misconfig.Finding     `json:"misconfigurations,omitempty"`
	Licenses          []licensepolicy.Finding `json:"licenses,omitempty"`
}

// Encode splits r into its compressed inventory, the compressed rest, the
// findings' keys and the compressed image results.
func (c *Codec) Encode(r *match.Report) (inv, rest []byte, keys string, img []byte, err error) {
	raw := invcodec.Append(nil, &r.Inventory)
	if rest, keys, err = c.EncodeRest(r); err != nil {
		return nil, nil, "", nil, err
	}
	ir := imageResults{Scanners: r.Scanners, Secrets: r.Secrets, Misconfigurations: r.Misconfigurations, Licenses: r.Licenses}
	rawImg, err := c.cenc.Marshal(&ir)
	if err != nil {
		return nil, nil, "", nil, err
	}
	return c.enc.EncodeAll(raw, make([]byte, 0, len(raw)/4)), rest, keys, c.enc.EncodeAll(rawImg, nil), nil
}

// EncodeRest compresses r without its inventory and image results, and
// lists its findings' keys one per line: the package key, a tab, the ids
// separated by tabs.
func (c *Codec) EncodeRest(r *match.Report) ([]byte, string, error) {
	rest := *r
	rest.Inventory = inventory.Inventory{}
	rest.Scanners, rest.Secrets, rest.Misconfigurations, rest.Licenses = nil, nil, nil, nil
	raw, err := c.cenc.Marshal(&rest)
	if err != nil {
		return nil, "", err
	}
	var keys strings.Builder
	for i := range r.Findings {
		writeKey(&keys, KeyOf(&r.Findings[i]))
	}
	return c.enc.EncodeAll(raw, make([]byte, 0, len(raw)/4)), keys.String(), nil
}

// writeKey writes one line of the findings' keys.
func writeKey(b *strings.Builder, k FindingKey) {
	b.WriteString(k.Package)
	for _, id := range k.IDs {
		b.WriteByte('\t')
		b.WriteString(id)
	}
	b.WriteByte('\n')
}

// storedRest is what EncodeRest writes, with the findings left encoded:
// the same fields under the same names, so either decodes the other.
type storedRest struct {
	SchemaVersion int                 `json:"schemaVersion"`
	Inventory     inventory.Inventory `json:"inventory"`
	MatchedAt     time.Time           `json:"matchedAt"`
	Findings      []cbor.RawMessage   `json:"findings"`
	Suppressed    []match.Suppressed  `json:"suppressed,omitempty"`
	Warnings      []string            `json:"warnings,omitempty"`
}

// Rematch is a re-matched report as StoreRematches writes it.
type Rematch struct {
	Rest    []byte // compressed, as EncodeRest
	Keys    string // as EncodeRest
	Summary Summary
	// IDs are every id and alias of the findings.
	IDs []string
}

// EncodeRematch encodes r for StoreRematches. A delta re-match (r.Kept
// set) keeps the findings of r.Prev it names as they are encoded, adds
// the new ones and counts the summary from r.Prev's, so that only the
// findings of the packages matched again are encoded and the findings
// dropped decoded; the result decodes to the report a full re-match
// stores.
func (c *Codec) EncodeRematch(r *Rematched) (*Rematch, error) {
	if r.Kept == nil {
		rest, keys, err := c.EncodeRest(r.Report)
		if err != nil {
			return nil, err
		}
		return &Rematch{Rest: rest, Keys: keys, Summary: Summarize(r.Report), IDs: FindingIDs(r.Report)}, nil
	}
	if r.Prev == nil {
		return nil, fmt.Errorf("delta re-match of %s without the stored report", r.Digest)
	}
	raw, err := c.dec.DecodeAll(r.Prev.Results, nil)
	if err != nil {
		return nil, fmt.Errorf("stored findings of %s: %w", r.Digest, err)
	}
	var prev storedRest
	if err := c.cdec.Unmarshal(raw, &prev); err != nil {
		return nil, fmt.Errorf("stored findings of %s: %w", r.Digest, err)
	}
	if len(prev.Findings) != len(r.Prev.Findings) {
		return nil, fmt.Errorf("stored findings of %s: %d findings, %d keys", r.Digest, len(prev.Findings), len(r.Prev.Findings))
	}
	rest := storedRest{SchemaVersion: r.Report.SchemaVersion, MatchedAt: r.Report.MatchedAt, Findings: []cbor.RawMessage{},
		Suppressed: r.Report.Suppressed, Warnings: r.Report.Warnings}
	out := &Rematch{Summary: r.Prev.Summary}
	out.Summary.Packages = len(r.Report.Inventory.Packages)
	var keys strings.Builder
	kept := make([]bool, len(prev.Findings))
	for _, p := range r.Kept {
		if !p.New {
			rest.Findings = append(rest.Findings, prev.Findings[p.Start:p.End]...)
			for i := p.Start; i < p.End; i++ {
				kept[i] = true
				writeKey(&keys, r.Prev.Findings[i])
				out.IDs = append(out.IDs, r.Prev.Findings[i].IDs...)
			}
			continue
		}
		for i := p.Start; i < p.End; i++ {
			f := &r.Report.Findings[i]
			enc, err := c.cenc.Marshal(f)
			if err != nil {
				return nil, err
			}
			rest.Findings = append(rest.Findings, enc)
			k := KeyOf(f)
			writeKey(&keys, k)
			out.IDs = append(out.IDs, k.IDs...)
			out.Summary.count(f, 1)
		}
	}
	// The findings dropped leave the counts: only they are decoded.
	for i, k := range kept {
		if k {
			continue
		}
		var f match.Finding
		if err := c.cdec.Unmarshal(prev.Findings[i], &f); err != nil {
			return nil, fmt.Errorf("stored finding %d of %s: %w", i, r.Digest, err)
		}
		out.Summary.count(&f, -1)
	}
	enc, err := c.cenc.Marshal(&rest)
	if err != nil {
		return nil, err
	}
	out.Rest, out.Keys = c.enc.EncodeAll(enc, make([]byte, 0, len(enc)/4)), keys.String()
	return out, nil
}

// DecodeInventory decodes what Encode returned as inv, or an inventory
// stored before as CBOR.
func (c *Codec) DecodeInventory(packed []byte, inv *inventory.Inventory) error {
	raw, err := c.dec.DecodeAll(packed, nil)
	if err != nil {
		return err
	}
	if invcodec.Is(raw) {
		return invcodec.Decode(raw, inv)
	}
	return c.cdec.Unmarshal(raw, inv)
}

// DecodeReport decodes what Encode returned as inv, rest and img (nil for
// a report stored before image results were).
func (c *Codec) DecodeReport(inv, rest, img []byte) (*match.Report, error) {
	raw, err := c.dec.DecodeAll(rest, nil)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r := new(match.Report)
	if err := c.cdec.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	r.Inventory = inventory.Inventory{}
	if err := c.DecodeInventory(inv, &r.Inventory); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if img != nil {
		raw, err := c.dec.DecodeAll(img, nil)
		if err != nil {
			return nil, fmt.Errorf("image results: %w", err)
		}
		var ir imageResults
		if err := c.cdec.Unmarshal(raw, &ir); err != nil {
			return nil, fmt.Errorf("image results: %w", err)
		}
		r.Scanners, r.Secrets, r.Misconfigurations, r.Licenses = ir.Scanners, ir.Secrets, ir.Misconfigurations, ir.Licenses
	}
	return r, nil
}

// ParseFindingKeys reads the keys EncodeRest listed.
func ParseFindingKeys(text string) []FindingKey {
	var out []FindingKey
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		out = append(out, FindingKey{Package: f[0], IDs: f[1:]})
	}
	return out
}
