package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// NodeOptions wire a Node.
type NodeOptions struct {
	Elector *Elector
	State   *State
	// NewEngine returns a fresh engine over this replica's warm window
	// store with the current rules set. It is called at the start of
	// every term: a term starts from the shared state, never from what
	// this replica knew when it last led.
	NewEngine func() *engine.Engine
	// NewDispatcher builds the dispatcher of one term (notifiers.Build);
	// it is stopped the moment the term ends, so a deposed leader's
	// queued and in-flight messages are dropped, not delivered.
	NewDispatcher func() (*notifiers.Dispatcher, error)
	// FlushInterval is how often delivery records are saved between
	// evaluations, so a message delivered just before a failover is not
	// sent again by the successor (default 1s; writes only on change).
	FlushInterval time.Duration
	// LoadTimeout bounds loading the shared state at a term's start
	// (default 5s).
	LoadTimeout time.Duration
	// SaveTimeout bounds one save, so a write stuck in etcd (its leader
	// just died: etcd answers after its 5s request timeout) does not hold
	// up the evaluation slots; what was not saved is saved at the next
	// slot. Default: half the session TTL, at most 2s.
	SaveTimeout time.Duration
	Logger      *slog.Logger
	// Now is the evaluation clock (default time.Now); a new term works
	// out the restored alerts' inhibitions and silences at Now.
	Now func() time.Time
}

// Node runs the leader's side of one evaluation slot. Every replica calls
// Evaluate at every slot, after appending its collected samples; only the
// leader's call does anything.
type Node struct {
	o   NodeOptions
	log *slog.Logger

	mu      sync.Mutex // guards lead; held while a term is set up
	lead    *Lead
	stopped bool
	saveMu  sync.Mutex // export and save in one order
	wg      sync.WaitGroup
}

// Lead is what one term of leadership runs with.
type Lead struct {
	Term       *Term
	Engine     *engine.Engine
	Dispatcher *notifiers.Dispatcher
	// Restored counts the shared records imported at the term's start.
	Restored, Dropped int
	stop              chan struct{}
	once              sync.Once
}

// NewNode checks o and returns a Node; nothing runs until Evaluate.
func NewNode(o NodeOptions) (*Node, error) {
	if o.Elector == nil || o.State == nil || o.NewEngine == nil || o.NewDispatcher == nil {
		return nil, errors.New("ha: NodeOptions needs Elector, State, NewEngine and NewDispatcher")
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 5 * time.Second
	}
	if o.SaveTimeout <= 0 {
		o.SaveTimeout = min(o.Elector.ttl()/2, 2*time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Node{o: o, log: o.Logger}, nil
}

// Current returns the lead of the running term, or nil.
func (n *Node) Current() *Lead {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lead == nil || n.lead.Term.ctx.Err() != nil {
		return nil
	}
	return n.lead
}

// Lead returns the running term's lead, setting a new term up first: the
// shared alert states go into a fresh engine and the delivery records into
// a fresh dispatcher, before anything is evaluated. It returns nil when
// this replica does not lead, and an error when a new term could not be
// set up (it is tried again at the next call).
func (n *Node) Lead() (*Lead, error) {
	t := n.o.Elector.Term()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return nil, nil
	}
	if n.lead != nil && n.lead.Term == t && t.ctx.Err() == nil {
		return n.lead, nil
	}
	if n.lead != nil {
		n.lead.end()
		n.lead = nil
	}
	if t == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(t.ctx, n.o.LoadTimeout)
	defer cancel()
	alerts, deliveries, err := n.o.State.Load(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("term %d: %w", t.seq, err)
	}
	if err != nil {
		n.log.Error("shared state records skipped", "err", err)
	}
	eng := n.o.NewEngine()
	disp, err := n.o.NewDispatcher()
	if err != nil {
		return nil, fmt.Errorf("term %d: dispatcher: %w", t.seq, err)
	}
	l := &Lead{Term: t, Engine: eng, Dispatcher: disp, stop: make(chan struct{})}
	l.Restored, l.Dropped = eng.Import(alerts)
	dr, dd := disp.ImportState(deliveries)
	disp.Hold(n.o.Now(), eng.Alerts())
	l.Restored += dr
	l.Dropped += dd
	n.log.Info("term started; shared state loaded", "term", t.seq, "restored", l.Restored, "dropped", l.Dropped)
	n.lead = l
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.watch(l) }()
	go func() { defer n.wg.Done(); n.flush(l) }()
	return l, nil
}

