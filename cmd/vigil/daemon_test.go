package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
)

// A rule file edited while Vigil runs takes effect; an unchanged rule
// keeps its pending timer across the reload.
func TestEditedRuleTakesEffect(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(2)
	a, ok := h.alert("MemberUp")
	if !ok || a.State != model.StatePending {
		t.Fatalf("MemberUp not pending: %+v", a)
	}
	since := a.ActiveAt

	// Annotations change (the rule's meaning does not) and a rule is added.
	edited := strings.Replace(upRule, "is up", "answers", 1) + `
      - name: MemberLeader
        severity: info
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.is_leader") == 1
        for: 0s
`
	h.write("rules/etcd.yaml", edited)
	h.waitFor("the new rule", func() bool { return h.hasRule("MemberLeader") })

	h.tick(1)
	a, _ = h.alert("MemberUp")
	if a.State != model.StatePending || !a.ActiveAt.Equal(since) {
		t.Fatalf("pending timer not kept across reload: %+v (was since %v)", a, since)
	}
	if l, ok := h.alert("MemberLeader"); !ok || l.State != model.StateFiring {
		t.Errorf("new rule not evaluated: %+v", l)
	}
	if got := h.d.sched.Names(); len(got) != 2 { // collect/etcd, eval/members
		t.Errorf("jobs after reload: %v", got)
	}
	h.tick(5) // 1m after ActiveAt
	if a, _ = h.alert("MemberUp"); a.State != model.StateFiring || !a.FiredAt.Equal(since.Add(time.Minute)) {
		t.Fatalf("MemberUp should fire 1m after %v: %+v", since, a)
	}
	// The engine re-renders annotations when an alert changes state (a
	// kept pending alert shows the old text until then).
	if a.Annotations["summary"] != "member m0 answers" {
		t.Errorf("new annotation not used: %q", a.Annotations["summary"])
	}
	h.waitFor("the console message", func() bool { return strings.Contains(h.console.String(), "MemberUp") })

	_, body := h.get("/api/v1/rules", "")
	contains(t, "/api/v1/rules", body, `"name": "MemberLeader"`, `"ok": true`, `"health": "ok"`)
}

// A broken edit keeps the old rules running (the file's last good version)
// and reports the error with file:line:col in the API, the metrics, the
// page and as an alert.
func TestBrokenEditKeepsOldRules(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(1)
	h.write("rules/etcd.yaml", strings.Replace(upRule, `max("etcd.can_connect") == 1`, `max("etcd.can_connect") ==`, 1))
	h.waitFor("the failed reload", func() bool { return !h.d.reload.Load().OK })

	if !h.hasRule("MemberUp") {
		t.Fatal("old rules dropped")
	}
	st := h.d.reload.Load()
	if len(st.Errors) == 0 || !strings.Contains(st.Errors[0], filepath.Join(h.rulesDir, "etcd.yaml")+":9:") {
		t.Fatalf("error without file:line: %q", st.Errors)
	}
	_, body := h.get("/api/v1/rules", "")
	contains(t, "/api/v1/rules", body, `"ok": false`, "etcd.yaml:9:")
	_, body = h.get("/metrics", "")
	contains(t, "/metrics", body, "vigil_reload_success 0", `vigil_reloads_total{result="partial"} 1`)
	_, body = h.get("/", "")
	contains(t, "status page", body, "Rule files quarantined", "its last good version is still evaluated", "etcd.yaml:9:")

	h.tick(2) // group_wait passes: the reload alert reaches reload.notify
	h.waitFor("the reload alert on the console", func() bool { return strings.Contains(h.console.String(), ReloadAlertName) })
	if a, ok := h.alert("MemberUp"); !ok || a.State != model.StatePending {
		t.Fatalf("old rule not evaluated after failed reload: %+v", a)
	}

	h.write("rules/etcd.yaml", upRule)
	h.waitFor("the good reload", func() bool { return h.d.reload.Load().OK })
	_, body = h.get("/metrics", "")
	contains(t, "/metrics", body, "vigil_reload_success 1")
}

