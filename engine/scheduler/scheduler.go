// Package scheduler runs Vigil's periodic work — collection per collector,
// evaluation per rule group — on robfig/cron, by slots: each run is handed
// the time of the slot it stands for, not the time its goroutine woke up,
// so evaluations line up with the samples of a fixed grid. A run that
// overruns makes the next slot(s) be skipped (cron's SkipIfStillRunning)
// and each skipped slot is counted as a miss. A panic in a job is logged
// and the scheduler goes on (cron's Recover).
package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
)

// Func does one slot's work. ctx is cancelled when the scheduler stops.
type Func func(ctx context.Context, slot time.Time)

// Options configure a Scheduler.
type Options struct {
	// Now is the clock slots are read from (default time.Now). Tests give
	// a fake one and call a job's Run as cron would.
	Now func() time.Time
	// Logger (default: discard).
	Logger *slog.Logger
	// Registerer receives vigil_scheduler_* metrics (default: none).
	Registerer prometheus.Registerer
}

// Scheduler owns one cron.Cron and the jobs on it. Add and Remove are safe
// to call while it runs; Stop is idempotent.
type Scheduler struct {
	cron    *cron.Cron
	chain   cron.Chain
	now     func() time.Time
	log     *slog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	misses  *prometheus.CounterVec
	runs    *prometheus.CounterVec
	stopped sync.Once

	mu   sync.Mutex
	jobs map[string]*job
}

// New returns a scheduler; Start starts it.
func New(o Options) *Scheduler {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scheduler{
		now:  o.Now,
		log:  o.Logger,
		jobs: map[string]*job{},
		misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_scheduler_missed_slots_total",
			Help: "Slots skipped because the job's previous run was still going.",
		}, []string{"job"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_scheduler_runs_total", Help: "Slots run, per job.",
		}, []string{"job"}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.misses, s.runs)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	cl := cronLogger{o.Logger}
	// Recover must sit inside SkipIfStillRunning: a panic unwinding through
	// the skip wrapper would never give its token back, and every later
	// slot would be skipped for good.
	s.chain = cron.NewChain(cron.SkipIfStillRunning(cl), cron.Recover(cl))
	s.cron = cron.New(cron.WithLogger(cl), cron.WithChain())
	return s
}

// Every is a fixed-interval schedule ("@every d"); cron's minimum is 1s.
func Every(d time.Duration) cron.Schedule { return cron.Every(d) }

// Parse reads "@every 10s" or a five-field cron spec.
func Parse(spec string) (cron.Schedule, error) { return cron.ParseStandard(spec) }

// Add schedules fn under name, replacing a job of that name. The first
// slot is the schedule's first time after now.
func (s *Scheduler) Add(name string, sched cron.Schedule, fn Func) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.jobs[name]; old != nil {
		s.cron.Remove(old.id)
	}
	s.misses.WithLabelValues(name).Add(0) // visible at 0 from the start
	s.runs.WithLabelValues(name).Add(0)
	j := &job{name: name, s: s, fn: fn, grid: &grid{inner: sched}}
	j.grid.cursor = sched.Next(s.now())
	j.wrapped = s.chain.Then(j)
	j.id = s.cron.Schedule(j.grid, j.wrapped)
	s.jobs[name] = j
}

// Remove unschedules the job; a run in progress finishes.
func (s *Scheduler) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[name]; j != nil {
		s.cron.Remove(j.id)
		delete(s.jobs, name)
	}
}

// Names lists the scheduled jobs.
func (s *Scheduler) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.jobs))
	for n := range s.jobs {
		out = append(out, n)
	}
	return out
}

// Misses returns how many slots of the named job were skipped.
func (s *Scheduler) Misses(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[name]; j != nil {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.misses
	}
	return 0
}

// Next returns when the job called name next runs after t, and false if
// there is no such job.
func (s *Scheduler) Next(name string, t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[name]
	if j == nil {
		return time.Time{}, false
	}
	return j.grid.Next(t), true
}

// Start runs the cron loop in its own goroutine.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop cancels running jobs' context, stops cron and waits for running
// jobs until ctx is done.
func (s *Scheduler) Stop(ctx context.Context) error {
	var done context.Context
	s.stopped.Do(func() {
		s.cancel()
		done = s.cron.Stop()
	})
	if done == nil {
		return nil
	}
	select {
	case <-done.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("scheduler: jobs still running: %w", ctx.Err())
	}
}

// job is one cron entry. Run is what cron calls (through the chain).
type job struct {
	name    string
	s       *Scheduler
	fn      Func
	grid    *grid
	id      cron.EntryID
	wrapped cron.Job

	mu     sync.Mutex
	last   time.Time // last slot run
	misses uint64
}

// Run works out the slot this wake-up stands for — the latest grid time
// not after now — counts the slots skipped since the last run, and runs.
func (j *job) Run() {
	if j.s.ctx.Err() != nil {
		return
	}
	slot, ok := j.grid.slotAt(j.s.now())
	if !ok {
		return
	}
	j.mu.Lock()
	if !j.last.IsZero() && !slot.After(j.last) {
		j.mu.Unlock()
		return // this slot already ran
	}
	var missed uint64
	if !j.last.IsZero() {
		missed = j.grid.between(j.last, slot)
	}
	j.last = slot
	j.misses += missed
	j.mu.Unlock()
	if missed > 0 {
		j.s.misses.WithLabelValues(j.name).Add(float64(missed))
		j.s.log.Warn("slots missed: the previous run overran", "job", j.name, "missed", missed, "slot", slot)
	}
	j.s.runs.WithLabelValues(j.name).Inc()
	j.fn(j.s.ctx, slot)
}

// grid is a schedule pinned to fixed times: Next walks from the last time
// it handed out instead of from cron's wake-up time, so slots never drift.
type grid struct {
	inner  cron.Schedule
	mu     sync.Mutex
	cursor time.Time // a grid time; the first one until slots pass
}

// Next is the first grid time after t (cron.Schedule).
func (g *grid) Next(t time.Time) time.Time {
	s, ok := g.slotAt(t)
	if !ok {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.cursor
	}
	return g.inner.Next(s)
}

// slotAt returns the latest grid time not after t; false before the first.
func (g *grid) slotAt(t time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.Before(g.cursor) {
		return time.Time{}, false
	}
	p := g.cursor
	for n := g.inner.Next(p); !n.After(t); n = g.inner.Next(n) {
		p = n
	}
	g.cursor = p
	return p, true
}

// between counts grid times strictly between a and b.
func (g *grid) between(a, b time.Time) uint64 {
	var n uint64
	for t := g.inner.Next(a); t.Before(b); t = g.inner.Next(t) {
		n++
	}
	return n
}

// cronLogger sends cron's messages to slog: errors (recovered panics) as
// errors, skips at debug (they are counted as misses).
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" {
		c.l.Debug("cron: run skipped, previous still running")
	}
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	if msg == "panic" {
		c.l.Error("scheduled job panicked", "err", err)
		return
	}
	c.l.Error("cron error", "what", msg, "err", err)
}
