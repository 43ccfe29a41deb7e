package collectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
)

// Scraper is what a source sub-package provides: the samples of one of its
// targets, identified by index. It should honour ctx; TargetCollector stops
// waiting for it when ctx is done either way.
type Scraper interface {
	Scrape(ctx context.Context, target int, now time.Time) ([]model.Sample, error)
}

// InventoryScraper is a Scraper that also knows what must exist beyond
// what answered, such as every member of an etcd cluster from its member
// list. For each member it gives the index of the target that watches it,
// or -1.
type InventoryScraper interface {
	Inventory() (members []model.Labels, targets []int, ok bool)
}

// TargetInfo names a target and carries the static tags every one of its
// samples gets.
type TargetInfo struct {
	Name string
	Tags map[string]string
}

// Settings are the parts of a collector's behaviour shared by every source.
type Settings struct {
	Name     string
	Interval time.Duration // how often the engine should call Collect
	Timeout  time.Duration // bounds a whole Collect, so every target in it
	// MaxConcurrency bounds the targets scraped at once; 0 means all.
	MaxConcurrency int
	// SampleLimit and LabelLimit are Prometheus' scrape_config limits,
	// per target and collection: more samples (after the selection), or
	// a sample with more labels (the target's tags and Vigil's labels
	// included), fail the target's whole collection. 0 means no limit.
	SampleLimit int
	LabelLimit  int
}

// Stats are a collector's running totals, for Vigil's own /metrics.
type Stats struct {
	Collections uint64            // calls to Collect
	Errors      uint64            // failed target collections, all targets
	TargetErrs  map[string]uint64 // failed target collections by target name
	// SampleLimitHits and LabelLimitHits count target collections failed
	// by SampleLimit and LabelLimit.
	SampleLimitHits, LabelLimitHits uint64
}

// TargetCollector is the Collector every source is wrapped in: it scrapes
// all targets concurrently under one deadline, adds tags and the collector
// and target labels, emits the self-metrics, and counts and logs errors.
type TargetCollector struct {
	settings Settings
	targets  []TargetInfo
	scraper  Scraper
	logger   *slog.Logger
	// redactor, when set (WithRedactor), cleans every target's error.
	redactor *redact.Redactor

	collections atomic.Uint64
	errs        []atomic.Uint64 // by target index
	sel         atomic.Pointer[Selection]
	// Collections failed by the sample and label limits.
	sampleLimitHits, labelLimitHits atomic.Uint64

	// healthMu guards health: whether each target is failing, so that a
	// failure is logged when it starts and when it ends, not at every
	// collection of a target that stays down.
	healthMu sync.Mutex
	health   []targetHealth // by target index
}

// targetHealth is a failing target's run of failed collections.
type targetHealth struct {
	failing  bool
	since    time.Time // collection time of the first failure
	failures int       // failed collections in the run
}

// NewTargetCollector wraps a scraper whose targets are described, in index
// order, by targets.
func NewTargetCollector(s Settings, targets []TargetInfo, scraper Scraper, logger *slog.Logger) *TargetCollector {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &TargetCollector{
		settings: s,
		targets:  targets,
		scraper:  scraper,
		logger:   logger.With("collector", s.Name),
		errs:     make([]atomic.Uint64, len(targets)),
		health:   make([]targetHealth, len(targets)),
	}
}

// Name returns the collector's configured name.
func (c *TargetCollector) Name() string { return c.settings.Name }

// Targets returns the names of the collector's targets, in order.
func (c *TargetCollector) Targets() []string {
	out := make([]string, len(c.targets))
	for i, t := range c.targets {
		out[i] = t.Name
	}
	return out
}

// Interval returns how often the collector asks to be run.
func (c *TargetCollector) Interval() time.Duration { return c.settings.Interval }

// Timeout returns the bound on one Collect.
func (c *TargetCollector) Timeout() time.Duration { return c.settings.Timeout }

