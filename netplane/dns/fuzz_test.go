package dns

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// Whatever query arrives, from whichever caller, answer does not panic
// and what it returns packs.
func FuzzAnswer(f *testing.F) {
	for _, c := range answerCases() {
		m := new(dns.Msg)
		m.SetQuestion(c.name, c.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, c.caller.As4()[3])
	}
	s, err := New(Config{Addr: loopback})
	if err != nil {
		f.Fatal(err)
	}
	s.SetView(testView())
	f.Fuzz(func(t *testing.T, b []byte, caller byte) {
		m := new(dns.Msg)
		if m.Unpack(b) != nil || len(m.Question) != 1 {
			return
		}
		r := s.answer(netip.AddrFrom4([4]byte{127, 0, 1, caller % 8}), m)
		if r == nil {
			return
		}
		r.Truncate(clientSize(m))
		if _, err := r.Pack(); err != nil {
			t.Fatalf("reply to %v does not pack: %v", m.Question[0], err)
		}
	})
}

// The reverse-name parser takes only canonical IPv4 names.
func TestParseReverse(t *testing.T) {
	for name, want := range map[string]string{
		"7.3.64.10.in-addr.arpa.":   "10.64.3.7",
		"0.0.0.0.in-addr.arpa.":     "0.0.0.0",
		"07.3.64.10.in-addr.arpa.":  "",
		"256.3.64.10.in-addr.arpa.": "",
		"3.64.10.in-addr.arpa.":     "",
		"1.7.3.64.10.in-addr.arpa.": "",
		"-1.3.64.10.in-addr.arpa.":  "",
		"7.3.64.10.ip6.arpa.":       "",
		"x.3.64.10.in-addr.arpa.":   "",
	} {
		a, ok := parseReverse(name)
		got := ""
		if ok {
			got = a.String()
			if rev := reverseName(a); rev != name {
				t.Errorf("reverseName(%s) = %s, want %s", a, rev, name)
			}
		}
		if got != want {
			t.Errorf("parseReverse(%s) = %q, want %q", name, got, want)
		}
	}
}
