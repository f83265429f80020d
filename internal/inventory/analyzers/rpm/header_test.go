package rpm

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// entry is one index entry of a synthetic header; value is the data it
// points at, appended to the data store.
type entry struct {
	tag, typ, count uint32
	value           []byte
}

func str(s string) []byte { return append([]byte(s), 0) }

func int32be(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }

// buildHeader writes a header blob as an rpm database stores it.
func buildHeader(entries ...entry) []byte {
	var index, data []byte
	for _, e := range entries {
		index = binary.BigEndian.AppendUint32(index, e.tag)
		index = binary.BigEndian.AppendUint32(index, e.typ)
		index = binary.BigEndian.AppendUint32(index, uint32(len(data)))
		index = binary.BigEndian.AppendUint32(index, e.count)
		data = append(data, e.value...)
	}
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(entries)))
	blob = binary.BigEndian.AppendUint32(blob, uint32(len(data)))
	return append(append(blob, index...), data...)
}

// setEntry rewrites field (0 tag, 1 type, 2 offset, 3 count) of the first
// index entry for tag in blob.
func setEntry(t testing.TB, blob []byte, tag uint32, field int, v uint32) []byte {
	t.Helper()
	blob = bytes.Clone(blob)
	il := int(binary.BigEndian.Uint32(blob))
	for i := 0; i < il; i++ {
		e := blob[8+i*16:]
		if binary.BigEndian.Uint32(e) == tag {
			binary.BigEndian.PutUint32(e[field*4:], v)
			return blob
		}
	}
	t.Fatalf("no tag %d in the header", tag)
	return nil
}

func TestParseHeader(t *testing.T) {
	real := firstHeader(t)
	valid := buildHeader(
		entry{tagName, typeString, 1, str("openssl-libs")},
		entry{tagEpoch, typeInt32, 1, int32be(1)},
		entry{tagVersion, typeString, 1, str("3.0.7")},
		entry{tagRelease, typeString, 1, str("27.el9")},
		entry{tagArch, typeString, 1, str("x86_64")},
		entry{tagLicense, typeString, 1, str("Apache-2.0")},
		entry{tagSourceRPM, typeString, 1, str("openssl-3.0.7-27.el9.src.rpm")},
		entry{1004, typeI18NString, 1, str("summary")}, // not read
	)
	tests := []struct {
		name string
		blob []byte
		want string // "name epoch version release arch license sourcerpm", or the error
	}{
		{"real header from rpm 4.18", real, "gamma-libs - 7.0 3.el9 noarch LGPL-2.1-or-later gamma-7.0-3.el9.src.rpm"},
		{"every tag", valid, "openssl-libs 1 3.0.7 27.el9 x86_64 Apache-2.0 openssl-3.0.7-27.el9.src.rpm"},
		{"translatable string, first tag of a name wins", buildHeader(
			entry{tagName, typeI18NString, 2, append(str("a"), str("b")...)},
			entry{tagName, typeString, 1, str("c")},
			entry{tagSourceRPM, typeString, 1, str("(none)")},
		), "a - - - - - -"},
		{"other tags may be anything", buildHeader(
			entry{tagName, typeString, 1, str("a")},
			entry{5000, 99, 1 << 31, nil},
		), "a - - - - - -"},
		{"shorter than its lengths", real[:7], "shorter"},
		{"truncated", real[:len(real)-1], "claims"},
		{"2^31 entries", setWord(real, 0, 1<<31-1), "claims"},
		{"no entries", setWord(real, 0, 0), "claims"},
		{"data past the rpm limit", setWord(real, 4, 1<<24), "claims"},
		{"name offset past the data", setEntry(t, real, tagName, 2, 1<<30), "do not fit"},
		{"name without a count", setEntry(t, real, tagName, 3, 0), "do not fit"},
		{"name of a number type", setEntry(t, real, tagName, 1, typeInt32), "where a string belongs"},
		{"epoch as a string", buildHeader(entry{tagEpoch, typeString, 1, str("1")}), "epoch of type"},
		{"epoch cut short", buildHeader(entry{tagEpoch, typeInt32, 1, []byte{0, 1}}), "epoch of type"},
		{"unterminated string", buildHeader(entry{tagName, typeString, 1, []byte("abc")}), "not terminated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseHeader(tt.blob)
			var got string
			if err != nil {
				got = err.Error()
			} else {
				epoch := "-"
				if h.epoch != nil {
					epoch = string(rune('0' + *h.epoch))
				}
				dash := func(s string) string {
					if s == "" {
						return "-"
					}
					return s
				}
				got = strings.Join([]string{h.name, epoch, dash(h.version), dash(h.release), dash(h.arch), dash(h.license), dash(h.sourceRPM)}, " ")
			}
			if !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// setWord returns blob with the big-endian word at off set to v.
func setWord(blob []byte, off int, v uint32) []byte {
	blob = bytes.Clone(blob)
	binary.BigEndian.PutUint32(blob[off:], v)
	return blob
}

func FuzzParseHeader(f *testing.F) {
	f.Add(firstHeader(f))
	f.Add(buildHeader(entry{tagName, typeString, 1, str("a")}, entry{tagEpoch, typeInt32, 1, int32be(2)}))
	f.Fuzz(func(t *testing.T, blob []byte) {
		parseHeader(blob)
	})
}