// A Kubernetes ConfigMap volume: the rule file is a symlink through
// ..data, and an update re-points ..data at a new hidden directory.
func TestConfigMapSymlinkSwapReloads(t *testing.T) {
	h := newHarness(t, upRule)
	os.Remove(filepath.Join(h.rulesDir, "etcd.yaml"))
	v1 := filepath.Join(h.rulesDir, "..2026_03_01_12_00_00.1")
	os.Mkdir(v1, 0o755)
	os.WriteFile(filepath.Join(v1, "etcd.yaml"), []byte(upRule), 0o644)
	os.Symlink(filepath.Base(v1), filepath.Join(h.rulesDir, "..data"))
	os.Symlink("..data/etcd.yaml", filepath.Join(h.rulesDir, "etcd.yaml"))
	h.waitFor("reload of the ConfigMap layout", func() bool { return h.d.reload.Load().OK && h.hasRule("MemberUp") })

	v2 := filepath.Join(h.rulesDir, "..2026_03_01_12_05_00.2")
	os.Mkdir(v2, 0o755)
	os.WriteFile(filepath.Join(v2, "etcd.yaml"), []byte(strings.Replace(upRule, "MemberUp", "MemberAnswers", 1)), 0o644)
	os.Symlink(filepath.Base(v2), filepath.Join(h.rulesDir, "..data_tmp"))
	if err := os.Rename(filepath.Join(h.rulesDir, "..data_tmp"), filepath.Join(h.rulesDir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(v1)
	h.waitFor("the swapped rules", func() bool { return h.hasRule("MemberAnswers") && !h.hasRule("MemberUp") })
}

// SIGHUP and POST /-/reload reload too; the bearer token guards the API
// and page but not the probes or /metrics.
func TestReloadTriggersAndToken(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(1) // ready after the first collection
	code, _ := h.get("/readyz", "")
	if code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	h.d.Stop()

	os.WriteFile(filepath.Join(h.dir, "token"), []byte("t0ken\n"), 0o600)
	h.write("vigil.yaml", strings.Replace(baseConfig(sharedEtcd(t), ""), "  address: 127.0.0.1:0\n",
		"  address: 127.0.0.1:0\n  bearer_token_file: "+filepath.Join(h.dir, "token")+"\n", 1))
	h.start()
	h.tick(1)
	for _, p := range []string{"/api/v1/alerts", "/api/v1/rules", "/"} {
		if code, _ := h.get(p, ""); code != 401 {
			t.Errorf("%s without token: %d", p, code)
		}
		if code, _ := h.get(p, "t0ken"); code != 200 {
			t.Errorf("%s with token: %d", p, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _ := h.get(p, ""); code != 200 {
			t.Errorf("%s: %d", p, code)
		}
	}
	// POST /-/reload and SIGHUP each load a new file, even with file
	// events lost (the watcher is closed here).
	h.d.watch.Close()
	h.write("rules/more.yaml", strings.NewReplacer("MemberUp", "Other", "name: members", "name: other").Replace(upRule))
	req, _ := http.NewRequest("POST", "http://"+h.d.Addr()+"/-/reload", nil)
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /-/reload: %v %v", resp, err)
	}
	resp.Body.Close()
	if !h.hasRule("Other") {
		t.Fatal("POST /-/reload did not load the new file")
	}

	sig, stop := notifySignals()
	defer stop()
	done := make(chan int, 1)
	go func() { done <- runUntilSignal(context.Background(), h.d, slog.New(slog.DiscardHandler), sig) }()
	h.write("rules/third.yaml", strings.NewReplacer("MemberUp", "Third", "name: members", "name: third").Replace(upRule))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	h.waitFor("SIGHUP reload", func() bool { return h.hasRule("Third") })
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	if code := <-done; code != 0 {
		t.Fatalf("exit status %d", code)
	}
}

// A restart restores a pending alert's timer: it fires `for` after it
// first became pending, not `for` after the restart. A firing alert stays
// firing with its original time.
func TestRestartRestoresState(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(3) // pending since the first tick, 20s ago
	a, _ := h.alert("MemberUp")
	since := a.ActiveAt
	if err := h.d.Stop(); err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Alerts []struct{ Rule, State string } `json:"alerts"`
	}
	b, _ := os.ReadFile(filepath.Join(h.dir, "state.json"))
	if err := json.Unmarshal(b, &saved); err != nil || len(saved.Alerts) != 1 || saved.Alerts[0].State != "pending" {
		t.Fatalf("state file: %s (%v)", b, err)
	}

	h.start()
	h.tick(1)
	a, ok := h.alert("MemberUp")
	if !ok || a.State != model.StatePending || !a.ActiveAt.Equal(since) {
		t.Fatalf("pending alert not restored: %+v", a)
	}
	h.tick(3) // 60s after since
	if a, _ = h.alert("MemberUp"); a.State != model.StateFiring || !a.FiredAt.Equal(since.Add(time.Minute)) {
		t.Fatalf("want firing at %v: %+v", since.Add(time.Minute), a)
	}
	fired := a.FiredAt
	h.d.Stop()
	h.start()
	h.tick(1)
	if a, _ = h.alert("MemberUp"); a.State != model.StateFiring || !a.FiredAt.Equal(fired) {
		t.Fatalf("firing alert not restored as firing since %v: %+v", fired, a)
	}
}

// A corrupt state file is reported and set aside, never a crash.
func TestCorruptStateFile(t *testing.T) {
	h := newHarness(t, upRule)
	h.d.Stop()
	h.write("state.json", `{"version": 1, "alerts": [`)
	h.start()
	if h.d.stateErr == "" {
		t.Fatal("corrupt state not reported")
	}
	matches, _ := filepath.Glob(filepath.Join(h.dir, "state.json.corrupt-*"))
	if len(matches) != 1 {
		t.Fatalf("corrupt file not set aside: %v", matches)
	}
	_, body := h.get("/", "")
	contains(t, "status page", body, "State file not restored")
}

// A firing alert that was delivered before a restart is not delivered
// again after it (the dispatcher's delivery state is in the state file),
// and its resolution still is.
func TestRestartDoesNotResendFiring(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	h.tick(3)
	h.waitFor("the first message", func() bool { return strings.Contains(h.console.String(), "MemberUp") })
	h.d.Stop()
	h.start()
	h.tick(5) // past group_wait and group_interval
	if strings.Contains(h.console.String(), "MemberUp") {
		t.Fatalf("sent again after restart:\n%s", h.console.String())
	}

	// The member stops being "up" for this rule: the alert resolves, and
	// the receiver that got the page gets the resolution.
	h.write("rules/etcd.yaml", strings.Replace(strings.Replace(upRule, "for: 1m", "for: 0s", 1), "== 1", "== 1 && false", 1))
	h.waitFor("the reload", func() bool { return h.d.reload.Load().Rules == 1 && h.d.reload.Load().Reason != "start" })
	h.tick(3)
	h.waitFor("the resolution", func() bool { return strings.Contains(h.console.String(), "RESOLVED") })
}

// An edited config reloads too: collectors are rebuilt and the notifiers
// section is applied, with no warning about a restart; only http, state
// and ha need one.
func TestConfigEditReloadsCollectors(t *testing.T) {
	h := newHarness(t, upRule)
	cfg := baseConfig(sharedEtcd(t), "")
	h.write("vigil.yaml", strings.NewReplacer("    interval: 10s\n", "    interval: 20s\n", "group_wait: 1s", "group_wait: 2s").Replace(cfg))
	// The collectors are swapped before the reload status is published.
	h.waitFor("the new collector", func() bool {
		cs := h.d.collectors()
		return len(cs) == 1 && cs[0].(interface{ Interval() time.Duration }).Interval() == 20*time.Second &&
			h.d.reload.Load().Reason != "start"
	})
	st := h.d.reload.Load()
	if !st.OK || len(st.Warnings) != 0 {
		t.Fatalf("reload status %+v", st)
	}
	if got := h.d.cfg.Load().Notifiers.GroupWait; got != 2*time.Second {
		t.Errorf("config in use has group_wait %v, want the edited 2s", got)
	}
	h.tick(1) // the new collector collects
	if _, ok := h.alert("MemberUp"); !ok {
		t.Fatal("no data from the rebuilt collector")
	}
	h.write("vigil.yaml", strings.NewReplacer("  path: state.json\n", "  path: other.json\n", "debounce: 20ms", "debounce: 30ms").Replace(cfg))
	h.waitFor("the state change reported", func() bool { return len(h.d.reload.Load().Warnings) > 0 })
	if st := h.d.reload.Load(); !st.OK || len(st.Warnings) != 2 || st.Warnings[0] != "state" || !strings.HasPrefix(st.Warnings[1], "reload.debounce") {
		t.Fatalf("reload status %+v", st)
	}
	if got := time.Duration(h.d.cfg.Load().Reload.Debounce); got != 20*time.Millisecond {
		t.Errorf("config in use has debounce %v, want the running watcher's 20ms", got)
	}
}

// hookChannel is a notifiers channel entry for baseConfig's extra text.
func hookChannel(name, url string) string {
	return "    - name: " + name + "\n      webhook: {url: " + url + "}\n"
}

// A webhook channel added to vigil.yaml, and a rule's notify naming it,
// take effect in one reload, without a restart: the new receiver is sent
// the alert that already fires, and the channel that already had it is
// not paged again.
func TestConfigEditAddsWebhookChannel(t *testing.T) {
	rules := strings.Replace(upRule, "for: 1m", "for: 0s", 1)
	h := newHarness(t, rules)
	h.tick(3)
	h.waitFor("the console message", func() bool { return strings.Contains(h.console.String(), "MemberUp") })
	pages := strings.Count(h.console.String(), "[FIRING:1] MemberUp")
	if pages != 1 {
		t.Fatalf("console: %d pages before the reload, want 1:\n%s", pages, h.console.String())
	}

	// Both files change before the reload, the rule file first: the rule
	// loads only against the new config's channels.
	rcv := webhooktest.NewReceiver(t)
	h.d.watch.Close()
	h.write("rules/etcd.yaml", strings.Replace(rules, "notify: [console]", "notify: [console, hook]", 1))
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), hookChannel("hook", rcv.URL)))
	req, _ := http.NewRequest("POST", "http://"+h.d.Addr()+"/-/reload", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /-/reload: %d %s", resp.StatusCode, body)
	}
	if st := h.d.reload.Load(); !st.OK || len(st.Warnings) != 0 {
		t.Fatalf("reload status %+v", st)
	}
	if got := strings.Join(h.d.disp.ChannelNames(), ","); got != "console,hook" {
		t.Fatalf("channels after the reload: %s", got)
	}

	h.tick(2) // group_wait (1s) passes for the new channel's group
	h.waitFor("the webhook message", func() bool { return rcv.Count("MemberUp", "firing") == 1 })
	h.tick(3)
	if n := strings.Count(h.console.String(), "[FIRING:1] MemberUp"); n != pages {
		t.Errorf("console paged again after the reload: %d pages, was %d", n, pages)
	}
	_, metrics := h.get("/metrics", "")
	contains(t, "/metrics", metrics, `vigil_notifications_sent_total{channel="hook"} 1`,
		`vigil_reloads_total{result="success"} 1`, `vigil_reloads_total{result="failure"} 0`)
	if rcv.Total() != 1 {
		t.Errorf("webhook: %s", rcv.Summary())
	}
}

