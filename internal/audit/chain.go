package audit

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"path/filepath"
)

// Hash computes an entry's hash from its fields and PrevHash (never from
// Hash itself). Every field is length-prefixed so that no two different
// entries encode alike.
func Hash(e Entry) string {
	h := sha256.New()
	h.Write([]byte("berth-audit-entry-v1\n"))
	writeInt(h, e.Seq)
	writeInt(h, e.Time.UnixNano())
	for _, s := range []string{e.Actor, e.SourceIP, e.Action, e.Project, e.Repository, e.Digest, string(e.Result), e.Detail, e.PrevHash} {
		writeString(h, s)
	}
	writeInt(h, max(e.Count, 1))
	return hex.EncodeToString(h.Sum(nil))
}

func writeInt(h hash.Hash, n int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

func writeString(h hash.Hash, s string) {
	writeInt(h, int64(len(s)))
	h.Write([]byte(s))
}

// Checkpoint kinds, part of what is signed so that one cannot stand in for
// the other.
const (
	kindAnchor = "anchor"
	kindPruned = "pruned"
)

func checkpointDigest(kind string, cp Checkpoint) []byte {
	h := sha256.New()
	h.Write([]byte("berth-audit-checkpoint-v1\n"))
	writeString(h, kind)
	writeInt(h, cp.Seq)
	writeString(h, cp.Hash)
	writeInt(h, cp.Time.UnixNano())
	return h.Sum(nil)
}

func signCheckpoint(signer crypto.Signer, kind string, cp Checkpoint) (Checkpoint, error) {
	sig, err := signer.Sign(rand.Reader, checkpointDigest(kind, cp), crypto.SHA256)
	if err != nil {
		return cp, fmt.Errorf("sign audit checkpoint: %w", err)
	}
	cp.Signature = sig
	return cp, nil
}

func checkSignature(pub crypto.PublicKey, kind string, cp Checkpoint) error {
	key, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("audit checkpoints are verified with an ECDSA key, not %T", pub)
	}
	if !ecdsa.VerifyASN1(key, checkpointDigest(kind, cp), cp.Signature) {
		return errors.New("signature does not verify")
	}
	return nil
}

// Problem is one place where the chain does not hold.
type Problem struct {
	Seq     int64  `json:"seq"`
	Message string `json:"message"`
}

