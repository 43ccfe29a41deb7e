package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// do sends a request with a JSON body and returns the status and body.
func (h *harness) do(method, path, body string) (int, string) {
	h.t.Helper()
	return request(h.t, method, "http://"+h.d.Addr()+path, "", body)
}

func (h *harness) silence(body string) apiSilence {
	h.t.Helper()
	code, out := h.do("POST", "/api/v1/silences", body)
	if code != http.StatusCreated {
		h.t.Fatalf("POST /api/v1/silences: %d %s", code, out)
	}
	var s apiSilence
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		h.t.Fatal(err)
	}
	return s
}

const maintenance = `{"matchers": ["host.mac=\"02:00:00:00:00:01\"", "alertname=~\"Member.*\""],
	"duration": "2h", "created_by": "alice", "comment": "replacing the disk"}`

// A silence made through the API mutes the member's page, shows on the
// API and the page, and once expired the page goes out.
func TestSilenceMutesUntilExpired(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	s := h.silence(maintenance)
	if s.State != "active" || s.ID == "" || !s.EndsAt.Equal(h.now().Add(2*60*60e9)) {
		t.Fatalf("created silence %+v, want active until now+2h", s)
	}
	h.tick(5) // fires, then past group_wait and group_interval
	a, ok := h.alert("MemberUp")
	if !ok || a.State != model.StateFiring {
		t.Fatalf("MemberUp not firing: %+v", a)
	}
	if strings.Contains(h.console.String(), "MemberUp") {
		t.Fatalf("a silenced alert was sent:\n%s", h.console.String())
	}
	_, alerts := h.get("/api/v1/alerts", "")
	contains(t, "/api/v1/alerts", alerts, `"silenced_by": [`, s.ID, `"silenced": 1`)
	_, page := h.get("/", "")
	contains(t, "the page", page, `<span class="silenced">silenced</span>`, "replacing the disk", `host.mac=&#34;02:00:00:00:00:01&#34;`, "1 silenced")
	_, list := h.get("/api/v1/silences", "")
	contains(t, "/api/v1/silences", list, `"state": "active"`, `"created_by": "alice"`)

	code, out := h.do("DELETE", "/api/v1/silences/"+s.ID, "")
	if code != http.StatusOK || !strings.Contains(out, `"state": "expired"`) {
		t.Fatalf("DELETE: %d %s", code, out)
	}
	h.tick(2) // group_wait (1s) is over at the next evaluation
	h.waitFor("the page once the silence expired", func() bool { return strings.Contains(h.console.String(), "MemberUp") })
	if code, _ := h.do("DELETE", "/api/v1/silences/nosuchid", ""); code != http.StatusNotFound {
		t.Errorf("DELETE of an unknown silence: %d, want 404", code)
	}
}

// A restart keeps the silence (state file): the alert stays muted.
func TestSilenceSurvivesRestart(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	s := h.silence(maintenance)
	h.d.Stop()
	h.start()
	_, list := h.get("/api/v1/silences", "")
	contains(t, "/api/v1/silences after a restart", list, s.ID, `"state": "active"`)
	h.tick(5)
	if strings.Contains(h.console.String(), "MemberUp") {
		t.Fatalf("silence lost in the restart; sent:\n%s", h.console.String())
	}
}

// A bad silence is refused with every mistake named; nothing is stored.
func TestBadSilenceRefused(t *testing.T) {
	h := newHarness(t, upRule)
	for _, tc := range []struct{ body, want string }{
		{`{"matchers": ["host.mac=~\"(\""], "duration": "1h"}`, "matchers[0]"},
		{`{"matchers": ["host=~\".*\""], "duration": "1h", "created_by": "a", "comment": "c"}`, "bad silence"},
		{`{"matchers": ["a=b"], "created_by": "a", "comment": "c"}`, "ends_at or duration is required"},
		{`{"matchers": ["a=b"], "duration": "-1h", "created_by": "a", "comment": "c"}`, "positive Go duration"},
		{`{"matchers": ["a=b"], "duration": "1h"}`, "created_by"},
		{`{"matchers": ["a=b"], "duration": "1h", "created_by": "a", "comment": "c", "color": "red"}`, "unknown field"},
	} {
		code, out := h.do("POST", "/api/v1/silences", tc.body)
		if code != http.StatusBadRequest || !strings.Contains(out, tc.want) {
			t.Errorf("POST %s: %d %q, want 400 naming %q", tc.body, code, out, tc.want)
		}
	}
	if _, list := h.get("/api/v1/silences", ""); !strings.Contains(list, `"silences": []`) {
		t.Errorf("refused silences were stored: %s", list)
	}
}

