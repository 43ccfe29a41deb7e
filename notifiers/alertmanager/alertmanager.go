// Package alertmanager hands alerts to existing Alertmanagers, as
// Prometheus does: it POSTs them to each one's /api/v2/alerts, with an
// end time a few evaluations ahead while they fire (so that an
// Alertmanager that stops hearing from Vigil resolves them by itself)
// and the resolution time once they resolve. The dispatcher resends
// firing alerts every resend interval (the channel's repeat_interval).
package alertmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/vigil-alerts/vigil/internal/httpconf"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/internal/secret"
)

// Defaults, as Prometheus' --rules.alert.resend-delay and a 1m rule
// evaluation interval.
const (
	DefaultResendInterval = time.Minute
	DefaultEvalInterval   = time.Minute
	DefaultTimeout        = 10 * time.Second
	// maxPending bounds, per Alertmanager, the alerts kept for one that
	// is down; beyond it the oldest are dropped and counted.
	maxPending = 10000
)

// Config is the `alertmanager:` block of a channel.
type Config struct {
	// URLs are the Alertmanagers' base addresses (with a path prefix if
	// they have one): alerts go to <url>/api/v2/alerts of every one, as
	// Prometheus sends to every Alertmanager it knows.
	URLs []string `yaml:"urls" json:"urls"`
	// ResendInterval is how often firing alerts are sent again (default
	// 1m); it is the channel's repeat_interval unless that is set.
	ResendInterval time.Duration `yaml:"resend_interval,omitempty" json:"resend_interval,omitempty"`
	// EvalInterval is the longest evaluation interval of the rules sent
	// here (default 1m). A firing alert's endsAt is its evaluation time
	// plus 4 x max(eval_interval, resend_interval), as Prometheus sets it.
	EvalInterval time.Duration `yaml:"eval_interval,omitempty" json:"eval_interval,omitempty"`
	// Timeout bounds one POST to one Alertmanager (default 10s).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// HTTPConfig is Prometheus' HTTP client config (basic_auth,
	// authorization, oauth2, tls_config, proxy_url), as in an
	// alertmanager_config of Prometheus. Secrets come from *_file fields,
	// or *_ref fields naming environment variables.
	HTTPConfig promconfig.HTTPClientConfig `yaml:"http_config,omitempty" json:"http_config,omitzero"`
}

// SecretFiles lists the files cfg reads credentials from.
func (cfg Config) SecretFiles() []string { return httpconf.SecretFiles(cfg.HTTPConfig) }

// Resend is the resend interval after defaults.
func (cfg Config) Resend() time.Duration {
	if cfg.ResendInterval > 0 {
		return cfg.ResendInterval
	}
	return DefaultResendInterval
}

// Options are what the caller, not the config file, decides.
type Options struct {
	Name      string // the channel, for metrics
	LookupEnv secret.LookupEnv
	// Registerer receives vigil_alertmanager_posts_failed_total; nil
	// keeps the count unexported.
	Registerer prometheus.Registerer
	// ExternalURL is Vigil's own address: generatorURL links to the rule.
	ExternalURL string
	// Now is the clock for alerts without an evaluation time (default
	// time.Now).
	Now func() time.Time
	// RenderOnly builds a Notifier for Render alone (rule tests):
	// http_config's credentials are not read, and Notify fails.
	RenderOnly bool
}

// Notifier posts to a set of Alertmanagers.
type Notifier struct {
	name        string
	urls        []string // .../api/v2/alerts
	shown       []string // the same, without secrets, for errors
	client      *http.Client
	secrets     []string
	timeout     time.Duration
	validFor    time.Duration
	externalURL string
	now         func() time.Time
	failed      *prometheus.CounterVec

	// pending holds, per Alertmanager, the latest version of each alert
	// a post to it failed to deliver; it goes with the next post to it.
	mu      sync.Mutex
	pending []map[string]postable
}

