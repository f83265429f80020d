package match

import (
	"strconv"
	"strings"
)

// groupByAlias partitions the records matched for one package into sets
// that share an identifier (id, alias or upstream id; related ids are not
// the same flaw), transitively (union-find), keeping the first record's
// position for a stable order.
func groupByAlias(hits []*matched) [][]*matched {
	if len(hits) <= 1 {
		if len(hits) == 0 {
			return nil
		}
		return [][]*matched{hits}
	}
	parent := make([]int, len(hits))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := make(map[string]int, 4*len(hits))
	link := func(i int, id string) {
		if j, ok := owner[id]; ok {
			a, b := find(i), find(j)
			if a != b {
				parent[max(a, b)] = min(a, b)
			}
		} else {
			owner[id] = i
		}
	}
	for i, h := range hits {
		link(i, h.rec.ID)
		for _, id := range h.rec.Aliases {
			link(i, id)
		}
		for _, id := range h.rec.Upstream {
			link(i, id)
		}
	}
	index := make(map[int]int)
	var groups [][]*matched
	for i, h := range hits {
		root := find(i)
		g, ok := index[root]
		if !ok {
			g = len(groups)
			index[root] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], h)
	}
	return groups
}

// primaryID picks the identifier a finding is known by: CVE first (the
// name every tool and advisory shares), then GHSA, then any other; within
// a kind the lowest, comparing CVE numbers numerically, so the choice does
// not depend on which record arrived first.
func primaryID(ids []string) string {
	best := ""
	for _, id := range ids {
		if best == "" || idLess(id, best) {
			best = id
		}
	}
	return best
}

func idKind(id string) int {
	switch {
	case strings.HasPrefix(id, "CVE-"):
		return 0
	case strings.HasPrefix(id, "GHSA-"):
		return 1
	}
	return 2
}

func idLess(a, b string) bool {
	ka, kb := idKind(a), idKind(b)
	if ka != kb {
		return ka < kb
	}
	if ka == 0 {
		ya, na := cveParts(a)
		yb, nb := cveParts(b)
		if ya != yb {
			return ya < yb
		}
		if na != nb {
			return na < nb
		}
	}
	return a < b
}

// cveParts reads CVE-YYYY-NNNN's year and number; -1 when malformed.
func cveParts(id string) (int, int) {
	parts := strings.SplitN(id, "-", 3)
	if len(parts) != 3 {
		return -1, -1
	}
	y, err1 := strconv.Atoi(parts[1])
	n, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		return -1, -1
	}
	return y, n
}
