package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
)

// Three `vigil run` daemons in one process share an embedded etcd through
// their `ha:` sections and deliver to one webhook receiver. Exactly one
// leads (as /api/v1/status says on every replica); stopping it hands over
// at once, the successor carries a pending alert on to its original firing
// time, and nothing is delivered twice.

// haRules: Up fires 20s after the first evaluation, before the failover;
// UpLong is still pending (for 2m) when the leader stops.
const haRules = `groups:
  - name: members
    interval: 10s
    rules:
      - name: Up
        severity: info
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 20s
        notify: [hook]
      - name: UpLong
        severity: info
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 2m
        notify: [hook]
`

type haReplica struct {
	name    string
	d       *daemon
	stopped bool
}

type haCluster struct {
	t    *testing.T
	rcv  *webhooktest.Receiver
	reps []*haReplica
	base time.Time
	i    atomic.Int64 // the shared evaluation clock, in 10s steps
	// prefix and rules are what add gives a new replica; coord, when set,
	// is the etcd it coordinates through (default: the one it collects).
	prefix, rules, coord string
}

func (c *haCluster) now() time.Time { return c.base.Add(time.Duration(c.i.Load()) * 10 * time.Second) }

func startHACluster(t *testing.T, n int) *haCluster {
	t.Helper()
	return startHAClusterWith(t, n, haRules)
}

func startHAClusterWith(t *testing.T, n int, rules string) *haCluster {
	t.Helper()
	c := &haCluster{t: t, rcv: webhooktest.NewReceiver(t), base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		prefix: fmt.Sprintf("/vigil-test-%d/", time.Now().UnixNano()), rules: rules}
	for range n {
		c.add()
	}
	return c
}

// add starts one more replica, named vigil-<its index>.
func (c *haCluster) add() *haReplica {
	t := c.t
	t.Helper()
	ep := sharedEtcd(t)
	coord := ep
	if c.coord != "" {
		coord = c.coord
	}
	name := fmt.Sprintf("vigil-%d", len(c.reps))
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "up.yaml"), []byte(c.rules), 0o644)
	cfg := strings.Replace(baseConfig(ep, `ha:
  endpoints: [`+coord+`]
  prefix: `+c.prefix+`
  session_ttl: 1s
  name: `+name+`
`), "    - name: console\n      console: {}\n", "    - name: console\n      console: {}\n    - name: hook\n      webhook: {url: "+c.rcv.URL+"}\n", 1)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), Now: c.now, Console: io.Discard,
		Listener: ln, NoSchedule: true, DeliveryBound: 5 * time.Second, LookupEnv: func(string) (string, bool) { return "", false },
		Web: webOptions{EnableUnauthenticatedWrites: true}})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop() })
	r := &haReplica{name: name, d: d}
	c.reps = append(c.reps, r)
	return r
}

// tick advances the clock one step; every running replica collects and
// evaluates (only the leader's evaluation does anything).
func (c *haCluster) tick() {
	c.i.Add(1)
	ctx := context.Background()
	for _, r := range c.reps {
		if !r.stopped {
			r.d.collectAll(ctx, c.now())
			r.d.evaluate(ctx, nil, c.now())
		}
	}
}

// tickUntil ticks until cond holds, at most max steps, giving the
// asynchronous deliveries a short moment after each tick and a longer one
// after the last.
func (c *haCluster) tickUntil(max int, what string, cond func() bool) {
	c.t.Helper()
	for range max {
		c.tick()
		if poll(20*time.Millisecond, cond) {
			return
		}
	}
	if poll(5*time.Second, cond) {
		return
	}
	c.t.Fatalf("%s: not after %d steps; received: %s", what, max, c.rcv.Summary())
}

func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *haCluster) status(r *haReplica) statusView {
	c.t.Helper()
	resp, err := http.Get("http://" + r.d.Addr() + "/api/v1/status")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v statusView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		c.t.Fatal(err)
	}
	return v
}

