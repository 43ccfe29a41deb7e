package ha_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
)

// A follower waits in its campaign. When it stops while etcd is down,
// etcd's Campaign resigns with the client's own context; that resign must
// be bounded, or the shutdown hangs for as long as etcd is down.
func TestStopWithEtcdDownIsBounded(t *testing.T) {
	e := etcdtest.StartCluster(t, 1)
	rcv := webhooktest.NewReceiver(t)
	rs := ruleSet(t)
	a := startReplica(t, "vigil-a", e.Endpoints(), rs, rcv.URL)
	waitFor(t, 10*time.Second, "a leads", a.el.Leading)
	b := startReplica(t, "vigil-b", e.Endpoints(), rs, rcv.URL)
	waitFor(t, 10*time.Second, "b knows a leads", func() bool { return b.el.Leader() == "vigil-a" })

	e.Members()[0].Stop() // HardStop: etcd gone, no hand-over
	for _, r := range []*replica{b, a} {
		began := time.Now()
		stopped := make(chan struct{})
		go func() { defer close(stopped); r.shutdown() }()
		select {
		case <-stopped:
			t.Logf("%s stopped %v after etcd went down", r.name, time.Since(began).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: stop still running 5s after it began with etcd down", r.name)
		}
	}
}

// With quorum lost and the leader killed, a follower cannot know who
// leads: it reports no leader (docs/ha.md) rather than the dead one.
func TestNoLeaderKnownWithoutQuorum(t *testing.T) {
	c := newCluster(t)
	waitFor(t, 10*time.Second, "first leader", func() bool { return c.leaders() == 1 })
	lead := c.leader()
	for _, r := range c.reps {
		waitFor(t, 5*time.Second, r.name+" knows the leader", func() bool { return r.el.Leader() == lead.name })
	}
	ms := c.etcd.Members()
	lost := time.Now()
	ms[1].Stop()
	ms[2].Stop()
	lead.kill()
	for _, r := range c.reps {
		if r == lead {
			continue
		}
		waitFor(t, ttl*time.Second+5*time.Second, r.name+" reports no leader", func() bool { return r.el.Leader() == "" })
		if r.el.Leading() {
			t.Errorf("%s leads without quorum", r.name)
		}
	}
	t.Logf("followers report no leader %v after quorum was lost", time.Since(lost).Round(time.Millisecond))
	// And keep saying so while etcd has no quorum.
	for range 20 {
		for _, r := range c.reps {
			if r != lead && r.el.Leader() != "" {
				t.Fatalf("%s names %q as leader without quorum", r.name, r.el.Leader())
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}
