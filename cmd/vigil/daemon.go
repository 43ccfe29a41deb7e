package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/robfig/cron/v3"

	"github.com/vigil-alerts/vigil/cmd/vigil/statefile"
	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/engine/scheduler"
	"github.com/vigil-alerts/vigil/engine/watch"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/recording"
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
	// SlackAPIURL points bot-token Slack channels elsewhere (tests).
	SlackAPIURL string
	// Web secures HTTP: TLS, authentication, writes (security.go).
	Web webOptions
	// ExternalURL is --web.external-url: Vigil's address in notification
	// links. Empty: http://<hostname>:<port>/ of the listen address.
	ExternalURL string
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
	// recorder keeps collected samples on disk when the config says so.
	recorder *recording.Recorder
	watch    *watch.Watcher
	// secretWatch watches the directories of the secret files the config
	// named at start (nil without any, or if they cannot be watched: the
	// periodic re-check still finds a rotation).
	secretWatch *watch.Watcher
	srv         *http.Server
	ln          net.Listener
	start       time.Time
	// ha is nil when Vigil runs alone (no `ha:` section).
	ha *haParts
	// redact knows every configured secret; every log line passes
	// through it, and so do delivery and collection errors.
	redact *redact.Redactor

	cfg   atomic.Pointer[config.Config]
	colls atomic.Pointer[[]collectors.Collector]
	// notifierCfg is the section the dispatchers run with; an HA term
	// builds its dispatcher from it.
	notifierCfg atomic.Pointer[notifiers.Config]
	reload      atomic.Pointer[reloadStatus]
	// stateErr is a start-up problem with the state file, for the page.
	stateErr string
	// stateLock is this process' hold on the state file (nil without one).
	stateLock *statefile.Lock
	// saveFail is the state file's save failure, nil while saves work.
	saveFail atomic.Pointer[saveFailure]
	ready    atomic.Bool

	reloadMu sync.Mutex // one reload at a time
	applied  string     // checksum of the inputs last loaded (good or bad)
	// loaded is the rule set in use before the daemon's adjustment: the
	// last good version of every file, for the next per-file load.
	loaded *rules.RuleSet
	// fileSeries are the files with a vigil_rule_file_load_success series.
	fileSeries map[string]float64
	// notifierSecrets is the checksum of the channels' secret files when
	// the dispatcher last applied them (under reloadMu).
	notifierSecrets string
	// schedules (cron specs) of the evaluation jobs, by group (under reloadMu
	// or before Start).
	schedules map[string]string

	// warm-up: no group is evaluated before every collector has finished
	// its first collection (see warmedUp).
	warmMu    sync.Mutex
	collStart map[string]bool // collectors that began a collection
	collDone  map[string]bool // ... and finished one (a failure counts)
	collected chan struct{}   // closed and replaced at every finished collection
	warm      atomic.Bool

	evalMu   sync.Mutex // evaluation passes hand alerts over in order
	lastProc time.Time
	saveMu   sync.Mutex
	lastSave []byte
	stopOnce sync.Once
	stopErr  error
	served   chan struct{}

	// refusedWarn limits the max_series warning to one a minute.
	refusedWarn refusedWarning
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
	red := redact.New()
	o.Logger = slog.New(redact.Handler(o.Logger.Handler(), red))
	d := &daemon{o: o, log: o.Logger, reg: prometheus.NewRegistry(), start: o.Now(), served: make(chan struct{}), redact: red,
		collStart: map[string]bool{}, collDone: map[string]bool{}, collected: make(chan struct{})}
	cfg, err := config.Load(o.ConfigPath, config.Options{LookupEnv: o.LookupEnv, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	red.Add(cfg.BearerToken())
	ld, sum, err := d.loadRules(cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := quarantineError(ld); err != nil { // start is strict: see reload.go
		return nil, err
	}
	rs := d.adjust(ld.Set)
	d.m = newMetrics(d.reg, d.collectors, func() map[string]int { return d.store.SeriesBy(collectors.LabelCollector) })
	d.sil = silences.NewStore()
	d.sil.SetLimits(silenceLimits(cfg))
	d.registerSilenceMetrics()
	nopts := []notifiers.Option{notifiers.WithLogger(o.Logger.With("component", "notifiers")),
		notifiers.WithRegisterer(d.reg), notifiers.WithLookupEnv(o.LookupEnv), notifiers.WithSilences(d.sil),
		notifiers.WithRedactor(red)}
	ext, err := externalURL(o.ExternalURL, o.Listener, cfg.HTTP.Address)
	if err != nil {
		return nil, err
	}
	nopts = append(nopts, notifiers.WithExternalURL(ext))
	if o.Console != nil {
		nopts = append(nopts, notifiers.WithConsoleWriter(o.Console))
	}
	if o.SlackAPIURL != "" {
		nopts = append(nopts, notifiers.WithSlackAPIURL(o.SlackAPIURL))
	}
	d.disp, err = notifiers.Build(cfg.Notifiers, nopts...)
	if err != nil {
		return nil, err
	}
	d.notifierCfg.Store(&cfg.Notifiers)
	d.notifierSecrets = filesChecksum(cfg.Notifiers.SecretFiles())
	colls, err := collectors.Build(cfg.Collectors, o.Logger.With("component", "collectors"), d.collectorOptions()...)
	if err != nil {
		d.disp.Stop(context.Background())
		return nil, err
	}
	selectMetrics(colls, rs)
	d.colls.Store(&colls)
	d.cfg.Store(cfg)
	d.store = engine.NewStore(rs.MaxWindow + time.Minute)
	d.applyStoreBounds(rs, cfg)
	d.reg.MustRegister(storeStats{d.store})
	d.eng = engine.New(d.store, engine.WithLogger(o.Logger.With("component", "engine")), engine.WithEvalFailure(d.m.ruleFailed))
	d.eng.SetRules(rs)
	d.applied = sum
	d.loaded = ld.Set
	d.setReloaded(ld, rs, o.Now(), "start", ld.Warnings)
	// The port first, then the state file's lock, then the restore: a
	// second `vigil run` on the same port or state file stops before it
	// reads, let alone saves, the running one's state.
	fail := func(err error) (*daemon, error) {
		d.disp.Stop(context.Background())
		closeCollectors(colls)
		if d.ln != nil && d.o.Listener == nil {
			d.ln.Close()
		}
		d.stateLock.Release()
		return nil, err
	}
	if d.ln = o.Listener; d.ln == nil {
		if d.ln, err = net.Listen("tcp", cfg.HTTP.Address); err != nil {
			return fail(fmt.Errorf("http.address: %w", err))
		}
	}
	if cfg.HA != nil {
		if err := d.setupHA(cfg, nopts); err != nil {
			return fail(err)
		}
	} else if err := d.restoreState(cfg); err != nil {
		return fail(err)
	}
	if r := cfg.Record; r != nil {
		d.recorder, err = recording.NewRecorder(r.Dir, recording.Bounds{MaxSize: r.MaxSizeBytes,
			MaxAge: time.Duration(r.MaxAge), FileSpan: time.Duration(r.FileSpan)})
		if err != nil {
			return fail(fmt.Errorf("record.dir: %w", err))
		}
	}
	d.sched = scheduler.New(scheduler.Options{Now: o.Now, Logger: o.Logger.With("component", "scheduler"), Registerer: d.reg})
	d.scheduleCollectors(nil, colls)
	d.scheduleGroups(rs)
	return d, nil
}

// externalURL is flag, checked, or as Prometheus derives its default:
// http://<hostname>:<port>/ of the listen address (the listener's, when
// one is given: its port may have been chosen by the system).
func externalURL(flag string, ln net.Listener, address string) (string, error) {
	if flag != "" {
		u, err := url.Parse(flag)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("--web.external-url: %q is not an absolute http(s) URL", flag)
		}
		return flag, nil
	}
	if ln != nil {
		address = ln.Addr().String()
	}
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", fmt.Errorf("http.address: %w", err)
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/", nil
}

// collectorOptions are what every build of the collectors gets besides
// their config.
func (d *daemon) collectorOptions() []collectors.Option {
	return []collectors.Option{collectors.WithRedactor(d.redact), collectors.WithLookupEnv(d.o.LookupEnv)}
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
	ln := d.ln // bound by newDaemon
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
		} else if d.ln != nil {
			d.ln.Close()
		}
		for _, c := range d.collectors() {
			if cl, ok := c.(io.Closer); ok {
				cl.Close()
			}
		}
		if d.recorder != nil {
			errs = append(errs, d.recorder.Close())
		}
		errs = append(errs, d.stateLock.Release()) // after the final save
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
	d.markCollection(c.Name(), false)
	samples, err := c.Collect(ctx, slot)
	if err != nil {
		d.log.Debug("collection incomplete", "collector", c.Name(), "err", err)
	}
	d.m.observeCollection(c.Name(), samples, slot)
	// The store's size and the targets' health first, where max_series
	// never refuses them: a flooding target must not hide its own health.
	d.appendStoreSize(c.Name(), slot)
	own := collectors.OwnSamples(samples)
	d.store.AppendOwn(samples[:own]...)
	d.store.Append(samples[own:]...)
	d.warnRefused(c.Name())
	if d.recorder != nil {
		// A full disk or a bad directory must not stop collection.
		if err := d.recorder.Record(samples); err != nil {
			d.m.recordFails.Inc()
			d.log.Warn("recording failed", "collector", c.Name(), "err", err)
		}
	}
	// What must exist (an etcd cluster's members), for rules that expect it.
	if ic, ok := c.(collectors.InventoryReporter); ok {
		if inv, ok := ic.Inventory(); ok {
			d.store.SetInventory(inv)
		}
	}
	d.markCollection(c.Name(), true)
}

