package reports

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
	enc *zstd.Encoder
	// fast compresses the rest, which every re-match writes again, at
	// zstd's fastest level (the inventory, written once, gets the default).
	fast *zstd.Encoder
	dec  *zstd.Decoder
	cenc cbor.UserBufferEncMode
	cdec cbor.DecMode
	// bufs holds the buffers of decompressed and framed values that do
	// not outlive a call (a re-match would otherwise allocate tens of
	// kilobytes a report only for the garbage collector).
	bufs sync.Pool
}

// buf returns a buffer from the pool, empty.
func (c *Codec) buf() []byte {
	if b, ok := c.bufs.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return nil
}

// release returns b to the pool; nothing may use it afterwards. Buffers
// grown very large (a report with thousands of findings) are left to
// the garbage collector.
func (c *Codec) release(b []byte) {
	if cap(b) > 0 && cap(b) <= 1<<20 {
		c.bufs.Put(&b)
	}
}

// NewCodec returns a Codec; Close releases its decoder.
func NewCodec() (*Codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	fast, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	if err != nil {
		return nil, err
	}
	// Times keep their nanoseconds and zone, as in JSON.
	cenc, err := cbor.EncOptions{Time: cbor.TimeRFC3339Nano}.UserBufferEncMode()
	if err != nil {
		dec.Close()
		return nil, err
	}
	cdec, err := cbor.DecOptions{MaxArrayElements: 1 << 24, MaxMapPairs: 1 << 20}.DecMode()
	if err != nil {
		dec.Close()
		return nil, err
	}
	return &Codec{enc: enc, fast: fast, dec: dec, cenc: cenc, cdec: cdec}, nil
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
	// The findings are encoded one after another into one buffer (one
	// allocation, not one a finding), then framed.
	scratch := bytes.NewBuffer(c.buf())
	ends := make([]int, len(r.Findings))
	var keys strings.Builder
	for i := range r.Findings {
		if err := c.cenc.MarshalToBuffer(&r.Findings[i], scratch); err != nil {
			return nil, "", err
		}
		ends[i] = scratch.Len()
		writeKey(&keys, KeyOf(&r.Findings[i]))
	}
	encoded := scratch.Bytes()
	defer c.release(encoded)
	findings := make([][]byte, len(r.Findings))
	start := 0
	for i, end := range ends {
		findings[i] = encoded[start:end]
		start = end
	}
	raw, err := c.frameRest(c.buf(), r, r.Findings == nil, findings)
	if err != nil {
		return nil, "", err
	}
	defer c.release(raw)
	return c.fast.EncodeAll(raw, make([]byte, 0, len(raw)/4)), keys.String(), nil
}

// restMagic starts the stored rest: the report without its findings (a
// CBOR value, length first), then the findings' count plus one (zero for
// none at all) and each finding as its own CBOR value, length first. A
// delta re-match splices stored findings by slicing, without decoding
// them. Rests stored before were one CBOR value, which never starts with
// a zero byte, and still decode.
const restMagic = "\x00brst1"

// frameRest writes r's rest with the findings already encoded.
func (c *Codec) frameRest(dst []byte, r *match.Report, nilFindings bool, findings [][]byte) ([]byte, error) {
	head := *r
	head.Inventory = inventory.Inventory{}
	head.Findings = nil
	head.Scanners, head.Secrets, head.Misconfigurations, head.Licenses = nil, nil, nil, nil
	hb, err := c.cenc.Marshal(&head)
	if err != nil {
		return nil, err
	}
	n := len(restMagic) + len(hb) + 2*binary.MaxVarintLen64
	for _, f := range findings {
		n += len(f) + binary.MaxVarintLen64
	}
	out := slices.Grow(dst[:0], n)
	out = append(out, restMagic...)
	out = binary.AppendUvarint(out, uint64(len(hb)))
	out = append(out, hb...)
	if nilFindings {
		out = append(out, 0)
	} else {
		out = binary.AppendUvarint(out, uint64(len(findings))+1)
	}
	for _, f := range findings {
		out = binary.AppendUvarint(out, uint64(len(f)))
		out = append(out, f...)
	}
	return out, nil
}

// errCorruptRest is wrapped by the errors of a stored rest that does not
// parse.
var errCorruptRest = errors.New("corrupt stored findings")

