package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// vigil test on a copy of the example delivery test: a golden file edited
// by hand fails with a diff naming the file, test, time, channel and golden
// file; --update (before or after the files) writes back exactly what the
// channel sends, and the test passes again. No secret is set.
func TestTestCommandGoldenFilesAndUpdate(t *testing.T) {
	dir := t.TempDir()
	copyFile := func(from, to string) {
		b, err := os.ReadFile(filepath.Join("..", "..", "examples", from))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, to)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("vigil.yaml", "vigil.yaml")
	copyFile("rules/etcd.yaml", "rules/etcd.yaml")
	copyFile("rules/etcd_delivery_test.yaml", "rules/etcd_delivery_test.yaml")
	goldens, _ := filepath.Glob(filepath.Join("..", "..", "examples", "rules", "testdata", "*"))
	if len(goldens) == 0 {
		t.Fatal("no golden files in examples/rules/testdata")
	}
	for _, g := range goldens {
		copyFile(filepath.Join("rules", "testdata", filepath.Base(g)), filepath.Join("rules", "testdata", filepath.Base(g)))
	}
	t.Setenv("VIGIL_SLACK_BOT_TOKEN", "") // even set empty, nothing needs it
	testFile := filepath.Join(dir, "rules", "etcd_delivery_test.yaml")
	golden := filepath.Join(dir, "rules", "testdata", "member_unreachable.slack.json")
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(want), `"username": "vigil"`, `"username": "alertbot"`, 1)
	if edited == string(want) {
		t.Fatal("the golden file has no username to edit")
	}
	os.WriteFile(golden, []byte(edited), 0o644)

	var out, errOut bytes.Buffer
	if code := run([]string{"test", testFile}, &out, &errOut); code != 1 {
		t.Fatalf("an edited golden file: exit %d, want 1\n%s%s", code, out.String(), errOut.String())
	}
	for _, w := range []string{
		"FAIL " + testFile + ": a member down pages oncall-slack once; its recovery replies in the thread",
		`at 8m0s, channel oncall-slack, group {alertname="EtcdMemberUnreachable", cluster="main"}: body differs from golden file testdata/member_unreachable.slack.json (vigil test --update rewrites it):`,
		`-       "username": "alertbot"`,
		`+       "username": "vigil"`,
		"FAIL: 1 of 3 rule test(s) failed",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}

	out.Reset()
	if code := run([]string{"test", testFile, "--update"}, &out, &errOut); code != 0 {
		t.Fatalf("--update: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "updated "+golden+"\n") || strings.Count(out.String(), "updated ") != 1 {
		t.Errorf("--update should name the one file it rewrote:\n%s", out.String())
	}
	if got, _ := os.ReadFile(golden); !bytes.Equal(got, want) {
		t.Errorf("--update wrote:\n%s\nwant:\n%s", got, want)
	}
	out.Reset()
	if code := run([]string{"test", testFile}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "ok: 3 rule test(s) passed") {
		t.Errorf("after --update: exit %d\n%s", code, out.String())
	}
	if code := run([]string{"test", "--updat", testFile}, &out, &errOut); code != 2 {
		t.Errorf("an unknown flag: exit %d, want 2", code)
	}
}
