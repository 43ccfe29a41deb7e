package ruletest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRun runs arbitrary test files against a fixed rule file, as
// `vigil test` would: it never panics, a file it cannot run is an error
// naming the file, and a run reports only tests it counted.
func FuzzRun(f *testing.F) {
	for _, s := range []string{
		"rule_files: [rules.yaml]\ntests:\n  - input_series:\n      - {metric: up, labels: {host: a}, values: \"1 0x4\"}\n    expect:\n      - {at: 3m, rule: Down, alerts: [{labels: {host: a}}]}\n",
		"rule_files: [rules.yaml]\ntests:\n  - input_series:\n      - metric: up\n        values: 0x9223372036854775807\n    expect: [{at: 0m, rule: Down, alerts: []}]\n",
		"rule_files: [rules.yaml]\ntests:\n  - input_series: [{metric: up, values: \"1 0x4000000000\"}]\n    expect: [{at: 0m, rule: Down, alerts: []}]\n",
		"rule_files: [rules.yaml]\nevaluation_interval: 30s\ntests:\n  - interval: 1m\n    input_series: [{metric: up, labels: {host: b}, values: \"0 _x3 1+1x2\"}]\n    expect: [{at: 2m30s, rule: Down, alerts: [{state: pending, segments: 0}]}]\n",
		"rule_files: [rules.yaml]\ntests:\n  - input_series: [{metric: up, values: |\n      1 2\n      3\n    }]\n    expect: [{at: 90s, rule: Down, alerts: []}]\n",
		"rule_files: [rules.yaml]\ntests:\n  - expect: [{at: 2000000h, rule: Down, alerts: []}]\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(downRule), 0o644); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "fuzz_test.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		// The limit itself is the user's to raise: a file raising it may
		// ask for all the memory it likes. Only rules.yaml is loaded: the
		// fuzzer must not wander the file system (rule_files: [/]).
		if bytes.Contains(data, []byte("max_series_length")) ||
			!bytes.HasPrefix(data, []byte("rule_files: [rules.yaml]\n")) || bytes.Count(data, []byte("rule_files")) != 1 {
			t.Skip()
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Run(io.Discard, path)
		if err != nil && !strings.HasPrefix(err.Error(), path) {
			t.Fatalf("error does not name the test file: %v", err)
		}
		if res.Passed < 0 || res.Failed < 0 {
			t.Fatalf("result %+v", res)
		}
	})
}
