package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/rules"
)

// The example rules must route to channels the example notifier config
// defines, and a rule naming an unknown channel is an error with its place.
func TestExampleRulesRouteToExampleChannels(t *testing.T) {
	b, err := os.ReadFile("../../examples/vigil-notifiers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Notifiers notifiers.Config `yaml:"notifiers"`
	}
	if err := yaml.UnmarshalWithOptions(b, &file, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	var known []string
	for _, c := range file.Notifiers.Channels {
		known = append(known, c.Name)
	}
	set, err := rules.Load("../../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := set.CheckChannels(known); err != nil {
		t.Fatalf("example rules name channels the example config lacks:\n%v", err)
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`groups:
  - name: g
    rules:
      - name: A
        severity: low
        condition: max("x") == 0
        notify: [oncall-slack, pager]
`), 0o644)
	set, err = rules.Load(bad)
	if err != nil {
		t.Fatal(err)
	}
	err = set.CheckChannels(known)
	var errs rules.Errors
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("want one error for the unknown channel, got %v", err)
	}
	if want := bad + `:7:32: rule "A": notify: no channel named "pager"`; !strings.HasPrefix(errs[0].Error(), want) {
		t.Errorf("got  %s\nwant %s...", errs[0], want)
	}
}

func TestCheckAndTestCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "../../examples/rules"}, &out, &errOut); code != 0 {
		t.Fatalf("vigil check examples/rules exited %d: %s", code, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "ok: 2 file(s), 5 group(s), ") {
		t.Errorf("summary line: %q", out.String())
	}
	out.Reset()
	if code := run([]string{"test", "../../examples/rules/etcd_test.yaml"}, &out, &errOut); code != 0 {
		t.Fatalf("vigil test exited %d: %s%s", code, out.String(), errOut.String())
	}

	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("groups:\n  - name: g\n    rules:\n      - name: A\n        severity: urgent\n        conditon: x\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", dir}, &out, &errOut); code != 1 {
		t.Fatalf("check of a broken file exited %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), `r.yaml:6:9: rule "A": unknown field "conditon"`) {
		t.Errorf("check output lacks the file:line:col error:\n%s", errOut.String())
	}
}
