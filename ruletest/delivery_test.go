package ruletest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// deliveryRules: Down pages the pager channel per host; Outage (every host
// down) goes to chat and inhibits Down.
const deliveryRules = `groups:
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
        notify: [pager]
      - name: Outage
        severity: critical
        segment_by: [host]
        across: every
        condition: max("up") == 0
        for: 2m
        inhibits:
          rules: [Down]
        notify: [chat]
`

// deliveryNotifiers has a channel of each kind; their secrets are named,
// never set.
const deliveryNotifiers = `notifiers:
  group_wait: 1m
  group_interval: 5m
  channels:
    - name: pager
      webhook:
        url_env: PAGER_URL
        secret_env: PAGER_KEY
    - name: chat
      slack:
        token_env: VIGIL_RULETEST_SLACK_TOKEN
        channel: "#ops"
    - name: mail
      email:
        smarthost: smtp.example.com:587
        username: vigil
        password_file: /nonexistent/password
        from: vigil@example.com
        to: [ops@example.com]
    - name: console
      console: {}
  default_channels: [console]
`

// a down from 1m, b up: Down fires for a at 3m, its page is due at 4m.
const oneDown = `    input_series:
      - {metric: up, labels: {host: a}, values: "1 0x19"}
      - {metric: up, labels: {host: b}, values: "1x20"}
`

// both down from 1m: Outage fires at 3m and inhibits both Down alerts.
const allDown = `    input_series:
      - {metric: up, labels: {host: a}, values: "1 0x9"}
      - {metric: up, labels: {host: b}, values: "1 0x9"}
`

// amPager sends pager's messages in Alertmanager's webhook format, which
// links to Vigil (externalURL, generatorURL).
var amPager = strings.Replace(deliveryNotifiers, "secret_env: PAGER_KEY", "secret_env: PAGER_KEY\n        format: alertmanager", 1)

