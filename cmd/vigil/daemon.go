package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/robfig/cron/v3"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/engine/scheduler"
	"github.com/vigil-alerts/vigil/engine/statefile"
	"github.com/vigil-alerts/vigil/engine/watch"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/silences"
)

// This file assembles `vigil run`: one config, one engine, one dispatcher,
// the collectors, the scheduler that drives them, and the state file.
// Reloading lives in reload.go, HTTP in http.go, the page in status.go.

// daemonOptions are what the caller, not the config file, decides.
type daemonOptions struct {
	ConfigPath string
	Logger     *slog.Logger
	// Now is the scheduler's clock (default time.Now). Tests leave the
	// scheduler stopped and call collect and evaluate with stepped times.
	Now       func() time.Time
	LookupEnv func(string) (string, bool)
	// Console receives console channels' output (default stdout).
	Console io.Writer
	// Rules, when set, adjusts every loaded rule set before it is used
	// (the demo shortens durations with it).
	Rules func(*rules.RuleSet) *rules.RuleSet
	// Listener, when set, is served instead of listening on http.address.
	Listener net.Listener
	// DeliveryBound is how long Stop waits for in-flight deliveries
	// (default 10s).
	DeliveryBound time.Duration
	// NoSchedule leaves the scheduler stopped (tests step time themselves).
	NoSchedule bool
	// Web secures HTTP: TLS, authentication, writes (security.go).
	Web webOptions
}

type daemon struct {
	o     daemonOptions
	log   *slog.Logger
	reg   *prometheus.Registry
	m     *metrics
	store *engine.Store
	eng   *engine.Engine
	disp  *notifiers.Dispatcher
	sil   *silences.Store
	sched *scheduler.Scheduler
	watch *watch.Watcher
	// secretWatch watches the directories of the secret files the config
	// named at start (nil without any, or if they cannot be watched: the
	// periodic re-check still finds a rotation).
	secretWatch *watch.Watcher
	srv         *http.Server
	ln          net.Listener
	start       time.Time
	// ha is nil when Vigil runs alone (no `ha:` section).
	ha *haParts

	cfg   atomic.Pointer[config.Config]
	colls atomic.Pointer[[]collectors.Collector]
	// notifierCfg is the section the dispatchers run with; an HA term
	// builds its dispatcher from it.
	notifierCfg atomic.Pointer[notifiers.Config]
	reload      atomic.Pointer[reloadStatus]
	// stateErr is a start-up problem with the state file, for the page.
	stateErr string
	ready    atomic.Bool

	reloadMu sync.Mutex // one reload at a time
	applied  string     // checksum of the inputs last loaded (good or bad)
	// notifierSecrets is the checksum of the channels' secret files when
	// the dispatcher last applied them (under reloadMu).
	notifierSecrets string
	// schedules (cron specs) of the evaluation jobs, by group (under reloadMu
	// or before Start).
	schedules map[string]string

	evalMu   sync.Mutex // evaluation passes hand alerts over in order
	lastProc time.Time
	saveMu   sync.Mutex
	lastSave []byte
	stopOnce sync.Once
	stopErr  error
	served   chan struct{}
}

