package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func TestExampleConfigLoads(t *testing.T) {
	env := func(k string) (string, bool) {
		if k == "VIGIL_SLACK_BOT_TOKEN" {
			return "xoxb-test", true
		}
		return "", false
	}
	c, err := Load("../examples/vigil.yaml", Options{LookupEnv: env})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.RuleDirs[0], filepath.Join("..", "examples", "rules"); got != want {
		t.Errorf("rule dir %q, want %q (relative to the config file)", got, want)
	}
	rs, err := c.LoadRules()
	if err != nil {
		t.Fatalf("example rules against example channels: %v", err)
	}
	if len(rs.Rules()) == 0 {
		t.Fatal("no rules")
	}
	if len(c.Collectors) == 0 || len(c.Notifiers.Channels) == 0 {
		t.Fatal("collectors or channels missing")
	}
}

// Every semantic mistake is reported in one go, each at its line:col.
func TestErrorsAllAtOnceWithPositions(t *testing.T) {
	_, err := Load("testdata/bad.yaml", Options{LookupEnv: noEnv})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		"testdata/bad.yaml:1:20: rule_dirs: stat testdata/missing: no such file or directory",
		`testdata/bad.yaml:3:12: http.address: address localhost: missing port in address`,
		"testdata/bad.yaml:4:21: http.bearer_token_env: environment variable VIGIL_TEST_UNSET_TOKEN is not set or empty",
		"testdata/bad.yaml:6:9: state.path: directory testdata/nodir does not exist",
		`testdata/bad.yaml:8:12: reload.notify: no channel named "pager" (configured: ops)`,
		`testdata/bad.yaml:10:5: collectors[0]: collector "c": timeout 5s is longer than interval 1s`,
		`testdata/bad.yaml:15:11: collectors: name "c" used twice (first at collectors[0])`,
		`testdata/bad.yaml:15:5: collectors[1]: collector "c": unknown type "nope" (want etcd, prometheus, probe or exec)`,
		`testdata/bad.yaml:20:7: notifiers: channel "ops": console: output: "printer" is neither stdout nor stderr`,
		`testdata/bad.yaml:23:7: notifiers: routes[0].match.severity: "urgent" is not one of critical, high, medium, low, info`,
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("missing error\n  %s\ngot:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
}

func TestStrictDecoding(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, src, want string }{
		{"unknown field", "rule_dirs: [.]\nhttp:\n  adress: x\n", ":3:3: unknown field \"adress\""},
		{"bad duration", "rule_dirs: [.]\nreload:\n  debounce: soon\n", ":3:13:"},
		{"wrong shape", "rule_dirs: .\n", ":1:12:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "v.yaml")
			os.WriteFile(p, []byte(tc.src), 0o644)
			_, err := Load(p, Options{LookupEnv: noEnv})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRulesNotifyCheckedAgainstChannels(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(p, []byte("rule_dirs: ["+filepath.Join(mustAbs(t, "testdata"), "rules")+"]\nnotifiers:\n  channels:\n    - {name: console, console: {}}\n"), 0o644)
	c, err := Load(p, Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LoadRules()
	if err == nil || !strings.Contains(err.Error(), `r.yaml:8:18: rule "Down": notify: no channel named "ops"`) {
		t.Fatalf("got %v", err)
	}
}

func TestBearerTokenFromFile(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	p := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(p, []byte("rule_dirs: [.]\nhttp:\n  bearer_token_file: "+tok+"\n"), 0o644)
	c, err := Load(p, Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.BearerToken() != "s3cret" {
		t.Fatalf("token %q", c.BearerToken())
	}
	if c.HTTP.Address != DefaultHTTPAddress || c.Reload.Debounce != Duration(DefaultDebounce) {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// SecretFiles names the files a reload re-reads for rotated secrets: the
// channels' and the API's bearer token, once each.
func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	tok, hook := filepath.Join(dir, "token"), filepath.Join(dir, "hook")
	os.WriteFile(tok, []byte("s3cret\n"), 0o600)
	os.WriteFile(hook, []byte("https://hooks.example/T0\n"), 0o600)
	p := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(p, []byte(`rule_dirs: [.]
http:
  bearer_token_file: `+tok+`
notifiers:
  channels:
    - name: a
      webhook: {url_file: `+hook+`, secret_file: `+tok+`}
    - name: b
      webhook: {url: "https://example.com/"}
`), 0o644)
	c, err := Load(p, Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(c.SecretFiles(), ","), hook+","+tok; got != want {
		t.Errorf("SecretFiles = %s, want %s", got, want)
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// The ha: section is optional; its mistakes come with file:line:col like
// the rest of the config.
func TestHASection(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	base := "rule_dirs: [rules]\n"
	c, err := Parse(filepath.Join(dir, "vigil.yaml"), []byte(base), Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.HA != nil {
		t.Errorf("no ha: section, got %+v", c.HA)
	}
	good := base + "ha:\n  endpoints: [http://127.0.0.1:2379]\n  prefix: /vigil/test/\n  session_ttl: 5s\n  name: a\n"
	c, err = Parse(filepath.Join(dir, "vigil.yaml"), []byte(good), Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.HA == nil || c.HA.Name != "a" || c.HA.TTL() != 5 || c.HA.Endpoints[0] != "http://127.0.0.1:2379" {
		t.Errorf("ha: %+v", c.HA)
	}
	bad := base + `ha:
  endpoints: [http://a:2379, etcd-1:2379]
  session_ttl: 1500ms
  username: vigil
  password_env: VIGIL_TEST_UNSET_ETCD_PASSWORD
  tls: {ca_file: /nonexistent/ca.pem}
`
	path := filepath.Join(dir, "vigil.yaml")
	_, err = Parse(path, []byte(bad), Options{LookupEnv: noEnv})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		path + `:3:14: ha.endpoints[1]: "etcd-1:2379" must start with http:// or https://`,
		path + ":4:16: ha.session_ttl: 1.5s must be a whole number of seconds, at least 1s (etcd leases count seconds)",
		path + ":6:17: ha.password_env: environment variable VIGIL_TEST_UNSET_ETCD_PASSWORD is not set or empty",
		path + ":7:18: ha.tls: open /nonexistent/ca.pem: no such file or directory",
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, err = Parse(path, []byte(base+"ha:\n  prefix: /x/\n"), Options{LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), ":3:3: ha.endpoints: at least one etcd endpoint is required") {
		t.Errorf("missing endpoints: %v", err)
	}
}

// A channel's own group_by and timings are checked as the global ones
// are, each error at its field, with the rest of the file's mistakes.
func TestChannelGroupingErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.yaml")
	src := `rule_dirs: [.]
notifiers:
  group_by: [cluster]
  repeat_interval: -1h
  channels:
    - name: ok
      console: {}
      group_by: []
      repeat_interval: 24h
    - name: slack
      console: {}
      group_wait: -30s
      group_by: [cluster, "bad label"]
    - name: email
      console: {output: printer}
      repeat_interval: -24h
`
	_, err := Parse(path, []byte(src), Options{LookupEnv: noEnv})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		path + `:4:20: notifiers: repeat_interval: -1h0m0s is negative`,
		path + `:12:19: notifiers: channel "slack": group_wait: -30s is negative`,
		path + `:13:27: notifiers: channel "slack": group_by[1]: "bad label" is not a label name`,
		path + `:14:7: notifiers: channel "email": console: output: "printer" is neither stdout nor stderr`,
		path + `:16:24: notifiers: channel "email": repeat_interval: -24h0m0s is negative`,
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A duration that does not parse is a decoding error at its value.
	bad := strings.Replace(src, "repeat_interval: 24h", "repeat_interval: daily", 1)
	_, err = Parse(path, []byte(bad), Options{LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), path+":9:24:") {
		t.Errorf("unparsable override: %v, want it at 9:24", err)
	}

	// Through Load, as `vigil check --config` reads it.
	good := strings.NewReplacer("-1h", "1h", "-30s", "1m", `, "bad label"`, "", "output: printer", "output: stderr", "-24h", "24h").Replace(src)
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if ch := c.Notifiers.Channels[0]; ch.GroupBy == nil || len(ch.GroupBy) != 0 || ch.RepeatInterval != 24*time.Hour {
		t.Errorf("channel ok: group_by %#v, repeat_interval %v; want [] (not unset) and 24h", ch.GroupBy, ch.RepeatInterval)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, Options{LookupEnv: noEnv}); err == nil || !strings.Contains(err.Error(), path+`:12:19: notifiers: channel "slack": group_wait`) {
		t.Errorf("Load: %v", err)
	}
}

// The silences section has defaults, takes values, and a mistake in it is
// reported at its line:col.
func TestSilencesSection(t *testing.T) {
	dir := t.TempDir()
	load := func(src string) (*Config, error) {
		p := filepath.Join(dir, "v.yaml")
		os.WriteFile(p, []byte("rule_dirs: [.]\n"+src), 0o644)
		return Load(p, Options{LookupEnv: noEnv})
	}
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Silences; got.MaxSilences != 1000 || got.MaxSilenceSizeBytes != 8192 || time.Duration(got.MaxDuration) != 14*24*time.Hour {
		t.Errorf("defaults: %+v", got)
	}
	c, err = load("silences:\n  max_silences: 50\n  max_silence_size_bytes: 2048\n  max_duration: 72h\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Silences; got.MaxSilences != 50 || got.MaxSilenceSizeBytes != 2048 || time.Duration(got.MaxDuration) != 72*time.Hour {
		t.Errorf("set: %+v", got)
	}
	for _, tc := range []struct{ src, want string }{
		{"silences:\n  max_silences: -1\n", ":3:17: silences.max_silences: -1 is negative"},
		{"silences:\n  max_silence_size_bytes: -5\n", ":3:27: silences.max_silence_size_bytes: -5 is negative"},
		{"silences:\n  max_duration: -1h\n", ":3:"},
		{"silences:\n  max_silence: 5\n", `:3:3: unknown field "max_silence"`},
	} {
		if _, err := load(tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

// A scrape credential written in the config, or a typo in the scrape
// client config, is an error at the field's line, without the secret.
func TestScrapeAuthErrorsPointAtTheField(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(p, []byte(`rule_dirs: [.]
collectors:
  - name: app
    type: prometheus
    prometheus:
      basic_auth:
        username: vigil
        password: canary-inline-pw
    targets: [{address: "http://h/metrics"}]
  - name: app2
    type: prometheus
    prometheus:
      authorization: {credentials_fil: /x}
    targets: [{address: "http://h/metrics"}]
`), 0o644)
	_, err := Load(p, Options{LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), ":13:23: unknown field \"credentials_fil\"") {
		t.Fatalf("typo: %v", err)
	}
	os.WriteFile(p, []byte(`rule_dirs: [.]
collectors:
  - name: app
    type: prometheus
    prometheus:
      basic_auth:
        username: vigil
        password: canary-inline-pw
    targets: [{address: "http://h/metrics"}]
`), 0o644)
	_, err = Load(p, Options{LookupEnv: noEnv})
	want := p + `:8:19: collectors[0]: collector "app": prometheus.basic_auth.password: a secret written in the config; use basic_auth.password_file`
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "canary-inline-pw") {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
