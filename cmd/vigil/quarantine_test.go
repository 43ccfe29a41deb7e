package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Per-file quarantine, end to end: real rule files, real file events and
// reloads, real HTTP; evaluation time stepped by the test.

// teamB is a second team's file: BAnswers fires at once while the member
// answers (can_connect >= 1).
const teamB = `groups:
  - name: team-b
    interval: 10s
    rules:
      - name: BAnswers
        severity: low
        scope: labels["agent.tag.role"] == "etcd"
        condition: max("etcd.can_connect") >= 1
        notify: [console]
`

// brokenUpRule is upRule with a condition cut short (etcd.yaml:9:).
var brokenUpRule = strings.Replace(upRule, `max("etcd.can_connect") == 1`, `max("etcd.can_connect") ==`, 1)

func (h *harness) condition(rule string) string {
	for _, r := range h.d.eng.Rules().Rules() {
		if r.Name == rule {
			return r.Condition.Source
		}
	}
	return ""
}

func (h *harness) quarantined(file string) (quarantinedFile, bool) {
	if st := h.d.reload.Load(); st != nil {
		for _, q := range st.Quarantined {
			if q.File == file {
				return q, true
			}
		}
	}
	return quarantinedFile{}, false
}

// A syntax error in team A's file does not hold back team B's threshold
// edit; A's last good rules go on evaluating with their alert state, and
// A is named with file:line:col in the API, on the page, in the metric and
// in a VigilReloadFailed alert of its own, which resolves once A is fixed.
func TestQuarantineBrokenFileKeepsRunningOthersApply(t *testing.T) {
	h := newHarness(t, upRule)
	a, b := filepath.Join(h.rulesDir, "etcd.yaml"), filepath.Join(h.rulesDir, "b.yaml")
	h.write("rules/b.yaml", teamB)
	h.waitFor("team B's file", func() bool { return h.hasRule("BAnswers") })
	h.tick(1)
	up, ok := h.alert("MemberUp")
	if !ok || up.State != model.StatePending {
		t.Fatalf("MemberUp not pending: %+v", up)
	}
	if ba, ok := h.alert("BAnswers"); !ok || ba.State != model.StateFiring {
		t.Fatalf("BAnswers not firing: %+v", ba)
	}

	h.write("rules/etcd.yaml", brokenUpRule)
	h.write("rules/b.yaml", strings.Replace(teamB, ">= 1", ">= 2", 1))
	h.waitFor("B's edit with A quarantined", func() bool {
		_, q := h.quarantined(a)
		return q && h.condition("BAnswers") == `max("etcd.can_connect") >= 2`
	})

	h.tick(1)
	if ba, ok := h.alert("BAnswers"); ok && ba.State == model.StateFiring {
		t.Errorf("B's new threshold not evaluated: %+v", ba)
	}
	if got, _ := h.alert("MemberUp"); got.State != model.StatePending || !got.ActiveAt.Equal(up.ActiveAt) {
		t.Fatalf("A's last good rule lost its state: %+v (pending since %v)", got, up.ActiveAt)
	}

	q, _ := h.quarantined(a)
	if !q.Running || len(q.Errors) != 1 || !strings.HasPrefix(q.Errors[0], a+":9:") {
		t.Fatalf("quarantine of A: %+v", q)
	}
	if _, ok := h.quarantined(b); ok {
		t.Fatal("B quarantined")
	}
	for _, path := range []string{"/api/v1/status", "/api/v1/rules"} {
		_, body := h.get(path, "")
		var v struct{ Reload reloadStatus }
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if qs := v.Reload.Quarantined; v.Reload.OK || len(qs) != 1 || qs[0].File != a || !qs[0].Running ||
			len(qs[0].Errors) != 1 || !strings.HasPrefix(qs[0].Errors[0], a+":9:46: ") || !qs[0].Since.Equal(h.now().Add(-h.step)) {
			t.Errorf("%s: want A quarantined since the reload:\n%s", path, body)
		}
	}
	code, body := request(t, "POST", "http://"+h.d.Addr()+"/-/reload", "", "")
	if code != 422 {
		t.Errorf("POST /-/reload with A quarantined: %d", code)
	}
	contains(t, "POST /-/reload", body, "rule files quarantined", a+":9:46: ")
	_, page := h.get("/", "")
	contains(t, "status page", page, `id="quarantine"`, a+"</code>", "its last good version is still evaluated", a+":9:")
	_, metrics := h.get("/metrics", "")
	contains(t, "/metrics", metrics, `vigil_rule_file_load_success{file="`+a+`"} 0`, `vigil_rule_file_load_success{file="`+b+`"} 1`,
		"vigil_reload_success 0")

	alerts := h.d.reloadAlerts(h.now())
	if len(alerts) != 1 || alerts[0].Labels["file"] != a || alerts[0].Rule != ReloadAlertName ||
		!strings.HasPrefix(alerts[0].Annotations["summary"], a+":9:") {
		t.Fatalf("want one VigilReloadFailed for A: %+v", alerts)
	}
	h.tick(2) // group_wait passes
	h.waitFor("A's VigilReloadFailed on the console", func() bool {
		return strings.Contains(h.console.String(), "FIRING   file="+a+" ")
	})

	h.tick(3) // 1m after MemberUp went pending: the old rule fires on time
	if got, _ := h.alert("MemberUp"); got.State != model.StateFiring || !got.FiredAt.Equal(up.ActiveAt.Add(time.Minute)) {
		t.Fatalf("A's last good rule should fire 1m after %v: %+v", up.ActiveAt, got)
	}

	// Another edit of B: applied, and A's quarantine keeps its start.
	h.write("rules/b.yaml", strings.Replace(teamB, ">= 1", ">= 3", 1))
	// The status is published after the rules: wait for it.
	h.waitFor("B's second edit", func() bool {
		return h.condition("BAnswers") == `max("etcd.can_connect") >= 3` && h.d.reload.Load().At.After(q.Since)
	})
	if q2, _ := h.quarantined(a); !q2.Since.Equal(q.Since) {
		t.Errorf("A quarantined since %v, then %v (reload at %v)", q.Since, q2.Since, h.d.reload.Load().At)
	}

	h.write("rules/etcd.yaml", upRule)
	h.waitFor("A fixed", func() bool { return h.d.reload.Load().OK })
	_, metrics = h.get("/metrics", "")
	contains(t, "/metrics", metrics, `vigil_rule_file_load_success{file="`+a+`"} 1`, "vigil_reload_success 1")
	if got, _ := h.alert("MemberUp"); got.State != model.StateFiring || !got.ActiveAt.Equal(up.ActiveAt) {
		t.Errorf("MemberUp's state not kept when A loads again: %+v", got)
	}
	if alerts := h.d.reloadAlerts(h.now()); len(alerts) != 0 {
		t.Errorf("VigilReloadFailed after the fix: %+v", alerts)
	}
	h.tick(2) // group_interval: the resolution goes out
	h.waitFor("A's VigilReloadFailed resolved", func() bool {
		return strings.Contains(h.console.String(), "RESOLVED file="+a+" ")
	})
	_, page = h.get("/", "")
	if strings.Contains(page, `id="quarantine"`) {
		t.Error("page still shows a quarantine")
	}
}

