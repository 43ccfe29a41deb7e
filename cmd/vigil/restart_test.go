package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
)

// The restart-transparency test: one scripted outage of a real 3-member
// etcd, run once straight and once per restart point with `vigil run`
// stopped and started again there. A restart must not change what the
// on-call engineer receives: the message sequences are compared whole.

// transparencyRules are the reference rules' outage pair with short durations:
// a page per unreachable member, and one critical page when no member
// serves, which inhibits the member pages.
const transparencyRules = `groups:
  - name: etcd
    interval: 10s
    rules:
      - name: EtcdMemberUnreachable
        severity: high
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        window: 10s
        condition: max("etcd.can_connect") == 0
        for: 30s
        annotations:
          summary: member {{ label "host.hostName" }} is unreachable
        notify: [hook]
      - name: EtcdServiceUnavailable
        severity: critical
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        across: every
        window: 10s
        condition: max("etcd.can_connect") == 0 || max("etcd.has_leader") == 0
        for: 30s
        inhibits:
          rules: [EtcdMemberUnreachable]
          equal: [cluster]
        annotations:
          summary: no member of {{ label "cluster" }} serves ({{ len .Segments }} segments)
        notify: [hook]
`

func outageConfig(eps []string, hook string) string {
	var b strings.Builder
	b.WriteString(`rule_dirs: [rules]
http:
  address: 127.0.0.1:0
state:
  path: state.json
collectors:
  - name: etcd
    type: etcd
    interval: 10s
    timeout: 2s
    targets:
`)
	for i, ep := range eps {
		fmt.Fprintf(&b, "      - name: m%d\n        address: %s\n        tags: {host.mac: \"02:00:00:00:00:0%d\", host.hostName: m%d, agent.tag.role: etcd, cluster: test}\n", i, ep, i, i)
	}
	b.WriteString(`notifiers:
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
  channels:
    - name: hook
      webhook: {url: "` + hook + `"}
`)
	return b.String()
}

// messageLog records what the receiver got, one line per message.
type messageLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *messageLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Status string `json:"status"`
		Rule   string `json:"rule"`
		Alerts []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var alerts []string
	for _, a := range p.Alerts {
		alerts = append(alerts, a.Labels["host.hostName"]+"="+a.Status)
	}
	slices.Sort(alerts)
	l.mu.Lock()
	l.msgs = append(l.msgs, fmt.Sprintf("%s %s [%s]", p.Status, p.Rule, strings.Join(alerts, " ")))
	l.mu.Unlock()
}

func (l *messageLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.msgs
	l.msgs = nil
	return out
}

// outageStep is what happens to the cluster before one evaluation step.
type outageStep struct {
	stop, restart []int // member indexes
	label         string
}

// outageScript: m2 goes down (its page fires), then m1 (quorum lost: the
// service page fires and inhibits the member pages), m1 comes back (the
// service page resolves), then m2 (its page resolves). Steps are 10 s of
// evaluation time.
var outageScript = map[int]outageStep{
	3:  {stop: []int{2}, label: "m2 down"},
	10: {stop: []int{1}, label: "m1 down, quorum lost"},
	18: {restart: []int{1}, label: "m1 back, quorum back"},
	25: {restart: []int{2}, label: "m2 back"},
}

const outageSteps = 32

// The restart points, by step: the daemon is stopped after the step's
// evaluation and started again before the next one, all in one run.
var restartPoints = map[string]int{
	"m2 pending":               4,
	"m2 firing, not yet sent":  6,
	"m2 firing":                8,
	"service pending":          11,
	"service firing, inhibits": 14,
	"service resolving":        18,
	"m2 resolving":             25,
}

