package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// /api/v1/groups shows what each channel holds and whether its receiver
// was told: a receiver failing is seen per group, with its answer
// (redacted of secrets: TestCanaryNoSecretAnywhere reads this too), and
// clears once it answers again.
func TestGroupsShowDeliveryPerGroup(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var got atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("upstream down"))
			return
		}
		got.Add(1)
	}))
	defer hook.Close()

	h := newHarness(t, upRule)
	h.d.Stop()
	h.write("vigil.yaml", strings.Replace(baseConfig(sharedEtcd(t), hookChannel("hook", hook.URL)),
		"group_interval: 10s", "group_interval: 10s\n  group_by: [host.hostName]\n  delivery_timeout: 300ms\n  backoff_base: 50ms", 1))
	h.write("rules/etcd.yaml", strings.Replace(upRule, "notify: [console]", "notify: [hook]", 1))
	h.start()

	groups := func() groupsView {
		t.Helper()
		code, body := h.get("/api/v1/groups", "")
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/groups: %d %s", code, body)
		}
		var v groupsView
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatalf("%v in %s", err, body)
		}
		return v
	}
	if v := groups(); len(v.Groups) != 0 {
		t.Fatalf("groups before anything fired: %+v", v.Groups)
	}
	h.tick(8) // MemberUp fires (for: 1m) and its group is flushed
	h.waitFor("the failed delivery", func() bool {
		v := groups()
		return len(v.Groups) == 1 && v.Groups[0].Failures > 0 && !v.Groups[0].InFlight
	})
	g := groups().Groups[0]
	if g.Channel != "hook" || g.Labels["alertname"] != "MemberUp" || g.Labels["host.hostName"] != "m0" || g.Firing != 1 {
		t.Errorf("group %+v, want hook's MemberUp group of m0 with one firing alert", g)
	}
	if len(g.Alerts) != 1 || g.Alerts[0].Rule != "MemberUp" || g.Alerts[0].State != "firing" || g.Alerts[0].Sent {
		t.Errorf("alerts %+v, want MemberUp firing, not sent", g.Alerts)
	}
	if !strings.Contains(g.LastError, "500") || !strings.Contains(g.LastError, "upstream down") {
		t.Errorf("last_error %q: want the status and the receiver's answer", g.LastError)
	}

	failing.Store(false)
	h.tick(1) // the next group interval tries again
	h.waitFor("the delivery", func() bool { return got.Load() == 1 })
	h.waitFor("the group's record of it", func() bool {
		v := groups()
		return len(v.Groups) == 1 && !v.Groups[0].InFlight && v.Groups[0].Failures == 0
	})
	g = groups().Groups[0]
	if g.LastError != "" || g.LastSent.IsZero() || len(g.Alerts) != 1 || !g.Alerts[0].Sent {
		t.Errorf("after the receiver recovered: %+v, want sent, no error", g)
	}
}
