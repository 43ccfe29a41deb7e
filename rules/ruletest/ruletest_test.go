package ruletest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const downRule = `groups:
  - name: g
    interval: 1m
    rules:
      - name: Down
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        for: 2m
        annotations:
          summary: '{{ label "host" }} is down'
`

// TestRun writes a rule file and a test file into a temporary directory and
// runs them: passing tests are counted, a failing expectation is counted
// and printed as a readable diff, and files that cannot run are errors.
func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		rules    string // written to rules.yaml unless empty
		test     string // written to rules_test.yaml
		want     Result
		wantErr  string   // part of the error; "" for none
		wantOut  []string // lines (trimmed) the output must hold, in order
		noOutput bool
	}{
		{
			name:  "passes",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: down host fires after 2m
    input_series:
      - metric: up
        labels: {host: a}
        values: 1 0x5
      - metric: up
        labels: {host: b}
        values: 1x6
    expect:
      - {at: 0m, rule: Down, alerts: []}
      - at: 1m
        rule: Down
        alerts: [{state: pending, labels: {host: a}}]
      - at: 3m
        rule: Down
        alerts:
          - labels: {host: a, severity: high, alertname: Down}
            annotations: {summary: a is down}
`,
			want:     Result{Passed: 1},
			noOutput: true,
		},
		{
			name:  "a failing expectation prints a diff",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: expects firing too early
    input_series:
      - metric: up
        labels: {host: a}
        values: 1 0x5
    expect:
      - at: 2m
        rule: Down
        alerts:
          - state: firing
            labels: {host: a}
`,
			want: Result{Failed: 1},
			wantOut: []string{
				"FAIL " /* path */, ": expects firing too early",
				"at 2m0s, rule Down:",
				"expected 1 alert(s):",
				`- firing {host="a"}`,
				"got 1 alert(s):",
				`+ pending {alertname="Down", host="a", severity="high"} annotations {summary="a is down"} value=0`,
			},
		},
		{
			name:  "an unexpected alert and a wrong annotation",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: ok
    input_series:
      - {metric: up, labels: {host: a}, values: "0x4"}
    expect:
      - at: 3m
        rule: Down
        alerts: [{labels: {host: a}}]
  - name: expects silence
    input_series:
      - {metric: up, labels: {host: a}, values: "0x4"}
    expect:
      - {at: 3m, rule: Down, alerts: []}
  - name: wrong summary
    input_series:
      - {metric: up, labels: {host: a}, values: "0x4"}
    expect:
      - at: 3m
        rule: Down
        alerts: [{annotations: {summary: b is down}}]
`,
			want: Result{Passed: 1, Failed: 2},
			wantOut: []string{
				": expects silence",
				"expected 0 alert(s):",
				"got 1 alert(s):",
				`+ firing {alertname="Down", host="a", severity="high"}`,
				": wrong summary",
				`- firing {} annotations {summary="b is down"}`,
				`+ firing {alertname="Down", host="a", severity="high"} annotations {summary="a is down"} value=0`,
			},
		},
		{
			name:  "resolved shows once",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series:
      - {metric: up, labels: {host: a}, values: 0x3 1x3}
    expect:
      - {at: 2m, rule: Down, alerts: [{state: firing}]}
      - {at: 3m, rule: Down, alerts: [{state: resolved}]}
      - {at: 4m, rule: Down, alerts: []}
`,
			want:     Result{Passed: 1},
			noOutput: true,
		},
		{
			name:    "missing rule file",
			test:    "rule_files: [nope.yaml]\ntests: []\n",
			wantErr: "nope.yaml",
		},
		{
			name:    "no rule files",
			test:    "tests: []\n",
			wantErr: "rule_files",
		},
		{
			name:    "unknown field in the test file",
			rules:   downRule,
			test:    "rule_files: [rules.yaml]\nevaluation_intervall: 1m\n",
			wantErr: "evaluation_intervall",
		},
		{
			name:    "a broken rule file",
			rules:   strings.Replace(downRule, "high", "urgent", 1),
			test:    "rule_files: [rules.yaml]\ntests: []\n",
			wantErr: `unknown severity "urgent"`,
		},
		{
			name:  "expectation for an unknown rule",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: typo
    input_series: [{metric: up, values: "0"}]
    expect: [{at: 0m, rule: Dwon, alerts: []}]
`,
			wantErr: `no rule named "Dwon"`,
		},
		{
			name:  "at between evaluations",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series: [{metric: up, values: "0"}]
    expect: [{at: 90s, rule: Down, alerts: []}]
`,
			wantErr: "not a multiple of evaluation_interval",
		},
		{
			name:  "bad series notation",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series: [{metric: up, values: "1 0y3"}]
    expect: [{at: 0m, rule: Down, alerts: []}]
`,
			wantErr: `values "0y3"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.rules != "" {
				if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(tc.rules), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "rules_test.yaml")
			if err := os.WriteFile(path, []byte(tc.test), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			got, err := Run(&out, path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Run error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if got != tc.want {
				t.Errorf("Run = %+v, want %+v\noutput:\n%s", got, tc.want, out.String())
			}
			if tc.noOutput && out.Len() > 0 {
				t.Errorf("output for passing tests:\n%s", out.String())
			}
			rest := out.String()
			for _, line := range tc.wantOut {
				i := strings.Index(rest, line)
				if i < 0 {
					t.Errorf("output lacks %q (in order)\noutput:\n%s", line, out.String())
					break
				}
				rest = rest[i+len(line):]
			}
		})
	}
}

// TestRunExamples keeps the reference rules' tests passing.
func TestRunExamples(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "rules", "etcd_test.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Skip(err)
	}
	var out bytes.Buffer
	res, err := Run(&out, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 0 || res.Passed == 0 {
		t.Errorf("examples: %+v\n%s", res, out.String())
	}
}
