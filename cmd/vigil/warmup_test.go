package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// outageRules stand for an outage the other way round, on the one member
// that is up: AllUp (across: every) fires and inhibits the per-member
// MemberUp, as EtcdServiceUnavailable inhibits EtcdMemberUnreachable.
const outageRules = `groups:
  - name: members
    interval: 10s
    rules:
      - name: MemberUp
        severity: high
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 0s
        notify: [console]
      - name: AllUp
        severity: critical
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        across: every
        condition: max("etcd.can_connect") == 1
        for: 0s
        notify: [console]
        inhibits:
          rules: [MemberUp]
`

// A restart during an outage: until every collector has collected once,
// nothing is evaluated and /readyz says not ready; the restored member
// alert shows as inhibited at once; and nothing is sent again: no false
// resolution of the every-alert, no release of the inhibited page.
func TestRestartWaitsForFirstCollection(t *testing.T) {
	h := newHarness(t, outageRules)
	h.tick(3)
	h.waitFor("AllUp paged", func() bool { return strings.Contains(h.console.String(), "AllUp") })
	if strings.Contains(h.console.String(), "MemberUp") {
		t.Fatalf("inhibited MemberUp paged:\n%s", h.console.String())
	}
	if err := h.d.Stop(); err != nil {
		t.Fatal(err)
	}

	h.start()
	if code, _ := h.get("/readyz", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before the first collection: %d, want 503", code)
	}
	var st statusView
	if _, body := h.get("/api/v1/status", ""); json.Unmarshal([]byte(body), &st) != nil || st.Ready {
		t.Errorf("/api/v1/status before the first collection says ready: %s", body)
	}
	var av alertsView
	_, body := h.get("/api/v1/alerts", "")
	if err := json.Unmarshal([]byte(body), &av); err != nil {
		t.Fatal(err)
	}
	for _, a := range av.Alerts {
		if a.Rule == "MemberUp" && (a.State != "firing" || len(a.InhibitedBy) == 0) {
			t.Errorf("restored MemberUp not shown as inhibited: %+v", a)
		}
	}
	if av.Inhibited != 1 {
		t.Errorf("restored alerts: %d inhibited, want 1: %s", av.Inhibited, body)
	}

	// The scheduler's first evaluation slot comes before any collection.
	h.i.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	h.d.evaluate(ctx, nil, h.now())
	cancel()
	for _, rs := range h.d.eng.RuleStatuses() {
		if !rs.LastEval.IsZero() {
			t.Errorf("%s evaluated at %v, before the first collection", rs.Rule.Name, rs.LastEval)
		}
	}
	if a, _ := h.alert("AllUp"); a.State != model.StateFiring {
		t.Errorf("AllUp after an evaluation slot before the first collection: %v, want firing", a.State)
	}

	h.tick(3)
	if code, _ := h.get("/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz after the first collection: %d, want 200", code)
	}
	if a, _ := h.alert("AllUp"); a.State != model.StateFiring || a.LastEvalAt.IsZero() {
		t.Errorf("AllUp not evaluated as firing after the first collection: %+v", a)
	}
	h.d.Stop() // waits for deliveries in flight
	if out := h.console.String(); out != "" {
		t.Errorf("sent after the restart (want nothing):\n%s", out)
	}
}

// A rolling restart during an outage: a replica that has just started
// takes the lead. It does not evaluate before its own first collection
// (its store is empty), and /readyz says not ready until then; the
// outage is neither resolved nor paged again, and the inhibited member
// page stays held.
func TestHANewLeaderWaitsForFirstCollection(t *testing.T) {
	c := startHAClusterWith(t, 1, strings.ReplaceAll(outageRules, "notify: [console]", "notify: [hook]"))
	c.leader(10 * time.Second)
	c.tickUntil(8, "AllUp paged by the first leader", func() bool { return c.rcv.Count("AllUp", "firing") == 1 })

	fresh := c.add()
	if code, _ := request(t, "GET", "http://"+fresh.d.Addr()+"/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz of a replica that has not collected: %d, want 503", code)
	}
	old := c.reps[0]
	if err := old.d.Stop(); err != nil {
		t.Fatal(err)
	}
	old.stopped = true
	if next := c.leader(5 * time.Second); next != fresh {
		t.Fatalf("%s leads, want the fresh replica", next.name)
	}

	// The new leader's first slot comes before its first collection.
	c.i.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	fresh.d.evaluate(ctx, nil, c.now())
	cancel()
	if code, _ := request(t, "GET", "http://"+fresh.d.Addr()+"/readyz", "", ""); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz of the new leader before its first collection: %d, want 503", code)
	}
	for range 4 {
		c.tick()
	}
	if code, _ := request(t, "GET", "http://"+fresh.d.Addr()+"/readyz", "", ""); code != http.StatusOK {
		t.Errorf("/readyz after the first collection: %d, want 200", code)
	}
	if v := c.get(fresh, "/api/v1/alerts"); !strings.Contains(v, `"rule": "AllUp"`) || !strings.Contains(v, `"inhibited": 1`) {
		t.Errorf("new leader's alerts: want AllUp firing and MemberUp inhibited: %s", v)
	}
	if err := fresh.d.Stop(); err != nil { // waits for deliveries in flight
		t.Fatal(err)
	}
	fresh.stopped = true
	if c.rcv.Count("AllUp", "firing") != 1 || c.rcv.Count("AllUp", "resolved") != 0 || c.rcv.Count("MemberUp", "firing") != 0 {
		t.Errorf("want AllUp paged once and nothing else; received: %s", c.rcv.Summary())
	}
}
