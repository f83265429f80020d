package access

import "testing"

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
	} {
		if got := tc.c.Header(); got != tc.want {
			t.Errorf("Header() = %s\nwant       %s", got, tc.want)
		}
	}
}
