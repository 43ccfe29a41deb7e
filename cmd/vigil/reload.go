package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// How a rule reloads: an event (file watch, SIGHUP, POST /-/reload, the
// periodic re-check) calls Reload; Reload reads the config, every rule
// file and every secret file the config names (a Kubernetes Secret volume
// rotates them in place), and if anything differs from what was last
// loaded, validates and compiles all of it (rules against the new config's
// channels), builds the new collectors and channels, then swaps them in
// with the new rule set (engine.SetRules keeps the alerts of unchanged
// rules, Dispatcher.Apply the queues and dedup state of unchanged channels
// and the dedup state of those with new settings or rotated secrets) — or
// keeps everything old and records the errors, with file:line:col, for the
// API, the page and the VigilReloadFailed alert.
//
// The config is all or nothing; rule files are not: rules.LoadEach
// quarantines a rule file that does not load (it keeps its last good
// version, if it has one) and the other files' edits apply. Each
// quarantined file is named in the reload status, in
// vigil_rule_file_load_success{file} and in its own VigilReloadFailed
// alert. At start nothing is in use yet, and Vigil refuses to start on
// any file that does not load (as Prometheus does): a quarantine is a
// running Vigil's way to keep going, not a way to start broken.

// reloadStatus is the outcome of the last reload attempt that found changes.
type reloadStatus struct {
	// OK: everything loaded and is in use.
	OK bool `json:"ok"`
	// Applied: the attempt's rules are in use, all of them or all but the
	// quarantined files'. False when the config (or a rule directory)
	// did not load and nothing changed.
	Applied bool      `json:"applied"`
	At      time.Time `json:"at"`
	// LastSuccess is when rules were last applied (a reload that
	// quarantined files applied the others).
	LastSuccess time.Time `json:"last_success"`
	Reason      string    `json:"reason,omitempty"`
	// Errors are one line each, "file:line:col: message": the config's
	// when nothing was applied, else the quarantined files'.
	Errors []string `json:"errors,omitempty"`
	// Quarantined are the rule files that do not load, by path. They stay
	// listed while a config error stops reloads.
	Quarantined []quarantinedFile `json:"quarantined,omitempty"`
	// Warnings name config changes that take effect only at restart.
	Warnings []string `json:"warnings,omitempty"`
	Rules    int      `json:"rules"`
}

// quarantinedFile is a rule file that does not load.
type quarantinedFile struct {
	File string `json:"file"`
	// Errors are one line each, "file:line:col: message".
	Errors []string `json:"errors"`
	// Running: its last good version is still evaluated. False for a
	// file that never loaded: none of its rules are evaluated.
	Running bool `json:"running"`
	// Since is the first reload that found the file broken.
	Since time.Time `json:"since"`
}

// ReloadAlertName is the alert raised while the last reload failed.
const ReloadAlertName = "VigilReloadFailed"