func TestRunDelivery(t *testing.T) {
	head := "rule_files: [rules.yaml]\n" + deliveryNotifiers + "tests:\n  - name: t\n"
	tests := []struct {
		name    string
		test    string            // after head (one test named t), or whole when it starts with rule_files
		files   map[string]string // more files in the test's directory
		update  bool
		want    Result
		wantErr string   // the error, file:line and all (the directory as DIR); "" for none
		wantOut []string // output lines, in order (DIR for the directory)
		golden  map[string]string
	}{
		{
			name: "group received",
			test: oneDown + `    expect_notifications:
      - at: 3m
        notifications: []
      - at: 4m
        notifications:
          - channel: pager
            group: {alertname: Down}
            alerts: [{labels: {alertname: Down, host: a}}]
      - at: 6m
        notifications: []
`,
			want: Result{Passed: 1},
		},
		{
			name: "group expected but not sent yet (group_wait)",
			test: oneDown + `    expect_notifications:
      - at: 3m
        notifications:
          - channel: pager
            alerts: [{labels: {host: a}}]
      - at: 4m
        notifications: []
`,
			want: Result{Failed: 1},
			wantOut: []string{"FAIL DIR/rules_test.yaml: t",
				"at 3m0s, notifications:", "expected 1:", "- pager: firing {host=\"a\"}", "sent 0:",
				"at 4m0s, notifications:", "expected 0:", "sent 1:",
				`+ pager group {alertname="Down"}: firing {alertname="Down", host="a", severity="high"}`},
		},
		{
			name: "group labels differ",
			test: oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, group: {alertname: Down, host: a}}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{"at 4m0s, notifications:", `- pager group {alertname="Down", host="a"}`, `+ pager group {alertname="Down"}: firing`},
		},
		{
			name: "a resolved alert in the group, and the wrong status",
			test: `    input_series:
      - {metric: up, labels: {host: a}, values: "1 0x4 1x10"}
      - {metric: up, labels: {host: b}, values: "1x15"}
    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, alerts: [{labels: {host: a}}]}]
      - at: 9m
        notifications: [{channel: pager, alerts: [{status: firing, labels: {host: a}}]}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{"at 9m0s, notifications:", "- pager: firing {host=\"a\"}", `+ pager group {alertname="Down"}: resolved`},
		},
		{
			name: "inhibited",
			test: allDown + `    expect_notifications:
      - at: 3m
        inhibited: [{labels: {alertname: Down, host: a}}, {labels: {alertname: Down, host: b}}]
        silenced: []
      - at: 4m
        notifications:
          - channel: chat
            group: {alertname: Outage}
`,
			want: Result{Passed: 1},
		},
		{
			name: "inhibited, expected otherwise",
			test: allDown + `    expect_notifications:
      - at: 3m
        inhibited: [{labels: {host: a}}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{"at 3m0s, inhibited:", "expected 1 alert(s):", `  {host="a"}`, "got 2 alert(s):", `+ {alertname="Down", host="b", severity="high"}`},
		},
		{
			name: "silenced",
			test: `    silences:
      - matchers: ['host="a"', 'alertname=~"Do.*"']
        start: 2m
        end: 10m
        comment: maintenance
` + oneDown + `    expect_notifications:
      - at: 3m
        silenced: [{labels: {alertname: Down, host: a}}]
        inhibited: []
      - at: 4m
        notifications: []
      # The silence ends at 10m: the page goes out after group_wait.
      - at: 10m
        notifications: []
        silenced: []
      - at: 11m
        notifications: [{channel: pager, group: {alertname: Down}}]
`,
			want: Result{Passed: 1},
		},
		{
			name: "silenced, expected not to be",
			test: `    silences:
      - matchers: ['host="a"']
        comment: maintenance
` + oneDown + `    expect_notifications:
      - at: 4m
        silenced: []
        notifications: [{channel: pager}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{"at 4m0s, notifications:", "- pager", "sent 0:", "at 4m0s, silenced:", "expected 0 alert(s):", `+ {alertname="Down", host="a", severity="high"}`},
		},
		{
			name: "golden matches",
			test: oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/page.json}]
`,
			files: map[string]string{"testdata/page.json": ""}, // filled by the first run with update below
			want:  Result{Passed: 1},
		},
		{
			name: "golden differs",
			test: oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/page.json}]
`,
			files: map[string]string{"testdata/page.json": "{\n  \"version\": \"0\"\n}\n"},
			want:  Result{Failed: 1},
			wantOut: []string{"FAIL DIR/rules_test.yaml: t",
				`at 4m0s, channel pager, group {alertname="Down"}: body differs from golden file testdata/page.json (vigil test --update rewrites it):`,
				"--- golden", "+++ sent", `-   "version": "0"`, `+   "version": "1",`},
		},
		{
			name: "golden missing",
			test: oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/nope.json}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{`at 4m0s, channel pager, group {alertname="Down"}: golden file testdata/nope.json does not exist (vigil test --update writes it)`},
		},
		{
			name: "update writes the golden files",
			test: allDown + `    expect_notifications:
      - at: 4m
        notifications:
          - {channel: chat, golden: testdata/outage.slack.json}
`,
			files:   map[string]string{"testdata/outage.slack.json": "old\n"},
			update:  true,
			want:    Result{Passed: 1},
			wantOut: []string{"updated DIR/testdata/outage.slack.json"},
			golden: map[string]string{"testdata/outage.slack.json": `"method": "chat.postMessage"`,
				"": `"text": "🔥 [FIRING:1] Outage: all segments (2)"`},
		},
		{
			name: "messages link to the default external URL",
			test: "rule_files: [rules.yaml]\n" + amPager + "tests:\n  - name: t\n" + oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/page.json}]
`,
			update:  true,
			want:    Result{Passed: 1},
			wantOut: []string{"updated DIR/testdata/page.json"},
			golden:  map[string]string{"testdata/page.json": `"generatorURL": "http://vigil.test/rules/Down"`},
		},
		{
			name: "messages link to the file's external_url",
			test: "rule_files: [rules.yaml]\nexternal_url: https://vigil.example.com/\n" + amPager + "tests:\n  - name: t\n" + oneDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/page.json}]