// leader waits until exactly one running replica says it leads and every
// running replica names it, and returns it.
func (c *haCluster) leader(within time.Duration) *haReplica {
	c.t.Helper()
	var lead *haReplica
	var seen []string
	ok := poll(within, func() bool {
		lead, seen = nil, nil
		leading := 0
		for _, r := range c.reps {
			if r.stopped {
				continue
			}
			v := c.status(r)
			if v.HA == nil {
				c.t.Fatalf("%s: no ha in /api/v1/status", r.name)
			}
			seen = append(seen, fmt.Sprintf("%s: leading=%v leader=%q", r.name, v.Leading, v.HA.Leader))
			if v.Leading {
				leading++
				lead = r
			}
		}
		if leading != 1 {
			return false
		}
		for _, r := range c.reps {
			if !r.stopped && c.status(r).HA.Leader != lead.name {
				return false
			}
		}
		return true
	})
	if !ok {
		c.t.Fatalf("not exactly one leader known to all within %v: %s", within, strings.Join(seen, "; "))
	}
	return lead
}

func (c *haCluster) get(r *haReplica, path string) string {
	c.t.Helper()
	_, b := request(c.t, "GET", "http://"+r.d.Addr()+path, "", "")
	return b
}

func TestHAFailoverDeliversOnce(t *testing.T) {
	began := time.Now()
	c := startHACluster(t, 3)
	lead := c.leader(10 * time.Second)
	t.Logf("%s leads, %v after the start", lead.name, time.Since(began).Round(time.Millisecond))
	var follower *haReplica
	for _, r := range c.reps {
		if r != lead {
			follower = r
			break
		}
	}

	c.tickUntil(8, "Up delivered by the first leader", func() bool { return c.rcv.Count("Up", "firing") == 1 })
	if upLong := c.get(lead, "/api/v1/alerts"); !strings.Contains(upLong, `"rule": "UpLong"`) || !strings.Contains(upLong, `"state": "pending"`) {
		t.Fatalf("UpLong not pending on the leader: %s", upLong)
	}
	contains(t, "follower's /api/v1/alerts", c.get(follower, "/api/v1/alerts"), `"following": "`+lead.name+`"`, `"alerts": []`)
	// Explain answers from the leader's engine; a follower points to it.
	var alerts alertsView
	if err := json.Unmarshal([]byte(c.get(lead, "/api/v1/alerts")), &alerts); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts.Alerts {
		if a.Rule == "Up" {
			contains(t, "leader's explain", c.get(lead, "/api/v1/alerts/"+a.Fingerprint+"/explain"),
				`"rule": "Up"`, `"aggregate": "max(\"etcd.can_connect\")"`, `"value": 1`)
			contains(t, "follower's explain", c.get(follower, "/api/v1/alerts/"+a.Fingerprint+"/explain"), "follows "+lead.name)
			contains(t, "leader's rule page", c.get(lead, "/rules/Up"), `<code>max(&#34;etcd.can_connect&#34;)</code> = 1`)
		}
	}
	contains(t, "follower's page", c.get(follower, "/"), "following <strong>"+lead.name+"</strong>")
	contains(t, "leader's page", c.get(lead, "/"), "<strong>leading</strong>", "UpLong")
	contains(t, "leader's /metrics", c.get(lead, "/metrics"), "vigil_ha_leading 1")
	contains(t, "follower's /metrics", c.get(follower, "/metrics"), "vigil_ha_leading 0")
	pendingSince := c.base.Add(10 * time.Second) // the first tick's evaluation

	// The leader stops (SIGTERM): its delivery record is saved, it resigns.
	stopped := time.Now()
	if err := lead.d.Stop(); err != nil {
		t.Fatalf("leader stop: %v", err)
	}
	lead.stopped = true
	next := c.leader(5 * time.Second)
	t.Logf("%s took over from %s in %v", next.name, lead.name, time.Since(stopped).Round(time.Millisecond))

	c.tickUntil(16, "UpLong delivered by the new leader", func() bool { return c.rcv.Count("UpLong", "firing") == 1 })
	if got, want := c.rcv.FiredAt("UpLong"), pendingSince.Add(2*time.Minute); !got.Equal(want) {
		t.Errorf("UpLong fired at %v, want its original time %v (pending since before the failover)", got, want)
	}
	c.tick()
	c.tick()
	// Stopping every replica waits for deliveries in flight: after that
	// the receiver has everything that was ever sent.
	for _, r := range c.reps {
		if !r.stopped {
			if err := r.d.Stop(); err != nil {
				t.Errorf("%s stop: %v", r.name, err)
			}
			r.stopped = true
		}
	}
	if c.rcv.Count("Up", "firing") != 1 || c.rcv.Count("UpLong", "firing") != 1 || c.rcv.Count("Up", "resolved") != 0 {
		t.Errorf("want Up and UpLong firing once each and nothing else; received: %s", c.rcv.Summary())
	}
}