func TestRestartTransparency(t *testing.T) {
	if testing.Short() {
		t.Skip("a scripted outage over a 3-member etcd, run several times")
	}
	cluster := etcdtest.StartCluster(t, 3)
	log := &messageLog{}
	srv := httptest.NewServer(log)
	defer srv.Close()

	// run plays the script, restarting the daemon after each step that is
	// a key of restarts (nil: never).
	run := func(t *testing.T, restarts map[int]bool) []string {
		h := outageHarness(t, cluster, srv.URL)
		ctx := context.Background()
		for step := 1; step <= outageSteps; step++ {
			if ev, ok := outageScript[step]; ok {
				applyOutage(t, cluster, h.now(), ev, h.d)
			}
			h.i.Add(1)
			h.d.collectAll(ctx, h.now())
			h.d.evaluate(ctx, nil, h.now())
			h.settle()
			if restarts[step] {
				if err := h.d.Stop(); err != nil {
					t.Fatalf("stop at step %d: %v", step, err)
				}
				h.start()
				// The first evaluation slot after a start may come before
				// the first collection: it must change nothing.
				h.d.evaluate(ctx, nil, h.now().Add(time.Second))
				h.settle()
			}
		}
		h.d.Stop()
		return log.take()
	}

	want := run(t, nil)
	t.Logf("straight run: %d messages\n%s", len(want), strings.Join(want, "\n"))
	// The script must exercise what it claims: both pages fire and resolve,
	// and m1's page is never sent (inhibited all along).
	for _, m := range []string{
		"firing EtcdMemberUnreachable [m2=firing]",
		"firing EtcdServiceUnavailable",
		"resolved EtcdServiceUnavailable",
		"resolved EtcdMemberUnreachable [m2=resolved]",
	} {
		if !slices.ContainsFunc(want, func(s string) bool { return strings.HasPrefix(s, m) }) {
			t.Fatalf("straight run lacks %q: the script does not exercise the outage", m)
		}
	}
	if slices.ContainsFunc(want, func(s string) bool { return strings.Contains(s, "m1=") }) {
		t.Fatalf("straight run paged m1, which the service page inhibits: %v", want)
	}

	restarts := map[int]bool{}
	for _, step := range restartPoints {
		restarts[step] = true
	}
	var points []string
	for _, step := range slices.Sorted(maps.Keys(restarts)) {
		for name, s := range restartPoints {
			if s == step {
				points = append(points, fmt.Sprintf("%d (%s)", step, name))
			}
		}
	}
	got := run(t, restarts)
	if !slices.Equal(got, want) {
		t.Errorf("restarted after steps %s: messages differ\ngot:\n  %s\nwant:\n  %s",
			strings.Join(points, ", "), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// outageHarness is a harness on the 3-member cluster with every member up
// and a fresh state file.
func outageHarness(t *testing.T, c *etcdtest.Cluster, hook string) *harness {
	t.Helper()
	for _, m := range c.Members() {
		m.Restart(t)
	}
	waitLeader(t, c, true)
	dir := t.TempDir()
	h := harnessIn(t, dir, webOptions{})
	h.write("rules/etcd.yaml", transparencyRules)
	h.write("vigil.yaml", outageConfig(c.Endpoints(), hook))
	h.start()
	return h
}

// applyOutage stops or restarts members and waits until the cluster and
// the daemon's collector see the change, so that every run sees it at the
// same step.
func applyOutage(t *testing.T, c *etcdtest.Cluster, now time.Time, ev outageStep, ds ...*daemon) {
	t.Helper()
	for _, i := range ev.stop {
		c.Members()[i].Stop()
	}
	for _, i := range ev.restart {
		c.Members()[i].Restart(t)
	}
	up := 0
	for _, m := range c.Members() {
		if m.Etcd() != nil {
			up++
		}
	}
	waitLeader(t, c, up >= 2)
	for _, i := range ev.restart {
		for _, d := range ds {
			waitConnected(t, d, now, fmt.Sprintf("m%d", i))
		}
	}
}

// waitLeader waits until every running member agrees on a leader (want)
// or every running member knows none: a follower goes on naming a
// stopped leader until its election timeout, and would report has_leader
// 1 a step longer in one run than in another.
func waitLeader(t *testing.T, c *etcdtest.Cluster, want bool) {
	t.Helper()
	if !poll(20*time.Second, func() bool {
		var leads []uint64
		for _, m := range c.Members() {
			if e := m.Etcd(); e != nil {
				leads = append(leads, uint64(e.Server.Leader()))
			}
		}
		if !want {
			return !slices.ContainsFunc(leads, func(l uint64) bool { return l != 0 })
		}
		return c.Leader() != nil && len(leads) > 0 && leads[0] != 0 && !slices.ContainsFunc(leads, func(l uint64) bool { return l != leads[0] })
	}) {
		t.Fatalf("cluster members did not agree on leader present = %v", want)
	}
}

// waitConnected collects (without storing) until the daemon's etcd
// collector reaches the restarted member again: its reconnect back-off
// must not make one run see the member a step later than another.
func waitConnected(t *testing.T, d *daemon, now time.Time, target string) {
	t.Helper()
	ok := poll(20*time.Second, func() bool {
		for _, c := range d.collectors() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			samples, _ := c.Collect(ctx, now)
			cancel()
			for _, s := range samples {
				if s.Metric == "etcd.can_connect" && s.Labels["target"] == target && s.Value == 1 {
					return true
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
		return false
	})
	if !ok {
		t.Fatalf("the collector does not reach %s again", target)
	}
}

// The failover-transparency test: the same outage with two HA replicas
// (coordinated through a separate etcd) and, at each point, a rolling
// restart as Kubernetes does one: the follower is replaced by a fresh
// replica, then the leader stops and the fresh replica takes over before
// it has collected anything. The receiver must get what the straight run
// sent.
func TestFailoverTransparency(t *testing.T) {
	if testing.Short() {
		t.Skip("a scripted outage over a 3-member etcd with HA replicas")
	}
	cluster := etcdtest.StartCluster(t, 3)
	coord := sharedEtcd(t)
	log := &messageLog{}
	srv := httptest.NewServer(log)
	defer srv.Close()

	run := func(t *testing.T, failovers map[int]bool) []string {
		for _, m := range cluster.Members() {
			m.Restart(t)
		}
		waitLeader(t, cluster, true)
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var i atomic.Int64
		now := func() time.Time { return base.Add(time.Duration(i.Load()) * 10 * time.Second) }
		prefix := fmt.Sprintf("/vigil-failover-%d/", time.Now().UnixNano())
		n := 0
		replica := func() *daemon {
			n++
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "rules"), 0o755)
			os.WriteFile(filepath.Join(dir, "rules", "etcd.yaml"), []byte(transparencyRules), 0o644)
			// A lease long enough that a loaded machine does not lapse it
			// between steps: a lapsed term skips its final save, and the
			// next leader re-sends (at-least-once, docs/ha.md), which is
			// not what this test is about. Orderly stops resign at once.
			cfg := outageConfig(cluster.Endpoints(), srv.URL) + fmt.Sprintf(
				"ha:\n  endpoints: [%s]\n  prefix: %s\n  session_ttl: 15s\n  name: r%d\n", coord, prefix, n)
			cfg = strings.Replace(cfg, "state:\n  path: state.json\n", "", 1)
			os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), Now: now, Console: io.Discard,
				Listener: ln, NoSchedule: true, DeliveryBound: 5 * time.Second, LookupEnv: func(string) (string, bool) { return "", false }})
			if err != nil {
				ln.Close()
				t.Fatal(err)
			}
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Stop() })
			return d
		}
		// leader waits until exactly one of reps leads and returns its index.
		leader := func(reps []*daemon) int {
			t.Helper()
			idx := -1
			if !poll(10*time.Second, func() bool {
				idx = -1
				for j, d := range reps {
					if d.ha.el.Leading() {
						if idx >= 0 {
							return false
						}
						idx = j
					}
				}
				return idx >= 0
			}) {
				t.Fatal("no single leader")
			}
			return idx
		}
		settle := func(reps []*daemon) {
			t.Helper()
			for _, d := range reps {
				if !poll(10*time.Second, func() bool {
					_, disp, ok := d.lead()
					if !ok || disp == nil {
						return true
					}
					for _, g := range disp.Status() {
						if g.InFlight {
							return false
						}
					}
					return true
				}) {
					t.Fatal("deliveries did not finish")
				}
			}
		}

		reps := []*daemon{replica(), replica()}
		leader(reps)
		ctx := context.Background()
		for step := 1; step <= outageSteps; step++ {
			if ev, ok := outageScript[step]; ok {
				applyOutage(t, cluster, now(), ev, reps...)
			}
			i.Add(1)
			for _, d := range reps {
				d.collectAll(ctx, now())
				d.evaluate(ctx, nil, now())
			}
			settle(reps)
			if !failovers[step] {
				continue
			}
			l := leader(reps)
			f := 1 - l
			if err := reps[f].Stop(); err != nil {
				t.Fatalf("follower stop at step %d: %v", step, err)
			}
			reps[f] = replica()
			if err := reps[l].Stop(); err != nil {
				t.Fatalf("leader stop at step %d: %v", step, err)
			}
			fresh := reps[f]
			reps = []*daemon{fresh}
			leader(reps)
			// The fresh leader's first evaluation slot may come before its
			// first collection: it must change nothing.
			fresh.evaluate(ctx, nil, now().Add(time.Second))
			settle(reps)
			reps = append(reps, replica())
		}
		for _, d := range reps {
			d.Stop()
		}
		return log.take()
	}

	want := run(t, nil)
	t.Logf("straight run: %d messages\n%s", len(want), strings.Join(want, "\n"))
	if len(want) != 4 {
		t.Fatalf("the straight HA run sent %d messages, want the outage's 4: %v", len(want), want)
	}
	failovers := map[int]bool{}
	for _, step := range restartPoints {
		failovers[step] = true
	}
	got := run(t, failovers)
	if !slices.Equal(got, want) {
		t.Errorf("failed over after steps %v: messages differ\ngot:\n  %s\nwant:\n  %s",
			slices.Sorted(maps.Keys(failovers)), strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