// newDaemon loads the config and rules and builds everything; nothing runs
// until Start. Any error here is a refusal to start, with file:line:col.
func newDaemon(o daemonOptions) (*daemon, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	if o.DeliveryBound <= 0 {
		o.DeliveryBound = 10 * time.Second
	}
	d := &daemon{o: o, log: o.Logger, reg: prometheus.NewRegistry(), start: o.Now(), served: make(chan struct{})}
	cfg, err := config.Load(o.ConfigPath, config.Options{LookupEnv: o.LookupEnv, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	rs, sum, err := d.loadRules(cfg)
	if err != nil {
		return nil, err
	}
	d.m = newMetrics(d.reg, d.collectors)
	d.sil = silences.NewStore()
	d.registerSilenceMetrics()
	nopts := []notifiers.Option{notifiers.WithLogger(o.Logger.With("component", "notifiers")),
		notifiers.WithRegisterer(d.reg), notifiers.WithLookupEnv(o.LookupEnv), notifiers.WithSilences(d.sil)}
	if o.Console != nil {
		nopts = append(nopts, notifiers.WithConsoleWriter(o.Console))
	}
	d.disp, err = notifiers.Build(cfg.Notifiers, nopts...)
	if err != nil {
		return nil, err
	}
	d.notifierCfg.Store(&cfg.Notifiers)
	d.notifierSecrets = filesChecksum(cfg.Notifiers.SecretFiles())
	colls, err := collectors.Build(cfg.Collectors, o.Logger.With("component", "collectors"))
	if err != nil {
		d.disp.Stop(context.Background())
		return nil, err
	}
	d.colls.Store(&colls)
	d.cfg.Store(cfg)
	d.store = engine.NewStore(rs.MaxWindow + time.Minute)
	d.eng = engine.New(d.store, engine.WithLogger(o.Logger.With("component", "engine")))
	d.eng.SetRules(rs)
	d.applied = sum
	d.setReloaded(rs, o.Now(), "start", nil)
	if cfg.HA != nil {
		if err := d.setupHA(cfg, nopts); err != nil {
			d.disp.Stop(context.Background())
			closeCollectors(colls)
			return nil, err
		}
	} else {
		d.restoreState(cfg)
	}
	d.sched = scheduler.New(scheduler.Options{Now: o.Now, Logger: o.Logger.With("component", "scheduler"), Registerer: d.reg})
	d.scheduleCollectors(nil, colls)
	d.scheduleGroups(rs)
	return d, nil
}

func (d *daemon) collectors() []collectors.Collector {
	if p := d.colls.Load(); p != nil {
		return *p
	}
	return nil
}

// Start serves HTTP, starts the file watcher and the scheduler.
func (d *daemon) Start() error {
	cfg := d.cfg.Load()
	if err := d.checkWeb(); err != nil {
		return err
	}
	ln := d.o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTP.Address); err != nil {
			return fmt.Errorf("http.address: %w", err)
		}
	}
	d.ln = ln
	d.srv = d.httpServer()
	go func() {
		defer close(d.served)
		if err := d.serveHTTP(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("http server stopped", "err", err)
		}
	}()
	w, err := watch.New(watch.Options{
		Dirs: cfg.RuleDirs, Files: []string{cfg.File}, Match: rules.IsRuleFile,
		Debounce: time.Duration(cfg.Reload.Debounce), Recheck: time.Duration(cfg.Reload.CheckInterval),
		OnChange: func(reason string) { d.Reload(reason) },
		Logger:   d.log.With("component", "watch"),
	})
	if err != nil {
		d.log.Warn("file watching unavailable; reload with SIGHUP or POST /-/reload", "err", err)
	} else {
		d.watch = w
	}
	// Secret files have their own watcher, so that one in a directory that
	// cannot be watched does not stop rule and config events.
	if files := cfg.SecretFiles(); len(files) > 0 {
		w, err := watch.New(watch.Options{
			Files: files, Debounce: time.Duration(cfg.Reload.Debounce),
			OnChange: func(reason string) { d.Reload(reason) },
			Logger:   d.log.With("component", "watch"),
		})
		if err != nil {
			d.log.Warn("secret files not watched; a rotated secret is found by the periodic re-check", "err", err)
		} else {
			d.secretWatch = w
		}
	}
	if d.ha != nil {
		d.ha.start()
	}
	if !d.o.NoSchedule {
		d.sched.Start()
	}
	d.ready.Store(true)
	d.log.Info("vigil running", "http", ln.Addr().String(), "rules", len(d.eng.Rules().Rules()),
		"collectors", len(d.collectors()), "channels", len(d.disp.ChannelNames()), "ha", d.ha != nil)
	return nil
}

// Addr is where HTTP is served.
func (d *daemon) Addr() string { return d.ln.Addr().String() }

