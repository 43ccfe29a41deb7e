package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// With an `ha:` section the daemon is one replica of several (docs/ha.md):
// every replica collects into its store, only the one leading the etcd
// election evaluates and notifies, with an engine and a dispatcher built
// for its term from the shared state. The daemon's own engine then only
// holds the loaded rules (for reloads and the API); the state file is not
// used, etcd holds the state.

// haParts are one replica's etcd client, elector and node.
type haParts struct {
	name string
	cli  *clientv3.Client
	el   *ha.Elector
	node *ha.Node
	// silences keeps the process' silence store in step with etcd.
	silences *ha.SilenceSync
	// cancel stops the elector's Run (which resigns) and the silence
	// sync; wg is done when both have returned. Set by Start.
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    *slog.Logger
}

// haStopBound is the longest a stop waits for the election and the silence
// sync to give up their etcd calls before it closes the client under them.
const haStopBound = 5 * time.Second

// setupHA builds the replica's parts; nothing talks to etcd until Start.
func (d *daemon) setupHA(cfg *config.Config, nopts []notifiers.Option) error {
	c := cfg.HA.WithDefaults()
	cli, err := c.NewClient(d.o.LookupEnv, d.log.With("component", "ha", "client", "etcd"))
	if err != nil {
		return fmt.Errorf("%s: ha: %w", cfg.File, err)
	}
	log := d.log.With("component", "ha")
	el, err := ha.NewElector(cli, ha.ElectorOptions{Name: c.Name, Prefix: c.Prefix, TTL: c.TTL(), Logger: log})
	if err != nil {
		cli.Close()
		return fmt.Errorf("%s: ha: %w", cfg.File, err)
	}
	node, err := ha.NewNode(ha.NodeOptions{
		Elector: el, State: ha.NewState(cli, c.Prefix), Logger: log, Now: d.o.Now,
		NewEngine: func() *engine.Engine {
			e := engine.New(d.store, engine.WithLogger(d.log.With("component", "engine")))
			e.SetRules(d.eng.Rules())
			return e
		},
		// The section in use: a reload applies a new one to the running
		// term's dispatcher and stores it here for the terms after.
		NewDispatcher: func() (*notifiers.Dispatcher, error) { return notifiers.Build(*d.notifierCfg.Load(), nopts...) },
	})
	if err != nil {
		cli.Close()
		return fmt.Errorf("%s: ha: %w", cfg.File, err)
	}
	d.ha = &haParts{name: c.Name, cli: cli, el: el, node: node, log: log,
		silences: ha.NewSilenceSync(cli, c.Prefix, d.sil, log.With("part", "silences"))}
	d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_ha_leading", Help: "1 while this replica leads (evaluates and notifies), 0 while it follows.",
	}, func() float64 {
		if el.Leading() {
			return 1
		}
		return 0
	}))
	if cfg.State.Path != "" {
		d.log.Warn("state.path is not used with ha: alert state is kept in etcd", "path", cfg.State.Path)
	}
	return nil
}

// startHA starts campaigning and following the shared silences.
func (h *haParts) start() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		_ = h.el.Run(ctx)
	}()
	go func() {
		defer h.wg.Done()
		_ = h.silences.Run(ctx)
	}()
}

// stop hands over: the node lets in-flight deliveries finish within ctx
// and saves, then the elector resigns (another replica leads at once) and
// the client is closed.
func (h *haParts) stop(ctx context.Context) error {
	err := h.node.Stop(ctx)
	if h.cancel != nil {
		h.cancel()
		// Before the client they use closes; but never for longer than
		// haStopBound: every etcd call is bounded, and if one is not,
		// closing the client ends it rather than a shutdown that hangs.
		done := make(chan struct{})
		go func() { h.wg.Wait(); close(done) }()
		t := time.NewTimer(haStopBound)
		select {
		case <-done:
		case <-t.C:
			h.log.Warn("etcd calls still running; closing the client to end them", "after", haStopBound)
		}
		t.Stop()
		h.cli.Close()
		<-done
	} else {
		h.cli.Close()
	}
	if err != nil {
		return fmt.Errorf("ha: %w", err)
	}
	return nil
}

// evaluateHA is evaluate on a replica: only the leader evaluates groups,
// with its term's engine and within its term, then hands the alerts to
// the term's dispatcher and saves what changed to etcd.
func (d *daemon) evaluateHA(ctx context.Context, groups []string, slot time.Time) {
	l, err := d.ha.node.Lead()
	if err != nil {
		d.log.Warn("leading, but the term could not be set up; retrying at the next slot", "err", err)
	}
	d.gcSilences(ctx, slot, l != nil)
	if l == nil {
		// A follower has no alerts of its own: the leader's count.
		for _, s := range []model.AlertState{model.StatePending, model.StateFiring, model.StateResolved} {
			d.m.alerts.WithLabelValues(s.String()).Set(0)
		}
		return
	}
	tctx, cancel := context.WithCancelCause(l.Term.Context())
	defer cancel(nil)
	defer context.AfterFunc(ctx, func() { cancel(context.Cause(ctx)) })()
	if groups == nil {
		for _, g := range l.Engine.Rules().Groups {
			groups = append(groups, g.Name)
		}
	}
	for _, g := range groups {
		start := time.Now()
		if err := l.Engine.EvalGroup(tctx, g, slot); err != nil {
			d.log.Warn("group evaluation stopped", "group", g, "err", err, "cause", context.Cause(tctx))
		}
		d.m.evalDuration.WithLabelValues(g).Observe(time.Since(start).Seconds())
	}
	if tctx.Err() != nil {
		return
	}
	d.countAlerts(l.Engine.Alerts())
	extra := d.reloadAlerts(slot)
	d.evalMu.Lock()
	if slot.After(d.lastProc) {
		d.lastProc = slot
	}
	err = d.ha.node.Deliver(l, d.lastProc, extra...)
	d.evalMu.Unlock()
	if err != nil && l.Term.Context().Err() == nil {
		d.log.Warn("shared state not saved; retried at the next slot", "err", err)
	}
}

// haStatus is the replica's part of /api/v1/status and the page.
type haStatus struct {
	// Replica is this replica's name; Leader the leading replica's, ""
	// while none is known (no leader elected, etcd unreachable).
	Replica string `json:"replica"`
	Leader  string `json:"leader"`
	Leading bool   `json:"leading"`
}

func (d *daemon) haStatus() *haStatus {
	if d.ha == nil {
		return nil
	}
	return &haStatus{Replica: d.ha.name, Leader: d.ha.el.Leader(), Leading: d.ha.el.Leading()}
}

// lead is the running term's engine and dispatcher under HA (nil on a
// follower), or the daemon's own when it runs alone.
func (d *daemon) lead() (*engine.Engine, *notifiers.Dispatcher, bool) {
	if d.ha == nil {
		return d.eng, d.disp, true
	}
	if l := d.ha.node.Current(); l != nil {
		return l.Engine, l.Dispatcher, true
	}
	return nil, nil, false
}