// Without ha: the daemon runs alone, leads by itself and shows no ha.
func TestStatusWithoutHA(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(1) // ready after the first collection
	code, body := h.get("/api/v1/status", "")
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var v statusView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if !v.Ready || !v.Leading || v.HA != nil || v.Rules != 1 || v.Reload == nil || !v.Reload.OK {
		t.Errorf("status alone: %s", body)
	}
	if _, page := h.get("/", ""); strings.Contains(page, `id="ha"`) {
		t.Error("page shows ha without ha:")
	}
	if _, m := h.get("/metrics", ""); strings.Contains(m, "vigil_ha_leading") {
		t.Error("vigil_ha_leading registered without ha:")
	}
}

// A reload while leading applies the notifiers section to the running
// term's dispatcher, and a later term (here another replica's, after a
// failover) builds from the new section: a channel added by the reload
// gets what already fires once, and keeps its dedup state across the
// failover.
func TestHAReloadAppliesNotifiers(t *testing.T) {
	c := startHACluster(t, 2)
	lead := c.leader(10 * time.Second)
	c.tickUntil(8, "Up delivered before the reload", func() bool { return c.rcv.Count("Up", "firing") == 1 })

	rcv2 := webhooktest.NewReceiver(t)
	for _, r := range c.reps {
		dir := filepath.Dir(r.d.o.ConfigPath)
		b, err := os.ReadFile(r.d.o.ConfigPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg := strings.Replace(string(b), "    - name: hook\n", hookChannel("hook2", rcv2.URL)+"    - name: hook\n", 1)
		os.WriteFile(r.d.o.ConfigPath, []byte(cfg), 0o644)
		os.WriteFile(filepath.Join(dir, "rules", "up.yaml"), []byte(strings.ReplaceAll(haRules, "notify: [hook]", "notify: [hook, hook2]")), 0o644)
		if err := r.d.Reload("test"); err != nil {
			t.Fatalf("%s: reload: %v", r.name, err)
		}
	}
	c.tickUntil(4, "Up sent to the added channel by the running term", func() bool { return rcv2.Count("Up", "firing") == 1 })

	if err := lead.d.Stop(); err != nil {
		t.Fatalf("leader stop: %v", err)
	}
	lead.stopped = true
	c.leader(5 * time.Second)
	c.tickUntil(16, "UpLong sent to both channels by the next term", func() bool {
		return c.rcv.Count("UpLong", "firing") == 1 && rcv2.Count("UpLong", "firing") == 1
	})
	c.tick()
	c.tick()
	for _, r := range c.reps {
		if !r.stopped {
			r.d.Stop()
			r.stopped = true
		}
	}
	if c.rcv.Count("Up", "firing") != 1 || rcv2.Count("Up", "firing") != 1 {
		t.Errorf("Up paged again: hook %s; hook2 %s", c.rcv.Summary(), rcv2.Summary())
	}
}

// SIGTERM with the coordination etcd down (crashed, unreachable) returns
// within a few seconds on the leader and on a follower: the election's
// resign and the final save are bounded, and nothing waits for etcd.
func TestHAStopWithCoordinationEtcdDown(t *testing.T) {
	coord := etcdtest.StartCluster(t, 1)
	c := &haCluster{t: t, rcv: webhooktest.NewReceiver(t), base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		prefix: "/vigil-stop/", rules: haRules, coord: coord.Endpoints()[0]}
	c.add()
	c.add()
	lead := c.leader(10 * time.Second)
	c.tickUntil(8, "Up delivered", func() bool { return c.rcv.Count("Up", "firing") == 1 })

	down := time.Now()
	coord.Members()[0].Stop() // HardStop, then its listeners close
	t.Logf("coordination etcd stopped in %v", time.Since(down).Round(time.Millisecond))
	order := []*haReplica{c.reps[0], c.reps[1]}
	if order[0] == lead {
		order[0], order[1] = order[1], order[0] // the follower first: it waits in its campaign
	}
	for _, r := range order {
		began := time.Now()
		done := make(chan error, 1)
		go func() { done <- r.d.Stop() }()
		select {
		case err := <-done:
			t.Logf("%s stopped in %v (%v)", r.name, time.Since(began).Round(time.Millisecond), err)
		case <-time.After(4 * time.Second):
			t.Fatalf("%s: SIGTERM's stop still running after 4s with the coordination etcd down", r.name)
		}
		r.stopped = true
	}
}
