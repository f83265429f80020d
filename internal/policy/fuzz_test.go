package policy_test

import (
	"errors"
	"strings"
	"testing"

	"berth.dev/berth/internal/policy"
)

// FuzzParse: any input loads or is refused with ErrInvalid; nothing
// panics or hangs (globs, license expressions and CEL are compiled here).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  tags: {deny: [latest]}\n  licenses: {deny: [GPL-*]}\n",
		"apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  conditions:\n  - expression: \"image.tag != 'latest'\"\n",
		"apiVersion: policy.sigstore.dev/v1beta1\nkind: ClusterImagePolicy\nmetadata: {name: c}\nspec:\n  images: [{glob: \"**\"}]\n  authorities:\n  - static: {action: pass}\n",
		"apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  secrets:\n    deny: true\n    allow: [private-key, {id: aws-access-token, path: \"etc/**\", expires: 2030-01-01, reason: r}]\n",
		"apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  secrets: {severity: HIGH}\n  misconfigurations:\n    deny: [BI001]\n    severity: medium\n    allow: [{id: BI003, path: \"**\"}]\n  conditions:\n  - expression: \"secrets.size() == 0 && misconfigurations.all(m, m.id != 'BI001')\"\n",
		"---\n---\n",
		"{}",
		"apiVersion: berth.dev/v1\nkind: ImagePolicy\nmetadata: {name: p}\nspec:\n  registries: {allow: [\"*a*a*a*a*a*\"]}\n  exceptions:\n  - name: x\n    rules: [\"*\"]\n    expires: 2030-01-01\n",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		p, err := policy.Parse("fuzz.yaml", []byte(doc), policy.Options{})
		if err != nil {
			if !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "invalid policy: fuzz.yaml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(p.Docs) == 0 || p.Version == "" {
			t.Fatalf("a loaded policy without documents or version: %+v", p)
		}
		img := policy.Image{Registry: "r.example", Repository: strings.Repeat("a/", 50) + "b", Tag: "latest"}
		p.Applies(img)
	})
}
