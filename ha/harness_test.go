package ha_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
	"github.com/vigil-alerts/vigil/rules"
)

// TestMain fails the package if a goroutine outlives the tests: every
// elector loop, watchdog and saver must be stopped and waited for.
func TestMain(m *testing.M) {
	testkit.VerifyNoLeaks(m, 5*time.Second, nil,
		// A member stopped with HardStop can leave a peer request of its
		// own blocked on its closed backend: etcd's, not Vigil's.
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/storage/backend.(*baseReadTx).UnsafeRange"))
}

// The evaluation clock: slot i is base + i*step. Every tick of the test's
// scheduler is one slot; real time between ticks is tick.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	step = 10 * time.Second
	tick = 100 * time.Millisecond
	ttl  = 1 // seconds
)

func slot(i int) time.Time { return base.Add(time.Duration(i) * step) }

// Firing fires two slots after "down" turns 1; Pending needs five minutes
// (30 slots) of "slow", so it is still pending across a failover.
const ruleYAML = `
groups:
  - name: g
    interval: 10s
    rules:
      - name: Firing
        severity: high
        segment_by: [host]
        window: 10s
        for: 20s
        condition: max("down") == 1
      - name: Pending
        severity: high
        segment_by: [host]
        window: 10s
        for: 5m
        condition: max("slow") == 1
`

func ruleSet(t testing.TB) *rules.RuleSet {
	t.Helper()
	rs, err := rules.Parse([]string{"ha.yaml"}, map[string][]byte{"ha.yaml": []byte(ruleYAML)})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// replica is one Vigil process: its own etcd client, window store, elector
// and node.
type replica struct {
	name  string
	cli   *clientv3.Client
	store *engine.Store
	el    *ha.Elector
	node  *ha.Node
	state *ha.State

	cancel context.CancelFunc
	done   chan struct{}
	dead   bool
}

func startReplica(t *testing.T, name string, endpoints []string, rs *rules.RuleSet, hook string) *replica {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, cli: cli, store: engine.NewStore(rs.MaxWindow + time.Minute), done: make(chan struct{})}
	r.el, err = ha.NewElector(cli, ha.ElectorOptions{Name: name, Prefix: "/test/", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	r.state = ha.NewState(cli, "/test/")
	ncfg := notifiers.Config{
		Channels:        []notifiers.ChannelConfig{{Name: "hook", Webhook: &webhook.Config{URL: hook}}},
		DefaultChannels: []string{"hook"},
		GroupWait:       time.Millisecond, GroupInterval: step, RepeatInterval: 4 * time.Hour,
		DeliveryTimeout: 5 * time.Second, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
	}
	r.node, err = ha.NewNode(ha.NodeOptions{
		Elector: r.el, State: r.state, FlushInterval: 50 * time.Millisecond,
		NewEngine: func() *engine.Engine {
			e := engine.New(r.store)
			e.SetRules(rs)
			return e
		},
		NewDispatcher: func() (*notifiers.Dispatcher, error) { return notifiers.Build(ncfg) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); _ = r.el.Run(ctx) }()
	t.Cleanup(r.shutdown)
	return r
}

// shutdown is the orderly stop: deliveries within a bound, final save,
// resign.
func (r *replica) shutdown() {
	if r.dead {
		return
	}
	r.dead = true
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = r.node.Stop(ctx)
	r.cancel()
	<-r.done
	r.cli.Close()
}

// kill is a crash: the process and its connections vanish without
// resigning, so its lease has to expire.
func (r *replica) kill() {
	r.dead = true
	r.cli.Close()
	r.cancel()
	<-r.done
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.node.Stop(ctx)
}

// cluster is three replicas on a 3-member etcd cluster, driven slot by
// slot: every live replica appends the same samples, then every live
// replica runs Evaluate; only the leader's does anything.
type cluster struct {
	t    *testing.T
	etcd *etcdtest.Cluster
	rcv  *webhooktest.Receiver
	reps []*replica
	i    int // next slot
	// series gives the value of each metric at slot i.
	series func(i int) map[string]float64
	// evaluated[i] names the replica that evaluated slot i ("" for none).
	evaluated []string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, etcd: etcdtest.StartCluster(t, 3), rcv: webhooktest.NewReceiver(t)}
	rs := ruleSet(t)
	for i := range 3 {
		c.reps = append(c.reps, startReplica(t, fmt.Sprintf("vigil-%d", i), c.etcd.Endpoints(), rs, c.rcv.URL))
	}
	return c
}

// runSlot runs the next slot and waits out the rest of its tick.
func (c *cluster) runSlot() {
	c.t.Helper()
	started := time.Now()
	i := c.i
	c.i++
	now := slot(i)
	var samples []model.Sample
	for metric, v := range c.series(i) {
		samples = append(samples, model.Sample{Metric: metric, Labels: model.Labels{"host": "a"}, Value: v, Time: now})
	}
	who := ""
	for _, r := range c.reps {
		if r.dead {
			continue
		}
		r.store.Append(samples...)
		ok, err := r.node.Evaluate(now)
		if err != nil {
			c.t.Logf("slot %d: %s: %v", i, r.name, err)
		}
		if ok {
			if who != "" {
				c.t.Errorf("slot %d evaluated by %s and %s", i, who, r.name)
			}
			who = r.name
		}
	}
	c.evaluated = append(c.evaluated, who)
	if d := tick - time.Since(started); d > 0 {
		time.Sleep(d) // the scheduler's slot length, not a wait for a condition
	}
}

// runUntil runs slots until cond holds, failing after max slots.
func (c *cluster) runUntil(max int, what string, cond func() bool) {
	c.t.Helper()
	for range max {
		if cond() {
			return
		}
		c.runSlot()
	}
	if !cond() {
		c.t.Fatalf("after %d slots (now slot %d): %s did not happen; evaluated by %q", max, c.i, what, c.evaluated)
	}
}

func (c *cluster) leader() *replica {
	for _, r := range c.reps {
		if !r.dead && r.el.Leading() {
			return r
		}
	}
	return nil
}

func (c *cluster) leaders() int {
	n := 0
	for _, r := range c.reps {
		if !r.dead && r.el.Leading() {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, within)
	return 0
}

// persisted reports whether the shared state says the channel was told
// that rule fired.
func (c *cluster) persisted(rule string) bool {
	var cli *clientv3.Client
	for _, r := range c.reps {
		if !r.dead {
			cli = r.cli
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, recs, err := ha.NewState(cli, "/test/").Load(ctx)
	if err != nil {
		return false
	}
	for _, rec := range recs {
		if rec.Group == rule && len(rec.Sent) > 0 {
			return true
		}
	}
	return false
}
