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
// or are not signed by pub. An error means the store could not be read.
func Verify(ctx context.Context, store Store, pub crypto.PublicKey) (Report, error) {
	var rep Report
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
		return nil
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
	return rep, nil
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
