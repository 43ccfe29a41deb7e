package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/recording"
)

const memberDownRules = `groups:
  - name: etcd
    interval: 10s
    rules:
      - name: EtcdMemberDown
        severity: high
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 0
        for: 30s
`

// recordOutage runs the daemon with record: against a real 3-member etcd
// cluster, stops member 2 after 5 steps and records 20 steps in all. It
// returns the harness (stopped) and the time the live daemon fired.
func recordOutage(t *testing.T) (*harness, time.Time) {
	dir := t.TempDir()
	c, err := etcdtest.Start(3, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	h := harnessIn(t, dir, webOptions{EnableUnauthenticatedWrites: true})
	h.write("rules/member.yaml", memberDownRules)
	var targets strings.Builder
	for i, ep := range c.Endpoints() {
		fmt.Fprintf(&targets, "      - name: m%d\n        address: %s\n        tags: {host.mac: \"02:00:00:00:00:0%d\", agent.tag.role: etcd}\n", i+1, ep, i+1)
	}
	h.write("vigil.yaml", `rule_dirs: [rules]
http: {address: 127.0.0.1:0}
record: {dir: rec}
collectors:
  - name: etcd
    type: etcd
    interval: 10s
    timeout: 2s
    targets:
`+targets.String()+`notifiers:
  default_channels: [console]
  channels:
    - name: console
      console: {}
`)
	h.start()
	h.tick(5)
	c.Members()[1].Shutdown()
	var fired time.Time
	for range 15 {
		h.tick(1)
		if a, ok := h.alert("EtcdMemberDown"); ok && fired.IsZero() && !a.FiredAt.IsZero() {
			fired = a.FiredAt
		}
	}
	if err := h.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if fired.IsZero() {
		t.Fatal("the live daemon never fired EtcdMemberDown")
	}
	return h, fired
}

// TestReplayAndDiffOnRecordedOutage records a real member outage, replays
// it (the alert fires when it fired live), then compares a threshold
// change committed in git with the files on disk.
func TestReplayAndDiffOnRecordedOutage(t *testing.T) {
	h, fired := recordOutage(t)
	rec := filepath.Join(h.dir, "rec")
	samples, warn, err := recording.Load(rec)
	if err != nil || len(warn) > 0 {
		t.Fatal(err, warn)
	}
	if len(samples) < 20 {
		t.Fatalf("recorded %d samples of 20 collections of 3 members", len(samples))
	}

	var out, errb bytes.Buffer
	if code := run([]string{"replay", "--rules", h.rulesDir, "--data", rec}, &out, &errb); code != 0 {
		t.Fatalf("vigil replay: exit %d: %s%s", code, out.String(), errb.String())
	}
	want := fired.UTC().Format("2006-01-02 15:04:05Z07:00") + "  firing   EtcdMemberDown {host.mac=\"02:00:00:00:00:02\"}"
	t.Logf("vigil replay:\n%s", out.String())
	if !strings.Contains(out.String(), want) {
		t.Fatalf("the replay must fire as the live daemon did, at %s:\n%s", fired, out.String())
	}
	if strings.Contains(out.String(), "00:00:00:00:01") || strings.Contains(out.String(), "00:00:00:00:03") {
		t.Fatalf("members 1 and 3 were up:\n%s", out.String())
	}

	// The incident as a regression test: written, and passing.
	captured := filepath.Join(h.dir, "member_test.yaml")
	out.Reset()
	errb.Reset()
	if code := run([]string{"capture", "--rules", h.rulesDir, "--data", rec, "--alert", "EtcdMemberDown",
		"--match", "host.mac=02:00:00:00:00:02", "--out", captured}, &out, &errb); code != 0 {
		t.Fatalf("vigil capture: exit %d: %s%s", code, out.String(), errb.String())
	}
	test, _ := os.ReadFile(captured)
	t.Logf("captured:\n%s", test)
	for _, want := range []string{`rule_files: ["rules/member.yaml"]`, `metric: "etcd.can_connect"`,
		"- state: firing\n            labels: {\"host.mac\": \"02:00:00:00:00:02\"}"} {
		if !strings.Contains(string(test), want) {
			t.Fatalf("captured test lacks %q", want)
		}
	}
	if strings.Contains(string(test), "00:00:00:00:01") {
		t.Fatal("the capture must keep only the alert's segment")
	}
	if code := run([]string{"test", captured}, &out, &errb); code != 0 {
		t.Fatalf("the captured test fails on the rules it was captured from: %s", out.String())
	}
	checkCapturedDelivery(t, h.dir, string(test))

	// The rules as committed, then a slower `for` on disk.
	repo, err := git.PlainInit(h.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(msg string) {
		wt, _ := repo.Worktree()
		if _, err := wt.Add("rules/member.yaml"); err != nil {
			t.Fatal(err)
		}
		if _, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "sre", Email: "sre@example.com", When: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	commit("member down after 30s")
	h.write("rules/member.yaml", strings.Replace(memberDownRules, "for: 30s", "for: 1m", 1))

	out.Reset()
	if code := run([]string{"test", captured}, &out, &errb); code != 1 {
		t.Fatalf("the captured incident must catch the slower page: exit %d: %s", code, out.String())
	}
	out.Reset()
	errb.Reset()
	code := run([]string{"diff", "--base", "HEAD", "--data", rec, h.rulesDir}, &out, &errb)
	if code != 1 {
		t.Fatalf("vigil diff with a change: exit %d, want 1: %s%s", code, out.String(), errb.String())
	}
	t.Logf("vigil diff:\n%s", out.String())
	if !strings.Contains(out.String(), "EtcdMemberDown\n  later: {host.mac=\"02:00:00:00:00:02\"} fires 30s later") {
		t.Fatalf("want the member page 30s later:\n%s", out.String())
	}

	out.Reset()
	code = run([]string{"diff", "--base", "HEAD", "--data", rec, "--format", "markdown", h.rulesDir}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "| EtcdMemberDown | later | {host.mac=\"02:00:00:00:00:02\"} |") {
		t.Fatalf("markdown: exit %d:\n%s", code, out.String())
	}

	// A threshold that never holds: the page is gone.
	commit("slower")
	h.write("rules/member.yaml", strings.Replace(memberDownRules, "== 0", "< 0", 1))
	out.Reset()
	if code := run([]string{"diff", "--base", "HEAD~1", "--data", rec, h.rulesDir}, &out, &errb); code != 1 ||
		!strings.Contains(out.String(), "gone: {host.mac=\"02:00:00:00:00:02\"} no longer fires") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}

	// Two revisions with the same alerts: nothing to say, exit 0.
	out.Reset()
	if code := run([]string{"diff", "--base", "HEAD", "--head", "HEAD", "--data", rec, h.rulesDir}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "no change") {
		t.Fatalf("same revision: exit %d:\n%s", code, out.String())
	}

	// A revision that does not exist, or data that is not a recording:
	// exit 2 with the reason.
	errb.Reset()
	if code := run([]string{"diff", "--base", "nosuchbranch", "--data", rec, h.rulesDir}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), `revision "nosuchbranch"`) {
		t.Fatalf("bad revision: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"diff", "--base", "HEAD", "--data", h.cfgPath, h.rulesDir}, &out, &errb); code != 2 ||
		!strings.Contains(errb.String(), "not a recording") {
		t.Fatalf("bad data: exit %d: %s", code, errb.String())
	}
}

// checkCapturedDelivery extends the captured incident with the daemon's
// own notifiers: the page goes to the console once group_wait (30s) has
// passed after firing, and `vigil test --update` writes the message as the
// channel prints it, which the test then holds to.
func checkCapturedDelivery(t *testing.T, dir, captured string) {
	t.Helper()
	test := strings.Replace(captured, "evaluation_interval: 10s\n", "evaluation_interval: 10s\nconfig: vigil.yaml\n", 1) + `    expect_notifications:
      - at: 1m30s
        notifications: []
      - at: 2m
        notifications:
          - channel: console
            group: {alertname: EtcdMemberDown}
            alerts:
              - labels: {host.mac: "02:00:00:00:00:02"}
            golden: member_down.console.txt
`
	path := filepath.Join(dir, "member_delivery_test.yaml")
	if err := os.WriteFile(path, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"test", "--update", path}, &out, &errb); code != 0 {
		t.Fatalf("vigil test --update: exit %d: %s%s", code, out.String(), errb.String())
	}
	golden, err := os.ReadFile(filepath.Join(dir, "member_down.console.txt"))
	if err != nil || !strings.Contains(string(golden), "EtcdMemberDown") || !strings.Contains(string(golden), "02:00:00:00:00:02") {
		t.Fatalf("golden file %v:\n%s", err, golden)
	}
	out.Reset()
	if code := run([]string{"test", path}, &out, &errb); code != 0 {
		t.Fatalf("the delivery test fails against its own golden file: %s%s", out.String(), errb.String())
	}
}

// A rule file that does not load at the base revision is reported with
// its revision, so it is not mistaken for the file on disk.
func TestDiffBadBaseNamesTheRevision(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "a.yaml"), []byte("groups:\n  - name: g\n    rules:\n      - name: R\n        condition: max(\"m\") >\n"), 0o644)
	repo, _ := git.PlainInit(dir, false)
	wt, _ := repo.Worktree()
	wt.Add("rules/a.yaml")
	h, err := wt.Commit("broken", &git.CommitOptions{Author: &object.Signature{Name: "a", Email: "a@b", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "rules", "a.yaml"), []byte(memberDownRules), 0o644)
	rec := filepath.Join(dir, "r"+recording.Ext)
	f, _ := os.Create(rec)
	w, _ := recording.NewWriter(f)
	w.Close()
	f.Close()
	var out, errb bytes.Buffer
	code := run([]string{"diff", "--base", "HEAD", "--data", rec, filepath.Join(dir, "rules")}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "rules/a.yaml@"+h.String()[:12]+":5:") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// vigil record runs a config's collectors and nothing else: a live member
// and a dead one are both in the recording, the dead one as down.
func TestRecordCommand(t *testing.T) {
	dir := t.TempDir()
	dead := testkit.SilentListener(t)
	cfg := filepath.Join(dir, "vigil.yaml")
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(cfg, []byte(`rule_dirs: [rules]
collectors:
  - name: etcd
    type: etcd
    interval: 1s
    timeout: 500ms
    targets:
      - {name: up, address: `+sharedEtcd(t)+`, tags: {host.mac: "up"}}
      - {name: wedged, address: http://`+dead+`, tags: {host.mac: "wedged"}}
`), 0o644)
	out := filepath.Join(dir, "rec")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"record", "--config", cfg, "--out", out, "--collections", "2"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	samples, _, err := recording.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string][]float64{}
	times := map[time.Time]bool{}
	for _, s := range samples {
		if s.Metric == "etcd.can_connect" {
			seen[s.Labels["host.mac"]] = append(seen[s.Labels["host.mac"]], s.Value)
		}
		times[s.Time] = true
	}
	if fmt.Sprint(seen["up"]) != "[1 1]" || fmt.Sprint(seen["wedged"]) != "[0 0]" {
		t.Fatalf("can_connect by member: %v, want up [1 1] and wedged [0 0]", seen)
	}
	if len(times) != 2 {
		t.Fatalf("%d collection times, want 2", len(times))
	}
	if !strings.Contains(stdout.String(), "2 collection(s) incomplete") {
		t.Fatalf("the wedged member's failures must be reported: %s", stdout.String())
	}
}