// A notifiers section that does not load fails the reload with
// file:line:col and leaves the running channels as they were.
func TestConfigEditBadChannelKeepsNotifiers(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "    - name: hook\n      webhook: {url_env: VIGIL_TEST_UNSET}\n"))
	h.waitFor("the failed reload", func() bool { return !h.d.reload.Load().OK })
	st := h.d.reload.Load()
	if len(st.Errors) == 0 || !strings.HasPrefix(st.Errors[0], h.cfgPath+":") || !strings.Contains(strings.Join(st.Errors, "\n"), "VIGIL_TEST_UNSET") {
		t.Fatalf("errors without file:line or the variable: %q", st.Errors)
	}
	if got := strings.Join(h.d.disp.ChannelNames(), ","); got != "console" {
		t.Fatalf("channels after the failed reload: %s", got)
	}
	h.tick(3)
	h.waitFor("the console message from the old notifiers", func() bool { return strings.Contains(h.console.String(), "[FIRING:1] MemberUp") })
}

// With the real scheduler, collection and evaluation run by themselves,
// and evaluations are stamped with their slot (whole seconds for @every),
// not with the moment the goroutine woke up.
func TestRealSchedulerEvaluatesOnSlots(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(strings.Replace(upRule, "interval: 10s", "interval: 1s", 1)), 0o644)
	cfg := strings.Replace(baseConfig(sharedEtcd(t), ""), "    interval: 10s\n    timeout: 2s\n", "    interval: 1s\n    timeout: 500ms\n", 1)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
	d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), Console: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	h := &harness{t: t, d: d}
	h.waitFor("an evaluation with data", func() bool {
		a, ok := h.alert("MemberUp")
		return ok && a.State == model.StatePending
	})
	st := d.eng.RuleStatuses()[0]
	if st.LastEval.Nanosecond() != 0 {
		t.Fatalf("evaluation time %v is not a slot", st.LastEval)
	}
}

