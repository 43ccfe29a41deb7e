package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `vigil check --config` validates the config and its rules as `run` would.
func TestCheckConfig(t *testing.T) {
	t.Setenv("VIGIL_SLACK_BOT_TOKEN", "xoxb-test")
	var out, errb bytes.Buffer
	if code := run([]string{"check", "--config", "../../examples/vigil.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	contains(t, "stdout", out.String(), "ok: config ../../examples/vigil.yaml, 3 collector(s), 3 channel(s), 13 rule(s)")

	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(strings.Replace(upRule, "notify: [console]", "notify: [pager]", 1)), 0o644)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte("rule_dirs: [rules]\nhttp: {adress: x}\n"), 0o644)
	out.Reset()
	errb.Reset()
	if code := run([]string{"check", "--config=" + filepath.Join(dir, "vigil.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	contains(t, "stderr", errb.String(), "vigil.yaml:2:8: unknown field \"adress\"")

	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte("rule_dirs: [rules]\nnotifiers:\n  channels: [{name: console, console: {}}]\n"), 0o644)
	errb.Reset()
	if code := run([]string{"check", "--config", filepath.Join(dir, "vigil.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	contains(t, "stderr", errb.String(), `r.yaml:13:18: rule "MemberUp": notify: no channel named "pager"`, "1 error(s)")
}

// `vigil run` refuses a bad config with every error and exit status 1.
func TestRunRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte("rule_dirs: [missing]\nhttp: {address: nowhere}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"run", "--config", filepath.Join(dir, "vigil.yaml")}, &out, &errb); code != 1 {
		t.Fatalf("exit %d", code)
	}
	contains(t, "stderr", errb.String(), "vigil.yaml:1:13: rule_dirs:", "vigil.yaml:2:17: http.address:", "2 error(s) in the config")
}
