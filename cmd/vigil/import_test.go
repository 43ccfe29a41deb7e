package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const promRules = `groups:
  - name: node
    rules:
      - alert: InstanceDown
        expr: up{job="node"} == 0
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: '{{ $labels.instance }} is down'
      - alert: SlowRequests
        expr: histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m])) > 1
        labels: {severity: warning}
`

const promTests = `rule_files: [rules.yml]
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="node", instance="n1"}'
        values: '1 0x5'
    alert_rule_test:
      - eval_time: 6m
        alertname: InstanceDown
        exp_alerts:
          - exp_labels: {severity: critical, job: node, instance: n1}
            exp_annotations: {summary: 'n1 is down'}
`

// vigil import prometheus writes the converted file, lists what it could
// not convert on stderr and exits 1; vigil import promtool converts the
// tests; the results pass vigil check and vigil test.
func TestImportCommand(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yml")
	testPath := filepath.Join(dir, "rules_test.yml")
	if err := os.WriteFile(rulesPath, []byte(promRules), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(testPath, []byte(promTests), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"import", "prometheus", rulesPath}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one rule not converted); stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), `rules.yml:10: rule "SlowRequests": not converted: histogram_quantile()`) {
		t.Errorf("stderr does not list the unconverted rule:\n%s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "1 of 2 rule(s) converted") {
		t.Errorf("stdout: %s", stdout.String())
	}
	out := filepath.Join(dir, "rules.vigil.yaml")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("# NOT CONVERTED SlowRequests")) {
		t.Errorf("the output does not keep the unconverted rule as a comment:\n%s", b)
	}

	// Nothing is overwritten without --force.
	stderr.Reset()
	if code := run([]string{"import", "prometheus", rulesPath}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "exists: use --force") {
		t.Errorf("second import: exit %d, stderr %s", code, stderr.String())
	}
	if code := run([]string{"import", "prometheus", "--force", "-o", dir, rulesPath}, &stdout, &bytes.Buffer{}); code != 1 {
		t.Errorf("--force: exit %d", code)
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"import", "promtool", testPath}, &stdout, &stderr); code != 0 {
		t.Fatalf("import promtool: exit %d\n%s", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"check", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil check of the converted rules: exit %d\n%s", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"test", filepath.Join(dir, "rules_test.vigil_test.yaml")}, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil test of the converted tests: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "ok: 1 rule test(s) passed") {
		t.Errorf("vigil test: %s", stdout.String())
	}
}

func TestImportUsage(t *testing.T) {
	for _, args := range [][]string{{"import", "-h"}, {"import", "--help"}, {"import", "prometheus", "-h"}, {"import", "promtool", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "usage: vigil import") || stderr.Len() != 0 {
			t.Errorf("vigil %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
	for _, args := range [][]string{{"import"}, {"import", "grafana", "x"}, {"import", "prometheus"}, {"import", "prometheus", "--nope", "x"}, {"import", "prometheus", "--rename-label", "x", "f"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stdout.Len() != 0 {
			t.Errorf("vigil %s: exit %d, stdout %q; want 2", strings.Join(args, " "), code, stdout.String())
		}
	}
}
