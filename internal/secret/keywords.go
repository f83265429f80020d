package secret

// keywordMatcher finds every occurrence of a set of keywords in one pass,
// ignoring ASCII case: an Aho-Corasick automaton turned into a DFA over
// byte classes (the bytes the keywords use, folded to lower case, plus
// one class for every other byte), so the scan is one table lookup per
// byte. Rules' regexps then run only around the keywords it finds; this
// pass is what every byte of every text file costs.
type keywordMatcher struct {
	keywords []string
	class    [256]uint8
	nclass   int
	next     []int32   // state*nclass + class → state
	out      [][]int32 // state → keyword indexes ending here
}

func newKeywordMatcher(keywords []string) *keywordMatcher {
	m := &keywordMatcher{keywords: keywords}
	// Byte classes: 0 is "not in any keyword".
	m.nclass = 1
	for _, k := range keywords {
		for i := 0; i < len(k); i++ {
			b := lower(k[i])
			if m.class[b] == 0 {
				m.class[b] = uint8(m.nclass)
				m.nclass++
			}
		}
	}
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	// The trie.
	type node struct {
		child map[uint8]int32
		fail  int32
		out   []int32
	}
	nodes := []node{{child: map[uint8]int32{}}}
	for ki, k := range keywords {
		s := int32(0)
		for i := 0; i < len(k); i++ {
			c := m.class[k[i]]
			n, ok := nodes[s].child[c]
			if !ok {
				n = int32(len(nodes))
				nodes = append(nodes, node{child: map[uint8]int32{}})
				nodes[s].child[c] = n
			}
			s = n
		}
		nodes[s].out = append(nodes[s].out, int32(ki))
	}
	// Breadth first: failure links, inherited outputs, and the DFA.
	m.next = make([]int32, len(nodes)*m.nclass)
	m.out = make([][]int32, len(nodes))
	queue := []int32{0}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		n := &nodes[s]
		if s != 0 {
			n.out = append(n.out, nodes[n.fail].out...)
		}
		m.out[s] = n.out
		for c := 0; c < m.nclass; c++ {
			child, ok := n.child[uint8(c)]
			if ok && c != 0 {
				if s == 0 {
					nodes[child].fail = 0
				} else {
					nodes[child].fail = m.next[int(n.fail)*m.nclass+c]
				}
				m.next[int(s)*m.nclass+c] = child
				queue = append(queue, child)
				continue
			}
			if s == 0 {
				m.next[c] = 0
			} else {
				m.next[int(s)*m.nclass+c] = m.next[int(n.fail)*m.nclass+c]
			}
		}
	}
	return m
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// find calls hit with the index of each keyword occurrence's first byte
// and the keyword's index.
func (m *keywordMatcher) find(data []byte, hit func(start int, kw int32)) {
	next, class, nc := m.next, &m.class, int32(m.nclass)
	s := int32(0)
	for i, b := range data {
		s = next[s*nc+int32(class[b])]
		if out := m.out[s]; len(out) > 0 {
			for _, k := range out {
				hit(i+1-len(m.keywords[k]), k)
			}
		}
	}
}

// any reports whether data holds a keyword.
func (m *keywordMatcher) any(data []byte) bool {
	next, class, nc := m.next, &m.class, int32(m.nclass)
	s := int32(0)
	for _, b := range data {
		s = next[s*nc+int32(class[b])]
		if len(m.out[s]) > 0 {
			return true
		}
	}
	return false
}