// A group with a cron schedule is evaluated on it, and a reload that
// changes only the schedule reschedules the group.
func TestGroupScheduleFromRules(t *testing.T) {
	nightly := strings.Replace(upRule, "interval: 10s", `schedule: "0 3 * * *"`, 1)
	if nightly == upRule {
		t.Fatal("upRule has no interval line to replace")
	}
	h := newHarness(t, nightly)
	name := "eval/" + firstGroup(t, nightly)
	next, ok := h.d.sched.Next(name, h.now())
	if want := time.Date(2026, 3, 2, 3, 0, 0, 0, time.UTC); !ok || !next.Equal(want) {
		t.Fatalf("next evaluation %v (job found: %v), want %v", next, ok, want)
	}
	h.write("rules/etcd.yaml", strings.Replace(nightly, "0 3 * * *", "30 12 * * *", 1))
	h.waitFor("the new schedule", func() bool {
		next, _ := h.d.sched.Next(name, h.now())
		return next.Equal(time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC))
	})
}

func firstGroup(t *testing.T, src string) string {
	for _, line := range strings.Split(src, "\n") {
		if s := strings.TrimSpace(line); strings.HasPrefix(s, "- name: ") {
			return strings.TrimPrefix(s, "- name: ")
		}
	}
	t.Fatal("no group name")
	return ""
}
