package etcd_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

const (
	// groupInterval is the evaluation interval of the etcd-members group
	// in examples/rules/etcd.yaml: the stepped clock moves this far per step.
	groupInterval = 30 * time.Second
	// collectTimeout is the example's. A stopped member's port refuses
	// connections, so its collection fails in milliseconds, not at this
	// timeout.
	collectTimeout = 5 * time.Second
	// waitBudget bounds, in real time, each wait on etcd itself: a new
	// leader, the survivor noticing it lost quorum, a restarted member's
	// client reconnecting.
	waitBudget = 20 * time.Second
)

// rig drives a real 3-member cluster through the etcd collector into the
// engine with the example rules, on a stepped clock.
type rig struct {
	t       testing.TB
	cluster *etcdtest.Cluster
	coll    collectors.Collector
	eng     *engine.Engine
	start   time.Time
	now     time.Time
	last    []model.Sample // the last collection's samples
}

func mac(i int) string  { return fmt.Sprintf("02:42:ac:11:00:%02x", i+1) }
func host(i int) string { return fmt.Sprintf("etcd-%d", i+1) }

func newRig(t testing.TB) *rig {
	t.Helper()
	c := etcdtest.StartCluster(t, 3)
	// As in examples/vigil-collectors.yaml, with this cluster's addresses.
	cfg := collectors.Config{
		Name:     "etcd",
		Type:     collectors.TypeEtcd,
		Interval: collectors.Duration(15 * time.Second),
		Timeout:  collectors.Duration(collectTimeout),
	}
	for i, m := range c.Members() {
		cfg.Targets = append(cfg.Targets, collectors.Target{
			Name:    host(i),
			Address: m.ClientURL,
			Tags: map[string]string{
				"host.hostName":  host(i),
				"host.mac":       mac(i),
				"agent.tag.role": "etcd",
				"cluster":        "main",
			},
		})
	}
	cs, err := collectors.Build([]collectors.Config{cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs[0].(*collectors.TargetCollector).Close() })

	set, err := rules.Load("../../examples/rules/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &rig{t: t, cluster: c, coll: cs[0], eng: eng, start: start, now: start}
}

// step moves the clock one group interval, collects for real, appends and
// evaluates. Collection errors are expected while members are down: they
// are in the samples as can_connect 0 and vigil.collector.up 0.
func (r *rig) step() {
	r.t.Helper()
	r.now = r.now.Add(groupInterval)
	ctx := context.Background()
	samples, _ := r.coll.Collect(ctx, r.now)
	r.last = samples
	r.eng.Store().Append(samples...)
	r.eng.Eval(ctx, r.now)
}

// value returns metric's value for member i in the last collection.
func (r *rig) value(i int, metric string) (float64, model.Labels, bool) {
	for _, s := range r.last {
		if s.Metric == metric && s.Labels["host.mac"] == mac(i) {
			return s.Value, s.Labels, true
		}
	}
	return 0, nil, false
}

// active returns the pending and firing alerts, by rule.
func (r *rig) active() map[string][]model.Alert {
	out := map[string][]model.Alert{}
	for _, a := range r.eng.Alerts() {
		if a.State == model.StatePending || a.State == model.StateFiring {
			out[a.Rule] = append(out[a.Rule], a)
		}
	}
	return out
}

func (r *rig) state(rule string) []model.Alert {
	var out []model.Alert
	for _, a := range r.eng.Alerts() {
		if a.Rule == rule {
			out = append(out, a)
		}
	}
	return out
}

func describe(alerts map[string][]model.Alert) string {
	var b strings.Builder
	for rule, as := range alerts {
		for _, a := range as {
			fmt.Fprintf(&b, "\n  %s %s %v", rule, a.State, a.Segment)
		}
	}
	return b.String()
}

// stepUntil steps until cond holds, at most maxSteps times.
func (r *rig) stepUntil(t testing.TB, what string, maxSteps int, cond func() bool) {
	t.Helper()
	for range maxSteps {
		r.step()
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not seen by %v of engine time", what, r.now.Sub(r.start))
}

// waitFor polls cond, within waitBudget of real time, for what etcd and
// gRPC do on their own clocks (elections, reconnection back-off), which
// the engine's stepped clock cannot hurry.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBudget)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitBudget)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// noLeader reports whether member m is running and knows no leader.
func noLeader(m *etcdtest.Member) bool {
	e := m.Etcd()
	return e != nil && e.Server.Leader() == 0
}

// newLeader reports whether the running members agree on a leader other
// than old.
func newLeader(c *etcdtest.Cluster, old *etcdtest.Member) bool {
	l := c.Leader()
	return l != nil && l != old
}

// allAnswer reports whether a collection, not fed to the engine, finds
// every member answering.
func (r *rig) allAnswer() bool {
	samples, err := r.coll.Collect(context.Background(), r.now)
	if err != nil {
		return false
	}
	up := 0
	for _, s := range samples {
		if s.Metric == "etcd.can_connect" && s.Value == 1 {
			up++
		}
	}
	return up == len(r.cluster.Members())
}

// TestEndToEnd runs examples/rules/etcd.yaml against a real cluster: real
// collections, engine time stepped rather than slept.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-member etcd cluster")
	}
	r := newRig(t)
	members := r.cluster.Members()
	leader := slices.Index(members, r.cluster.Leader())
	if leader < 0 {
		t.Fatal("no leader")
	}
	// Two followers: the first is stopped alone, the second loses quorum.
	var followers []int
	for i := range members {
		if i != leader {
			followers = append(followers, i)
		}
	}
	first, second := followers[0], followers[1]

	t.Run("healthy", func(t *testing.T) {
		// Three steps: the page-derived rates need two collections, and
		// every 1m window then holds only healthy samples.
		for range 3 {
			r.step()
			if a := r.active(); len(a) > 0 {
				t.Fatalf("at %v, healthy cluster has alerts:%s", r.now.Sub(r.start), describe(a))
			}
		}
		for i := range members {
			for _, m := range []string{"etcd.can_connect", "etcd.has_leader", "etcd.db.size_in_use", "etcd.db.quota", "etcd.self.send.bandwidthrate"} {
				if _, _, ok := r.value(i, m); !ok {
					t.Errorf("%s: no %s, which the example rules read", host(i), m)
				}
			}
		}
		for _, st := range r.eng.RuleStatuses() {
			if !st.Health.OK {
				t.Errorf("rule %s unhealthy: %s", st.Rule.Name, st.Health.Err)
			}
		}
	})

	t.Run("one member stopped", func(t *testing.T) {
		members[first].Stop()
		// The 1m window still holds the last healthy sample for one step.
		r.step()
		if v, _, _ := r.value(first, "etcd.can_connect"); v != 0 {
			t.Fatalf("stopped member: can_connect %v", v)
		}
		if a := r.active()["EtcdMemberUnreachable"]; len(a) != 0 {
			t.Fatalf("pending before the window saw only failures:%s", describe(r.active()))
		}
		r.step()
		pendingAt := r.now
		for ; r.now.Sub(pendingAt) <= 5*time.Minute; r.step() {
			as := r.active()
			un := as["EtcdMemberUnreachable"]
			if len(un) != 1 || un[0].Segment["host.mac"] != mac(first) {
				t.Fatalf("at +%v: EtcdMemberUnreachable alerts:%s", r.now.Sub(pendingAt), describe(as))
			}
			want := model.StatePending
			if r.now.Sub(pendingAt) >= 5*time.Minute {
				want = model.StateFiring
			}
			if un[0].State != want {
				t.Fatalf("at +%v after pending: %s, want %s (for: 5m)", r.now.Sub(pendingAt), un[0].State, want)
			}
			// Nothing about the other members, and no cluster-wide alert.
			for rule, list := range as {
				for _, a := range list {
					if a.Segment["host.mac"] != mac(first) {
						t.Fatalf("at +%v: %s about %v:%s", r.now.Sub(pendingAt), rule, a.Segment, describe(as))
					}
				}
			}
		}
		un := r.active()["EtcdMemberUnreachable"][0]
		if un.Labels["host.hostName"] != host(first) || un.Labels["severity"] != "high" ||
			!strings.Contains(un.Annotations["summary"], host(first)) {
			t.Errorf("firing alert: labels %v, annotations %v", un.Labels, un.Annotations)
		}
	})

	t.Run("quorum lost", func(t *testing.T) {
		members[second].Stop()
		firingAll := func() bool {
			return len(r.active()["EtcdServiceUnavailable"]) == 1 &&
				r.active()["EtcdServiceUnavailable"][0].State == model.StateFiring &&
				len(r.active()["EtcdQuorumLost"]) == 1 &&
				r.active()["EtcdQuorumLost"][0].State == model.StateFiring
		}
		// The survivor answers but loses its leader once its election
		// timeout runs out (real time); `for: 1m` then counts on the
		// stepped clock.
		waitFor(t, "the survivor to lose its leader", func() bool { return noLeader(members[leader]) })
		r.stepUntil(t, "EtcdQuorumLost and EtcdServiceUnavailable firing", 4, firingAll)
		if v, _, ok := r.value(leader, "etcd.has_leader"); !ok || v != 0 {
			t.Errorf("survivor: has_leader %v (present %v), want 0", v, ok)
		}
		if v, _, _ := r.value(leader, "etcd.can_connect"); v != 1 {
			t.Errorf("survivor: can_connect %v, want 1", v)
		}
		su := r.active()["EtcdServiceUnavailable"][0]
		if got := su.FiredAt.Sub(su.ActiveAt); got != time.Minute {
			t.Errorf("fired %v after pending, want for: 1m", got)
		}
		if su.Severity != "critical" || su.Labels["cluster"] != "main" {
			t.Errorf("labels %v, severity %s", su.Labels, su.Severity)
		}
		var macs []string
		for _, s := range su.Segments {
			macs = append(macs, s.Labels["host.mac"])
		}
		slices.Sort(macs)
		if want := []string{mac(0), mac(1), mac(2)}; !slices.Equal(macs, want) {
			t.Errorf("segments %v, want %v", macs, want)
		}
		if want := "no etcd member of cluster main serves: all 3 are unreachable or without a leader"; su.Annotations["summary"] != want {
			t.Errorf("summary %q, want %q", su.Annotations["summary"], want)
		}
		if su.Inhibit == nil || !slices.Equal(su.Inhibit.Rules, []string{"EtcdMemberUnreachable"}) {
			t.Errorf("inhibit %+v", su.Inhibit)
		}
		if q := r.active()["EtcdQuorumLost"][0]; q.Annotations["summary"] != "etcd cluster main lost quorum: 1 of 3 members answer" {
			t.Errorf("quorum summary %q", q.Annotations["summary"])
		}
	})

	t.Run("members restarted", func(t *testing.T) {
		members[first].Restart(t)
		members[second].Restart(t)
		// The members are ready; the collector's gRPC clients reconnect
		// after gRPC's back-off, on the real clock.
		waitFor(t, "the collector to reach every member", r.allAnswer)
		r.step()
		for i := range members {
			if v, _, _ := r.value(i, "etcd.can_connect"); v != 1 {
				t.Fatalf("%s: can_connect %v", host(i), v)
			}
		}
		if a := r.active(); len(a) > 0 {
			t.Fatalf("alerts left after recovery:%s", describe(a))
		}
		for _, rule := range []string{"EtcdMemberUnreachable", "EtcdServiceUnavailable", "EtcdQuorumLost"} {
			as := r.state(rule)
			if len(as) != 1 || as[0].State != model.StateResolved {
				t.Errorf("%s: want one resolved alert, got %d:%s", rule, len(as), describe(map[string][]model.Alert{rule: as}))
			}
		}
	})

	t.Run("leader stopped", func(t *testing.T) {
		old := slices.Index(members, r.cluster.Leader())
		if old < 0 {
			t.Fatal("no leader after recovery")
		}
		other := (old + 1) % len(members)
		r.step()
		_, ls, ok := r.value(other, "etcd.leader.id")
		changes, _, ok2 := r.value(other, "etcd.leader.changes")
		if !ok || !ok2 {
			t.Fatalf("%s: no leader id or leader changes", host(other))
		}
		oldID := ls["leader"]
		members[old].Stop()
		waitFor(t, "a new leader", func() bool { return newLeader(r.cluster, members[old]) })
		r.stepUntil(t, "the collector to see a new leader", 2, func() bool {
			_, ls, ok := r.value(other, "etcd.leader.id")
			return ok && ls["leader"] != oldID && ls["leader"] != "0"
		})
		if v, _, _ := r.value(other, "etcd.leader.changes"); v <= changes {
			t.Errorf("etcd.leader.changes %v, was %v before the leader stopped", v, changes)
		}
		if v, _, _ := r.value(old, "etcd.can_connect"); v != 0 {
			t.Errorf("old leader: can_connect %v", v)
		}
	})
}

// BenchmarkCollectEvalCycle is one cycle of the engine path on a real
// 3-member cluster: collect every member (Status, MemberList, /metrics),
// append the samples, evaluate examples/rules/etcd.yaml.
func BenchmarkCollectEvalCycle(b *testing.B) {
	r := newRig(b)
	r.step() // first collection: clients connected, rates primed
	ctx := context.Background()
	var (
		engineTime time.Duration
		samples    []model.Sample
		err        error
	)
	b.ReportAllocs()
	for b.Loop() {
		r.now = r.now.Add(groupInterval)
		samples, err = r.coll.Collect(ctx, r.now)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		r.eng.Store().Append(samples...)
		r.eng.Eval(ctx, r.now)
		engineTime += time.Since(start)
	}
	// The engine's share of the cycle; the rest is collection.
	b.ReportMetric(float64(engineTime.Nanoseconds())/float64(b.N), "append+eval-ns/op")
	b.ReportMetric(float64(len(samples)), "samples/op")
	if a := r.active(); len(a) > 0 {
		b.Fatalf("alerts on a healthy cluster:%s", describe(a))
	}
}
