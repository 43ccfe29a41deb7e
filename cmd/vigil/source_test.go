package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// rawHook records every body posted to it.
type rawHook struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func newRawHook(t *testing.T) *rawHook {
	h := &rawHook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(b))
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *rawHook) last() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bodies) == 0 {
		return ""
	}
	return h.bodies[len(h.bodies)-1]
}

func gitCommit(t *testing.T, repo *git.Repository, msg string) string {
	t.Helper()
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	c, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@x", When: time.Unix(0, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return c.String()
}

// An alert from rules kept in git names the rule's file (relative to the
// rules directory, never the host's path), line and commit in the API and
// in both webhook shapes, and the pages show it; after an edit is committed and reloaded, the
// new commit and line show.
func TestAlertSourceFromGit(t *testing.T) {
	rules := strings.Replace(upRule, "for: 1m", "for: 0s", 1)
	rules = strings.Replace(rules, "notify: [console]", "notify: [console, hook, am]", 1)
	dir := t.TempDir()
	h := harnessIn(t, dir, webOptions{EnableUnauthenticatedWrites: true})
	repo, err := git.PlainInit(h.rulesDir, false)
	if err != nil {
		t.Fatal(err)
	}
	h.write("rules/etcd.yaml", rules)
	first := gitCommit(t, repo, "first")
	hook, am := newRawHook(t), newRawHook(t)
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), hookChannel("hook", hook.URL)+
		"    - name: am\n      webhook: {url: "+am.URL+", format: alertmanager}\n"))
	h.start()

	h.tick(3)
	h.waitFor("both webhook messages", func() bool { return hook.last() != "" && am.last() != "" })
	// MemberUp's name is on line 5 of upRule.
	want := map[string]any{"file": "etcd.yaml", "line": float64(5), "commit": first}
	checkAPISource(t, h, want)
	checkHookSource(t, dir, hook.last(), am.last(), want, "etcd.yaml:5@"+first[:8])
	checkPageSource(t, h, "etcd.yaml:5@"+first[:8], first)

	// The edit moves the rule down a line; the reload shows both.
	h.d.watch.Close()
	h.write("rules/etcd.yaml", "# owned by the etcd team\n"+rules)
	second := gitCommit(t, repo, "second")
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	want = map[string]any{"file": "etcd.yaml", "line": float64(6), "commit": second}
	checkAPISource(t, h, want)
	checkPageSource(t, h, "etcd.yaml:6@"+second[:8], second)

	// Restored from the state file, the alert names the rules it was
	// restored under, not those it was saved under.
	if err := h.d.Stop(); err != nil {
		t.Fatal(err)
	}
	h.write("rules/etcd.yaml", "# owned by the etcd team\n# paged: #etcd\n"+rules)
	third := gitCommit(t, repo, "third")
	h.start()
	if a, ok := h.alert("MemberUp"); !ok || a.State.String() != "firing" {
		t.Fatalf("MemberUp not restored firing: %+v", a)
	}
	checkAPISource(t, h, map[string]any{"file": "etcd.yaml", "line": float64(7), "commit": third})
}

// checkPageSource: the status page shows the source by the alert and by
// the rule, the rule's page its commit in full.
func checkPageSource(t *testing.T, h *harness, short, commit string) {
	t.Helper()
	_, page := h.get("/", "")
	if n := strings.Count(page, ">"+short+"<"); n != 2 {
		t.Errorf("status page shows %q %d times, want by the alert and by the rule:\n%s", short, n, page)
	}
	_, rule := h.get("/rules/MemberUp", "")
	if !strings.Contains(rule, `<code id="commit">`+commit+`</code>`) {
		t.Errorf("rule page lacks commit %s:\n%s", commit, rule)
	}
}

func checkAPISource(t *testing.T, h *harness, want map[string]any) {
	t.Helper()
	code, body := h.get("/api/v1/alerts", "")
	if code != http.StatusOK {
		t.Fatalf("/api/v1/alerts: %d %s", code, body)
	}
	var v struct {
		Alerts []struct {
			Rule   string         `json:"rule"`
			Source map[string]any `json:"source"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	for _, a := range v.Alerts {
		if a.Rule != "MemberUp" {
			continue
		}
		for k, w := range want {
			if a.Source[k] != w {
				t.Errorf("API source.%s = %v, want %v (%s)", k, a.Source[k], w, body)
			}
		}
		return
	}
	t.Fatalf("no MemberUp in %s", body)
}

func checkHookSource(t *testing.T, hostDir, vigil, am string, want map[string]any, annotation string) {
	t.Helper()
	var p struct {
		Alerts []struct {
			Source map[string]any `json:"source"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(vigil), &p); err != nil || len(p.Alerts) == 0 {
		t.Fatalf("vigil payload %v: %s", err, vigil)
	}
	for k, w := range want {
		if p.Alerts[0].Source[k] != w {
			t.Errorf("webhook source.%s = %v, want %v (%s)", k, p.Alerts[0].Source[k], w, vigil)
		}
	}
	var q struct {
		CommonAnnotations map[string]string `json:"commonAnnotations"`
		Alerts            []struct {
			Annotations  map[string]string `json:"annotations"`
			GeneratorURL string            `json:"generatorURL"`
		} `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(am), &q); err != nil || len(q.Alerts) == 0 {
		t.Fatalf("alertmanager payload %v: %s", err, am)
	}
	if got := q.Alerts[0].Annotations["vigil_source"]; got != annotation {
		t.Errorf("alertmanager annotations.vigil_source = %q, want %q", got, annotation)
	}
	if got := q.CommonAnnotations["vigil_source"]; got != annotation {
		t.Errorf("alertmanager commonAnnotations.vigil_source = %q, want %q", got, annotation)
	}
	if !strings.HasSuffix(q.Alerts[0].GeneratorURL, "/rules/MemberUp") {
		t.Errorf("generatorURL changed: %q", q.Alerts[0].GeneratorURL)
	}
	for _, body := range []string{vigil, am} {
		if strings.Contains(body, hostDir) {
			t.Errorf("payload shows a host path: %s", body)
		}
	}
}
