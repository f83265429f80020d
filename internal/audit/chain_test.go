package audit

import (
	"testing"
	"time"
)

func TestHashCoversEveryFieldUnambiguously(t *testing.T) {
	base := Entry{Seq: 7, Time: time.Unix(0, 1234), Actor: "ab", SourceIP: "c", Action: ActionPush, Project: "p",
		Repository: "p/r", Digest: "sha256:00", Result: Success, Detail: "d", PrevHash: "00ff"}
	seen := map[string]string{Hash(base): "base"}
	for name, mutate := range map[string]func(*Entry){
		"seq":                         func(e *Entry) { e.Seq++ },
		"time":                        func(e *Entry) { e.Time = e.Time.Add(1) },
		"boundary":                    func(e *Entry) { e.Actor, e.SourceIP = "a", "bc" },
		"action":                      func(e *Entry) { e.Action = ActionPull },
		"project":                     func(e *Entry) { e.Project = "q" },
		"repository":                  func(e *Entry) { e.Repository = "p/s" },
		"digest":                      func(e *Entry) { e.Digest = "sha256:01" },
		"result":                      func(e *Entry) { e.Result = Denied },
		"detail":                      func(e *Entry) { e.Detail = "" },
		"prev":                        func(e *Entry) { e.PrevHash = "00fe" },
		"stored hash is not an input": nil,
	} {
		e := base
		if mutate == nil {
			e.Hash = "anything"
			if Hash(e) != Hash(base) {
				t.Error("the stored hash changes the computed one")
			}
			continue
		}
		mutate(&e)
		h := Hash(e)
		if other, dup := seen[h]; dup {
			t.Errorf("changing %s gives the same hash as %s", name, other)
		}
		seen[h] = name
	}
}

func TestFilterLimit(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{0, DefaultLimit}, {-1, DefaultLimit}, {5, 5}, {MaxLimit + 1, MaxLimit}} {
		if got := (Filter{Limit: tc.in}).EffectiveLimit(); got != tc.want {
			t.Errorf("limit %d → %d, want %d", tc.in, got, tc.want)
		}
	}
}
