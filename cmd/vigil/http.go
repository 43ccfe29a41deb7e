package main

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-alerts/vigil/model"
)

// handler serves the probes, /metrics, the JSON API, POST /-/reload and the
// status page. With a bearer token configured, everything except the
// probes and /metrics requires it. Every request goes through secure
// (headers, body limit), cross-origin protection and the write guard
// (security.go).
func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.isReady() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{Registry: d.reg}))

	private := http.NewServeMux()
	private.HandleFunc("GET /api/v1/alerts", d.apiAlerts)
	private.HandleFunc("GET /api/v1/alerts/{fingerprint}/explain", d.apiExplain)
	private.HandleFunc("GET /api/v1/rules", d.apiRules)
	private.HandleFunc("GET /api/v1/groups", d.apiGroups)
	private.HandleFunc("GET /api/v1/status", d.apiStatus)
	private.HandleFunc("GET /api/v1/silences", d.apiSilences)
	private.HandleFunc("POST /api/v1/silences", d.postSilence)
	private.HandleFunc("DELETE /api/v1/silences/{id}", d.deleteSilence)
	private.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.Reload("POST /-/reload"); err != nil {
			http.Error(w, "reload failed, keeping the last good rules:\n"+d.redact.Error(err).Error(), http.StatusUnprocessableEntity)
			return
		}
		w.Write([]byte("reloaded\n"))
	})
	private.HandleFunc("GET /{$}", d.statusPage)
	private.HandleFunc("GET /rules/{name}", d.rulePage)
	mux.Handle("/", d.auth(private))
	return d.secure(crossOrigin().Handler(d.writeGuard(mux)))
}

