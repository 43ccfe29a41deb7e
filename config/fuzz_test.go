package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// canary is what every environment variable holds in FuzzParse: no error
// may quote it, since env values are where secrets come from.
const canary = "fuzz-canary-s3cr3t"

// FuzzParse feeds the config loader arbitrary files. A load either
// succeeds the same way twice or returns Errors, each naming the file and
// a line inside it; no error quotes a secret read from the environment.
func FuzzParse(f *testing.F) {
	paths, _ := filepath.Glob("../examples/vigil*.yaml")
	paths = append(paths, "testdata/bad.yaml")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("rule_dirs: [.]\nhttp:\n  adress: x\n  bogus: y\n"))
	f.Add([]byte("rule_dirs: [rules]\nhttp: {bearer_token_env: T}\nnotifiers:\n  channels:\n    - name: w\n      webhook: {url_env: U, secret_env: K, headers_env: {Authorization: A}}\n"))
	env := func(string) (string, bool) { return canary, true }
	f.Fuzz(func(t *testing.T, data []byte) {
		// Beside the examples, so their rule_dirs and paths resolve.
		path := filepath.Join("..", "examples", "fuzz.yaml")
		lines := bytes.Count(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n")), []byte("\n")) +
			bytes.Count(data, []byte("\r")) - bytes.Count(data, []byte("\r\n")) + 1
		c, err := Parse(path, data, Options{LookupEnv: env})
		c2, err2 := Parse(path, data, Options{LookupEnv: env})
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two loads of the same bytes differ:\n%v\n---\n%v", err, err2)
		}
		if err != nil {
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("an error quotes a secret from the environment:\n%v", err)
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("load error is not a list of config errors: %T %v", err, err)
			}
			for _, e := range errs {
				if e.File != path || e.Line < 0 || e.Line > lines || e.Msg == "" {
					t.Errorf("error without a place in the file (%d lines): %+v", lines, e)
				}
			}
			return
		}
		if !slices.Equal(c.ChannelNames(), c2.ChannelNames()) || len(c.Collectors) != len(c2.Collectors) || !slices.Equal(c.RuleDirs, c2.RuleDirs) {
			t.Fatalf("two loads of the same bytes give different configs")
		}
		if c.HTTP.Address == "" || c.Reload.CheckInterval <= 0 || c.Reload.Debounce <= 0 {
			t.Fatalf("defaults not applied: %+v", c)
		}
	})
}

// TestFirstUnknownFieldAsWritten: several misspelt fields are all named,
// always in the order written (go-yaml picks one in map order).
func TestFirstUnknownFieldAsWritten(t *testing.T) {
	src := "rule_dirs: [.]\nhttp:\n  adress: x\n  b: 1\n  c: 1\n  d: 1\n  e: 1\nreload: {f: 1}\n"
	for range 30 {
		_, err := Parse("c.yaml", []byte(src), Options{LookupEnv: noEnv})
		want := `c.yaml:3:3: unknown field "adress" in http
c.yaml:4:3: unknown field "b" in http
c.yaml:5:3: unknown field "c" in http
c.yaml:6:3: unknown field "d" in http
c.yaml:7:3: unknown field "e" in http
c.yaml:8:10: unknown field "f" in reload`
		if err == nil || err.Error() != want {
			t.Fatalf("err = %v, want every unknown field in the order written:\n%s", err, want)
		}
	}
}