// Stats returns the collector's running totals.
func (c *TargetCollector) Stats() Stats {
	st := Stats{Collections: c.collections.Load(), TargetErrs: make(map[string]uint64, len(c.targets)),
		SampleLimitHits: c.sampleLimitHits.Load(), LabelLimitHits: c.labelLimitHits.Load()}
	for i, t := range c.targets {
		n := c.errs[i].Load()
		st.Errors += n
		st.TargetErrs[t.Name] += n
	}
	return st
}

// Inventory returns the scraper's inventory (false when it has none yet, or
// keeps none), each member labelled as the samples of its target are (tags,
// collector, target), or with the collector label alone when no target
// watches it.
func (c *TargetCollector) Inventory() (model.Inventory, bool) {
	is, ok := c.scraper.(InventoryScraper)
	if !ok {
		return model.Inventory{}, false
	}
	members, targets, ok := is.Inventory()
	if !ok {
		return model.Inventory{}, false
	}
	inv := model.Inventory{Source: c.settings.Name}
	for i, m := range members {
		if t := targets[i]; t >= 0 && t < len(c.targets) {
			inv.Members = append(inv.Members, c.label(m, c.targets[t]))
			continue
		}
		ls := m.Copy()
		ls[LabelCollector] = c.settings.Name
		inv.Members = append(inv.Members, ls)
	}
	return inv, true
}

// Close releases the scraper's connections, if it holds any.
func (c *TargetCollector) Close() error {
	if cl, ok := c.scraper.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

type result struct {
	samples []model.Sample
	err     error
}

// Collect scrapes every target and returns their samples plus, per target,
// the self-metrics. The returned error joins the targets' errors; samples
// are returned even then, since a failed target is itself information.
func (c *TargetCollector) Collect(ctx context.Context, now time.Time) ([]model.Sample, error) {
	c.collections.Add(1)
	ctx, cancel := context.WithTimeout(ctx, c.settings.Timeout)
	defer cancel()
	// Scrapers get a slightly earlier deadline so that one honouring it can
	// still hand back its "can_connect 0" before the runner gives up on it.
	grace := min(c.settings.Timeout/10, 100*time.Millisecond)
	scrapeCtx, cancelScrape := context.WithTimeout(ctx, c.settings.Timeout-grace)
	defer cancelScrape()

	limit := c.settings.MaxConcurrency
	if limit <= 0 || limit > len(c.targets) {
		limit = len(c.targets)
	}
	sem := make(chan struct{}, limit)
	results := make([]result, len(c.targets))
	durations := make([]time.Duration, len(c.targets))
	var wg sync.WaitGroup
	for i := range c.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-scrapeCtx.Done():
				results[i].err = fmt.Errorf("waiting for a free slot: %w", scrapeCtx.Err())
				return
			}
			start := time.Now()
			results[i] = c.scrapeOne(ctx, scrapeCtx, i, now)
			durations[i] = time.Since(start)
		}()
	}
	wg.Wait()

	// Every target's self-metrics come first: the store refuses new series
	// beyond store.max_series in the order they come, and a target
	// flooding it must not hide its own health, nor the others'.
	out := make([]model.Sample, 0, 4*len(c.targets))
	var errs []error
	sel := c.Selection()
	for i, t := range c.targets {
		r := results[i]
		kept := r.samples[:0]
		for _, s := range r.samples {
			// A target's own series named as Vigil's (a UTF-8 name on a
			// page, an exec check's output) would overwrite its health
			// and pass as Vigil's own past store.max_series: dropped.
			if sel.Keeps(s.Metric) && !reserved(s.Metric) {
				kept = append(kept, s)
			}
		}
		r.samples = kept
		r = c.limit(r, t)
		up := 1.0
		if r.err != nil {
			r.err = c.clean(r.err)
			up = 0
			c.errs[i].Add(1)
			errs = append(errs, fmt.Errorf("target %q: %w", t.Name, r.err))
		}
		c.logHealth(i, now, r.err)
		results[i] = r
		self := func(metric string, v float64) {
			out = append(out, model.Sample{Metric: metric, Labels: c.label(nil, t), Value: v, Time: now})
		}
		self(MetricUp, up)
		self(MetricErrors, float64(c.errs[i].Load()))
		self(MetricDuration, durations[i].Seconds())
		self(MetricSamples, float64(len(r.samples)))
	}
	for _, r := range results {
		for _, s := range r.samples {
			if s.Time.IsZero() {
				s.Time = now
			}
			out = append(out, s)
		}
	}
	return out, errors.Join(errs...)
}

