package access

import (
	"errors"
	"testing"
	"time"
)

func TestChallengeHeader(t *testing.T) {
	for _, tc := range []struct {
		c    Challenge
		want string
	}{
		{Challenge{Scheme: "Basic", Realm: "berth"}, `Basic realm="berth"`},
		{Challenge{Scheme: "Bearer", Realm: "https://berth.example/token", Service: "berth.example",
			Scope: []Request{{Repository: "team/app", Action: Pull}, {Repository: "team/app", Action: Push}}},
			`Bearer realm="https://berth.example/token",service="berth.example",scope="repository:team/app:pull repository:team/app:push"`},
		{Challenge{Scheme: "Bearer", Realm: "r", Scope: []Request{{Action: Catalog}}}, `Bearer realm="r",scope="registry:catalog:*"`},
		{Challenge{Scheme: "Bearer", Realm: "r", Service: "s", Scope: []Request{{Repository: "a/b", Action: List}}, Code: "insufficient_scope"},
			`Bearer realm="r",service="s",scope="repository:a/b:pull",error="insufficient_scope"`},
	} {
		if got := tc.c.Header(); got != tc.want {
			t.Errorf("Header() = %s\nwant       %s", got, tc.want)
		}
	}
}

func TestTypedRefusals(t *testing.T) {
	if !errors.Is(&Denial{Reason: "no"}, ErrDenied) {
		t.Error("a Denial is not ErrDenied")
	}
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{{0, "1"}, {time.Millisecond, "1"}, {time.Second, "1"}, {1001 * time.Millisecond, "2"}, {time.Minute, "60"}} {
		th := &Throttle{RetryAfter: tc.after}
		if !errors.Is(th, ErrTooManyRequests) {
			t.Error("a Throttle is not ErrTooManyRequests")
		}
		if got := th.RetryAfterSeconds(); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %s", tc.after, got, tc.want)
		}
	}
}