`,
			update:  true,
			want:    Result{Passed: 1},
			wantOut: []string{"updated DIR/testdata/page.json"},
			golden:  map[string]string{"testdata/page.json": `"generatorURL": "https://vigil.example.com/rules/Down"`},
		},
		{
			name: "a template that fails fails the test",
			test: "rule_files: [rules.yaml]\n" + strings.Replace(deliveryNotifiers, `channel: "#ops"`, `channel: "#ops"
        title: '{{ .Nope }}'`, 1) + "tests:\n  - name: t\n" + allDown + `    expect_notifications:
      - at: 4m
        notifications: [{channel: chat, group: {alertname: Outage}}]
`,
			want:    Result{Failed: 1},
			wantOut: []string{`at 4m0s, channel chat, group {alertname="Outage"}: rendering failed: template title: template: title:1:3:`, "can't evaluate field Nope"},
		},
		{
			name: "a template that fails fails the test though nothing is expected of it then",
			test: "rule_files: [rules.yaml]\n" + strings.Replace(deliveryNotifiers, `channel: "#ops"`, `channel: "#ops"
        title: '{{ .Nope }}'`, 1) + "tests:\n  - name: t\n" + allDown + `    expect_notifications:
      - at: 5m
        notifications: []
`,
			want:    Result{Failed: 1},
			wantOut: []string{`at 4m0s, channel chat, group {alertname="Outage"}: rendering failed: template title:`},
		},
		{
			name: "update: one golden file for two different messages",
			test: `    input_series:
      - {metric: up, labels: {host: a}, values: "1 0x4 1x10"}
      - {metric: up, labels: {host: b}, values: "1x15"}
    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: testdata/page.json}]
      - at: 9m
        notifications: [{channel: pager, golden: testdata/page.json}]