// Stop stops collection and evaluation, lets in-flight deliveries finish
// within the delivery bound, saves state and stops serving. It is
// idempotent; the first call's error is returned to every caller.
func (d *daemon) Stop() error {
	d.stopOnce.Do(func() {
		d.ready.Store(false)
		d.log.Info("stopping: no more collection or evaluation")
		var errs []error
		if d.watch != nil {
			errs = append(errs, d.watch.Close())
		}
		if d.secretWatch != nil {
			errs = append(errs, d.secretWatch.Close())
		}
		ctx, cancel := context.WithTimeout(context.Background(), d.o.DeliveryBound)
		defer cancel()
		errs = append(errs, d.sched.Stop(ctx))
		if d.ha != nil {
			// The leader's deliveries finish within the bound and the
			// shared state is saved, then it resigns.
			d.log.Info("handing over: in-flight deliveries, final save, resign", "bound", d.o.DeliveryBound)
			errs = append(errs, d.ha.stop(ctx))
		}
		d.log.Info("waiting for in-flight deliveries", "bound", d.o.DeliveryBound)
		if err := d.disp.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deliveries not finished within %v: %w", d.o.DeliveryBound, err))
		}
		errs = append(errs, d.saveState(true))
		if d.srv != nil {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			errs = append(errs, d.srv.Shutdown(sctx))
			scancel()
			<-d.served
		}
		for _, c := range d.collectors() {
			if cl, ok := c.(io.Closer); ok {
				cl.Close()
			}
		}
		d.stopErr = errors.Join(errs...)
		d.log.Info("stopped", "err", d.stopErr)
	})
	return d.stopErr
}

// scheduleCollectors replaces the collection jobs of old with those of
// colls: one job per collector at its own interval.
func (d *daemon) scheduleCollectors(old, colls []collectors.Collector) {
	for _, c := range old {
		d.sched.Remove("collect/" + c.Name())
	}
	for _, c := range colls {
		c := c
		interval := collectors.DefaultInterval
		if tc, ok := c.(*collectors.TargetCollector); ok {
			interval = tc.Interval()
		}
		d.sched.Add("collect/"+c.Name(), scheduler.Every(interval), func(ctx context.Context, slot time.Time) {
			d.collect(ctx, c, slot)
		})
	}
}

// scheduleGroups makes one evaluation job per group at its interval and
// drops the jobs of groups that are gone. A group whose interval did not
// change keeps its job and so its slots: reloads do not delay evaluation.
func (d *daemon) scheduleGroups(rs *rules.RuleSet) {
	if d.schedules == nil {
		d.schedules = map[string]string{}
	}
	want := map[string]bool{}
	for _, g := range rs.Groups {
		want[g.Name] = true
		var sched cron.Schedule = scheduler.Every(g.Interval)
		spec := "@every " + g.Interval.String()
		if g.Schedule != "" {
			s, err := cron.ParseStandard(g.Schedule)
			if err != nil { // validated at load; keep the interval if not
				d.log.Error("bad group schedule", "group", g.Name, "err", err)
			} else {
				sched, spec = s, g.Schedule
			}
		}
		if d.schedules[g.Name] == spec {
			continue
		}
		d.schedules[g.Name] = spec
		group := g.Name
		d.sched.Add("eval/"+group, sched, func(ctx context.Context, slot time.Time) {
			d.evaluate(ctx, []string{group}, slot)
		})
	}
	for g := range d.schedules {
		if !want[g] {
			d.sched.Remove("eval/" + g)
			delete(d.schedules, g)
		}
	}
}