// limit labels r's samples (with label) and applies the sample and label limits, as
// Prometheus does: over either, the whole collection of the target fails
// and none of its samples is kept.
func (c *TargetCollector) limit(r result, t TargetInfo) result {
	if n := c.settings.SampleLimit; n > 0 && len(r.samples) > n {
		c.sampleLimitHits.Add(1)
		return result{err: fmt.Errorf("%w: %d samples, sample_limit is %d; nothing of this collection is stored", ErrSampleLimit, len(r.samples), n)}
	}
	if errors.Is(r.err, prom.ErrSampleLimit) {
		c.sampleLimitHits.Add(1)
		return result{err: fmt.Errorf("%w: more than %d samples on the page; nothing of this collection is stored", ErrSampleLimit, c.settings.SampleLimit)}
	}
	for j, s := range r.samples {
		ls := c.label(s.Labels, t)
		if n := c.settings.LabelLimit; n > 0 && len(ls) > n {
			c.labelLimitHits.Add(1)
			return result{err: fmt.Errorf("%w (metric: %.50s, number of labels: %d, limit: %d); nothing of this collection is stored", ErrLabelLimit, s.Metric, len(ls), n)}
		}
		r.samples[j].Labels = ls
	}
	return r
}

// Errors of a target collection over its limits.
var (
	ErrSampleLimit = errors.New("sample_limit exceeded")
	ErrLabelLimit  = errors.New("label_limit exceeded")
)

// logHealth logs target i's collection at now when its health changes: a
// WARN when it starts failing, an INFO with the count of failed
// collections when it recovers; the failures in between only at DEBUG.
func (c *TargetCollector) logHealth(i int, now time.Time, err error) {
	c.healthMu.Lock()
	defer c.healthMu.Unlock()
	h, name := &c.health[i], c.targets[i].Name
	switch {
	case err != nil && !h.failing:
		*h = targetHealth{failing: true, since: now, failures: 1}
		c.logger.Warn("target collection failing", "target", name, "err", err)
	case err != nil:
		h.failures++
		c.logger.Debug("target collection still failing", "target", name, "failed_collections", h.failures, "err", err)
	case h.failing:
		c.logger.Info("target collection recovered", "target", name, "failed_collections", h.failures,
			"failing_since", h.since)
		*h = targetHealth{}
	}
}

// clean removes known secrets from a target's error, then cuts it to
// redact.MaxBody bytes: a target's answer or a command's stderr is text
// from outside, and may echo a credential.
func (c *TargetCollector) clean(err error) error {
	err = c.redactor.Error(err)
	if msg := err.Error(); len(msg) > redact.MaxBody {
		return errors.New(redact.Truncate(msg))
	}
	return err
}

// scrapeOne runs one target's scrape, giving up on it when ctx is done even
// if the scraper does not, so one hung target cannot hold up the others.
// A panicking scraper becomes an error.
func (c *TargetCollector) scrapeOne(ctx, scrapeCtx context.Context, i int, now time.Time) result {
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("scraper panic: %v", p)}
			}
		}()
		s, err := c.scraper.Scrape(scrapeCtx, i, now)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		return result{err: fmt.Errorf("no answer within %v: %w", c.settings.Timeout, ctx.Err())}
	}
}

// label adds the collector and target labels and the target's tags. A
// scraped label of the same name is kept as "exported_<name>", as
// Prometheus does, so the operator's tags always mean what they say.
func (c *TargetCollector) label(ls model.Labels, t TargetInfo) model.Labels {
	out := make(model.Labels, len(ls)+len(t.Tags)+2)
	for k, v := range ls {
		out[k] = v
	}
	set := func(k, v string) {
		if old, ok := out[k]; ok && old != v {
			out["exported_"+k] = old
		}
		out[k] = v
	}
	for k, v := range t.Tags {
		set(k, v)
	}
	set(LabelCollector, c.settings.Name)
	set(LabelTarget, t.Name)
	return out
}
