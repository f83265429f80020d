package admission

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = map[string][]string{
	"Pod":         {"spec"},
	"Deployment":  {"spec", "template", "spec"},
	"StatefulSet": {"spec", "template", "spec"},
	"DaemonSet":   {"spec", "template", "spec"},
	"ReplicaSet":  {"spec", "template", "spec"},
	"Job":         {"spec", "template", "spec"},
	"CronJob":     {"spec", "jobTemplate", "spec", "template", "spec"},
}

// container is one image of a workload: where it is and what it says.
type container struct {
	// field names it for people: "initContainers[0] (migrate)".
	field string
	// pointer is the JSON Pointer of its image, for the patch.
	pointer string
	image   string
}

// workload is a decoded workload's pod spec and containers.
type workload struct {
	spec       map[string]any
	containers []container
}

// readWorkload finds the pod spec of an object of the given kind; ok is
// false for kinds that are not workloads.
func readWorkload(kind string, object json.RawMessage) (w *workload, ok bool, err error) {
	path, ok := podSpecPaths[kind]
	if !ok {
		return nil, false, nil
	}
	var obj map[string]any
	if err := json.Unmarshal(object, &obj); err != nil {
		return nil, true, fmt.Errorf("the %s object is not a JSON object: %v", kind, err)
	}
	cur := obj
	for _, p := range path {
		next, isMap := cur[p].(map[string]any)
		if !isMap {
			return nil, true, fmt.Errorf("the %s has no %s", kind, strings.Join(path, "."))
		}
		cur = next
	}
	w = &workload{spec: cur}
	prefix := "/" + strings.Join(path, "/")
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		items, _ := cur[list].([]any)
		for i, it := range items {
			c, _ := it.(map[string]any)
			image, isString := c["image"].(string)
			name, _ := c["name"].(string)
			field := list + "[" + strconv.Itoa(i) + "]"
			if name != "" {
				field += " (" + name + ")"
			}
			if !isString || image == "" {
				return nil, true, fmt.Errorf("%s has no image", field)
			}
			w.containers = append(w.containers, container{field: field, pointer: prefix + "/" + list + "/" + strconv.Itoa(i) + "/image", image: image})
		}
	}
	return w, true, nil
}
