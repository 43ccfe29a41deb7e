// Package ha lets several Vigil replicas share one job: every replica
// collects and keeps its window store warm, and the one that leads an etcd
// election evaluates, notifies and writes the alert and delivery state to
// etcd, so whichever replica leads next carries on where it stopped.
//
// Leadership is a Term: its context is cancelled the moment this replica
// can no longer be sure it leads (session lost, lease not renewed in time,
// shutdown), and its Guard makes etcd refuse the writes of a leader that
// was deposed. Node puts the pieces together for one evaluation slot.
package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Errors a term ends with (context.Cause of Term.Context).
var (
	// ErrSessionLost: the etcd session ended (lease expired or revoked,
	// or the client gave up on it).
	ErrSessionLost = errors.New("ha: etcd session lost")
	// ErrLeaseNotRenewed: no lease renewal was confirmed within the TTL,
	// so another replica may already lead.
	ErrLeaseNotRenewed = errors.New("ha: lease not renewed within its TTL")
	// ErrStopped: the elector was stopped (shutdown).
	ErrStopped = errors.New("ha: elector stopped")
)

// ElectorOptions configure an Elector.
type ElectorOptions struct {
	// Name identifies this replica; it is the election key's value.
	Name string
	// Prefix is the shared key prefix (Config.Prefix); the election runs
	// under Prefix + "leader/".
	Prefix string
	// TTL is the session lease in whole seconds (at least 1).
	TTL    int
	Logger *slog.Logger
}

// Elector campaigns for leadership in a loop: session, campaign, lead
// until the session is lost, start again. Run owns that loop.
type Elector struct {
	cli *clientv3.Client
	o   ElectorOptions
	log *slog.Logger

	mu      sync.Mutex
	term    *Term
	leader  string
	terms   uint64
	changed chan struct{} // closed and replaced on every term change
	runOnce sync.Once
}

// NewElector prepares an elector on cli; nothing happens until Run.
func NewElector(cli *clientv3.Client, o ElectorOptions) (*Elector, error) {
	if o.TTL < 1 {
		return nil, fmt.Errorf("ha: session TTL %ds: must be at least 1s", o.TTL)
	}
	if o.Name == "" {
		return nil, errors.New("ha: replica name is empty")
	}
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Elector{cli: cli, o: o, log: o.Logger, changed: make(chan struct{})}, nil
}

// Term is one uninterrupted stretch of leadership.
type Term struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	key    string
	rev    int64
	lease  clientv3.LeaseID
	seq    uint64
	done   chan struct{} // the watchdog has returned
}

// Context is cancelled the moment leadership may be lost; derive every
// evaluation and delivery of the term from it. context.Cause says why.
func (t *Term) Context() context.Context { return t.ctx }

// Done is Context().Done().
func (t *Term) Done() <-chan struct{} { return t.ctx.Done() }

// Guard is the condition every shared-state write of this term is made
// under: the election key this replica created still exists, so a leader
// that was deposed (its lease expired, a new leader elected) writes nothing.
func (t *Term) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(t.key), "=", t.rev)
}

// Lease is the session's lease.
func (t *Term) Lease() clientv3.LeaseID { return t.lease }

// Key and Rev are the election key and its create revision.
func (t *Term) Key() string { return t.key }
func (t *Term) Rev() int64  { return t.rev }

// Seq numbers this replica's terms from 1, so a caller can tell a new term
// from the one it already set up.
func (t *Term) Seq() uint64 { return t.seq }

// Term returns the current term, or nil while this replica does not lead.
func (e *Elector) Term() *Term {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term == nil || e.term.ctx.Err() != nil {
		return nil
	}
	return e.term
}

// Leading reports whether this replica leads right now.
func (e *Elector) Leading() bool { return e.Term() != nil }

// Leader names the replica that leads, as far as this replica knows: ""
// when it cannot reach etcd or no leader is known, for /api/v1/status.
func (e *Elector) Leader() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.term != nil && e.term.ctx.Err() == nil {
		return e.o.Name
	}
	return e.leader
}

// Name is this replica's name.
func (e *Elector) Name() string { return e.o.Name }

// Changed returns a channel closed at the next change of term (won or
// lost), for callers that react rather than poll.
func (e *Elector) Changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Elector) setTerm(t *Term) {
	e.mu.Lock()
	e.term = t
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *Elector) setLeader(name string) {
	e.mu.Lock()
	e.leader = name
	e.mu.Unlock()
}

func (e *Elector) ttl() time.Duration { return time.Duration(e.o.TTL) * time.Second }

// Run campaigns until ctx is done, then resigns (so another replica takes
// over at once rather than after the TTL) and returns nil. A replica that
// cannot reach etcd keeps trying and never leads meanwhile. Run may be
// called once.
func (e *Elector) Run(ctx context.Context) error {
	first := false
	e.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("ha: Elector.Run called twice")
	}
	retry := 100 * time.Millisecond
	for ctx.Err() == nil {
		led, err := e.session(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("election round failed", "err", err)
		}
		if led {
			retry = 100 * time.Millisecond
		}
		t := time.NewTimer(retry)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		retry = min(retry*2, max(e.ttl()/2, time.Second))
	}
	return nil
}