// A rule name taken by a new file quarantines the new file; the file that
// had the name keeps running, and deleting the new file clears it all,
// metric series included.
func TestQuarantineDuplicateNameInNewFile(t *testing.T) {
	h := newHarness(t, upRule)
	a := filepath.Join(h.rulesDir, "etcd.yaml")
	h.tick(1)
	up, _ := h.alert("MemberUp")

	// Sorted before etcd.yaml, and written later: "newer" is by change,
	// not by name.
	h.write("rules/0-dup.yaml", strings.Replace(upRule, "name: members", "name: copied", 1))
	dup := filepath.Join(h.rulesDir, "0-dup.yaml")
	h.waitFor("the new file quarantined", func() bool { _, ok := h.quarantined(dup); return ok })
	q, _ := h.quarantined(dup)
	if q.Running || len(q.Errors) != 1 || !strings.Contains(q.Errors[0], dup+`:5:`) ||
		!strings.Contains(q.Errors[0], `rule "MemberUp": duplicate rule name, first defined at `+a+":5:") {
		t.Fatalf("quarantine of the new file: %+v", q)
	}
	if _, ok := h.quarantined(a); ok {
		t.Fatal("the older file was quarantined")
	}
	h.tick(1)
	if got, _ := h.alert("MemberUp"); got.State != model.StatePending || !got.ActiveAt.Equal(up.ActiveAt) || got.Group != "members" {
		t.Fatalf("the older MemberUp not kept: %+v", got)
	}
	_, page := h.get("/", "")
	contains(t, "status page", page, dup+"</code>", "never loaded: its rules are not evaluated")
	_, metrics := h.get("/metrics", "")
	contains(t, "/metrics", metrics, `vigil_rule_file_load_success{file="`+dup+`"} 0`)

	os.Remove(dup)
	h.waitFor("the deletion", func() bool { return h.d.reload.Load().OK })
	_, metrics = h.get("/metrics", "")
	if strings.Contains(metrics, dup) {
		t.Errorf("/metrics still has the deleted file:\n%s", metrics)
	}
	if alerts := h.d.reloadAlerts(h.now()); len(alerts) != 0 {
		t.Errorf("VigilReloadFailed after the deletion: %+v", alerts)
	}
}

// A file caught half written (an editor or a copy that has not finished)
// is quarantined; once complete it applies.
func TestQuarantineHalfWrittenFile(t *testing.T) {
	h := newHarness(t, upRule)
	c := filepath.Join(h.rulesDir, "c.yaml")
	full := strings.Replace(teamB, "BAnswers", "CAnswers", 1)
	h.write("rules/c.yaml", full[:strings.Index(full, "condition:")+len("condition: max(")])
	h.waitFor("the half-written file quarantined", func() bool { _, ok := h.quarantined(c); return ok })
	if q, _ := h.quarantined(c); q.Running || !strings.HasPrefix(q.Errors[0], c+":") {
		t.Fatalf("quarantine of the half-written file: %+v", q)
	}
	if !h.hasRule("MemberUp") || h.hasRule("CAnswers") {
		t.Fatal("rules in use changed")
	}
	h.write("rules/c.yaml", full)
	h.waitFor("the completed file", func() bool { return h.d.reload.Load().OK && h.hasRule("CAnswers") })
	h.tick(1)
	if ca, ok := h.alert("CAnswers"); !ok || ca.State != model.StateFiring {
		t.Fatalf("the completed file's rule not evaluated: %+v", ca)
	}
}

// Start is strict: a rule file that does not load stops `vigil run` from
// starting, with file:line:col, even though the other files load.
func TestStartRefusesBrokenRuleFile(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "etcd.yaml"), []byte(brokenUpRule), 0o644)
	os.WriteFile(filepath.Join(dir, "rules", "b.yaml"), []byte(teamB), 0o644)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(baseConfig(sharedEtcd(t), "")), 0o644)
	d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), Console: io.Discard})
	if err == nil {
		d.Stop()
		t.Fatal("started with a broken rule file")
	}
	if want := filepath.Join(dir, "rules", "etcd.yaml") + ":9:"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
}
