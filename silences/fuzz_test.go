package silences_test

import (
	"encoding/json"
	"regexp"
	"testing"
	"unicode/utf8"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/silences"
)

// FuzzParseMatcher checks what `vigil silence` and the API rely on: a
// matcher that parses prints (String) as text that parses back to the same
// matcher, survives a JSON round trip (the state file and the API), and
// decides alike on the labels it was written for.
func FuzzParseMatcher(f *testing.F) {
	for _, s := range []string{
		"severity=critical", "cluster!=dev", `host.mac=~"00:00:5e:.*"`, `member!~etcd-0[0-4]`,
		`member=~"a|b"`, `  agent.tag.role = db  `, `note="a=b"`, `note=a=b`, `note="say \"hi\""`,
		`path="a\/b"`, `host=""`, `host=`, "", "severity", `=critical`, `9lives=yes`, `host=~"("`,
		`host="unterminated`, `alertname=~".+"`, `alertname!=""`, `k8s.io/app="a\x00b"`, `x="\u00e9\xff"`, `note="  padded "`, `q="\"a\""`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := silences.ParseMatcher(s)
		if err != nil {
			return
		}
		back, err := silences.ParseMatcher(m.String())
		if err != nil {
			t.Fatalf("%q parsed as %s, which does not parse: %v", s, m, err)
		}
		if back.Name != m.Name || back.Op != m.Op || back.Value != m.Value {
			t.Fatalf("%q parsed as %+v; its String %s parses as %+v", s, m, m.String(), back)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %s: %v", m, err)
		}
		var fromJSON silences.Matcher
		if err := json.Unmarshal(b, &fromJSON); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		// JSON cannot carry invalid UTF-8: the value may change only then.
		sameJSON := fromJSON.Name == m.Name && fromJSON.Op == m.Op && fromJSON.Value == m.Value
		if !sameJSON && utf8.ValidString(m.Value) {
			t.Fatalf("%s through JSON %s became %+v", m, b, fromJSON)
		}
		for _, ls := range []model.Labels{
			nil, {m.Name: m.Value}, {m.Name: m.Value + "x"}, {m.Name: ""}, {"other": m.Value},
		} {
			got := m.Matches(ls)
			if back.Matches(ls) != got || (sameJSON && fromJSON.Matches(ls) != got) {
				t.Fatalf("%s and its round trips disagree on %v", m, ls)
			}
		}
		self := model.Labels{m.Name: m.Value}
		switch m.Op {
		case silences.OpEqual:
			if !m.Matches(self) {
				t.Fatalf("%s does not match its own value", m)
			}
		case silences.OpNotEqual:
			if m.Matches(self) {
				t.Fatalf("%s matches its own value", m)
			}
		case silences.OpRegexp:
			if regexp.QuoteMeta(m.Value) == m.Value && !m.Matches(self) {
				t.Fatalf("literal regex %s does not match its own value", m)
			}
		}
	})
}