// collect runs one collector for slot and stores its samples.
func (d *daemon) collect(ctx context.Context, c collectors.Collector, slot time.Time) {
	timeout := collectors.DefaultTimeout
	if tc, ok := c.(*collectors.TargetCollector); ok {
		timeout = tc.Timeout()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	samples, err := c.Collect(ctx, slot)
	if err != nil {
		d.log.Debug("collection incomplete", "collector", c.Name(), "err", err)
	}
	d.store.Append(samples...)
}

// collectAll runs every collector once at slot (start-up, tests).
func (d *daemon) collectAll(ctx context.Context, slot time.Time) {
	var wg sync.WaitGroup
	for _, c := range d.collectors() {
		wg.Add(1)
		go func() { defer wg.Done(); d.collect(ctx, c, slot) }()
	}
	wg.Wait()
}

// evaluate evaluates groups (all when nil) at slot, hands the alerts to
// the dispatcher and saves state when it changed.
func (d *daemon) evaluate(ctx context.Context, groups []string, slot time.Time) {
	if d.ha != nil {
		d.evaluateHA(ctx, groups, slot)
		return
	}
	if groups == nil {
		for _, g := range d.eng.Rules().Groups {
			groups = append(groups, g.Name)
		}
	}
	for _, g := range groups {
		start := time.Now()
		if err := d.eng.EvalGroup(ctx, g, slot); err != nil {
			d.log.Warn("group evaluation stopped", "group", g, "err", err)
		}
		d.m.evalDuration.WithLabelValues(g).Observe(time.Since(start).Seconds())
	}
	if ctx.Err() != nil {
		return
	}
	d.gcSilences(ctx, slot, true)
	alerts := d.eng.Alerts()
	d.countAlerts(alerts)
	if a, ok := d.reloadAlert(slot); ok {
		alerts = append(alerts, a)
	}
	d.evalMu.Lock()
	// Groups run on their own schedules: the dispatcher's clock must not
	// go backwards when a slower group finishes after a faster one.
	if slot.After(d.lastProc) {
		d.lastProc = slot
	}
	d.disp.Process(d.lastProc, alerts)
	d.evalMu.Unlock()
	if err := d.saveState(false); err != nil {
		d.log.Error("cannot save state", "err", err)
	}
}

// countAlerts sets the alerts gauge.
func (d *daemon) countAlerts(alerts []model.Alert) {
	counts := map[model.AlertState]int{}
	for _, a := range alerts {
		counts[a.State]++
	}
	for _, s := range []model.AlertState{model.StatePending, model.StateFiring, model.StateResolved} {
		d.m.alerts.WithLabelValues(s.String()).Set(float64(counts[s]))
	}
}

// restoreState imports the saved alert states, if any. A corrupt file is
// set aside and reported; Vigil starts without it.
func (d *daemon) restoreState(cfg *config.Config) {
	if cfg.State.Path == "" {
		return
	}
	st, err := statefile.Load(cfg.State.Path, d.o.Now())
	if err != nil {
		d.stateErr = err.Error()
		d.log.Error("state file not restored", "err", err)
		return
	}
	if st.SavedAt.IsZero() {
		d.log.Info("no saved alert state yet", "file", cfg.State.Path)
		return
	}
	if err := d.sil.Replace(st.Silences); err != nil {
		d.log.Error("saved silences not restored", "err", err)
	}
	restored, dropped := d.eng.Import(st.Alerts)
	groups, gone := d.disp.ImportState(st.Deliveries)
	d.log.Info("alert state restored", "file", cfg.State.Path, "saved_at", st.SavedAt, "restored", restored, "dropped", dropped,
		"delivery_groups", groups, "delivery_groups_dropped", gone)
}

// saveState writes the engine's alert states and the dispatcher's delivery
// state when either changed since the last save (always when final).
func (d *daemon) saveState(final bool) error {
	path := d.cfg.Load().State.Path
	if path == "" || d.ha != nil { // with ha: the state is in etcd
		return nil
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	recs, dels := d.eng.Export(), d.disp.ExportState()
	key := fmt.Appendf(recordsKey(recs, dels), "silences|%d\n", d.sil.Version())
	if !final && string(key) == string(d.lastSave) {
		return nil
	}
	st := statefile.State{SavedAt: d.o.Now(), Alerts: recs, Deliveries: dels, Silences: d.sil.List()}
	if err := statefile.Save(path, st); err != nil {
		d.m.stateSaveFails.Inc()
		return err
	}
	d.lastSave = key
	return nil
}

// recordsKey identifies saved state independent of record order.
func recordsKey(recs []engine.AlertRecord, dels []notifiers.DeliveryRecord) []byte {
	var b []byte
	seen := make([]string, 0, len(recs)+len(dels))
	for _, r := range recs {
		seen = append(seen, fmt.Sprintf("%s|%s|%s|%d|%d|%d|%g", r.Rule, r.Fingerprint, r.State,
			r.ActiveAt.UnixNano(), r.FiredAt.UnixNano(), r.ResolvedAt.UnixNano(), r.Value))
	}
	for _, r := range dels {
		seen = append(seen, fmt.Sprintf("delivery|%s|%q|%d|%d|%s", r.Channel, r.Group,
			r.LastSent.UnixNano(), r.NextFlush.UnixNano(), strings.Join(r.Fingerprints(), ",")))
	}
	sort.Strings(seen)
	for _, s := range seen {
		b = append(b, s...)
		b = append(b, '\n')
	}
	return b
}
