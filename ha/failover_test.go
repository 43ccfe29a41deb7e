package ha_test

import (
	"context"
	"errors"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
)

// Firing is active from slot 0 and fires at slot 2; Pending is active
// from slot 3 and fires at slot 33 (five minutes later); Firing's
// condition clears from slot clear on.
func phases(clear *int) func(i int) map[string]float64 {
	return func(i int) map[string]float64 {
		m := map[string]float64{"down": 1, "slow": 0}
		if i >= 3 {
			m["slow"] = 1
		}
		if i >= *clear {
			m["down"] = 0
		}
		return m
	}
}

var pendingFiresAt = slot(3).Add(5 * time.Minute)

// firingSettled runs until Firing's page went out and its delivery record
// is in etcd, with Pending pending.
func (c *cluster) firingSettled() {
	c.t.Helper()
	c.runUntil(40, "Firing delivered and recorded", func() bool {
		return c.rcv.Count("Firing", "firing") == 1 && c.persisted("Firing") && c.i > 4
	})
}

// finish clears Firing's condition and checks the whole story was told
// exactly once: Firing fired and resolved, Pending fired at its time.
func (c *cluster) finish(clear *int, checkPendingTime bool) {
	c.t.Helper()
	c.runUntil(120, "Pending fires", func() bool { return c.rcv.Count("Pending", "firing") >= 1 })
	if got := c.rcv.FiredAt("Pending"); checkPendingTime && !got.Equal(pendingFiresAt) {
		c.t.Errorf("Pending fired at %v, want its original time %v", got, pendingFiresAt)
	}
	*clear = c.i
	c.runUntil(30, "Firing resolution", func() bool { return c.rcv.Count("Firing", "resolved") >= 1 })
	for range 5 { // anything sent twice would show by now
		c.runSlot()
	}
	for _, w := range []struct {
		rule, status string
	}{{"Firing", "firing"}, {"Firing", "resolved"}, {"Pending", "firing"}} {
		if got := c.rcv.Count(w.rule, w.status); got != 1 {
			c.t.Errorf("%s %s: %d messages, want exactly 1", w.rule, w.status, got)
		}
	}
}

func TestLeaderKilledWhilePendingAndFiring(t *testing.T) {
	c := newCluster(t)
	clear := 1 << 30
	c.series = phases(&clear)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	c.firingSettled()

	old := c.leader()
	killSlot := c.i
	killed := time.Now()
	old.kill()
	c.runUntil(60, "a new leader evaluates", func() bool {
		return c.i > killSlot && c.evaluated[c.i-1] != ""
	})
	took := time.Since(killed)
	// TTL, etcd's lease-expiry sweep (500 ms), one slot, and slack for a
	// loaded CI machine.
	if limit := ttl*time.Second + 500*time.Millisecond + tick + time.Second; took > limit {
		t.Errorf("new leader evaluated %v after the kill, want within %v", took, limit)
	}
	t.Logf("killed %s at slot %d; %s took over in %v, first slot %d", old.name, killSlot, c.evaluated[c.i-1], took, c.i-1)
	if c.evaluated[c.i-1] == old.name {
		t.Fatalf("the killed replica evaluated")
	}
	c.finish(&clear, true)
}

func TestEtcdMemberOfLeaderDies(t *testing.T) {
	c := newCluster(t)
	clear := 1 << 30
	c.series = phases(&clear)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	c.firingSettled()

	lead := c.leader()
	m := c.etcd.Leader()
	if m == nil {
		t.Fatal("etcd has no leader")
	}
	stopSlot := c.i
	stopped := time.Now()
	// The raft leader: every write of every client goes through it, so
	// the replicas' clients lose their connection to it and fail over.
	m.Stop()
	c.runUntil(60, "evaluation continues", func() bool {
		return c.i > stopSlot+1 && c.evaluated[c.i-1] != ""
	})
	t.Logf("stopped etcd member %s at slot %d; %s (was %s) evaluating again after %v", m.Name, stopSlot, c.evaluated[c.i-1], lead.name, time.Since(stopped))
	c.finish(&clear, true)
}

func TestEtcdLosesQuorum(t *testing.T) {
	c := newCluster(t)
	clear := 1 << 30
	c.series = phases(&clear)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	c.firingSettled()

	ms := c.etcd.Members()
	ms[1].Stop()
	ms[2].Stop()
	lostAt := time.Now()
	c.runUntil(40, "no replica leads", func() bool { return c.leaders() == 0 })
	if took := time.Since(lostAt); took > ttl*time.Second+time.Second {
		t.Errorf("the leader stopped %v after quorum was lost, want within TTL", took)
	}
	sent := c.rcv.Total()
	from := c.i
	for range 10 {
		c.runSlot()
	}
	for i := from; i < c.i; i++ {
		if c.evaluated[i] != "" {
			t.Errorf("slot %d evaluated by %s without quorum", i, c.evaluated[i])
		}
	}
	if got := c.rcv.Total(); got != sent {
		t.Errorf("%d messages sent without quorum", got-sent)
	}

	ms[1].Restart(t)
	back := time.Now()
	c.runUntil(80, "one leader resumes", func() bool { return c.i > from && c.evaluated[c.i-1] != "" })
	t.Logf("quorum back; %s evaluating after %v", c.evaluated[c.i-1], time.Since(back))
	c.finish(&clear, false)
}

// A replica whose lease is revoked behind its back stops within the TTL,
// and its writes are refused from the moment its key is gone.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	c := newCluster(t)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	old := c.leader()
	term := old.el.Term()
	if term == nil {
		t.Fatal("leader without a term")
	}
	var other = c.reps[0]
	if other == old {
		other = c.reps[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := other.cli.Revoke(ctx, term.Lease()); err != nil {
		t.Fatal(err)
	}
	rec := engine.AlertRecord{Rule: "Firing", Fingerprint: "f1", State: "firing", ActiveAt: base}
	if err := old.state.SaveAlerts(ctx, term, []engine.AlertRecord{rec}); !errors.Is(err, ha.ErrNotLeader) {
		t.Errorf("save after the lease was revoked: %v, want ErrNotLeader", err)
	}
	if resp, err := other.cli.Get(ctx, "/test/alerts/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || resp.Count != 0 {
		t.Errorf("alert records after a refused save: %v, %v", resp, err)
	}
	waitFor(t, ttl*time.Second+time.Second, "deposed leader stops", func() bool { return term.Context().Err() != nil })
	if cause := context.Cause(term.Context()); !errors.Is(cause, ha.ErrSessionLost) && !errors.Is(cause, ha.ErrNotLeader) {
		t.Errorf("term ended with %v", cause)
	}
	waitFor(t, 5*time.Second, "a new leader", func() bool { l := c.leader(); return l != nil && l.el.Term() != term })
}

// Evaluations that change no state write nothing to etcd.
func TestWritesFollowStateChanges(t *testing.T) {
	c := newCluster(t)
	clear := 1 << 30
	c.series = phases(&clear)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	c.firingSettled()
	c.runSlot()
	c.runSlot()
	lead := c.leader()
	before := lead.state.Stats()
	for range 20 {
		c.runSlot()
	}
	after := lead.state.Stats()
	if c.evaluated[c.i-1] != lead.name {
		t.Fatalf("leader changed during the test (%q)", c.evaluated)
	}
	if after != before {
		t.Errorf("20 evaluations without a state change wrote %+v (before %+v)", after, before)
	}
	t.Logf("writes for the whole story so far: %+v", after)
}