// Reload re-reads config and rules. It returns nil when everything loaded
// (or nothing changed and everything had loaded), the quarantined files'
// errors when the other files were applied, and the load errors otherwise.
func (d *daemon) Reload(reason string) error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	now := d.o.Now()
	old := d.cfg.Load()
	// Same bytes as last time (the periodic re-check, an event for an
	// untouched file): nothing to do, and nothing new to report.
	sum, err := inputsChecksum(d.o.ConfigPath, old.RuleDirs, old.SecretFiles())
	if err == nil && sum == d.applied {
		if st := d.reload.Load(); st != nil && !st.OK {
			if st.Applied {
				return errors.New(quarantinePrefix + strings.Join(st.Errors, "\n"))
			}
			return errors.New(strings.Join(st.Errors, "\n"))
		}
		return nil
	}
	cfg, err := config.Load(d.o.ConfigPath, config.Options{LookupEnv: d.o.LookupEnv, Logger: d.log})
	if err != nil {
		d.applied = sum
		d.failReload(reason, now, err)
		return err
	}
	d.redact.Add(cfg.BearerToken()) // a rotated token is a secret from now on
	ld, sum, err := d.loadRules(cfg, d.loaded)
	if err != nil {
		d.applied = sum
		d.failReload(reason, now, err)
		return err
	}
	d.applied = sum
	rs := d.adjust(ld.Set)
	warnings := restartOnly(old, cfg)
	collsChanged := !reflect.DeepEqual(old.Collectors, cfg.Collectors)
	var colls []collectors.Collector
	if collsChanged {
		colls, err = collectors.Build(cfg.Collectors, d.log.With("component", "collectors"), d.collectorOptions()...)
		if err != nil { // config.Load built them once already: unlikely
			d.failReload(reason, now, err)
			return err
		}
		selectMetrics(colls, rs)
	}
	// A rotated secret file changes no config text: Apply reads every
	// channel's secrets again and replaces the channels whose secrets
	// differ. Only the files' hash is kept here, never their contents.
	secrets := filesChecksum(cfg.Notifiers.SecretFiles())
	if !reflect.DeepEqual(old.Notifiers, cfg.Notifiers) || secrets != d.notifierSecrets {
		w, err := d.applyNotifiers(cfg)
		if err != nil { // config.Load built them once already: unlikely
			closeCollectors(colls)
			d.failReload(reason, now, err)
			return err
		}
		warnings = append(warnings, w...)
		d.notifierSecrets = secrets
	}
	if collsChanged {
		prev := d.collectors()
		d.colls.Store(&colls)
		d.scheduleCollectors(prev, colls)
		d.m.forgetCollectors(prev, colls)
		closeCollectors(prev)
	}
	// Settings that need a restart keep their old values.
	cfg.HTTP, cfg.State, cfg.HA = old.HTTP, old.State, old.HA
	cfg.Reload.Debounce, cfg.Reload.CheckInterval = old.Reload.Debounce, old.Reload.CheckInterval
	d.cfg.Store(cfg)
	// Under saveMu: a silence between its journal line and its Add must
	// be judged by the limits it was prepared under.
	d.saveMu.Lock()
	d.sil.SetLimits(silenceLimits(cfg))
	d.saveMu.Unlock()
	// Before the rules: a metric a new rule reads is collected from the
	// next collection on.
	selectMetrics(d.collectors(), rs)
	d.eng.SetRules(rs)
	if d.ha != nil {
		// The running term's engine (a term that starts later copies
		// d.eng's rules).
		if l := d.ha.node.Current(); l != nil {
			l.Engine.SetRules(rs)
		}
	}
	d.applyStoreBounds(rs, cfg)
	d.scheduleGroups(rs)
	d.loaded = ld.Set
	for _, w := range ld.Warnings {
		d.log.Warn("rule files", "warning", w)
	}
	d.setReloaded(ld, rs, now, reason, append(warnings, ld.Warnings...))
	if len(ld.Quarantined) > 0 {
		d.m.reloads.WithLabelValues("partial").Inc()
	} else {
		d.m.reloads.WithLabelValues("success").Inc()
	}
	d.log.Info("rules reloaded", "reason", reason, "rules", len(rs.Rules()), "groups", len(rs.Groups), "quarantined_files", len(ld.Quarantined))
	for _, w := range warnings {
		d.log.Warn("config change needs a restart", "change", w)
	}
	if err := quarantineError(ld); err != nil {
		return err
	}
	return nil
}

// quarantineError is every quarantined file's errors, or nil.
func quarantineError(ld *rules.Loaded) error {
	var errs rules.Errors
	for _, q := range ld.Quarantined {
		errs = append(errs, q.Errors...)
	}
	if len(errs) == 0 {
		return nil
	}
	return &quarantineErr{errs}
}

// quarantineErr is a reload that applied all but some rule files.
type quarantineErr struct{ errs rules.Errors }

const quarantinePrefix = "rule files quarantined (each keeps its last good version; every other file's edits are applied):\n"

func (e *quarantineErr) Error() string { return quarantinePrefix + e.errs.Error() }

func (e *quarantineErr) Unwrap() error { return e.errs }

// applyNotifiers gives the dispatchers cfg's notifiers section: first the
// daemon's own, which builds and checks everything (an error leaves every
// dispatcher as it was), then, under HA, the running term's. A term that
// starts from now on builds from the new section. The warnings say what
// was applied only partly.
func (d *daemon) applyNotifiers(cfg *config.Config) ([]string, error) {
	n := cfg.Notifiers
	if err := d.disp.Apply(n); err != nil {
		return nil, fmt.Errorf("%s: notifiers: %w", cfg.File, err)
	}
	d.notifierCfg.Store(&n)
	if d.ha == nil {
		return nil, nil
	}
	// A term that was being set up with the old section is current by
	// the time Current returns (the node holds its lock while it builds).
	if l := d.ha.node.Current(); l != nil {
		if err := l.Dispatcher.Apply(n); err != nil {
			d.log.Error("notifiers not applied to the running term; the next term uses them", "err", err)
			return []string{"notifiers (the running term keeps the old ones: " + err.Error() + ")"}, nil
		}
	}
	return nil, nil
}

// selectMetrics gives every collector the metrics rs reads, so that the
// families of a page no rule reads are skipped rather than parsed and
// stored (docs/scaling.md). The collectors' self-metrics are always kept.
func selectMetrics(cs []collectors.Collector, rs *rules.RuleSet) {
	sel := collectors.Only(ruleMetrics(rs)...)
	for _, c := range cs {
		if tc, ok := c.(*collectors.TargetCollector); ok {
			tc.Select(sel)
		}
	}
}

