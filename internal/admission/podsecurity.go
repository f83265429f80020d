package admission

import (
	"fmt"
	"strconv"
)

// podSecurity checks the optional rule set (the "restricted" ideas of
// Kubernetes' pod security standards): every container runs as non-root,
// with a read-only root filesystem, without privilege escalation, with
// all capabilities dropped and the RuntimeDefault (or Localhost) seccomp
// profile; none is privileged; no hostPath volume. Pod-level
// securityContext counts where Kubernetes inherits it (runAsNonRoot,
// seccompProfile).
func podSecurity(spec map[string]any) []string {
	var out []string
	podCtx, _ := spec["securityContext"].(map[string]any)
	if vols, ok := spec["volumes"].([]any); ok {
		for i, v := range vols {
			vm, _ := v.(map[string]any)
			if _, host := vm["hostPath"]; host {
				name, _ := vm["name"].(string)
				out = append(out, fmt.Sprintf("volumes[%d] (%s): hostPath volumes are not allowed", i, name))
			}
		}
	}
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		items, _ := spec[list].([]any)
		for i, it := range items {
			c, _ := it.(map[string]any)
			name, _ := c["name"].(string)
			field := list + "[" + strconv.Itoa(i) + "] (" + name + ")"
			sc, _ := c["securityContext"].(map[string]any)
			get := func(k string) any {
				if v, ok := sc[k]; ok {
					return v
				}
				return nil
			}
			if b, _ := get("privileged").(bool); b {
				out = append(out, field+": privileged containers are not allowed")
			}
			nonRoot, set := get("runAsNonRoot").(bool)
			if !set {
				nonRoot, _ = podCtx["runAsNonRoot"].(bool)
			}
			if !nonRoot {
				out = append(out, field+": set securityContext.runAsNonRoot: true")
			}
			if b, _ := get("readOnlyRootFilesystem").(bool); !b {
				out = append(out, field+": set securityContext.readOnlyRootFilesystem: true")
			}
			if b, ok := get("allowPrivilegeEscalation").(bool); !ok || b {
				out = append(out, field+": set securityContext.allowPrivilegeEscalation: false")
			}
			if !dropsAll(get("capabilities")) {
				out = append(out, field+": drop all capabilities (securityContext.capabilities.drop: [ALL])")
			}
			prof, _ := get("seccompProfile").(map[string]any)
			if prof == nil {
				prof, _ = podCtx["seccompProfile"].(map[string]any)
			}
			if t, _ := prof["type"].(string); t != "RuntimeDefault" && t != "Localhost" {
				out = append(out, field+": set seccompProfile.type: RuntimeDefault")
			}
		}
	}
	return out
}

func dropsAll(caps any) bool {
	m, _ := caps.(map[string]any)
	drop, _ := m["drop"].([]any)
	for _, d := range drop {
		if s, _ := d.(string); s == "ALL" {
			return true
		}
	}
	return false
}