// watch stops the term's delivery the moment the term ends.
func (n *Node) watch(l *Lead) {
	select {
	case <-l.Term.Done():
		l.end()
	case <-l.stop:
	}
}

// end stops the dispatcher with an expired context: queued messages and
// attempts in flight are abandoned at once. Safe to call more than once.
func (l *Lead) end() {
	l.once.Do(func() {
		close(l.stop)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = l.Dispatcher.Stop(ctx)
	})
}

// flush saves delivery records between evaluations; only changes are
// written.
func (n *Node) flush(l *Lead) {
	tick := time.NewTicker(n.o.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			if err := n.saveDeliveries(l); err != nil && l.Term.ctx.Err() == nil {
				n.log.Warn("cannot save delivery records", "err", err)
			}
		}
	}
}

func (n *Node) saveDeliveries(l *Lead) error {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	ctx, cancel := context.WithTimeout(l.Term.ctx, n.o.SaveTimeout)
	defer cancel()
	return n.o.State.SaveDeliveries(ctx, l.Term, l.Dispatcher.ExportState())
}

// Evaluate is one evaluation slot at now: if this replica leads, evaluate
// every rule within the term's context, hand the alerts to the dispatcher
// and save what changed. It reports whether it evaluated. A slot whose
// term ends midway stops there and returns the cause.
func (n *Node) Evaluate(now time.Time) (bool, error) {
	l, err := n.Lead()
	if l == nil {
		return false, err
	}
	ctx := l.Term.ctx
	if err := l.Engine.Eval(ctx, now); err != nil {
		return false, context.Cause(ctx)
	}
	return true, n.Deliver(l, now)
}

// Deliver hands l's engine alerts at now to its dispatcher and saves the
// alert and delivery state that changed. It is the part of Evaluate after
// the engine, for a caller that evaluates groups itself. extra alerts that
// no rule produces (the daemon's VigilReloadFailed) go to the dispatcher
// with the engine's; they are not part of the shared alert state.
func (n *Node) Deliver(l *Lead, now time.Time, extra ...model.Alert) error {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	if l.Term.ctx.Err() != nil {
		return context.Cause(l.Term.ctx)
	}
	alerts := l.Engine.Alerts()
	if len(extra) > 0 {
		alerts = append(alerts, extra...)
	}
	l.Dispatcher.Process(now, alerts)
	ctx, cancel := context.WithTimeout(l.Term.ctx, n.o.SaveTimeout)
	defer cancel()
	err := n.o.State.SaveAlerts(ctx, l.Term, l.Engine.Export())
	if errors.Is(err, ErrNotLeader) || ctx.Err() != nil {
		return err
	}
	// One record that cannot be stored (ErrTooLarge) must not keep the
	// delivery records, which stop re-pages after a failover, unsaved.
	return errors.Join(err, n.o.State.SaveDeliveries(ctx, l.Term, l.Dispatcher.ExportState()))
}

// Stop ends this replica's part: the running term's dispatcher finishes
// what is in flight within ctx, the final delivery records are saved, and
// the background savers are waited for. Call it before cancelling the
// Elector's Run, which then hands leadership over. Safe to call twice.
func (n *Node) Stop(ctx context.Context) error {
	n.mu.Lock()
	n.stopped = true
	l := n.lead
	n.lead = nil
	n.mu.Unlock()
	var errs []error
	if l != nil {
		errs = append(errs, l.Dispatcher.Stop(ctx))
		if l.Term.ctx.Err() == nil {
			// Bounded like every save: with etcd unreachable a shutdown
			// must not wait out the whole delivery bound here.
			sctx, cancel := context.WithTimeout(ctx, n.o.SaveTimeout)
			n.saveMu.Lock()
			errs = append(errs, n.o.State.SaveAlerts(sctx, l.Term, l.Engine.Export()))
			errs = append(errs, n.o.State.SaveDeliveries(sctx, l.Term, l.Dispatcher.ExportState()))
			n.saveMu.Unlock()
			cancel()
		}
		l.end()
	}
	n.wg.Wait()
	return errors.Join(errs...)
}
