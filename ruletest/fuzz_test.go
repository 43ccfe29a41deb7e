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
		// Through delivery: an inline notifiers section, silences, and
		// every kind of expectation.
		"rule_files: [rules.yaml]\nnotifiers:\n  group_wait: 1m\n  channels: [{name: c, console: {}}, {name: s, slack: {token_env: T, channel: '#x'}}]\n  default_channels: [c, s]\n" +
			"tests:\n  - silences: [{matchers: ['host=\"a\"'], start: 1m, end: 3m, comment: m}]\n    input_series: [{metric: up, labels: {host: a}, values: \"1 0x6\"}]\n" +
			"    expect_notifications:\n      - {at: 4m, notifications: [{channel: c, group: {alertname: Down}, alerts: [{status: firing, labels: {host: a}}]}], inhibited: [], silenced: []}\n",
		"rule_files: [rules.yaml]\nnotifiers: {channels: [{name: w, webhook: {url: 'http://x/', format: alertmanager}}], default_channels: [w]}\n" +
			"tests:\n  - input_series: [{metric: up, values: \"0x9\"}]\n    expect_notifications: [{at: 5m, notifications: [{channel: w}]}, {at: 90s, silenced: [{labels: {}}]}]\n",
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
		// Nor read other files: config: and golden: name any path (a
		// device never ends), and a quoted key may spell them with escapes.
		if bytes.Contains(data, []byte("max_series_length")) || bytes.Contains(data, []byte("config")) ||
			bytes.Contains(data, []byte("golden")) || bytes.Contains(data, []byte(`\`)) ||
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
