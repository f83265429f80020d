package admission

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// FileKeychain reads registry credentials from docker config files: a
// ~/.docker/config.json, or the .dockerconfigjson of a Kubernetes
// imagePullSecret (the same format). Earlier files win for a registry
// both name.
func FileKeychain(paths ...string) (authn.Keychain, error) {
	k := fileKeychain{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("registry credentials: %w", err)
		}
		var cfg struct {
			Auths map[string]struct {
				Auth          string `json:"auth"`
				Username      string `json:"username"`
				Password      string `json:"password"`
				IdentityToken string `json:"identitytoken"`
			} `json:"auths"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("registry credentials %s: not a docker config: %v", p, err)
		}
		for host, a := range cfg.Auths {
			c := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
			if a.Auth != "" {
				raw, err := base64.StdEncoding.DecodeString(a.Auth)
				if err != nil {
					return nil, fmt.Errorf("registry credentials %s: %s: auth is not base64", p, host)
				}
				user, pass, ok := strings.Cut(string(raw), ":")
				if !ok {
					return nil, fmt.Errorf("registry credentials %s: %s: auth is not user:password", p, host)
				}
				c.Username, c.Password = user, pass
			}
			h := normalizeHost(host)
			if _, dup := k[h]; !dup {
				k[h] = c
			}
		}
	}
	return k, nil
}

type fileKeychain map[string]authn.AuthConfig

// Resolve implements authn.Keychain.
func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if c, ok := k[normalizeHost(r.RegistryStr())]; ok {
		return authn.FromConfig(c), nil
	}
	return authn.Anonymous, nil
}

// normalizeHost turns the keys docker writes ("https://index.docker.io/v1/",
// "docker.io") into registry hosts.
func normalizeHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "docker.io" || h == "registry-1.docker.io" {
		h = "index.docker.io"
	}
	return h
}