// ruleMetrics lists every metric a rule of rs aggregates; a condition's
// value is computed from the same aggregates.
func ruleMetrics(rs *rules.RuleSet) []string {
	var out []string
	for _, r := range rs.Rules() {
		if r.Condition == nil {
			continue
		}
		for _, a := range r.Condition.Aggregates {
			out = append(out, a.Metric)
		}
	}
	return out
}

func closeCollectors(cs []collectors.Collector) {
	for _, c := range cs {
		if cl, ok := c.(io.Closer); ok {
			cl.Close()
		}
	}
}

// loadRules loads the config's rules file by file against prev, the set in
// use (nil at start), checking each file's notify: channels against the
// config. The checksum covers the config file, every rule file and every
// secret file, so a reload that finds the same bytes does nothing.
func (d *daemon) loadRules(cfg *config.Config, prev *rules.RuleSet) (*rules.Loaded, string, error) {
	sum, _ := inputsChecksum(cfg.File, cfg.RuleDirs, cfg.SecretFiles())
	channels := cfg.ChannelNames()
	ld, err := rules.LoadEach(prev, func(rs *rules.RuleSet) error { return rs.CheckChannels(channels) }, cfg.RuleDirs...)
	if err != nil {
		return nil, sum, err
	}
	for _, err := range ld.CommitErrors {
		d.log.Warn("rule sources will name no commit", "err", err)
	}
	// Changed files were checked; a quarantined file's last good version
	// may name a channel this config removes. The config is all or
	// nothing: it waits until that file is fixed or the channel is back.
	if err := ld.Set.CheckChannels(channels); err != nil {
		return nil, sum, fmt.Errorf("%s: notifiers: a channel removed here is still named by the last good version of a quarantined rule file; fix that file first:\n%w", cfg.File, err)
	}
	return ld, sum, nil
}

// adjust applies the daemon's adjustment (the demo's speed-up) to a
// loaded set. The unadjusted set is the one kept for the next LoadEach.
func (d *daemon) adjust(rs *rules.RuleSet) *rules.RuleSet {
	if d.o.Rules != nil {
		return d.o.Rules(rs)
	}
	return rs
}

// setReloaded publishes an applied reload (all files, or all but the
// quarantined ones); a published status is never modified.
func (d *daemon) setReloaded(ld *rules.Loaded, rs *rules.RuleSet, now time.Time, reason string, warnings []string) {
	prev := d.reload.Load()
	since := map[string]time.Time{}
	if prev != nil {
		for _, q := range prev.Quarantined {
			since[q.File] = q.Since
		}
	}
	st := &reloadStatus{OK: len(ld.Quarantined) == 0, Applied: true, At: now, LastSuccess: now, Rules: len(rs.Rules()),
		Reason: reason, Warnings: warnings}
	for _, q := range ld.Quarantined {
		qf := quarantinedFile{File: q.File, Errors: errorLines(q.Errors), Running: q.Running, Since: now}
		if t, ok := since[q.File]; ok {
			qf.Since = t
		}
		st.Quarantined = append(st.Quarantined, qf)
		st.Errors = append(st.Errors, qf.Errors...)
		d.log.Error("rule file quarantined", "file", q.File, "running_last_good_version", q.Running, "err", q.Errors)
	}
	d.reload.Store(st)
	d.setFileMetrics(ld)
	d.m.reloadSuccess.Set(b2f(st.OK))
	d.m.reloadTime.Set(float64(now.UnixNano()) / 1e9)
	d.m.rulesLoaded.Set(float64(len(rs.Rules())))
	d.m.setRules(rs)
}