// New checks cfg and builds the client; every problem is reported at once.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{name: opts.Name, timeout: cfg.Timeout, externalURL: opts.ExternalURL, now: opts.Now}
	if n.timeout <= 0 {
		n.timeout = DefaultTimeout
	}
	if n.now == nil {
		n.now = time.Now
	}
	eval := cfg.EvalInterval
	if eval <= 0 {
		eval = DefaultEvalInterval
	}
	n.validFor = 4 * max(eval, cfg.Resend())
	var errs []error
	if len(cfg.URLs) == 0 {
		errs = append(errs, errors.New("urls: at least one Alertmanager is required"))
	}
	if cfg.ResendInterval < 0 || cfg.EvalInterval < 0 || cfg.Timeout < 0 {
		errs = append(errs, errors.New("resend_interval, eval_interval and timeout must not be negative"))
	}
	for i, u := range cfg.URLs {
		pu, err := url.Parse(u)
		switch {
		case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			errs = append(errs, fmt.Errorf("urls[%d]: %s: want http(s)://host[:port][/prefix]", i, redact.ShowURL(u)))
			continue
		case pu.User != nil:
			errs = append(errs, fmt.Errorf("urls[%d]: %s: %w; use http_config.basic_auth", i, redact.ShowURL(u), redact.ErrUserInfo))
			continue
		}
		pu.Path = strings.TrimRight(pu.Path, "/") + "/api/v2/alerts"
		n.urls = append(n.urls, pu.String())
		n.shown = append(n.shown, redact.ShowURL(pu.String()))
		n.secrets = append(n.secrets, redact.SecretParams(u)...)
	}
	var client *http.Client
	var creds []string
	if opts.RenderOnly {
		errs = append(errs, httpconf.Check(cfg.HTTPConfig, "http_config"))
	} else {
		var err error
		client, creds, err = httpconf.Client(cfg.HTTPConfig, "http_config", opts.LookupEnv)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	n.client, n.secrets = client, append(n.secrets, creds...)
	n.pending = make([]map[string]postable, len(n.urls))
	n.failed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_alertmanager_posts_failed_total",
		Help: "POSTs to one Alertmanager of an alertmanager channel that failed; its alerts go with the next post to it.",
	}, []string{"channel", "alertmanager"})
	if r := opts.Registerer; r != nil {
		// Every reload builds the channel again: share the series.
		if err := r.Register(n.failed); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				n.failed = are.ExistingCollector.(*prometheus.CounterVec)
			}
		}
	}
	for i := range n.urls {
		n.failed.WithLabelValues(n.name, strconv.Itoa(i)).Add(0)
	}
	return n, nil
}

// Secrets lists the credentials sent and secret URL parameters, for a
// redact.Redactor. Never logged or shown.
func (n *Notifier) Secrets() []string { return n.secrets }

// SecretDigest is a hash of the credentials in use, to tell whether
// secret files read again differ.
func (n *Notifier) SecretDigest() [32]byte {
	ss := make([]secret.Secret, len(n.secrets))
	for i, s := range n.secrets {
		ss[i] = secret.New(s)
	}
	return secret.Digest(ss...)
}

// String never shows credentials.
func (n *Notifier) String() string {
	return fmt.Sprintf("alertmanager(%s, %d urls)", n.name, len(n.urls))
}

// postable is one alert of Alertmanager's POST /api/v2/alerts.
type postable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
	fingerprint  string
}

func (n *Notifier) postable(a model.Alert) postable {
	labels := a.Labels.Copy()
	if labels == nil {
		labels = map[string]string{}
	}
	if _, ok := labels["alertname"]; !ok {
		labels["alertname"] = a.Rule
	}
	ann := make(map[string]string, len(a.Annotations)+2)
	for k, v := range a.Annotations {
		ann[k] = v
	}
	if _, ok := ann["description"]; !ok && a.Description != "" {
		ann["description"] = a.Description
	}
	msg.AddSource(ann, a)
	p := postable{Labels: labels, Annotations: ann, StartsAt: msg.Since(a).UTC(), fingerprint: a.Fingerprint}
	if a.State == model.StateResolved {
		p.EndsAt = a.ResolvedAt.UTC()
	} else {
		eval := a.LastEvalAt
		if eval.IsZero() {
			eval = n.now()
		}
		p.EndsAt = eval.Add(n.validFor).UTC()
	}
	if n.externalURL != "" {
		p.GeneratorURL = strings.TrimRight(n.externalURL, "/") + "/rules/" + url.PathEscape(a.Rule)
	}
	return p
}

