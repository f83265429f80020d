// Package audittest is the test suite every audit.Store runs, through the
// audit.Log that writes to it and the Verify that reads it back.
package audittest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/internal/audit"
)

// Factory returns a fresh empty store and a function that opens it again
// (as a restarted process would; the suite closes nothing itself).
type Factory func(t testing.TB) (audit.Store, func() audit.Store)

// Key returns a fresh signing key for checkpoints.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Run runs the suite.
func Run(t *testing.T, factory Factory) {
	t.Run("AppendQueryWalk", func(t *testing.T) { testAppendQueryWalk(t, factory) })
	t.Run("LogChainsAcrossRestarts", func(t *testing.T) { testLogChainsAcrossRestarts(t, factory) })
	t.Run("ConcurrentRecords", func(t *testing.T) { testConcurrentRecords(t, factory) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, factory) })
	t.Run("RecordAfterClose", func(t *testing.T) { testRecordAfterClose(t, factory) })
	t.Run("IdenticalPullsCoalesce", func(t *testing.T) { testCoalesce(t, factory) })
	t.Run("WrongKey", func(t *testing.T) { testWrongKey(t, factory) })
	t.Run("Sync", func(t *testing.T) { testSync(t, factory) })
	t.Run("AnchorFileFollowsTip", func(t *testing.T) { testAnchorFile(t, factory) })
	t.Run("EmptyStoreUnderAnchorFile", func(t *testing.T) { testEmptyStoreUnderAnchorFile(t, factory) })
	t.Run("AnchorSink", func(t *testing.T) { testAnchorSink(t, factory) })
	t.Run("ReplicasShareOneChain", func(t *testing.T) { testReplicasShareOneChain(t, factory) })
}

// testReplicasShareOneChain runs three Logs over one store at once, as
// three replicas would over one database, and expects a single chain that
// verifies and holds every entry. Only a SealingStore can be shared; a
// store without it has one writer process by construction (the embedded
// store lives in a locked data directory).
func testReplicasShareOneChain(t *testing.T, factory Factory) {
	s, reopen := factory(t)
	if _, ok := s.(audit.SealingStore); !ok {
		t.Skip("the store is not an audit.SealingStore: one process writes it")
	}
	key := Key(t)
	const replicas, each = 3, 150
	logs := []*audit.Log{openLog(t, s, key)}
	for range replicas - 1 {
		logs = append(logs, openLog(t, reopen(), key))
	}
	var wg sync.WaitGroup
	for r, l := range logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Distinct entries: identical pulls would be folded.
				if err := l.Record(audit.Entry{Actor: fmt.Sprintf("replica%d", r), Action: audit.ActionPush, Detail: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
				if i%50 == 0 {
					l.Flush(context.Background())
				}
			}
		}()
	}
	wg.Wait()
	for _, l := range logs {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if rep := MustVerify(t, s, key); rep.Entries != replicas*each {
		t.Errorf("one chain of %d entries, recorded %d", rep.Entries, replicas*each)
	}
}

func openLog(t testing.TB, s audit.Store, key *ecdsa.PrivateKey) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), s, key, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func record(t testing.TB, l *audit.Log, e audit.Entry) {
	t.Helper()
	if err := l.Record(e); err != nil {
		t.Fatal(err)
	}
}

// MustVerify fails the test unless the chain in s verifies with key.
func MustVerify(t testing.TB, s audit.Store, key *ecdsa.PrivateKey) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), s, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("chain does not verify: %+v", rep.Problems)
	}
	return rep
}