// post sends a silence to one replica of an HA cluster.
func (c *haCluster) post(r *haReplica, method, path, body string) (int, string) {
	c.t.Helper()
	return request(c.t, method, "http://"+r.d.Addr()+path, "", body)
}

// With ha:, a silence made on a follower mutes the leader's page, still
// does after a failover, and its expiry through the new leader lets the
// page out once.
func TestHASilenceFromAnyReplica(t *testing.T) {
	c := startHACluster(t, 2)
	lead := c.leader(10 * time.Second)
	follower := c.reps[0]
	if follower == lead {
		follower = c.reps[1]
	}
	poll(5*time.Second, func() bool { return follower.d.ha.silences.Synced() })
	code, out := c.post(follower, "POST", "/api/v1/silences",
		`{"matchers": ["alertname=UpLong"], "duration": "1h", "created_by": "bob", "comment": "known slow start"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST on the follower: %d %s", code, out)
	}
	var s apiSilence
	json.Unmarshal([]byte(out), &s)
	if !poll(5*time.Second, func() bool { return strings.Contains(c.get(lead, "/api/v1/silences"), s.ID) }) {
		t.Fatal("the leader never saw the follower's silence")
	}
	// UpLong fires at 2m10s (14 steps); Up at 30s.
	c.tickUntil(16, "UpLong firing on the leader, silenced", func() bool {
		return strings.Contains(c.get(lead, "/api/v1/alerts"), `"silenced_by": [`)
	})
	for range 3 {
		c.tick()
	}
	if c.rcv.Count("Up", "firing") != 1 || c.rcv.Count("UpLong", "firing") != 0 {
		t.Fatalf("want Up paged and UpLong silenced; received: %s", c.rcv.Summary())
	}

	if err := lead.d.Stop(); err != nil {
		t.Fatal(err)
	}
	lead.stopped = true
	next := c.leader(5 * time.Second)
	for range 3 {
		c.tick()
	}
	if n := c.rcv.Count("UpLong", "firing"); n != 0 {
		t.Fatalf("the new leader sent the silenced UpLong: %s", c.rcv.Summary())
	}
	if code, out := c.post(next, "DELETE", "/api/v1/silences/"+s.ID, ""); code != http.StatusOK {
		t.Fatalf("DELETE on the new leader: %d %s", code, out)
	}
	c.tickUntil(4, "UpLong sent once the silence expired", func() bool { return c.rcv.Count("UpLong", "firing") == 1 })
}

// `vigil silence` against a running daemon: add, list, expire.
func TestSilenceCommand(t *testing.T) {
	h := newHarness(t, upRule)
	url := "--url=http://" + h.d.Addr()
	var out, errOut bytes.Buffer
	if code := run([]string{"silence", "add", url, "--for", "90m", "--comment", "disk swap", "--by", "carol",
		`host.mac="02:00:00:00:00:01"`, "severity!=critical"}, &out, &errOut); code != 0 {
		t.Fatalf("add: exit %d: %s", code, errOut.String())
	}
	id, _, _ := strings.Cut(out.String(), " ")
	if !strings.Contains(out.String(), "active until 2026-03-01T13:30:00Z") {
		t.Errorf("add printed %q", out.String())
	}
	out.Reset()
	if code := run([]string{"silence", "list", url}, &out, &errOut); code != 0 {
		t.Fatalf("list: exit %d: %s", code, errOut.String())
	}
	contains(t, "silence list", out.String(), id, "active", "carol", `host.mac="02:00:00:00:00:01" severity!="critical"`, "disk swap")
	out.Reset()
	if code := run([]string{"silence", "expire", url, id}, &out, &errOut); code != 0 || !strings.Contains(out.String(), id+" expired") {
		t.Fatalf("expire: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if s, _ := h.d.sil.Get(id); s.State(h.now()) != "expired" {
		t.Errorf("silence %s is %s after expire", id, s.State(h.now()))
	}
	errOut.Reset()
	if code := run([]string{"silence", "add", url, "--for", "1h", "--by", "carol", "a=b"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "400 Bad Request") || !strings.Contains(errOut.String(), "comment") {
		t.Errorf("add without a comment: exit %d: %s", code, errOut.String())
	}
}
