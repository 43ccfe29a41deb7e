package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-alerts/vigil/cmd/vigil/statefile"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/silences"
)

// Silences mute matching firing alerts for a while (docs/deploy.md,
// "Silences"). One store per process feeds every dispatcher it builds; it
// is saved in the state file, or with ha: shared through etcd, where any
// replica may create or expire one and every replica watches.

// silenceRetention is how long an expired silence stays listed.
const silenceRetention = 24 * time.Hour

// silenceRequest is the body of POST /api/v1/silences. Matchers are in
// the text form (`host.mac="00:00:5e:00:53:01"`, `alertname=~"Etcd.*"`).
// Either ends_at or duration sets the end; starts_at defaults to now.
type silenceRequest struct {
	ID        string    `json:"id,omitempty"` // changes that silence (extend it, say)
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at,omitzero"`
	EndsAt    time.Time `json:"ends_at,omitzero"`
	Duration  string    `json:"duration,omitempty"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
}

// apiSilence is a silence as the API shows it: with its state now.
type apiSilence struct {
	silences.Silence
	State     string   `json:"state"`
	MatcherSt []string `json:"matchers_text"`
}

func toAPISilence(s silences.Silence, now time.Time) apiSilence {
	out := apiSilence{Silence: s, State: s.State(now)}
	for _, m := range s.Matchers {
		out.MatcherSt = append(out.MatcherSt, m.String())
	}
	return out
}

type silencesView struct {
	Silences []apiSilence `json:"silences"`
}

func (d *daemon) silencesView() silencesView {
	now := d.o.Now()
	v := silencesView{Silences: []apiSilence{}}
	for _, s := range d.sil.ListAt(now) {
		v.Silences = append(v.Silences, toAPISilence(s, now))
	}
	return v
}

func (d *daemon) apiSilences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.silencesView())
}

// parse turns a request into a silence, every mistake at once.
func (req silenceRequest) parse(now time.Time) (silences.Silence, error) {
	s := silences.Silence{ID: req.ID, StartsAt: req.StartsAt, EndsAt: req.EndsAt, CreatedBy: req.CreatedBy, Comment: req.Comment}
	var errs []error
	for i, text := range req.Matchers {
		m, err := silences.ParseMatcher(text)
		if err != nil {
			errs = append(errs, fmt.Errorf("matchers[%d]: %w", i, err))
			continue
		}
		s.Matchers = append(s.Matchers, m)
	}
	switch {
	case req.Duration != "" && !req.EndsAt.IsZero():
		errs = append(errs, errors.New("duration and ends_at are exclusive"))
	case req.Duration != "":
		dur, err := time.ParseDuration(req.Duration)
		if err != nil || dur <= 0 {
			errs = append(errs, fmt.Errorf("duration %q: want a positive Go duration such as 2h or 90m", req.Duration))
			break
		}
		start := req.StartsAt
		if start.IsZero() || start.Before(now) {
			start = now
		}
		s.EndsAt = start.Add(dur)
	case req.EndsAt.IsZero():
		errs = append(errs, errors.New("ends_at or duration is required"))
	}
	return s, errors.Join(errs...)
}

// postSilence creates a silence, or changes one (ID given).
func (d *daemon) postSilence(w http.ResponseWriter, r *http.Request) {
	var req silenceRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		http.Error(w, "bad silence: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := d.o.Now()
	s, err := req.parse(now)
	if err != nil {
		http.Error(w, "bad silence:\n"+err.Error(), http.StatusBadRequest)
		return
	}
	if !d.silencesShared(w) {
		return
	}
	if spaces := alertSpaces(d.eng.Rules()); s.MutesAll(spaces) {
		http.Error(w, "bad silence:\nmatchers: the silence would mute every alert the loaded rules can raise "+
			"(each matcher was tried against the rules' names, severities and labels, and against any value of the labels they do not fix); "+
			`say what to mute, such as alertname="…" or host.mac="…"`, http.StatusBadRequest)
		return
	}
	_, existed := d.sil.Get(s.ID)
	s, err = d.addSilence(s, now)
	switch {
	case errors.Is(err, errNotSaved):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case errors.Is(err, silences.ErrExpired):
		http.Error(w, err.Error()+"; create a new one", http.StatusConflict)
		return
	case errors.Is(err, silences.ErrTooBig):
		http.Error(w, "bad silence:\n"+err.Error()+" (silences.max_silence_size_bytes in the config)", http.StatusRequestEntityTooLarge)
		return
	case errors.Is(err, silences.ErrTooMany):
		http.Error(w, err.Error()+" (silences.max_silences in the config)", http.StatusConflict)
		return
	case errors.Is(err, silences.ErrTooLong):
		http.Error(w, "bad silence:\n"+err.Error()+" (silences.max_duration in the config)", http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, "bad silence:\n"+err.Error(), http.StatusBadRequest)
		return
	}
	if !d.shareSilence(w, r.Context(), s) {
		return
	}
	d.log.Info("silence saved", "id", s.ID, "matchers", strings.Join(toAPISilence(s, now).MatcherSt, ","),
		"ends_at", s.EndsAt, "created_by", s.CreatedBy, "comment", s.Comment)
	code := http.StatusCreated
	if existed {
		code = http.StatusOK
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(toAPISilence(s, now))
}

// deleteSilence expires a silence now; it stays listed as expired.
func (d *daemon) deleteSilence(w http.ResponseWriter, r *http.Request) {
	if !d.silencesShared(w) {
		return
	}
	now := d.o.Now()
	s, err := d.expireSilence(r.PathValue("id"), now)
	switch {
	case errors.Is(err, silences.ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case errors.Is(err, errNotSaved):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if !d.shareSilence(w, r.Context(), s) {
		return
	}
	d.log.Info("silence expired", "id", s.ID)
	writeJSON(w, toAPISilence(s, now))
}

// errNotSaved: the silences journal could not be written, so the change
// was not made. The caller can retry once the disk is writable again.
var errNotSaved = errors.New("not saved to the silences journal, so not made: nothing changed; try again once the state directory is writable")

// silenceJournal is the silences journal's path, or "" when changes are
// not journaled: no state file, or ha: (silences live in etcd).
func (d *daemon) silenceJournal() string {
	path := d.cfg.Load().State.Path
	if path == "" || d.ha != nil {
		return ""
	}
	return statefile.JournalPath(path)
}

// addSilence adds s to the store, written ahead to the silences journal
// when there is one: the silence takes effect only once it is on disk,
// and costs one appended line, not a rewrite of the state file (which
// takes it in at its next save). saveMu orders journal lines as the
// changes and keeps the state file's save and the journal's reset from
// passing an append.
func (d *daemon) addSilence(s silences.Silence, now time.Time) (silences.Silence, error) {
	path := d.silenceJournal()
	if path == "" {
		return d.sil.Add(s, now)
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	p, err := d.sil.Prepare(s, now)
	if err != nil {
		return silences.Silence{}, err
	}
	if err := statefile.AppendSilence(path, p); err != nil {
		d.m.stateSaveFails.Inc()
		d.log.Error("silence refused: not saved to the silences journal", "id", p.ID, "err", err)
		return silences.Silence{}, fmt.Errorf("silence %w (%v)", errNotSaved, err)
	}
	return d.sil.Add(p, now)
}

// expireSilence is Expire, written ahead as addSilence is.
func (d *daemon) expireSilence(id string, now time.Time) (silences.Silence, error) {
	path := d.silenceJournal()
	if path == "" {
		return d.sil.Expire(id, now)
	}
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	p, changed, err := d.sil.PrepareExpire(id, now)
	if err != nil || !changed {
		return p, err
	}
	if err := statefile.AppendSilence(path, p); err != nil {
		d.m.stateSaveFails.Inc()
		d.log.Error("silence expiry refused: not saved to the silences journal", "id", id, "err", err)
		return silences.Silence{}, fmt.Errorf("expiry %w (%v)", errNotSaved, err)
	}
	return d.sil.Expire(id, now)
}

// replaySilences applies the journal at path over the restored silences
// (at start, after the state file).
func (d *daemon) replaySilences(path string) {
	ss, torn, err := statefile.ReadJournal(path)
	if torn {
		d.log.Warn("silences journal: its last line was cut short by a crash and is skipped; that change was never confirmed", "file", path)
	}
	if err != nil {
		d.log.Warn("silences journal: lines that do not decode are skipped", "err", err)
	}
	n := 0
	for _, s := range ss {
		if err := d.sil.Put(s); err != nil {
			d.log.Warn("silences journal: silence not restored", "err", err)
			continue
		}
		n++
	}
	if n > 0 {
		d.log.Info("silences restored from the journal", "file", path, "changes", n)
	}
}

// alertSpaces describes the alerts the rules can raise, for
// Silence.MutesAll: each rule's name, severity and labels are fixed, and
// an `across: any` rule's segment_by labels are on every alert. With no
// rules, a rule of any name and severity stands in, so that a silence
// made before the rules does not mute whatever they will be.
func alertSpaces(rs *rules.RuleSet) []silences.AlertSpace {
	var out []silences.AlertSpace
	if rs != nil {
		for _, r := range rs.Rules() {
			fixed := r.Labels.Copy()
			if fixed == nil {
				fixed = model.Labels{}
			}
			fixed["alertname"], fixed["severity"] = r.Name, string(r.Severity)
			sp := silences.AlertSpace{Fixed: fixed}
			if r.Across != rules.AcrossEvery { // an every alert drops them
				sp.Present = r.SegmentBy
			}
			out = append(out, sp)
		}
	}
	if len(out) == 0 {
		for _, sev := range rules.Severities {
			out = append(out, silences.AlertSpace{Fixed: model.Labels{"severity": string(sev)}, Present: []string{"alertname"}})
		}
	}
	return out
}

// silencesShared refuses writes on a replica that has not loaded the
// shared silences yet: its change could be based on a stale set.
func (d *daemon) silencesShared(w http.ResponseWriter) bool {
	if d.ha != nil && !d.ha.silences.Synced() {
		http.Error(w, "silences not loaded from etcd yet (etcd unreachable?); try again", http.StatusServiceUnavailable)
		return false
	}
	return true
}

// shareSilence shares a change through etcd with ha: (without, it is
// already durable: addSilence journaled it). On failure the caller is told
// the change may not last.
func (d *daemon) shareSilence(w http.ResponseWriter, ctx context.Context, s silences.Silence) bool {
	if d.ha == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := d.ha.silences.Save(ctx, s)
	switch {
	case errors.Is(err, ha.ErrSilenceOutdated):
		http.Error(w, "another replica changed this silence meanwhile; read it again: "+err.Error(), http.StatusConflict)
		return false
	case err != nil:
		// The sync reloads from etcd once it answers, which drops the
		// unsaved change here too: say so rather than pretend.
		http.Error(w, "silence not saved to etcd, so not shared with the other replicas: "+err.Error(), http.StatusServiceUnavailable)
		return false
	}
	return true
}

// gcSilences forgets silences expired more than silenceRetention ago;
// with ha: the leader deletes them from etcd too (a follower forgets its
// copy only).
func (d *daemon) gcSilences(ctx context.Context, now time.Time, leading bool) {
	gone := d.sil.GC(now, silenceRetention)
	if len(gone) == 0 || d.ha == nil || !leading {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.ha.silences.Delete(ctx, gone...); err != nil {
		d.log.Warn("expired silences not deleted from etcd; retried at the next GC", "err", err)
	}
}

// silenceLimits are the config's silences: section as the store takes it.
func silenceLimits(cfg *config.Config) silences.Limits {
	return silences.Limits{MaxSilences: cfg.Silences.MaxSilences, MaxSizeBytes: cfg.Silences.MaxSilenceSizeBytes,
		MaxDuration: time.Duration(cfg.Silences.MaxDuration)}
}

// registerSilenceMetrics adds vigil_silences{state}.
func (d *daemon) registerSilenceMetrics() {
	for _, state := range []string{silences.StateActive, silences.StatePending, silences.StateExpired} {
		d.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_silences", Help: "Silences by state (active, pending, expired and still listed).",
			ConstLabels: prometheus.Labels{"state": state},
		}, func() float64 {
			now, n := d.o.Now(), 0
			for _, s := range d.sil.List() {
				if s.State(now) == state {
					n++
				}
			}
			return float64(n)
		}))
	}
}