// markCollection records that collector name began (done false) or
// finished (done true) a collection, for the warm-up.
func (d *daemon) markCollection(name string, done bool) {
	if d.warm.Load() {
		return
	}
	d.warmMu.Lock()
	defer d.warmMu.Unlock()
	d.collStart[name] = true
	if done {
		d.collDone[name] = true
		close(d.collected)
		d.collected = make(chan struct{})
	}
}

// warmedUp reports whether the groups may be evaluated: every collector
// has finished its first collection (a failed one counts), so that no
// rule sees the empty store of a process that just started (or of a
// replica that just took the lead), where an `across: every` alert would
// resolve and the pages it inhibits be released. A slot whose collectors
// are still in their first collection waits for them (within ctx); a slot
// before some collector even began one is skipped. Once warm, always warm.
func (d *daemon) warmedUp(ctx context.Context) bool {
	for {
		warm, started, ch := d.warmState()
		if warm {
			return true
		}
		if !started {
			return false
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// warmState says whether the daemon is warm; if not, whether every
// collector it waits for has begun its first collection, and a channel
// closed when the next collection finishes.
func (d *daemon) warmState() (warm, started bool, next <-chan struct{}) {
	if d.warm.Load() {
		return true, true, nil
	}
	d.warmMu.Lock()
	waiting := 0
	started = true
	for _, c := range d.collectors() {
		if !d.collDone[c.Name()] {
			waiting++
			started = started && d.collStart[c.Name()]
		}
	}
	next = d.collected
	d.warmMu.Unlock()
	if waiting > 0 {
		return false, started, next
	}
	if !d.warm.Swap(true) {
		d.log.Info("first collection finished; evaluating", "collectors", len(d.collectors()))
	}
	return true, true, nil
}

// isReady is /readyz: started, not stopping, and warmed up.
func (d *daemon) isReady() bool {
	warm, _, _ := d.warmState()
	return d.ready.Load() && warm
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
	if !d.warmedUp(ctx) {
		d.log.Info("evaluation skipped: waiting for every collector's first collection", "slot", slot)
		return
	}
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
	alerts = append(alerts, d.reloadAlerts(slot)...)
	if a, ok := d.stateSaveAlert(slot); ok {
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

// restoreState takes the state file's lock and imports the saved alert
// states, if any. A corrupt file is set aside and reported; Vigil starts
// without it. A file held by another process, or one that exists but
// cannot be read, is an error: starting would overwrite it.
func (d *daemon) restoreState(cfg *config.Config) error {
	if cfg.State.Path == "" {
		return nil
	}
	lock, err := statefile.Acquire(cfg.State.Path)
	if err != nil {
		return fmt.Errorf("state.path: %w", err)
	}
	d.stateLock = lock
	// Silences changed since the last save are in the journal, which is
	// replayed over whatever the state file gave, even nothing, and before
	// restored alerts are held: their silenced_by must include them.
	journal, replayed := statefile.JournalPath(cfg.State.Path), false
	defer func() {
		if !replayed {
			d.replaySilences(journal)
		}
	}()
	st, err := statefile.Load(cfg.State.Path, d.o.Now())
	var rerr *statefile.ReadError
	if errors.As(err, &rerr) {
		return fmt.Errorf("state.path: %w", err)
	}
	if err != nil {
		d.stateErr = err.Error()
		d.log.Error("state file not restored", "err", err)
		return nil
	}
	if st.SavedAt.IsZero() {
		d.log.Info("no saved alert state yet", "file", cfg.State.Path)
		return nil
	}
	if err := d.sil.Replace(st.Silences); err != nil {
		d.log.Error("saved silences not restored", "err", err)
	}
	d.replaySilences(journal)
	replayed = true
	restored, dropped := d.eng.Import(st.Alerts)
	groups, gone := d.disp.ImportState(st.Deliveries)
	// Inhibitions and silences as they were, before the API shows the
	// restored alerts or the first evaluation sends anything.
	d.disp.Hold(d.o.Now(), d.eng.Alerts())
	d.log.Info("alert state restored", "file", cfg.State.Path, "saved_at", st.SavedAt, "restored", restored, "dropped", dropped,
		"delivery_groups", groups, "delivery_groups_dropped", gone)
	return nil
}

// saveState writes the engine's alert states, the dispatcher's delivery
// state and the silences when any changed since the last save (always
// when final), then empties the silences journal.
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
		d.saveFailed(err)
		return err
	}
	// The state file now holds every silence (saveMu keeps journal
	// appends out meanwhile): the journal starts again.
	if err := statefile.ResetJournal(statefile.JournalPath(path)); err != nil {
		d.log.Warn("silences journal not emptied; it is replayed harmlessly at the next start", "err", err)
	}
	d.lastSave = key
	if d.saveFail.Swap(nil) != nil {
		d.log.Info("state file saved again", "file", path)
	}
	return nil
}

// StateSaveAlertName is the self-alert that fires while the state file
// cannot be saved.
const StateSaveAlertName = "VigilStateSaveFailed"

// saveFailure is a state file that cannot be saved, for /api/v1/status,
// the page and the self-alert; cleared by the next save that works.
type saveFailure struct {
	Err   string    `json:"error"`
	Since time.Time `json:"since"` // the first failed save
	Last  time.Time `json:"last"`
}

func (d *daemon) saveFailed(err error) {
	now := d.o.Now()
	f := &saveFailure{Err: err.Error(), Since: now, Last: now}
	if old := d.saveFail.Load(); old != nil {
		f.Since = old.Since
	}
	d.saveFail.Store(f)
}

// stateSaveAlert is VigilStateSaveFailed while saves fail and
// reload.notify names channels (the channels for Vigil's own problems).
func (d *daemon) stateSaveAlert(now time.Time) (model.Alert, bool) {
	f := d.saveFail.Load()
	cfg := d.cfg.Load()
	if f == nil || len(cfg.Reload.Notify) == 0 {
		return model.Alert{}, false
	}
	return model.Alert{
		Fingerprint: model.Fingerprint(StateSaveAlertName, nil),
		Rule:        StateSaveAlertName, Group: "vigil", Severity: "high",
		Description: "Vigil cannot save its state file: a restart now would page again and restart pending timers.",
		State:       model.StateFiring,
		Labels:      model.Labels{"alertname": StateSaveAlertName, "severity": "high"},
		Annotations: map[string]string{"summary": "state file not saved since " + f.Since.UTC().Format(time.RFC3339) + ": " + f.Err},
		Segment:     model.Labels{},
		Notify:      cfg.Reload.Notify,
		ActiveAt:    f.Since, FiredAt: f.Since, LastEvalAt: now,
	}, true
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
