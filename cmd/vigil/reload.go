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

// reloadStatus is the outcome of the last reload attempt that found changes.
type reloadStatus struct {
	OK          bool      `json:"ok"`
	At          time.Time `json:"at"`
	LastSuccess time.Time `json:"last_success"`
	Reason      string    `json:"reason,omitempty"`
	// Errors are one line each, "file:line:col: message".
	Errors []string `json:"errors,omitempty"`
	// Warnings name config changes that take effect only at restart.
	Warnings []string `json:"warnings,omitempty"`
	Rules    int      `json:"rules"`
}

// ReloadAlertName is the alert raised while the last reload failed.
const ReloadAlertName = "VigilReloadFailed"

// Reload re-reads config and rules. It returns nil when the new set is in
// use or nothing changed, and the load errors otherwise.
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
	rs, sum, err := d.loadRules(cfg)
	if err != nil {
		d.applied = sum
		d.failReload(reason, now, err)
		return err
	}
	d.applied = sum
	warnings := restartOnly(old, cfg)
	collsChanged := !reflect.DeepEqual(old.Collectors, cfg.Collectors)
	var colls []collectors.Collector
	if collsChanged {
		colls, err = collectors.Build(cfg.Collectors, d.log.With("component", "collectors"), d.collectorOptions()...)
		if err != nil { // config.Load built them once already: unlikely
			d.failReload(reason, now, err)
			return err
		}
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
		closeCollectors(prev)
	}
	// Settings that need a restart keep their old values.
	cfg.HTTP, cfg.State, cfg.HA = old.HTTP, old.State, old.HA
	cfg.Reload.Debounce, cfg.Reload.CheckInterval = old.Reload.Debounce, old.Reload.CheckInterval
	d.cfg.Store(cfg)
	d.eng.SetRules(rs)
	if d.ha != nil {
		// The running term's engine (a term that starts later copies
		// d.eng's rules).
		if l := d.ha.node.Current(); l != nil {
			l.Engine.SetRules(rs)
		}
	}
	d.store.SetRetention(rs.MaxWindow + time.Minute)
	d.scheduleGroups(rs)
	d.setReloaded(rs, now, reason, warnings)
	d.m.reloads.WithLabelValues("success").Inc()
	d.log.Info("rules reloaded", "reason", reason, "rules", len(rs.Rules()), "groups", len(rs.Groups))
	for _, w := range warnings {
		d.log.Warn("config change needs a restart", "change", w)
	}
	return nil
}

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

func closeCollectors(cs []collectors.Collector) {
	for _, c := range cs {
		if cl, ok := c.(io.Closer); ok {
			cl.Close()
		}
	}
}

// loadRules loads the config's rules and applies the daemon's adjustment.
// The checksum covers the config file, every rule file and every secret
// file, so a reload that finds the same bytes does nothing.
func (d *daemon) loadRules(cfg *config.Config) (*rules.RuleSet, string, error) {
	sum, _ := inputsChecksum(cfg.File, cfg.RuleDirs, cfg.SecretFiles())
	rs, err := cfg.LoadRules()
	if err != nil {
		return nil, sum, err
	}
	if d.o.Rules != nil {
		rs = d.o.Rules(rs)
	}
	return rs, sum, nil
}

// setReloaded publishes a success; a published status is never modified.
func (d *daemon) setReloaded(rs *rules.RuleSet, now time.Time, reason string, warnings []string) {
	d.reload.Store(&reloadStatus{OK: true, At: now, LastSuccess: now, Rules: len(rs.Rules()), Reason: reason, Warnings: warnings})
	d.m.reloadSuccess.Set(1)
	d.m.reloadTime.Set(float64(now.UnixNano()) / 1e9)
	d.m.rulesLoaded.Set(float64(len(rs.Rules())))
}

func (d *daemon) failReload(reason string, now time.Time, err error) {
	err = d.redact.Error(err) // shown on the page, the API and in VigilReloadFailed
	prev := d.reload.Load()
	st := &reloadStatus{OK: false, At: now, Reason: reason, Errors: errorLines(err)}
	if prev != nil {
		st.LastSuccess, st.Rules = prev.LastSuccess, prev.Rules
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

// reloadAlert is the VigilReloadFailed alert while the last reload failed
// and reload.notify names channels.
func (d *daemon) reloadAlert(now time.Time) (model.Alert, bool) {
	st := d.reload.Load()
	cfg := d.cfg.Load()
	if st == nil || st.OK || len(cfg.Reload.Notify) == 0 {
		return model.Alert{}, false
	}
	summary := "rules or config do not load; the last good rules are still evaluated"
	if len(st.Errors) > 0 {
		summary = st.Errors[0]
	}
	return model.Alert{
		Fingerprint: model.Fingerprint(ReloadAlertName, nil),
		Rule:        ReloadAlertName, Group: "vigil", Severity: "high",
		Description: "Vigil could not load its rules or config and keeps evaluating the last good ones.",
		State:       model.StateFiring,
		Labels:      model.Labels{"alertname": ReloadAlertName, "severity": "high"},
		Annotations: map[string]string{"summary": summary, "errors": strings.Join(st.Errors, "\n")},
		Segment:     model.Labels{},
		Notify:      cfg.Reload.Notify,
		ActiveAt:    st.At, FiredAt: st.At, LastEvalAt: now,
	}, true
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