`,
			update:  true,
			want:    Result{Failed: 1},
			wantOut: []string{"updated DIR/testdata/page.json", `at 9m0s, channel pager, group {alertname="Down"}: golden file testdata/page.json holds another message's body in this run: give each message its own file`},
		},
		{
			name: "no delivery sections: nothing changes",
			test: `rule_files: [rules.yaml]
tests:
  - input_series: [{metric: up, labels: {host: a}, values: "0x3"}]
    expect: [{at: 2m, rule: Down, alerts: [{labels: {host: a}}]}]
`,
			want: Result{Passed: 1},
		},
		{
			name:    "unknown channel",
			test:    oneDown + "    expect_notifications:\n      - at: 4m\n        notifications: [{channel: pagr}]\n",
			wantErr: `DIR/rules_test.yaml:31: test "t": channel "pagr": no such channel in the notifiers (have chat, console, mail, pager)`,
		},
		{
			name: "every unknown field of the notifiers, each at its line",
			test: "rule_files: [rules.yaml]\n" + strings.Replace(deliveryNotifiers, "group_wait: 1m", "group_wiat: 1m\n  grop_by: [x]", 1) +
				"tests:\n  - name: t\n" + oneDown,
			wantErr: `DIR/rules_test.yaml: 3:3: unknown field "group_wiat" in notifiers; 4:3: unknown field "grop_by" in notifiers`,
		},
		{
			name: "a secret set two ways is refused as vigil check refuses it, though none is read",
			test: "rule_files: [rules.yaml]\n" + strings.Replace(deliveryNotifiers, "secret_env: PAGER_KEY", "secret_env: PAGER_KEY\n        secret_file: /nonexistent/key", 1) +
				"tests:\n  - name: t\n" + oneDown,
			wantErr: `DIR/rules_test.yaml:3: notifiers: channel "pager": webhook: secret_env and secret_file are mutually exclusive`,
		},
		{
			name:    "golden file outside the test's directory",
			test:    oneDown + "    expect_notifications:\n      - at: 4m\n        notifications: [{channel: pager, golden: ../../etc/passwd}]\n",
			wantErr: `DIR/rules_test.yaml:31: test "t": golden "../../etc/passwd": want a path inside the test file's directory (relative, no ..)`,
		},
		{
			name:    "golden file by absolute path",
			test:    oneDown + "    expect_notifications:\n      - at: 4m\n        notifications: [{channel: pager, golden: /etc/passwd}]\n",
			wantErr: `DIR/rules_test.yaml:31: test "t": golden "/etc/passwd": want a path inside the test file's directory (relative, no ..)`,
		},
		{
			name:    "at between evaluations",
			test:    oneDown + "    expect_notifications:\n      - at: 90s\n        notifications: []\n",
			wantErr: `DIR/rules_test.yaml:30: test "t": expect_notifications at 1m30s: not a multiple of evaluation_interval 1m0s`,
		},
		{
			name:    "bad silence matcher",
			test:    "    silences:\n      - matchers: ['host=~\"(\"']\n        comment: x\n" + oneDown,
			wantErr: `DIR/rules_test.yaml:27: test "t": silences[0]: matcher "host=~\"(\"": regex "(": error parsing regexp`,
		},
		{
			name: "delivery expectations without notifiers",
			test: `rule_files: [rules.yaml]
tests:
  - name: t
    expect_notifications: [{at: 1m, notifications: []}]
`,
			wantErr: `DIR/rules_test.yaml: test "t": silences and expect_notifications need the notifiers: set config: (a Vigil config) or notifiers: at the top of the file`,
		},
		{
			name:    "config and notifiers both",
			test:    "rule_files: [rules.yaml]\nconfig: vigil.yaml\n" + deliveryNotifiers + "tests: []\n",
			wantErr: "DIR/rules_test.yaml:2: config: give either config or notifiers, not both",
		},
		{
			name:    "config without the file",
			test:    "rule_files: [rules.yaml]\nconfig: vigil.yaml\ntests: []\n",
			wantErr: "DIR/rules_test.yaml:2: config: open DIR/vigil.yaml: no such file or directory",
		},
		{
			name: "config's notifiers are used; the rest of it is not read",
			test: "rule_files: [rules.yaml]\nconfig: vigil.yaml\ntests:\n  - name: t\n" + oneDown +
				"    expect_notifications: [{at: 4m, notifications: [{channel: pager}]}]\n",
			files: map[string]string{"vigil.yaml": "collectors: [{name: x, type: nonsense}]\nhttp: {bearer_token_env: UNSET_TOKEN}\n" + deliveryNotifiers},
			want:  Result{Passed: 1},
		},
		{
			name:    "a bad notifiers section",
			test:    "rule_files: [rules.yaml]\nnotifiers:\n  channels: [{name: pager, webhook: {}}]\ntests: []\n",
			wantErr: `DIR/rules_test.yaml:3: notifiers: channel "pager": webhook: url: set url, url_env or url_file`,
		},
		{
			name: "rules name a channel the notifiers lack",
			test: "rule_files: [rules.yaml]\nnotifiers:\n  channels: [{name: pager, console: {}}]\ntests: []\n",
			wantErr: "DIR/rules_test.yaml: the rules name channels the notifiers lack:\n" +
				`DIR/rules.yaml:21:18: rule "Outage": notify: no channel named "chat"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A secret in the environment must reach no output or file.
			t.Setenv("VIGIL_RULETEST_SLACK_TOKEN", "xoxb-ruletest-secret")
			dir := t.TempDir()
			write := func(name, s string) {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("rules.yaml", deliveryRules)
			for name, s := range tc.files {
				write(name, s)
			}
			test := tc.test
			if !strings.HasPrefix(test, "rule_files") {
				test = head + test
			}
			path := filepath.Join(dir, "rules_test.yaml")
			write("rules_test.yaml", test)
			if tc.name == "golden matches" {
				// The golden file is what the channel sends: written once
				// by --update, then compared.
				if _, err := RunWith(&bytes.Buffer{}, Options{Update: true}, path); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			got, err := RunWith(&out, Options{Update: tc.update}, path)
			if strings.Contains(out.String(), "xoxb-") || (err != nil && strings.Contains(err.Error(), "xoxb-")) {
				t.Errorf("a secret is in the output:\n%s%v", out.String(), err)
			}
			if tc.wantErr != "" {
				want := strings.ReplaceAll(tc.wantErr, "DIR", dir)
				if err == nil || !strings.HasPrefix(err.Error(), want) {
					t.Fatalf("Run error:\n%v\nwant one starting\n%s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v\n%s", err, out.String())
			}
			if got != tc.want {
				t.Errorf("Run = %+v, want %+v\noutput:\n%s", got, tc.want, out.String())
			}
			rest := out.String()
			for _, line := range tc.wantOut {
				line = strings.ReplaceAll(line, "DIR", dir)
				i := strings.Index(rest, line)
				if i < 0 {
					t.Errorf("output lacks %q (in order)\noutput:\n%s", line, out.String())
					break
				}
				rest = rest[i+len(line):]
			}
			for name, want := range tc.golden {
				if name == "" {
					continue
				}
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				for _, w := range []string{want, tc.golden[""]} {
					if !strings.Contains(string(b), w) {
						t.Errorf("%s lacks %q:\n%s", name, w, b)
					}
				}
				if strings.Contains(string(b), "xoxb-") {
					t.Errorf("%s holds the token", name)
				}
				// Once written, it passes without --update.
				if res, err := Run(&bytes.Buffer{}, path); err != nil || res.Failed != 0 {
					t.Errorf("after --update: %+v %v", res, err)
				}
			}
		})
	}
}

// A golden file reached through a symlink out of the test's directory is
// neither printed in a diff nor overwritten by --update: a test file in a
// pull request must not reach the CI runner's files.
func TestGoldenSymlinkOutOfTheDirectory(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "key")
	if err := os.WriteFile(secret, []byte("TOP-SECRET-LINE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "g")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(deliveryRules), 0o644)
	path := filepath.Join(dir, "rules_test.yaml")
	os.WriteFile(path, []byte("rule_files: [rules.yaml]\n"+deliveryNotifiers+"tests:\n  - name: t\n"+oneDown+`    expect_notifications:
      - at: 4m
        notifications: [{channel: pager, golden: g/key}]
`), 0o644)
	for _, update := range []bool{false, true} {
		var out bytes.Buffer
		res, err := RunWith(&out, Options{Update: update}, path)
		if err != nil || res.Failed != 1 {
			t.Errorf("update=%v: %+v %v, want the test failed\n%s", update, res, err, out.String())
		}
		if strings.Contains(out.String(), "TOP-SECRET") {
			t.Errorf("update=%v: the file outside is shown:\n%s", update, out.String())
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "TOP-SECRET-LINE\n" {
		t.Errorf("--update wrote through the symlink: %q", b)
	}
}

// A golden file of many lines that differs from a long body shows a short
// diff without a table of lines × lines.
func TestLineDiffOfLargeBodies(t *testing.T) {
	var a, b strings.Builder
	for i := range 50000 {
		fmt.Fprintf(&a, "line %d\n", i)
		fmt.Fprintf(&b, "line %d\n", i)
		if i == 25000 {
			b.WriteString("inserted\n")
		}
	}
	d := lineDiff(a.String(), b.String(), 20)
	if !strings.Contains(d, "+ inserted") || strings.Count(d, "\n") > 10 {
		t.Errorf("diff:\n%s", d)
	}
	// Rewritten whole: removed then added, cut at the limit.
	d = lineDiff(strings.ReplaceAll(a.String(), "line", "old"), b.String(), 20)
	if !strings.Contains(d, "- old 0") || !strings.HasSuffix(d, "  ...") {
		t.Errorf("diff:\n%s", d)
	}
}