// setFileMetrics sets vigil_rule_file_load_success for every rule file
// and deletes the series of files that are gone.
func (d *daemon) setFileMetrics(ld *rules.Loaded) {
	now := map[string]float64{}
	for _, f := range ld.Set.Files {
		now[f] = 1
	}
	for _, q := range ld.Quarantined {
		now[q.File] = 0
	}
	for f := range d.fileSeries {
		if _, ok := now[f]; !ok {
			d.m.ruleFileOK.DeleteLabelValues(f)
		}
	}
	for f, v := range now {
		d.m.ruleFileOK.WithLabelValues(f).Set(v)
	}
	d.fileSeries = now
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (d *daemon) failReload(reason string, now time.Time, err error) {
	err = d.redact.Error(err) // shown on the page, the API and in VigilReloadFailed
	prev := d.reload.Load()
	st := &reloadStatus{OK: false, At: now, Reason: reason, Errors: errorLines(err)}
	if prev != nil {
		// The quarantined files still run as they did.
		st.LastSuccess, st.Rules, st.Quarantined = prev.LastSuccess, prev.Rules, prev.Quarantined
	}
	d.reload.Store(st)
	d.m.reloadSuccess.Set(0)
	d.m.reloads.WithLabelValues("failure").Inc()
	d.log.Error("reload failed, keeping the last good rules", "reason", reason, "errors", len(st.Errors), "err", err)
}

// errorLines splits a load error into one "file:line:col: msg" per mistake.
func errorLines(err error) []string {
	var out []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// reloadAlerts are the VigilReloadFailed alerts while reload.notify names
// channels: one per quarantined rule file, labelled with the file, and
// one for the config while a reload applies nothing. Each resolves when
// its file loads again or is deleted (it is no longer in the list).
func (d *daemon) reloadAlerts(now time.Time) []model.Alert {
	st := d.reload.Load()
	cfg := d.cfg.Load()
	if st == nil || st.OK || len(cfg.Reload.Notify) == 0 {
		return nil
	}
	alert := func(file, summary, description string, errs []string, since time.Time) model.Alert {
		labels := model.Labels{"alertname": ReloadAlertName, "severity": "high", "file": file}
		return model.Alert{
			Fingerprint: model.Fingerprint(ReloadAlertName, model.Labels{"file": file}),
			Rule:        ReloadAlertName, Group: "vigil", Severity: "high",
			Description: description,
			State:       model.StateFiring,
			Labels:      labels,
			Annotations: map[string]string{"summary": summary, "errors": strings.Join(errs, "\n")},
			Segment:     model.Labels{"file": file},
			Notify:      cfg.Reload.Notify,
			ActiveAt:    since, FiredAt: since, LastEvalAt: now,
		}
	}
	var out []model.Alert
	if !st.Applied {
		summary := "config or rules do not load; the last good ones are still in use"
		if len(st.Errors) > 0 {
			summary = st.Errors[0]
		}
		out = append(out, alert(cfg.File, summary,
			"Vigil could not load its config and keeps running with the last good config and rules.", st.Errors, st.At))
	}
	for _, q := range st.Quarantined {
		summary := q.File + " does not load"
		if len(q.Errors) > 0 {
			summary = q.Errors[0]
		}
		desc := "This rule file does not load; its last good version is still evaluated, and every other file's edits apply."
		if !q.Running {
			desc = "This rule file has never loaded: none of its rules are evaluated. Every other file's edits apply."
		}
		out = append(out, alert(q.File, summary, desc, q.Errors, q.Since))
	}
	return out
}

// inputsChecksum hashes the config file, every rule file under dirs and
// the secret files the config reads (config.SecretFiles), so that a
// rotated secret is a change too.
func inputsChecksum(configPath string, dirs, secretFiles []string) (string, error) {
	h := sha256.New()
	b, err := os.ReadFile(configPath)
	if err != nil {
		return "", err
	}
	h.Write(b)
	files, err := rules.Files(dirs...)
	if err != nil {
		return "", err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		io.WriteString(h, "\x00"+f+"\x00")
		h.Write(b)
	}
	io.WriteString(h, "\x00secrets\x00"+filesChecksum(secretFiles))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// filesChecksum hashes the contents of files, each with its name. A file
// that cannot be read hashes as its error, not as a failure: config.Load
// reports it, and the periodic re-check then finds the same checksum and
// does not report it again every time. The result is only compared,
// never shown: it is a hash of secrets.
func filesChecksum(files []string) string {
	h := sha256.New()
	for _, f := range files {
		io.WriteString(h, "\x00"+f+"\x00")
		b, err := os.ReadFile(f)
		if err != nil {
			io.WriteString(h, "\x01"+err.Error())
			continue
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// restartOnly names the changed sections that a reload does not apply.
func restartOnly(old, cfg *config.Config) []string {
	var w []string
	if !reflect.DeepEqual(old.HTTP, cfg.HTTP) {
		w = append(w, "http")
	}
	if old.State != cfg.State {
		w = append(w, "state")
	}
	if !reflect.DeepEqual(old.HA, cfg.HA) {
		w = append(w, "ha")
	}
	if old.Reload.Debounce != cfg.Reload.Debounce || old.Reload.CheckInterval != cfg.Reload.CheckInterval {
		w = append(w, "reload.debounce, reload.check_interval (the file watcher's)")
	}
	if !reflect.DeepEqual(old.RuleDirs, cfg.RuleDirs) {
		w = append(w, "rule_dirs (loaded now; watched for changes after a restart)")
	}
	return w
}
