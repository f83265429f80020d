package admission

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzReadWorkload: any object of any kind yields its containers or an
// error, never a panic; every container found has an image and a JSON
// Pointer to it.
func FuzzReadWorkload(f *testing.F) {
	f.Add("Pod", `{"spec":{"containers":[{"name":"a","image":"x"}]}}`)
	f.Add("CronJob", `{"spec":{"jobTemplate":{"spec":{"template":{"spec":{"initContainers":[{"image":"y"}]}}}}}}`)
	f.Add("Deployment", `{"spec":{"template":{"spec":{"containers":[{"image":1}]}}}}`)
	f.Add("ConfigMap", `{"data":{}}`)
	f.Add("Pod", `[]`)
	f.Fuzz(func(t *testing.T, kind, object string) {
		w, ok, err := readWorkload(kind, json.RawMessage(object))
		if !ok || err != nil {
			return
		}
		for _, c := range w.containers {
			if c.image == "" || !strings.HasPrefix(c.pointer, "/spec/") || !strings.HasSuffix(c.pointer, "/image") {
				t.Fatalf("container %+v", c)
			}
		}
		podSecurity(w.spec)
	})
}
