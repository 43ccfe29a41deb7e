package silences_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/silences"
)

func TestParseMatcher(t *testing.T) {
	for _, tc := range []struct {
		in                string
		name, op, value   string
		err               string // substring; "" means it parses
		matches, notMatch model.Labels
	}{
		{in: "severity=critical", name: "severity", op: "=", value: "critical",
			matches: model.Labels{"severity": "critical"}, notMatch: model.Labels{"severity": "high"}},
		{in: "cluster!=dev", name: "cluster", op: "!=", value: "dev",
			matches: model.Labels{"cluster": "prod"}, notMatch: model.Labels{"cluster": "dev"}},
		{in: `host.mac=~"00:00:5e:.*"`, name: "host.mac", op: "=~", value: "00:00:5e:.*",
			matches: model.Labels{"host.mac": "00:00:5e:00:00:01"}, notMatch: model.Labels{"host.mac": "aa:00:00:5e:00:01"}},
		{in: `member!~etcd-0[0-4]`, name: "member", op: "!~", value: "etcd-0[0-4]",
			matches: model.Labels{"member": "etcd-05"}, notMatch: model.Labels{"member": "etcd-03"}},
		// Anchored: a regex must match the whole value.
		{in: `member=~etcd`, name: "member", op: "=~", value: "etcd",
			matches: model.Labels{"member": "etcd"}, notMatch: model.Labels{"member": "etcd-03"}},
		{in: `member=~"a|b"`, name: "member", op: "=~", value: "a|b",
			matches: model.Labels{"member": "b"}, notMatch: model.Labels{"member": "ab"}},
		{in: `  agent.tag.role = db  `, name: "agent.tag.role", op: "=", value: "db"},
		{in: `note="a=b"`, name: "note", op: "=", value: "a=b"},
		{in: `note=a=b`, name: "note", op: "=", value: "a=b"},
		{in: `note="say \"hi\""`, name: "note", op: "=", value: `say "hi"`},
		{in: `path="a\/b"`, name: "path", op: "=", value: "a/b"}, // JSON escape
		{in: `host=""`, name: "host", op: "=", value: "",
			matches: model.Labels{"other": "x"}, notMatch: model.Labels{"host": "h1"}},
		{in: `host=`, name: "host", op: "=", value: ""},
		{in: "", err: "empty matcher"},
		{in: "   ", err: "empty matcher"},
		{in: "severity", err: "no operator"},
		{in: "severity~critical", err: "no operator"},
		{in: `=critical`, err: "label name is missing"},
		{in: `9lives=yes`, err: `label name "9lives" is not valid`},
		{in: `host=~"("`, err: "regex"},
		{in: `host!~"[a-"`, err: "regex"},
		{in: `host="unterminated`, err: "not a valid quoted string"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			m, err := silences.ParseMatcher(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tc.name || m.Op != tc.op || m.Value != tc.value {
				t.Fatalf("got %q %q %q, want %q %q %q", m.Name, m.Op, m.Value, tc.name, tc.op, tc.value)
			}
			if tc.matches != nil && !m.Matches(tc.matches) {
				t.Errorf("%s does not match %v", m, tc.matches)
			}
			if tc.notMatch != nil && m.Matches(tc.notMatch) {
				t.Errorf("%s matches %v", m, tc.notMatch)
			}
			// String round-trips.
			back, err := silences.ParseMatcher(m.String())
			if err != nil || back.Name != m.Name || back.Op != m.Op || back.Value != m.Value {
				t.Errorf("ParseMatcher(%s) = %+v, %v", m.String(), back, err)
			}
		})
	}
}

func TestMatcherStringRoundTripsOddValues(t *testing.T) {
	for _, v := range []string{"", " lead", "trail ", `"`, `\`, "a=b", "=~", "tab\there", "ünï", "new\nline", "\x00"} {
		for _, op := range []string{"=", "!=", "=~", "!~"} {
			m, err := silences.NewMatcher("l", op, v)
			if err != nil {
				continue // a value that is no regex
			}
			back, err := silences.ParseMatcher(m.String())
			if err != nil || back.Value != v || back.Op != op {
				t.Errorf("%q: ParseMatcher(%s) = %+v, %v", v, m.String(), back, err)
			}
		}
	}
}

func TestMatcherAbsentLabelIsEmpty(t *testing.T) {
	ls := model.Labels{"cluster": "prod"}
	for in, want := range map[string]bool{
		`host=""`: true, `host!=""`: false, `host=~".*"`: true, `host=~".+"`: false,
		`host!~".+"`: true, `host!=h1`: true, `host=h1`: false,
	} {
		if got := must(silences.ParseMatcher(in)).Matches(ls); got != want {
			t.Errorf("%s on %v = %v, want %v", in, ls, got, want)
		}
	}
}

// TestMatcherJSON: the compiled regex is rebuilt when a matcher is read
// back, and the wire form is {"name","op","value"}.
func TestMatcherJSON(t *testing.T) {
	m := must(silences.ParseMatcher(`host.mac=~"00:00:5e:.*"`))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"name":"host.mac","op":"=~","value":"00:00:5e:.*"}` {
		t.Fatalf("JSON = %s", b)
	}
	var back silences.Matcher
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Matches(model.Labels{"host.mac": "00:00:5e:00:00:01"}) || back.Matches(model.Labels{"host.mac": "x00:00:5e:"}) {
		t.Errorf("unmarshalled matcher does not match as the original")
	}
	if !silences.Compiled(back) {
		t.Errorf("regex not compiled after UnmarshalJSON")
	}
	// A bad regex unmarshals, and Validate names it.
	var bad silences.Matcher
	if err := json.Unmarshal([]byte(`{"name":"h","op":"=~","value":"("}`), &bad); err != nil {
		t.Fatalf("Unmarshal of a bad regex: %v", err)
	}
	if bad.Matches(model.Labels{"h": "("}) {
		t.Errorf("a broken regex matched")
	}
	err = silences.Silence{Matchers: []silences.Matcher{bad}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "matchers[0]") || !strings.Contains(err.Error(), "regex") {
		t.Errorf("Validate = %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
