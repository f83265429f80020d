package secret

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzScanFile: any content, split into writes anywhere, scans without a
// panic, finds the same as one write, and never shows a finding's secret
// beyond its masked prefix.
func FuzzScanFile(f *testing.F) {
	g := newGen(11)
	f.Add([]byte("password = "+g.from(alnum, 16)+"\n"), uint16(3))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\n"+wrap(g.from(b64, 300))), uint16(40))
	f.Add([]byte("x=ghp_"+g.from(alnum, 36)), uint16(7))
	f.Add([]byte("api_key: \xff\xfe"+g.from(alnum, 30)), uint16(1))
	rs, err := Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		one := rs.NewFileScanner()
		want, _ := one.ScanFile("etc/app/config.yaml", bytes.NewReader(data))
		s := rs.NewFileScanner()
		s.Begin("etc/app/config.yaml")
		cut := int(split) % (len(data) + 1)
		s.Write(data[:cut])
		s.Write(data[cut:])
		got := s.End()
		if len(got) != len(want) {
			t.Fatalf("split writes found %d, one write %d", len(got), len(want))
		}
		for _, fd := range got {
			if strings.Count(fd.Secret, "*") < 4 {
				t.Fatalf("secret not masked: %q", fd.Secret)
			}
		}
	})
}