// Notify posts the alerts to every Alertmanager at once. It succeeds when
// one of them took them, as Prometheus does; a failed post is counted,
// and its alerts go with the next post to that Alertmanager, so none is
// lost while another is up. When every post fails it returns the error,
// and the dispatcher retries.
func (n *Notifier) Notify(ctx context.Context, alerts ...model.Alert) (bool, error) {
	if len(alerts) == 0 {
		return false, msg.ErrNoAlerts
	}
	if n.client == nil {
		return false, errors.New("alertmanager: built to render only (a rule test); nothing is sent")
	}
	batch := make([]postable, len(alerts))
	for i, a := range alerts {
		batch[i] = n.postable(a)
	}
	type result struct {
		retry bool
		err   error
	}
	results := make([]result, len(n.urls))
	bodies := make([][]postable, len(n.urls))
	var wg sync.WaitGroup
	for i := range n.urls {
		bodies[i] = n.withPending(i, batch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			retry, err := n.post(ctx, i, bodies[i])
			results[i] = result{retry, err}
		}()
	}
	wg.Wait()
	var errs []error
	retry, delivered := false, false
	for i, r := range results {
		n.settle(i, bodies[i], r.err == nil)
		if r.err == nil {
			delivered = true
			continue
		}
		n.failed.WithLabelValues(n.name, strconv.Itoa(i)).Inc()
		retry = retry || r.retry
		errs = append(errs, fmt.Errorf("alertmanager %d (%s): %w", i, n.shown[i], r.err))
	}
	if delivered || len(errs) == 0 {
		return false, nil
	}
	return retry, errors.Join(errs...)
}

// Render is the body Notify posts to each Alertmanager for alerts, when
// none is owed alerts from a failed post, for rule tests' golden files:
// the same JSON, indented, ending in a newline. An alert without an
// evaluation time is valid from at.
func (n *Notifier) Render(at time.Time, alerts ...model.Alert) ([]byte, error) {
	if len(alerts) == 0 {
		return nil, msg.ErrNoAlerts
	}
	batch := make([]postable, len(alerts))
	for i, a := range alerts {
		if a.LastEvalAt.IsZero() && a.State != model.StateResolved {
			a.LastEvalAt = at
		}
		batch[i] = n.postable(a)
	}
	body, err := json.MarshalIndent(batch, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(body, '\n'), nil
}

// withPending is batch plus the alerts still owed to Alertmanager i that
// batch does not carry a newer version of.
func (n *Notifier) withPending(i int, batch []postable) []postable {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.pending[i]) == 0 {
		return batch
	}
	in := make(map[string]bool, len(batch))
	for _, p := range batch {
		in[p.fingerprint] = true
	}
	out := append([]postable(nil), batch...)
	for fp, p := range n.pending[i] {
		if !in[fp] {
			out = append(out, p)
		}
	}
	return out
}

// settle records the outcome of posting sent to Alertmanager i: what it
// got is no longer owed (unless a newer version is, from a post that
// failed meanwhile), what it did not get is.
func (n *Notifier) settle(i int, sent []postable, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ok {
		for _, p := range sent {
			if q, owed := n.pending[i][p.fingerprint]; owed && q.EndsAt.Equal(p.EndsAt) && q.StartsAt.Equal(p.StartsAt) {
				delete(n.pending[i], p.fingerprint)
			}
		}
		return
	}
	if n.pending[i] == nil {
		n.pending[i] = map[string]postable{}
	}
	for _, p := range sent {
		if q, owed := n.pending[i][p.fingerprint]; !owed || !q.EndsAt.After(p.EndsAt) {
			n.pending[i][p.fingerprint] = p
		}
	}
	// Bounded: the oldest-ending go first; Alertmanager resolves them
	// by endsAt anyway.
	for len(n.pending[i]) > maxPending {
		var oldest string
		for fp, p := range n.pending[i] {
			if oldest == "" || p.EndsAt.Before(n.pending[i][oldest].EndsAt) {
				oldest = fp
			}
		}
		delete(n.pending[i], oldest)
	}
}

func (n *Notifier) post(ctx context.Context, i int, alerts []postable) (bool, error) {
	body, err := json.Marshal(alerts)
	if err != nil {
		return false, fmt.Errorf("encode: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.urls[i], bytes.NewReader(body))
	if err != nil {
		return false, errors.New("request: bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL; report only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return true, n.redact(err)
	}
	defer resp.Body.Close()
	r := redact.New()
	r.Add(n.secrets...)
	retry, err := msg.CheckResponse(resp, n.now(), r.String)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return retry, r.Error(err)
	}
	return false, nil
}

func (n *Notifier) redact(err error) error {
	r := redact.New()
	r.Add(n.secrets...)
	return r.Error(err)
}