// parseRest splits a framed rest into the report's CBOR and the
// findings' (slices of raw, not copies). nilFindings says the report had
// none at all (not an empty list).
func parseRest(raw []byte) (head []byte, findings [][]byte, nilFindings bool, err error) {
	b := raw[len(restMagic):]
	next := func(what string) ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: %s", errCorruptRest, what)
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		return v, nil
	}
	if head, err = next("report"); err != nil {
		return nil, nil, false, err
	}
	count, k := binary.Uvarint(b)
	// Every finding takes at least a byte (its length): a larger count
	// is corrupt, not an allocation.
	if k <= 0 || count > uint64(len(b)-k)+1 {
		return nil, nil, false, fmt.Errorf("%w: findings count", errCorruptRest)
	}
	b = b[k:]
	if count == 0 {
		nilFindings = true
	} else {
		findings = make([][]byte, count-1)
	}
	for i := range findings {
		if findings[i], err = next(fmt.Sprintf("finding %d", i)); err != nil {
			return nil, nil, false, err
		}
	}
	if len(b) != 0 {
		return nil, nil, false, fmt.Errorf("%w: %d bytes after the findings", errCorruptRest, len(b))
	}
	return head, findings, nilFindings, nil
}

// decodeRest decodes a stored rest, framed or one CBOR value, into r.
func (c *Codec) decodeRest(raw []byte, r *match.Report) error {
	if len(raw) < len(restMagic) || string(raw[:len(restMagic)]) != restMagic {
		return c.cdec.Unmarshal(raw, r)
	}
	head, findings, nilFindings, err := parseRest(raw)
	if err != nil {
		return err
	}
	if err := c.cdec.Unmarshal(head, r); err != nil {
		return err
	}
	r.Findings = nil
	if nilFindings {
		return nil
	}
	r.Findings = make([]match.Finding, len(findings))
	for i, f := range findings {
		if err := c.cdec.Unmarshal(f, &r.Findings[i]); err != nil {
			return fmt.Errorf("finding %d: %w", i, err)
		}
	}
	return nil
}

// storedFindings returns the encoded findings of a stored rest.
func (c *Codec) storedFindings(raw []byte) ([][]byte, error) {
	if len(raw) >= len(restMagic) && string(raw[:len(restMagic)]) == restMagic {
		_, findings, _, err := parseRest(raw)
		return findings, err
	}
	var prev storedRest
	if err := c.cdec.Unmarshal(raw, &prev); err != nil {
		return nil, err
	}
	out := make([][]byte, len(prev.Findings))
	for i, f := range prev.Findings {
		out[i] = f
	}
	return out, nil
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

// storedRest is how rests were stored before they were framed (one CBOR
// value), with the findings left encoded.
type storedRest struct {
	Findings []cbor.RawMessage `json:"findings"`
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
	// The stored findings kept are sliced from raw and copied into the
	// new rest before raw goes back to the pool.
	raw, err := c.dec.DecodeAll(r.Prev.Results, c.buf())
	defer func() { c.release(raw) }()
	if err != nil {
		return nil, fmt.Errorf("stored findings of %s: %w", r.Digest, err)
	}
	prev, err := c.storedFindings(raw)
	if err != nil {
		return nil, fmt.Errorf("stored findings of %s: %w", r.Digest, err)
	}
	if len(prev) != len(r.Prev.Findings) {
		return nil, fmt.Errorf("stored findings of %s: %d findings, %d keys", r.Digest, len(prev), len(r.Prev.Findings))
	}
	findings := [][]byte{}
	out := &Rematch{Summary: r.Prev.Summary}
	out.Summary.Packages = len(r.Report.Inventory.Packages)
	var keys strings.Builder
	kept := make([]bool, len(prev))
	for _, p := range r.Kept {
		if !p.New {
			findings = append(findings, prev[p.Start:p.End]...)
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
			findings = append(findings, enc)
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
		if err := c.cdec.Unmarshal(prev[i], &f); err != nil {
			return nil, fmt.Errorf("stored finding %d of %s: %w", i, r.Digest, err)
		}
		out.Summary.count(&f, -1)
	}
	rest, err := c.frameRest(c.buf(), r.Report, false, findings)
	if err != nil {
		return nil, err
	}
	defer c.release(rest)
	out.Rest, out.Keys = c.fast.EncodeAll(rest, make([]byte, 0, len(rest)/4)), keys.String()
	return out, nil
}

// DecodeInventory decodes what Encode returned as inv, or an inventory
// stored before as CBOR.
func (c *Codec) DecodeInventory(packed []byte, inv *inventory.Inventory) error {
	// Both decoders copy what they keep: raw goes back to the pool.
	raw, err := c.dec.DecodeAll(packed, c.buf())
	defer func() { c.release(raw) }()
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
	if err := c.decodeRest(raw, r); err != nil {
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