// Report is the outcome of Verify.
type Report struct {
	// Entries is how many entries were checked, First and Last their
	// sequence numbers.
	Entries int64 `json:"entries"`
	First   int64 `json:"first"`
	Last    int64 `json:"last"`
	// PrunedThrough is the last sequence number removed by retention.
	PrunedThrough int64     `json:"pruned_through"`
	Problems      []Problem `json:"problems"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds a report: past the first few, more detail is noise.
const maxProblems = 100

func (r *Report) problem(seq int64, format string, args ...any) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, Problem{Seq: seq, Message: fmt.Sprintf(format, args...)})
	}
}

// Verify walks the whole chain in store and reports every entry that was
// modified, deleted, inserted or moved, and checkpoints that do not match
// or are not signed by pub. For an Anchored store it also checks the
// chain against the anchor file: a log shorter than the file records (a
// wipe, a rollback to an older state with its older signed anchor), an
// entry other than the one the file records at its sequence number, a
// line not signed by pub, or no file at all beside a log with entries.
// An error means the store could not be read.
func Verify(ctx context.Context, store Store, pub crypto.PublicKey) (Report, error) {
	var rep Report
	var anchors *anchorCheck
	if a, ok := store.(Anchored); ok {
		var err error
		if anchors, err = openAnchorCheck(a.AnchorPath, pub, &rep); err != nil {
			return rep, err
		}
		defer anchors.close()
	}
	expect, prev := int64(1), ""
	pruned, ok, err := store.Pruned(ctx)
	if err != nil {
		return rep, err
	}
	if ok {
		if err := checkSignature(pub, kindPruned, pruned); err != nil {
			rep.problem(pruned.Seq, "checkpoint of the pruned prefix: %v", err)
		}
		rep.PrunedThrough = pruned.Seq
		expect, prev = pruned.Seq+1, pruned.Hash
		if err := anchors.at(pruned.Seq, pruned.Hash, "the checkpoint of the pruned prefix"); err != nil {
			return rep, err
		}
	}
	anchor, anchored, err := store.Anchor(ctx)
	if err != nil {
		return rep, err
	}
	anchorSeen := false
	err = store.Walk(ctx, func(e Entry) error {
		if rep.Entries == 0 {
			rep.First = e.Seq
		}
		rep.Entries++
		rep.Last = e.Seq
		switch {
		case e.Seq > expect:
			rep.problem(expect, "entries %d to %d are missing", expect, e.Seq-1)
		case e.Seq < expect:
			rep.problem(e.Seq, "entry %d is out of sequence (expected %d)", e.Seq, expect)
		}
		if e.PrevHash != prev {
			rep.problem(e.Seq, "entry %d does not follow the entry before it: previous hash %s, chain has %s", e.Seq, short(e.PrevHash), short(prev))
		}
		if got := Hash(e); got != e.Hash {
			rep.problem(e.Seq, "entry %d was modified: its content hashes to %s, it records %s", e.Seq, short(got), short(e.Hash))
		}
		if anchored && e.Seq == anchor.Seq {
			anchorSeen = true
			if e.Hash != anchor.Hash {
				rep.problem(e.Seq, "entry %d does not match the signed anchor", e.Seq)
			}
		}
		expect, prev = e.Seq+1, e.Hash
		return anchors.at(e.Seq, e.Hash, fmt.Sprintf("entry %d", e.Seq))
	})
	if err != nil {
		return rep, err
	}
	tip := expect - 1
	switch {
	case !anchored && tip > 0:
		rep.problem(tip, "the signed anchor of the chain's tip is missing")
	case !anchored:
	case anchor.Seq > tip:
		rep.problem(anchor.Seq, "entries %d to %d were deleted: the signed anchor names entry %d", tip+1, anchor.Seq, anchor.Seq)
	case anchor.Seq < tip:
		rep.problem(anchor.Seq+1, "entries %d to %d were added behind berth's back: the signed anchor names entry %d", anchor.Seq+1, tip, anchor.Seq)
	case !anchorSeen && anchor.Seq != pruned.Seq:
		rep.problem(anchor.Seq, "the entry the signed anchor names is missing")
	case !anchorSeen && anchor.Hash != pruned.Hash:
		rep.problem(anchor.Seq, "the signed anchor does not match the pruned prefix")
	}
	if anchored {
		if err := checkSignature(pub, kindAnchor, anchor); err != nil {
			rep.problem(anchor.Seq, "anchor: %v", err)
		}
	}
	if err := anchors.end(tip); err != nil {
		return rep, err
	}
	return rep, nil
}

// anchorCheck compares the chain, as Verify walks it in order, with the
// lines of an anchor file (in the same order). A nil *anchorCheck checks
// nothing.
type anchorCheck struct {
	r    *anchorReader // nil: the file does not exist
	name string
	pub  crypto.PublicKey
	rep  *Report

	peeked *Checkpoint
	line   int
	// last is the highest sequence number of a signed line so far, and
	// lastLine its line.
	last, lastLine int64
}

func openAnchorCheck(path string, pub crypto.PublicKey, rep *Report) (*anchorCheck, error) {
	r, err := openAnchorReader(path)
	if err != nil {
		return nil, err
	}
	return &anchorCheck{r: r, name: filepath.Base(path), pub: pub, rep: rep}, nil
}

func (c *anchorCheck) close() {
	if c != nil {
		c.r.close()
	}
}

// peek returns the next line signed by pub; lines that are not are
// reported, and so is a line going back from the one before it.
func (c *anchorCheck) peek() (*Checkpoint, error) {
	for c.peeked == nil && c.r != nil {
		cp, line, ok, err := c.r.next()
		if err != nil || !ok {
			return nil, err
		}
		if err := checkSignature(c.pub, kindAnchor, cp); err != nil {
			c.rep.problem(cp.Seq, "line %d of %s (sequence %d): %v: it was not written by this berth", line, c.name, cp.Seq, err)
			continue
		}
		if cp.Seq < c.last {
			c.rep.problem(cp.Seq, "line %d of %s goes back from sequence %d (line %d) to %d", line, c.name, c.last, c.lastLine, cp.Seq)
		}
		c.last, c.lastLine = max(c.last, cp.Seq), int64(line)
		c.peeked, c.line = &cp, line
	}
	return c.peeked, nil
}

// at checks the lines up to seq against what the chain holds at seq
// (what names it, for the message). Lines for sequence numbers below
// seq name entries that were pruned or are missing (already reported).
func (c *anchorCheck) at(seq int64, hash, what string) error {
	if c == nil {
		return nil
	}
	for {
		cp, err := c.peek()
		if err != nil || cp == nil || cp.Seq > seq {
			return err
		}
		if cp.Seq == seq && cp.Hash != hash {
			c.rep.problem(seq, "%s is not the one line %d of %s records (hash %s, it has %s): the log was rewritten after it was anchored",
				what, c.line, c.name, short(cp.Hash), short(hash))
		}
		c.peeked = nil
	}
}

// end checks the lines past the chain's tip: the log holds less than the
// file says was written.
func (c *anchorCheck) end(tip int64) error {
	if c == nil {
		return nil
	}
	if c.r == nil {
		if tip > 0 {
			c.rep.problem(tip, "%s is missing: nothing outside the database records the log's tip, so a wipe or rollback "+
				"would go unnoticed (a server started since the upgrade to a berth that writes it creates it)", c.name)
		}
		return nil
	}
	for {
		cp, err := c.peek()
		if err != nil {
			return err
		}
		if cp == nil {
			break
		}
		c.peeked = nil
	}
	if c.last > tip {
		what := fmt.Sprintf("the log has %d entries", c.rep.Entries)
		if tip > 0 {
			what += fmt.Sprintf(" (the last is sequence %d)", tip)
		}
		c.rep.problem(c.last, "%s but %s records sequence %d (line %d): entries %d to %d were deleted or the database was rolled back",
			what, c.name, c.last, c.lastLine, tip+1, c.last)
	} else if tip > 0 && c.last == 0 {
		c.rep.problem(tip, "%s records no anchor while the log has entries through sequence %d", c.name, tip)
	}
	return nil
}

func short(h string) string {
	if h == "" {
		return "(none)"
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