func (d *daemon) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token := d.cfg.Load().BearerToken(); token != "" && !bearerOK(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerOK reports whether r carries token as its bearer token.
func bearerOK(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// apiAlert is an alert as the API shows it.
type apiAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Group       string            `json:"group"`
	Severity    string            `json:"severity"`
	State       string            `json:"state"`
	Value       float64           `json:"value"`
	Labels      model.Labels      `json:"labels"`
	Segment     model.Labels      `json:"segment,omitempty"`
	Segments    []apiSegment      `json:"segments,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
	LastEvalAt  time.Time         `json:"last_eval_at,omitzero"`
	InhibitedBy []string          `json:"inhibited_by,omitempty"`
	SilencedBy  []string          `json:"silenced_by,omitempty"`
	// Source is where the rule is written: file (relative to the rules
	// directory), line, and the git commit it was loaded at.
	Source *model.Source `json:"source,omitempty"`
}

type apiSegment struct {
	Labels model.Labels `json:"labels"`
	Value  float64      `json:"value"`
}

func toAPI(a model.Alert, inhibitedBy, silencedBy []string) apiAlert {
	out := apiAlert{Fingerprint: a.Fingerprint, Rule: a.Rule, Group: a.Group, Severity: a.Severity,
		State: a.State.String(), Value: a.Value, Labels: a.Labels, Segment: a.Segment,
		Annotations: a.Annotations, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, ResolvedAt: a.ResolvedAt,
		LastEvalAt: a.LastEvalAt, InhibitedBy: inhibitedBy, SilencedBy: silencedBy, Source: a.Source}
	for _, s := range a.Segments {
		out.Segments = append(out.Segments, apiSegment{s.Labels, s.Value})
	}
	return out
}

// alertsView is what the API and the page show of the alerts.
type alertsView struct {
	Alerts []apiAlert `json:"alerts"`
	// Inhibited and silenced firing alerts are in Alerts too, with
	// inhibited_by or silenced_by set.
	Inhibited int `json:"inhibited"`
	Silenced  int `json:"silenced"`
	// Following, with ha:, names the leader this replica follows: the
	// alerts are the leader's, so a follower lists none.
	Following string `json:"following,omitempty"`
}

// noLeader is what a follower shows while it knows no leader.
const noLeader = "no leader (none elected yet, or etcd unreachable)"

// following names the leader a follower follows, or noLeader.
func (d *daemon) following() string {
	if l := d.ha.el.Leader(); l != "" {
		return l
	}
	return noLeader
}

func (d *daemon) alertsView() alertsView {
	v := alertsView{Alerts: []apiAlert{}}
	eng, disp, ok := d.lead()
	if !ok {
		v.Following = d.following()
		return v
	}
	inhibited := map[string][]string{}
	for _, ia := range disp.Inhibited() {
		inhibited[ia.Alert.Fingerprint] = ia.By
	}
	v.Inhibited = len(inhibited)
	silenced := map[string][]string{}
	for _, sa := range disp.Silenced() {
		silenced[sa.Alert.Fingerprint] = sa.By
	}
	v.Silenced = len(silenced)
	for _, a := range eng.Alerts() {
		v.Alerts = append(v.Alerts, toAPI(a, inhibited[a.Fingerprint], silenced[a.Fingerprint]))
	}
	return v
}

func (d *daemon) apiAlerts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.alertsView())
}

type apiRule struct {
	Name        string    `json:"name"`
	Severity    string    `json:"severity"`
	Description string    `json:"description,omitempty"`
	File        string    `json:"file"`
	Line        int       `json:"line"`
	Health      string    `json:"health"` // ok, err or unknown (not evaluated yet)
	LastError   string    `json:"last_error,omitempty"`
	LastEval    time.Time `json:"last_evaluation,omitzero"`
	Segments    int       `json:"segments"`
	For         string    `json:"for"`
	Window      string    `json:"window"`
	Condition   string    `json:"condition"`
	// Source is where the rule is written, with the git commit it was
	// loaded at (rules.md).
	Source *model.Source `json:"source,omitempty"`
}

type apiGroup struct {
	Name     string    `json:"name"`
	File     string    `json:"file"`
	Interval string    `json:"interval"`
	Rules    []apiRule `json:"rules"`
}

type rulesView struct {
	Groups []apiGroup    `json:"groups"`
	Reload *reloadStatus `json:"reload"`
	State  string        `json:"state_error,omitempty"`
}

func (d *daemon) rulesView() rulesView {
	v := rulesView{Groups: []apiGroup{}, Reload: d.reload.Load(), State: d.stateErr}
	byGroup := map[string]*apiGroup{}
	for _, g := range d.eng.Rules().Groups {
		v.Groups = append(v.Groups, apiGroup{Name: g.Name, File: g.File, Interval: g.Interval.String(), Rules: []apiRule{}})
	}
	for i := range v.Groups {
		byGroup[v.Groups[i].Name] = &v.Groups[i]
	}
	// The rules are the ones loaded here; their health is the leader's
	// engine's (a follower evaluates nothing: "unknown").
	eng, _, ok := d.lead()
	if !ok {
		eng = d.eng
	}
	for _, st := range eng.RuleStatuses() {
		r := st.Rule
		health := "unknown"
		if !st.LastEval.IsZero() {
			health = "ok"
			if !st.Health.OK {
				health = "err"
			}
		}
		cond := ""
		if r.Condition != nil {
			cond = r.Condition.Source
		}
		ar := apiRule{Name: r.Name, Severity: string(r.Severity), Description: r.Description, File: r.File,
			Line: r.Pos.Line, Health: health, LastError: st.Health.Err, LastEval: st.LastEval,
			Segments: st.Segments, For: r.For.String(), Window: r.Window.String(), Condition: cond, Source: r.Source}
		if g := byGroup[r.Group]; g != nil {
			g.Rules = append(g.Rules, ar)
		}
	}
	return v
}

func (d *daemon) apiRules(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.rulesView())
}

// statusView is /api/v1/status: is this process up, what it loaded, and
// with ha: which replica leads.
type statusView struct {
	Ready     bool      `json:"ready"`
	StartedAt time.Time `json:"started_at"`
	Rules     int       `json:"rules"`
	// Leading: this process evaluates and notifies (always when alone).
	Leading bool          `json:"leading"`
	HA      *haStatus     `json:"ha,omitempty"`
	Reload  *reloadStatus `json:"reload"`
	State   string        `json:"state_error,omitempty"`
	// StateSave is set while the state file cannot be saved.
	StateSave *saveFailure `json:"state_save_error,omitempty"`
}

func (d *daemon) statusView() statusView {
	v := statusView{Ready: d.isReady(), StartedAt: d.start, Rules: len(d.eng.Rules().Rules()),
		Leading: true, HA: d.haStatus(), Reload: d.reload.Load(), State: d.stateErr, StateSave: d.saveFail.Load()}
	if v.HA != nil {
		v.Leading = v.HA.Leading
	}
	return v
}

func (d *daemon) apiStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, d.statusView())
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
