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

// brokenRule reads a label that is not a segment label: every evaluation
// fails.
const brokenRule = `groups:
  - name: g
    interval: 1m
    rules:
      - name: Broken
        severity: high
        segment_by: [host]
        condition: max("up") == 0 && labels["zone"] == "z"
`

const everyRule = `groups:
  - name: g
    rules:
      - name: AllDown
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
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
        values: 1 0x4
      - metric: up
        labels: {host: b}
        values: 1x5
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
			// promtool's exp_alerts list only firing alerts; states:
			// [firing] compares the same way, and still fails when a
			// firing alert is missing.
			name:  "states limits the comparison",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: pending is not compared
    input_series:
      - metric: up
        labels: {host: a}
        values: 1 0x4
    expect:
      - {at: 1m, rule: Down, states: [firing], alerts: []}
      - {at: 3m, rule: Down, states: [firing], alerts: [{labels: {host: a}}]}
  - name: a missing firing alert still fails
    input_series:
      - metric: up
        labels: {host: a}
        values: 1 0x4
    expect:
      - {at: 1m, rule: Down, states: [firing], alerts: [{labels: {host: a}}]}
`,
			want: Result{Passed: 1, Failed: 1},
			wantOut: []string{
				"FAIL ", ": a missing firing alert still fails",
				"at 1m0s, rule Down:",
				"(comparing only firing alerts)",
				`- firing {host="a"}`,
				"got 0 alert(s):",
			},
		},
		{
			name:  "an unknown state in states is an error",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series: [{metric: up, labels: {host: a}, values: "1"}]
    expect: [{at: 0m, rule: Down, states: [active], alerts: []}]
`,
			wantErr: `states: "active": want pending, firing or resolved`,
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
        values: 1 0x4
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
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - at: 3m
        rule: Down
        alerts: [{labels: {host: a}}]
  - name: expects silence
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: []}
  - name: wrong summary
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
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
      - {metric: up, labels: {host: a}, values: 0x2 1x2}
    expect:
      - {at: 2m, rule: Down, alerts: [{state: firing}]}
      - {at: 3m, rule: Down, alerts: [{state: resolved}]}
      - {at: 4m, rule: Down, alerts: []}
`,
			want:     Result{Passed: 1},
			noOutput: true,
		},
		{
			name: "value within a relative 1e-6",
			rules: `groups:
  - name: g
    interval: 1m
    rules:
      - name: Slow
        severity: low
        segment_by: [host]
        condition: last("lat") * 3 > 0.25
`,
			test: `rule_files: [rules.yaml]
tests:
  - name: close enough
    input_series:
      - {metric: lat, labels: {host: a}, values: "0 0.1 2"}
    expect:
      - {at: 1m, rule: Slow, alerts: [{labels: {host: a}, value: 0.3}]}
      - {at: 2m, rule: Slow, alerts: [{value: 6.000005}]}
  - name: too far
    input_series:
      - {metric: lat, labels: {host: a}, values: "0 0.1 2"}
    expect:
      - {at: 2m, rule: Slow, alerts: [{value: 6.00001}]}
`,
			want: Result{Passed: 1, Failed: 1},
			wantOut: []string{
				": too far",
				"- firing {} value=6.00001",
				`+ firing {alertname="Slow", host="a", severity="low"} value=6`,
			},
		},
		{
			name:  "an evaluation error fails the test, naming the rule's file:line",
			rules: brokenRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: expects nothing from a rule that cannot run
    input_series:
      - {metric: up, labels: {host: a, zone: z}, values: "0x3"}
    expect:
      - {at: 3m, rule: Broken, alerts: []}
`,
			want: Result{Failed: 1},
			wantOut: []string{
				": expects nothing from a rule that cannot run",
				"at 0s, rule Broken (", "rules.yaml:5): evaluation failed: ", "zone",
			},
		},
		{
			name:  "an expected label the alert lacks fails, even an empty one",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: team is not set
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: [{labels: {host: a, team: storage}}]}
  - name: empty team is not set either
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: [{labels: {host: a, team: ""}}]}
  - name: wrong host
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: [{labels: {host: b}}]}
  - name: subset of the labels passes
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: [{labels: {host: a}}]}
`,
			want: Result{Passed: 1, Failed: 3},
			wantOut: []string{
				": team is not set", `- firing {host="a", team="storage"}`,
				": empty team is not set either", `- firing {host="a", team=""}`,
				": wrong host", `- firing {host="b"}`,
			},
		},
		{
			name:  "an expected annotation the alert lacks fails",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: no runbook
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
    expect:
      - {at: 3m, rule: Down, alerts: [{annotations: {runbook: ""}}]}
`,
			want:    Result{Failed: 1},
			wantOut: []string{": no runbook", `- firing {} annotations {runbook=""}`},
		},
		{
			name:  "segments are counted",
			rules: everyRule,
			test: `rule_files: [rules.yaml]
tests:
  - name: two of two down
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
      - {metric: up, labels: {host: b}, values: "0x3"}
    expect:
      - {at: 2m, rule: AllDown, alerts: [{segments: 2}]}
  - name: three expected
    input_series:
      - {metric: up, labels: {host: a}, values: "0x3"}
      - {metric: up, labels: {host: b}, values: "0x3"}
    expect:
      - {at: 2m, rule: AllDown, alerts: [{segments: 3}]}
`,
			want:    Result{Passed: 1, Failed: 1},
			wantOut: []string{": three expected", "- firing {} segments=3", "+ firing", "segments=2"},
		},
		{
			name:  "a series longer than the default limit is an error at its line",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series:
      - metric: up
        values: 0x9223372036854775807
    expect: [{at: 0m, rule: Down, alerts: []}]
`,
			wantErr: `rules_test.yaml:5: test "test 1": series up: values "0x9223372036854775807": the series is too long: more than 100000 steps`,
		},
		{
			name:  "a series that would need terabytes is refused before allocating",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series:
      - {metric: up, values: "1 0x4000000000"}
    expect: [{at: 0m, rule: Down, alerts: []}]
`,
			wantErr: `rules_test.yaml:4: test "test 1": series up: values "0x4000000000": the series is too long`,
		},
		{
			name:  "max_series_length in the test file",
			rules: downRule,
			test: `rule_files: [rules.yaml]
max_series_length: 3
tests:
  - input_series:
      - {metric: up, values: "1 1 1"}
      - {metric: up, labels: {host: a},
         values: "1 1x2"}
    expect: [{at: 0m, rule: Down, alerts: []}]
`,
			wantErr: `rules_test.yaml:7: test "test 1": series up: values "1x2": the series is too long: more than 3 steps (max_series_length)`,
		},
		{
			name:  "an at too far away to evaluate up to",
			rules: downRule,
			test: `rule_files: [rules.yaml]
tests:
  - input_series: [{metric: up, values: "1"}]
    expect: [{at: 2000000h, rule: Down, alerts: []}]
`,
			wantErr: `expect at 2000000h0m0s: 120000000 evaluations of every 1m0s, more than 100000 (max_series_length)`,
		},
		{
			name:    "a negative max_series_length",
			rules:   downRule,
			test:    "rule_files: [rules.yaml]\nmax_series_length: -1\ntests: []\n",
			wantErr: "max_series_length: want a positive number",
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

// TestRunExamples keeps the reference rules' tests passing, those through
// delivery too.
func TestRunExamples(t *testing.T) {
	for _, name := range []string{"etcd_test.yaml", "etcd_delivery_test.yaml"} {
		path := filepath.Join("..", "examples", "rules", name)
		var out bytes.Buffer
		res, err := Run(&out, path)
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != 0 || res.Passed == 0 {
			t.Errorf("%s: %+v\n%s", name, res, out.String())
		}
	}
}