// session runs one etcd session: grant, campaign, lead until the term
// ends, then give the lease back. It reports whether it led.
func (e *Elector) session(ctx context.Context) (led bool, err error) {
	gctx, cancel := context.WithTimeout(ctx, e.ttl())
	grant, err := e.cli.Grant(gctx, int64(e.o.TTL))
	cancel()
	if err != nil {
		return false, fmt.Errorf("grant lease: %w", err)
	}
	// Campaign, when its context ends while it waits, resigns with the
	// client's context, which only ends when the client is closed: with
	// etcd unreachable or without quorum that resign would block shutdown
	// (and keep Leader naming a replica nobody can know leads) for as long
	// as etcd is down. The session therefore runs on a view of the client
	// whose context ends ResignTimeout after the session's.
	view, endView := e.view()
	s, err := concurrency.NewSession(view, concurrency.WithLease(grant.ID), concurrency.WithTTL(e.o.TTL), concurrency.WithContext(ctx))
	if err != nil {
		endView(nil)
		e.revoke(grant.ID)
		return false, fmt.Errorf("session: %w", err)
	}
	defer func() {
		s.Orphan()
		endView(nil)
		e.revoke(grant.ID)
		e.setLeader("")
	}()
	stopBound := context.AfterFunc(s.Ctx(), func() { endView(time.NewTimer(min(e.ttl(), ResignTimeout))) })
	defer stopBound()
	el := concurrency.NewElection(s, e.o.Prefix+"leader/")

	var wg sync.WaitGroup
	defer wg.Wait()
	octx, stopObserve := context.WithCancel(s.Ctx())
	defer stopObserve()
	wg.Add(1)
	go func() { defer wg.Done(); e.observe(octx, el) }()

	if err := el.Campaign(s.Ctx(), e.o.Name); err != nil {
		return false, fmt.Errorf("campaign: %w", err)
	}
	t, err := e.begin(ctx, s, el)
	if err != nil {
		return false, err
	}
	e.log.Info("leading", "key", t.key, "term", t.seq)
	e.setTerm(t)
	<-t.ctx.Done()
	e.setTerm(nil)
	<-t.done
	e.log.Warn("leadership ended", "term", t.seq, "err", context.Cause(t.ctx))
	// The deferred revoke deletes the election key with the lease, so on
	// shutdown another replica takes over at once, not after the TTL.
	return true, nil
}

// begin confirms the lease with one renewal of our own and starts the
// term's watchdog. The session's keep-alive only notices a lost lease up
// to a second after its TTL; the watchdog ends the term at the last
// confirmed renewal's send time plus the TTL, before etcd can expire it.
func (e *Elector) begin(runCtx context.Context, s *concurrency.Session, el *concurrency.Election) (*Term, error) {
	sent := time.Now()
	kctx, cancel := context.WithTimeout(s.Ctx(), e.ttl())
	resp, err := e.cli.KeepAliveOnce(kctx, s.Lease())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("confirm lease: %w", err)
	}
	ctx, cancelTerm := context.WithCancelCause(context.Background())
	e.mu.Lock()
	e.terms++
	seq := e.terms
	e.mu.Unlock()
	t := &Term{ctx: ctx, cancel: cancelTerm, key: el.Key(), rev: el.Rev(), lease: s.Lease(), seq: seq, done: make(chan struct{})}
	deadline := sent.Add(time.Duration(resp.TTL) * time.Second)
	go e.watchdog(runCtx, t, s, deadline)
	return t, nil
}

// watchdog renews the lease every TTL/3 and ends the term when the session
// ends, a renewal is refused, or none was confirmed before the deadline.
func (e *Elector) watchdog(runCtx context.Context, t *Term, s *concurrency.Session, deadline time.Time) {
	defer close(t.done)
	expire := time.NewTimer(time.Until(deadline))
	defer expire.Stop()
	tick := time.NewTicker(max(e.ttl()/3, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-runCtx.Done():
			t.cancel(ErrStopped)
			return
		case <-s.Done():
			if runCtx.Err() != nil {
				t.cancel(ErrStopped)
			} else {
				t.cancel(ErrSessionLost)
			}
			return
		case <-expire.C:
			t.cancel(ErrLeaseNotRenewed)
			return
		case <-tick.C:
			sent := time.Now()
			kctx, cancel := context.WithDeadline(t.ctx, deadline)
			resp, err := e.cli.KeepAliveOnce(kctx, t.lease)
			cancel()
			switch {
			case errors.Is(err, rpctypes.ErrLeaseNotFound):
				t.cancel(ErrSessionLost)
				return
			case err != nil:
				// Not confirmed; the deadline stands.
			default:
				deadline = sent.Add(time.Duration(resp.TTL) * time.Second)
				expire.Reset(time.Until(deadline))
			}
		}
	}
}

// observe keeps Leader current while the session lives.
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) > 0 {
			e.setLeader(string(resp.Kvs[0].Value))
		}
	}
}

// ResignTimeout bounds giving the election key up when a campaign ends
// (shutdown, session lost); past it the lease expires by itself.
const ResignTimeout = 2 * time.Second

// view returns a view of e.cli (same connection, KV, lease and watcher)
// with a context of its own, and end, which ends that context once the
// timer given fires (at once when nil; again: at once). The view is never
// closed: that would close the shared lease and watcher.
func (e *Elector) view() (*clientv3.Client, func(*time.Timer)) {
	ctx, cancel := context.WithCancel(context.Background())
	v := clientv3.NewCtxClient(ctx, clientv3.WithZapLogger(e.cli.GetLogger()))
	v.KV, v.Lease, v.Watcher = e.cli.KV, e.cli.Lease, e.cli.Watcher
	var once sync.Once
	return v, func(t *time.Timer) {
		if t == nil {
			cancel()
			return
		}
		once.Do(func() {
			go func() {
				defer t.Stop()
				select {
				case <-t.C:
					cancel()
				case <-ctx.Done():
				}
			}()
		})
	}
}

// revoke gives the lease back so the election key goes at once; if etcd
// cannot be reached the lease expires by itself.
func (e *Elector) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), min(e.ttl(), 2*time.Second))
	defer cancel()
	_, _ = e.cli.Revoke(ctx, id)
}
