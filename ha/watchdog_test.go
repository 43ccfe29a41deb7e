package ha_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
	"github.com/vigil-alerts/vigil/rules"
)

// lagger is a TCP proxy to etcd that delays each direction by a fixed
// time and can freeze the way to etcd: a replica behind a slow link that
// then stops reaching etcd while etcd's answers in flight still arrive.
type lagger struct {
	l        net.Listener
	target   string
	up, down time.Duration
	frozen   atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startLagger(t *testing.T, endpoint string, up, down time.Duration) *lagger {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lagger{l: l, target: strings.TrimPrefix(endpoint, "http://"), up: up, down: down}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *lagger) URL() string { return "http://" + p.l.Addr().String() }

func (p *lagger) serve() {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.pipe(in, out, p.up, &p.frozen)
		p.pipe(out, in, p.down, nil)
	}
}

// pipe copies from src to dst, each chunk delay after it was read; while
// *frozen, what is read is dropped.
func (p *lagger) pipe(src, dst net.Conn, delay time.Duration, frozen *atomic.Bool) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	p.wg.Go(func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 && (frozen == nil || !frozen.Load()) {
				q <- chunk{b[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	})
	p.wg.Go(func() {
		defer dst.Close()
		for c := range q {
			time.Sleep(time.Until(c.at.Add(delay))) // the link's latency
			if _, err := dst.Write(c.b); err != nil {
				return
			}
		}
	})
}

// A leader whose renewals stop reaching etcd ends its term at the last
// confirmed renewal's send time plus the TTL: before etcd can expire the
// lease and another replica lead. Its etcd client only gives the lease
// up a TTL after the last answer arrived, which on a slow link is after
// etcd expired it; without the watchdog the two would lead at once.
func TestWatchdogEndsTermBeforeLeaseExpires(t *testing.T) {
	e := etcdtest.StartCluster(t, 1)
	ep := e.Endpoints()[0]
	// Renewals reach etcd 0.5s after they are sent, answers come back
	// 1s later: the client's idea of the lease lags etcd's by 1s.
	link := startLagger(t, ep, 500*time.Millisecond, time.Second)
	const ttl = 3
	elect := func(name, endpoint string) *ha.Elector {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		el, err := ha.NewElector(cli, ha.ElectorOptions{Name: name, Prefix: "/wd/", TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = el.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done; cli.Close() })
		return el
	}
	a := elect("slow", link.URL())
	waitFor(t, 20*time.Second, "the slow replica leads", a.Leading)
	term := a.Term()
	b := elect("fast", ep)
	waitFor(t, 10*time.Second, "the fast replica follows", func() bool { return b.Leader() == "slow" })

	var aEnded time.Time
	ended := make(chan struct{})
	go func() { <-term.Done(); aEnded = time.Now(); close(ended) }()
	link.frozen.Store(true)
	cut := time.Now()
	var bLeads time.Time
	deadline := time.After(20 * time.Second)
	for bLeads.IsZero() {
		ch := b.Changed()
		if b.Leading() {
			bLeads = time.Now()
			break
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatal("the fast replica did not take over within 20s")
		}
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow replica's term did not end")
	}
	t.Logf("cut at 0; slow's term ended at %v (%v); fast leads at %v",
		aEnded.Sub(cut).Round(time.Millisecond), context.Cause(term.Context()), bLeads.Sub(cut).Round(time.Millisecond))
	if !aEnded.Before(bLeads) {
		t.Errorf("two leaders: the slow replica's term ended %v after the fast one's began", aEnded.Sub(bLeads).Round(time.Millisecond))
	}
	// The watchdog's deadline and the client's own lease tracking end the
	// term at about the same moment; which one wins is a race, and either
	// is in time. Without the watchdog the term ends after the new
	// leader's began (checked above).
	if cause := context.Cause(term.Context()); !errors.Is(cause, ha.ErrLeaseNotRenewed) && !errors.Is(cause, ha.ErrSessionLost) {
		t.Errorf("term ended with %v, want ErrLeaseNotRenewed or ErrSessionLost", cause)
	}
}

// A term that ended is not reported as running: the node's lead (which
// the API shows as the leader's alerts) is gone at once, not at the next
// evaluation, and the elector neither leads nor names itself.
func TestEndedTermIsNotCurrent(t *testing.T) {
	e := etcdtest.StartCluster(t, 1)
	rcv := webhooktest.NewReceiver(t)
	rs := ruleSet(t)
	old := startReplica(t, "vigil-a", e.Endpoints(), rs, rcv.URL)
	waitFor(t, 10*time.Second, "a leads", old.el.Leading)
	other := startReplica(t, "vigil-b", e.Endpoints(), rs, rcv.URL)
	if ok, err := old.node.Evaluate(slot(0)); !ok || err != nil {
		t.Fatalf("leader did not evaluate: %v", err)
	}
	term := old.el.Term()
	if old.node.Current() == nil || term == nil {
		t.Fatal("no current lead after an evaluation")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := other.cli.Revoke(ctx, term.Lease()); err != nil {
		t.Fatal(err)
	}
	<-term.Done()
	if l := old.node.Current(); l != nil {
		t.Errorf("node reports the ended term %d as current", l.Term.Seq())
	}
	waitFor(t, 5*time.Second, "the elector lets the term go", func() bool { return !old.el.Leading() && old.el.Leader() != "vigil-a" })
}

// A new term shows the restored alerts' inhibitions before its first
// evaluation: the term's dispatcher holds the inhibited ones at once.
func TestNewTermRestoresInhibitions(t *testing.T) {
	e := etcdtest.StartCluster(t, 1)
	rcv := webhooktest.NewReceiver(t)
	rs, err := rules.Parse([]string{"inh.yaml"}, map[string][]byte{"inh.yaml": []byte(`
groups:
  - name: g
    interval: 10s
    rules:
      - name: Member
        severity: high
        segment_by: [host]
        condition: max("down") == 1
      - name: Service
        severity: critical
        segment_by: [host]
        across: every
        condition: max("down") == 1
        inhibits:
          rules: [Member]
`)})
	if err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, "vigil-a", e.Endpoints(), rs, rcv.URL)
	waitFor(t, 10*time.Second, "a leads", a.el.Leading)
	for i := range 2 {
		a.store.Append(model.Sample{Metric: "down", Labels: model.Labels{"host": "h1"}, Value: 1, Time: slot(i)})
		if ok, err := a.node.Evaluate(slot(i)); !ok || err != nil {
			t.Fatalf("slot %d: %v %v", i, ok, err)
		}
	}
	if l := a.node.Current(); l == nil || len(l.Dispatcher.Inhibited()) != 1 {
		t.Fatal("Member not inhibited on the first leader")
	}
	b := startReplica(t, "vigil-b", e.Endpoints(), rs, rcv.URL)
	a.shutdown()
	waitFor(t, 10*time.Second, "b leads", b.el.Leading)
	l, err := b.node.Lead()
	if err != nil || l == nil {
		t.Fatalf("b's term: %v", err)
	}
	if got := l.Dispatcher.Inhibited(); len(got) != 1 || got[0].Alert.Rule != "Member" {
		t.Errorf("new term before its first evaluation: inhibited %+v, want Member", got)
	}
}