func testAppendQueryWalk(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	key := Key(t)
	l := openLog(t, s, key)
	base := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	entries := []audit.Entry{
		{Time: base, Actor: "alice", SourceIP: "10.0.0.1", Action: audit.ActionPush, Project: "team-a", Repository: "team-a/app", Digest: "sha256:aa", Detail: "tag v1"},
		{Time: base.Add(time.Second), Actor: "bob", Action: audit.ActionPull, Project: "team-a", Repository: "team-a/app", Result: audit.Denied},
		{Time: base.Add(2 * time.Second), Actor: "alice", Action: audit.ActionLogin, Result: audit.Failure, Detail: "bad password"},
		{Time: base.Add(3 * time.Second), Actor: "admin", Action: "project.create", Project: "team-b"},
	}
	for _, e := range entries {
		record(t, l, e)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rep := MustVerify(t, s, key)
	if rep.Entries != 4 || rep.First != 1 || rep.Last != 4 {
		t.Errorf("report = %+v, want entries 1..4", rep)
	}
	last, ok, err := s.Last(ctx)
	if err != nil || !ok || last.Seq != 4 || last.Actor != "admin" {
		t.Fatalf("Last = %+v, %v, %v", last, ok, err)
	}
	if !last.Time.Equal(base.Add(3 * time.Second)) {
		t.Errorf("time did not round-trip: %v", last.Time)
	}
	var walked []int64
	if err := s.Walk(ctx, func(e audit.Entry) error { walked = append(walked, e.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(walked) != "[1 2 3 4]" {
		t.Errorf("Walk order = %v", walked)
	}
	first, _ := s.Query(ctx, audit.Filter{Actor: "alice", Action: audit.ActionPush})
	if len(first) != 1 || first[0].Result != audit.Success || first[0].SourceIP != "10.0.0.1" ||
		first[0].Digest != "sha256:aa" || first[0].Detail != "tag v1" || first[0].PrevHash != "" || first[0].Hash == "" {
		t.Errorf("first entry = %+v", first)
	}
	for _, tc := range []struct {
		f    audit.Filter
		want string
	}{
		{audit.Filter{}, "[4 3 2 1]"},
		{audit.Filter{Actor: "alice"}, "[3 1]"},
		{audit.Filter{Project: "team-a"}, "[2 1]"},
		{audit.Filter{Action: audit.ActionLogin}, "[3]"},
		{audit.Filter{Result: audit.Denied}, "[2]"},
		{audit.Filter{Since: base.Add(time.Second), Until: base.Add(3 * time.Second)}, "[3 2]"},
		{audit.Filter{Before: 3}, "[2 1]"},
		{audit.Filter{Limit: 2}, "[4 3]"},
		{audit.Filter{Actor: "nobody"}, "[]"},
	} {
		got, err := s.Query(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		seqs := []int64{}
		for _, e := range got {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != tc.want {
			t.Errorf("Query(%+v) = %v, want %s", tc.f, seqs, tc.want)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

func testLogChainsAcrossRestarts(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	key := Key(t)
	l := openLog(t, s, key)
	record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush})
	record(t, l, audit.Entry{Actor: "b", Action: audit.ActionPull})
	// Close drains without a Flush: a graceful shutdown loses nothing.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := reopen()
	l2 := openLog(t, s2, key)
	record(t, l2, audit.Entry{Actor: "c", Action: audit.ActionDelete})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	rep := MustVerify(t, s2, key)
	if rep.Entries != 3 {
		t.Errorf("entries = %d, want 3", rep.Entries)
	}
	last, _, _ := s2.Last(ctx)
	if last.Actor != "c" || last.Seq != 3 {
		t.Errorf("last = %+v", last)
	}
}

func testConcurrentRecords(t *testing.T, factory Factory) {
	s, _ := factory(t)
	key := Key(t)
	l, err := audit.Open(context.Background(), s, key, audit.Options{Buffer: 16})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Record(audit.Entry{Actor: fmt.Sprintf("w%d", w), Action: audit.ActionPull, Detail: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := MustVerify(t, s, key); rep.Entries != writers*each {
		t.Errorf("stored %d entries, recorded %d", rep.Entries, writers*each)
	}
}

func testRetention(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	key := Key(t)
	l := openLog(t, s, key)
	old := time.Now().Add(-48 * time.Hour)
	for i := range 5 {
		record(t, l, audit.Entry{Time: old.Add(time.Duration(i) * time.Minute), Actor: "old", Action: audit.ActionPull, Detail: fmt.Sprint(i)})
	}
	for i := range 3 {
		record(t, l, audit.Entry{Actor: "new", Action: audit.ActionPull, Detail: fmt.Sprint(i)})
	}
	if err := l.Prune(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rep := MustVerify(t, s, key)
	if rep.PrunedThrough != 5 || rep.First != 6 || rep.Last != 9 {
		t.Errorf("after pruning: %+v, want pruned through 5, entries 6..9 (the last records the pruning)", rep)
	}
	if got, _ := s.Query(ctx, audit.Filter{Actor: "old"}); len(got) != 0 {
		t.Errorf("old entries survived: %v", got)
	}
	if got, _ := s.Query(ctx, audit.Filter{Action: audit.ActionPrune}); len(got) != 1 {
		t.Errorf("the pruning is not recorded in the chain: %v", got)
	}
	// Prune everything, restart, and keep chaining from the checkpoint.
	if err := l.Prune(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := reopen()
	l2 := openLog(t, s2, key)
	record(t, l2, audit.Entry{Actor: "after", Action: audit.ActionPush})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	rep = MustVerify(t, s2, key)
	if rep.PrunedThrough != 9 || rep.Entries != 2 || rep.Last != 11 {
		t.Errorf("after pruning everything and restarting: %+v", rep)
	}
}

func testRecordAfterClose(t *testing.T, factory Factory) {
	s, _ := factory(t)
	l := openLog(t, s, Key(t))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Record(audit.Entry{Actor: "late"}); err != audit.ErrClosed {
		t.Errorf("Record after Close = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func testWrongKey(t *testing.T, factory Factory) {
	s, _ := factory(t)
	l := openLog(t, s, Key(t))
	record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(context.Background(), s, &Key(t).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Error("a chain anchored by another key verified")
	}
}

func testCoalesce(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, _ := factory(t)
	key := Key(t)
	l := openLog(t, s, key)
	pull := audit.Entry{Actor: "ci", SourceIP: "10.0.0.1", Action: audit.ActionPull, Project: "p", Repository: "p/app", Digest: "sha256:aa"}
	for range 50 {
		record(t, l, pull)
	}
	other := pull
	other.SourceIP = "10.0.0.2"
	record(t, l, other)
	denied := pull
	denied.Result = audit.Denied
	record(t, l, denied)
	record(t, l, denied)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	MustVerify(t, s, key)
	got, err := s.Query(ctx, audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{}
	rows := map[string]int{}
	for _, e := range got {
		k := e.SourceIP + " " + string(e.Result)
		counts[k] += max(e.Count, 1)
		rows[k]++
	}
	if counts["10.0.0.1 success"] != 50 || counts["10.0.0.2 success"] != 1 || counts["10.0.0.1 denied"] != 2 {
		t.Errorf("pull counts = %v", counts)
	}
	// The 50 arrive together, so they take far fewer rows (one, unless
	// the writer was descheduled between them); refusals are never
	// folded.
	if rows["10.0.0.1 success"] > 10 || rows["10.0.0.1 denied"] != 2 {
		t.Errorf("rows = %v", rows)
	}
}

func testSync(t *testing.T, factory Factory) {
	s, _ := factory(t)
	key := Key(t)
	l := openLog(t, s, key)
	record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	MustVerify(t, s, key)
}

// AnchorLines reads the anchor file at path, one checkpoint a line.
func AnchorLines(t testing.TB, path string) []audit.Checkpoint {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Checkpoint
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var cp audit.Checkpoint
		if err := json.Unmarshal(sc.Bytes(), &cp); err != nil {
			t.Fatalf("anchor file line %q: %v", sc.Text(), err)
		}
		out = append(out, cp)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func openAnchoredLog(t testing.TB, s audit.Store, key *ecdsa.PrivateKey, path string) *audit.Log {
	t.Helper()
	l, err := audit.Open(context.Background(), s, key, audit.Options{AnchorFile: path})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testAnchorFile: the tip goes to the anchor file (mode 0600), which
// agrees with the store across a restart.
func testAnchorFile(t *testing.T, factory Factory) {
	ctx := context.Background()
	s, reopen := factory(t)
	key := Key(t)
	path := filepath.Join(t.TempDir(), audit.AnchorFileName)
	l := openAnchoredLog(t, s, key, path)
	for i := range 3 {
		record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush, Detail: fmt.Sprint(i)})
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("anchor file mode %v, want 0600", st.Mode().Perm())
	}
	lines := AnchorLines(t, path)
	anchor, _, _ := s.Anchor(ctx)
	if len(lines) == 0 || lines[len(lines)-1].Seq != 3 || lines[len(lines)-1].Hash != anchor.Hash {
		t.Fatalf("anchor file %+v, want its last line at the tip %d %s", lines, anchor.Seq, anchor.Hash)
	}
	anchored := audit.Anchored{Store: s, AnchorPath: path}
	MustVerify(t, anchored, key)

	s2 := reopen()
	l2 := openAnchoredLog(t, s2, key, path)
	record(t, l2, audit.Entry{Actor: "b", Action: audit.ActionDelete})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := MustVerify(t, audit.Anchored{Store: s2, AnchorPath: path}, key); rep.Last != 4 {
		t.Errorf("after a restart: %+v", rep)
	}
	if lines := AnchorLines(t, path); lines[len(lines)-1].Seq != 4 {
		t.Errorf("anchor file after a restart ends at %d, want 4", lines[len(lines)-1].Seq)
	}
}

// testEmptyStoreUnderAnchorFile is the wipe: a store that holds nothing
// under an anchor file that records entries. Open refuses to start a new
// chain over it, and Verify says what is missing.
func testEmptyStoreUnderAnchorFile(t *testing.T, factory Factory) {
	s, _ := factory(t)
	key := Key(t)
	path := filepath.Join(t.TempDir(), audit.AnchorFileName)
	l := openAnchoredLog(t, s, key, path)
	for i := range 3 {
		record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush, Detail: fmt.Sprint(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wiped, _ := factory(t)
	_, err := audit.Open(context.Background(), wiped, key, audit.Options{AnchorFile: path})
	if !errors.Is(err, audit.ErrAnchorMismatch) || !strings.Contains(err.Error(), "the log is empty but audit-anchors.log records sequence 3") {
		t.Errorf("Open over an empty store = %v, want ErrAnchorMismatch naming sequence 3", err)
	}
	rep, err := audit.Verify(context.Background(), audit.Anchored{Store: wiped, AnchorPath: path}, &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	const want = "the log has 0 entries but audit-anchors.log records sequence 3"
	if rep.OK() || !strings.Contains(fmt.Sprint(rep.Problems), want) {
		t.Errorf("Verify of the empty store = %+v, want a problem saying %q", rep.Problems, want)
	}
	if lines := AnchorLines(t, path); lines[len(lines)-1].Seq != 3 {
		t.Errorf("the refused Open changed the anchor file: %+v", lines)
	}
}

// sinkRecorder is an AnchorSink that remembers what it was sent.
type sinkRecorder struct {
	mu  sync.Mutex
	got []audit.Checkpoint
}

func (r *sinkRecorder) Send(_ context.Context, cp audit.Checkpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, cp)
	return nil
}

func testAnchorSink(t *testing.T, factory Factory) {
	s, _ := factory(t)
	key := Key(t)
	sink := &sinkRecorder{}
	l, err := audit.Open(context.Background(), s, key, audit.Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		record(t, l, audit.Entry{Actor: "a", Action: audit.ActionPush, Detail: fmt.Sprint(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	anchor, _, _ := s.Anchor(context.Background())
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.got) == 0 {
		t.Fatal("the sink received nothing")
	}
	last := sink.got[len(sink.got)-1]
	if last.Seq != 5 || last.Hash != anchor.Hash || !last.Time.Equal(anchor.Time) || string(last.Signature) != string(anchor.Signature) {
		t.Errorf("the sink's newest anchor %+v, want the store's %+v", last, anchor)
	}
}
