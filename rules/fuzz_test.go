package rules

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds the rule loader arbitrary files. Whatever the input, a
// load either returns a set that holds together or Errors that each name
// the file and a line inside it; the same bytes load the same way twice;
// and a second copy of a loaded file under another name is refused for
// its duplicate group names, as a reload of two copies must be.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"testdata/good/*.yaml", "testdata/bad/*.yaml", "testdata/bad/*/*.yaml", "../examples/rules/*.yaml"} {
		paths, _ := filepath.Glob(glob)
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.yaml") {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		lines := lineCount(data)
		set, err := Parse([]string{name}, map[string][]byte{name: data})
		again, err2 := Parse([]string{name}, map[string][]byte{name: data})
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two loads of the same bytes differ:\n%v\n---\n%v", err, err2)
		}
		if err != nil {
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("load error is not a list of rule errors: %T %v", err, err)
			}
			for _, e := range errs {
				if e.File != name || e.Pos.Line < 0 || e.Pos.Line > lines || e.Msg == "" {
					t.Errorf("error without a place in the file (%d lines): %+v", lines, e)
				}
			}
			return
		}
		names := map[string]bool{}
		keys := map[string]uint64{}
		for _, r := range again.Rules() {
			keys[r.Name] = r.StateKey
		}
		for _, r := range set.Rules() {
			if names[r.Name] {
				t.Errorf("rule %q loaded twice", r.Name)
			}
			names[r.Name] = true
			if !namePattern.MatchString(r.Name) || r.Severity == "" || r.Window <= 0 || r.Window > set.MaxWindow || r.Condition == nil || r.Condition.Program == nil {
				t.Errorf("loaded rule does not hold together: %+v", r)
			}
			if r.File != name || r.Pos.Line < 1 || r.Pos.Line > lines {
				t.Errorf("rule %q at %s:%d, outside the file", r.Name, r.File, r.Pos.Line)
			}
			if keys[r.Name] != r.StateKey {
				t.Errorf("rule %q: state key differs between two loads of the same bytes", r.Name)
			}
		}
		if len(set.Groups) == 0 {
			return
		}
		_, err = Parse([]string{"a.yaml", "b.yaml"}, map[string][]byte{"a.yaml": data, "b.yaml": data})
		if err == nil || !strings.Contains(err.Error(), "duplicate group name, first defined at a.yaml:") {
			t.Errorf("two copies of a loaded file: err = %v, want duplicate group names", err)
		}
	})
}

// lineCount counts lines as YAML does: \n, \r\n and a lone \r end one.
func lineCount(data []byte) int {
	return bytes.Count(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n")) + bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
}

// TestFirstUnknownFieldAsWritten: several misspelt fields are all named,
// always in the order written (go-yaml picks one in map order).
func TestFirstUnknownFieldAsWritten(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"groupz: []\nb: 1\nc: 1\nd: 1\ne: 1\nf: 1\n", `fuzz.yaml:1:1: unknown field "groupz"
fuzz.yaml:2:1: unknown field "b"
fuzz.yaml:3:1: unknown field "c"
fuzz.yaml:4:1: unknown field "d"
fuzz.yaml:5:1: unknown field "e"
fuzz.yaml:6:1: unknown field "f"`},
		{`groups:
  - name: g
    rules:
      - name: R
        severity: low
        condition: max("up") == 0
        treshold: 1
        fr: 5m
        windw: 1m
        lables: {}
        anotations: {}
`, `fuzz.yaml:7:9: rule "R": unknown field "treshold"
fuzz.yaml:8:9: rule "R": unknown field "fr"
fuzz.yaml:9:9: rule "R": unknown field "windw"
fuzz.yaml:10:9: rule "R": unknown field "lables"
fuzz.yaml:11:9: rule "R": unknown field "anotations"`},
	} {
		for range 30 {
			_, err := Parse([]string{"fuzz.yaml"}, map[string][]byte{"fuzz.yaml": []byte(tc.src)})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %s", err, tc.want)
			}
		}
	}
}
