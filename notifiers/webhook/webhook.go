// Package webhook POSTs alerts as JSON: Vigil's versioned payload, or the
// Alertmanager webhook payload so existing receivers work unchanged.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/internal/secret"
)

// Payload formats.
const (
	FormatVigil        = "vigil"
	FormatAlertmanager = "alertmanager"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>" when a
// secret is configured.
const SignatureHeader = "X-Vigil-Signature"

// Config is the `webhook:` block of a channel.
type Config struct {
	// URL is for endpoints whose address is not secret; URLEnv/URLFile
	// for URLs that embed a token. Exactly one must be set.
	URL     string `yaml:"url,omitempty" json:"url,omitempty"`
	URLEnv  string `yaml:"url_env,omitempty" json:"url_env,omitempty"`
	URLFile string `yaml:"url_file,omitempty" json:"url_file,omitempty"`
	// Format is "vigil" (default, payload version 1) or "alertmanager".
	Format string `yaml:"format,omitempty" json:"format,omitempty"`
	// Headers are sent as is; HeadersEnv/HeadersFile name where secret
	// header values (e.g. Authorization) are read from.
	Headers     map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	HeadersEnv  map[string]string `yaml:"headers_env,omitempty" json:"headers_env,omitempty"`
	HeadersFile map[string]string `yaml:"headers_file,omitempty" json:"headers_file,omitempty"`
	// SecretEnv/SecretFile name the HMAC-SHA256 signing key.
	SecretEnv  string `yaml:"secret_env,omitempty" json:"secret_env,omitempty"`
	SecretFile string `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
	// MaxAlerts caps the alerts in one payload (0: no cap); the number
	// left out is reported in the payload.
	MaxAlerts int `yaml:"max_alerts,omitempty" json:"max_alerts,omitempty"`
	// Timeout bounds one attempt (default 10s).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Options are what the caller, not the config file, decides.
type Options struct {
	Name       string // channel name, sent as "receiver"
	HTTPClient *http.Client
	LookupEnv  secret.LookupEnv
	// ExternalURL is Vigil's own address, for Alertmanager's externalURL.
	ExternalURL string
	// RenderOnly builds a Notifier for Render alone (rule tests): no
	// secret (url_env/_file, secret_*, headers_env/_file) is read, so
	// none need be set, and Notify fails.
	RenderOnly bool
}

// Notifier is one configured webhook endpoint.
type Notifier struct {
	name, format, externalURL string
	url                       secret.Secret
	headers                   map[string]string
	secretHeaders             map[string]secret.Secret
	key                       secret.Secret
	maxAlerts                 int
	timeout                   time.Duration
	client                    *http.Client
	renderOnly                bool
}

// New resolves secrets and checks cfg; every problem is reported at once.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{
		name: opts.Name, format: cfg.Format, externalURL: opts.ExternalURL,
		headers: cfg.Headers, secretHeaders: map[string]secret.Secret{},
		maxAlerts: cfg.MaxAlerts, timeout: cfg.Timeout, client: opts.HTTPClient, renderOnly: opts.RenderOnly,
	}
	if n.format == "" {
		n.format = FormatVigil
	}
	if n.timeout <= 0 {
		n.timeout = 10 * time.Second
	}
	if n.client == nil {
		n.client = &http.Client{}
	}
	var errs []error
	if n.format != FormatVigil && n.format != FormatAlertmanager {
		errs = append(errs, fmt.Errorf("format: %q is neither %q nor %q", n.format, FormatVigil, FormatAlertmanager))
	}
	if cfg.URL != "" {
		if cfg.URLEnv != "" || cfg.URLFile != "" {
			errs = append(errs, errors.New("url: set only one of url, url_env, url_file"))
		}
		n.url = secret.New(cfg.URL)
	} else if opts.RenderOnly {
		if cfg.URLEnv != "" && cfg.URLFile != "" {
			errs = append(errs, errors.New("url_env and url_file are mutually exclusive"))
		} else if cfg.URLEnv == "" && cfg.URLFile == "" {
			errs = append(errs, errors.New("url: set url, url_env or url_file"))
		}
	} else {
		u, err := secret.Load("url", cfg.URLEnv, cfg.URLFile, opts.LookupEnv)
		errs = append(errs, err)
		n.url = u
	}
	if !n.url.IsZero() {
		// The message of url.Parse quotes the input: keep it out.
		if u, err := url.Parse(n.url.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("url: not an absolute http(s) URL"))
		}
	}
	// Rendering only, no secret is read: they sign and authorise the
	// request, they are not in its body.
	dry := opts.RenderOnly
	if cfg.SecretEnv != "" || cfg.SecretFile != "" {
		k, err := secret.LoadUnless(dry, "secret", cfg.SecretEnv, cfg.SecretFile, opts.LookupEnv)
		errs = append(errs, err)
		n.key = k
	}
	for h, env := range cfg.HeadersEnv {
		v, err := secret.LoadUnless(dry, "headers", env, "", opts.LookupEnv)
		if err != nil {
			err = fmt.Errorf("header %q: %w", h, err)
		}
		errs = append(errs, err)
		n.secretHeaders[h] = v
	}
	for h, file := range cfg.HeadersFile {
		if _, dup := n.secretHeaders[h]; dup {
			errs = append(errs, fmt.Errorf("header %q set by both headers_env and headers_file", h))
		}
		v, err := secret.LoadUnless(dry, "headers_file["+h+"]", "", file, opts.LookupEnv)
		errs = append(errs, err)
		n.secretHeaders[h] = v
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return n, nil
}

// SecretFiles lists the files cfg reads secrets from, sorted by field,
// so a caller can tell when one is rotated.
func (cfg Config) SecretFiles() []string {
	var fs []string
	for _, f := range []string{cfg.URLFile, cfg.SecretFile} {
		if f != "" {
			fs = append(fs, f)
		}
	}
	for _, h := range slices.Sorted(maps.Keys(cfg.HeadersFile)) {
		fs = append(fs, cfg.HeadersFile[h])
	}
	return fs
}

// SecretDigest is a hash of the URL, signing key and secret header values
// in use, to tell whether secrets read again differ (secret.Digest).
func (n *Notifier) SecretDigest() [32]byte {
	ss := []secret.Secret{n.url, n.key}
	for _, h := range slices.Sorted(maps.Keys(n.secretHeaders)) {
		ss = append(ss, secret.New(h), n.secretHeaders[h])
	}
	return secret.Digest(ss...)
}

// String never shows the URL or keys.
func (n *Notifier) String() string { return fmt.Sprintf("webhook(%s, format=%s)", n.name, n.format) }

func (n *Notifier) secrets() []secret.Secret {
	s := []secret.Secret{n.url, n.key}
	for _, v := range n.secretHeaders {
		s = append(s, v)
	}
	return s
}

// Secrets lists the values a redact.Redactor must learn for this
// channel: the URL and its parts, the signing key, the secret header
// values. Never logged or shown.
func (n *Notifier) Secrets() []string { return secret.Values(n.secrets()...) }

// Notify POSTs one payload for alerts of one rule, as a group keyed by
// the rule alone (the dispatcher calls NotifyGroup).
func (n *Notifier) Notify(ctx context.Context, alerts ...model.Alert) (bool, error) {
	var g msg.Group
	if len(alerts) > 0 {
		g.Labels = model.Labels{"alertname": alerts[0].Rule}
		g.Key = msg.GroupKey(n.name, g.Labels)
	}
	_, retry, err := n.NotifyGroup(ctx, g, alerts...)
	return retry, err
}

// NotifyGroup POSTs one payload for the group; its key and labels are the
// payload's groupKey and groupLabels. It keeps no thread.
func (n *Notifier) NotifyGroup(ctx context.Context, g msg.Group, alerts ...model.Alert) (string, bool, error) {
	retry, err := n.post(ctx, g, alerts)
	return "", retry, err
}

// body is the JSON posted for the group.
func (n *Notifier) body(g msg.Group, alerts []model.Alert) ([]byte, error) {
	if len(alerts) == 0 {
		return nil, msg.ErrNoAlerts
	}
	var body []byte
	var err error
	if n.format == FormatAlertmanager {
		body, err = json.Marshal(n.alertmanagerPayload(g, alerts))
	} else {
		body, err = json.Marshal(n.vigilPayload(g, alerts))
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: encode: %w", err)
	}
	return body, nil
}

// Render is the body NotifyGroup posts for the group, without posting
// it, for rule tests' golden files: the same JSON, indented (the
// request's is compact), ending in a newline. Headers, and so the
// signature and secret header values, are not shown.
func (n *Notifier) Render(g msg.Group, alerts ...model.Alert) ([]byte, error) {
	body, err := n.body(g, alerts)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := json.Indent(&b, body, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

func (n *Notifier) post(ctx context.Context, g msg.Group, alerts []model.Alert) (bool, error) {
	if n.renderOnly {
		return false, errors.New("webhook: built to render only (a rule test); nothing is sent")
	}
	body, err := n.body(g, alerts)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return false, secret.Redact(fmt.Errorf("webhook: request: %w", err), n.secrets()...)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigil")
	for k, v := range n.headers {
		req.Header.Set(k, v)
	}
	for k, v := range n.secretHeaders {
		req.Header.Set(k, v.Reveal())
	}
	if !n.key.IsZero() {
		req.Header.Set(SignatureHeader, Sign(n.key.Reveal(), body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		// *url.Error quotes the URL; report only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return true, secret.Redact(fmt.Errorf("webhook: post: %w", err), n.secrets()...)
	}
	defer resp.Body.Close()
	r := redact.New()
	r.Add(n.Secrets()...)
	retry, err := msg.CheckResponse(resp, time.Now(), r.String)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return retry, r.Error(fmt.Errorf("webhook: %w", err))
	}
	return false, nil
}

// Sign is the signature header value for body under key.
func Sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header in constant time; receivers written in
// Go can use it as is.
func Verify(key string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(key, body)), []byte(header))
}

// PayloadVersion is the version of Payload; it changes only when a field
// changes meaning or goes away (new fields do not bump it).
const PayloadVersion = "1"

// Payload is Vigil's webhook body, version 1 (see docs/notifiers.md).
type Payload struct {
	Version      string            `json:"version"`
	Receiver     string            `json:"receiver"`
	Status       string            `json:"status"`
	GroupKey     string            `json:"group_key"`
	GroupLabels  map[string]string `json:"group_labels"`
	Rule         string            `json:"rule"`
	Severity     string            `json:"severity"`
	Title        string            `json:"title"`
	CommonLabels map[string]string `json:"common_labels"`
	Alerts       []Alert           `json:"alerts"`
	Truncated    int               `json:"truncated_alerts"`
}

// Alert is one alert in Payload.
type Alert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Status      string            `json:"status"`
	Severity    string            `json:"severity"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Segment     map[string]string `json:"segment,omitempty"`
	Segments    []Segment         `json:"segments,omitempty"`
	Value       float64           `json:"value"`
	// Source is where the rule is written (see docs/rules.md).
	Source     *model.Source `json:"source,omitempty"`
	ActiveAt   time.Time     `json:"active_at"`
	FiredAt    *time.Time    `json:"fired_at,omitempty"`
	ResolvedAt *time.Time    `json:"resolved_at,omitempty"`
}

// Segment is one member of an `across: every` alert.
type Segment struct {
	Labels map[string]string `json:"labels"`
	Value  float64           `json:"value"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (n *Notifier) truncate(alerts []model.Alert) ([]model.Alert, int) {
	if n.maxAlerts > 0 && len(alerts) > n.maxAlerts {
		return alerts[:n.maxAlerts], len(alerts) - n.maxAlerts
	}
	return alerts, 0
}

func (n *Notifier) vigilPayload(g msg.Group, alerts []model.Alert) Payload {
	d := msg.ForGroup(g, alerts)
	ordered, cut := n.truncate(append(append([]model.Alert{}, d.Firing...), d.Resolved...))
	p := Payload{
		Version: PayloadVersion, Receiver: n.name, Status: d.Status, GroupKey: g.Key, GroupLabels: nonNil(g.Labels),
		Rule: d.Rule, Severity: d.Severity, Title: d.Title, CommonLabels: d.CommonLabels,
		Alerts: make([]Alert, 0, len(ordered)), Truncated: cut,
	}
	for _, a := range ordered {
		pa := Alert{
			Fingerprint: a.Fingerprint, Rule: a.Rule, Status: a.State.String(), Severity: a.Severity,
			Description: a.Description, Labels: nonNil(a.Labels), Annotations: a.Annotations,
			Segment: a.Segment, Value: a.Value, ActiveAt: a.ActiveAt.UTC(), Source: a.Source,
			FiredAt: timePtr(a.FiredAt), ResolvedAt: timePtr(a.ResolvedAt),
		}
		for _, s := range a.Segments {
			pa.Segments = append(pa.Segments, Segment{Labels: nonNil(s.Labels), Value: s.Value})
		}
		p.Alerts = append(p.Alerts, pa)
	}
	return p
}

func nonNil(l model.Labels) map[string]string {
	if l == nil {
		return map[string]string{}
	}
	return l
}

// AlertmanagerPayload mirrors Alertmanager's webhook message, version 4.
type AlertmanagerPayload struct {
	Version           string              `json:"version"`
	GroupKey          string              `json:"groupKey"`
	TruncatedAlerts   int                 `json:"truncatedAlerts"`
	Status            string              `json:"status"`
	Receiver          string              `json:"receiver"`
	GroupLabels       map[string]string   `json:"groupLabels"`
	CommonLabels      map[string]string   `json:"commonLabels"`
	CommonAnnotations map[string]string   `json:"commonAnnotations"`
	ExternalURL       string              `json:"externalURL"`
	Alerts            []AlertmanagerAlert `json:"alerts"`
}

// AlertmanagerAlert is one alert in AlertmanagerPayload.
type AlertmanagerAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

func (n *Notifier) alertmanagerPayload(g msg.Group, alerts []model.Alert) AlertmanagerPayload {
	d := msg.ForGroup(g, alerts)
	ordered, cut := n.truncate(append(append([]model.Alert{}, d.Firing...), d.Resolved...))
	p := AlertmanagerPayload{
		Version: "4", GroupKey: g.Key, TruncatedAlerts: cut, Status: d.Status, Receiver: n.name,
		GroupLabels: nonNil(g.Labels), CommonLabels: withAlertname(d.CommonLabels, d.Rule),
		CommonAnnotations: commonAnnotations(alerts), ExternalURL: n.externalURL,
		Alerts: make([]AlertmanagerAlert, 0, len(ordered)),
	}
	for _, a := range ordered {
		ann := map[string]string{}
		for k, v := range a.Annotations {
			ann[k] = v
		}
		if a.Description != "" {
			if _, ok := ann["description"]; !ok {
				ann["description"] = a.Description
			}
		}
		msg.AddSource(ann, a)
		labels := a.Labels.Copy()
		if _, ok := labels["alertname"]; !ok {
			labels["alertname"] = a.Rule
		}
		aa := AlertmanagerAlert{
			Status: a.State.String(), Labels: labels, Annotations: ann,
			StartsAt: msg.Since(a), Fingerprint: a.Fingerprint,
		}
		if a.State == model.StateResolved {
			aa.EndsAt = a.ResolvedAt.UTC()
		}
		if n.externalURL != "" {
			aa.GeneratorURL = strings.TrimRight(n.externalURL, "/") + "/rules/" + url.PathEscape(a.Rule)
		}
		p.Alerts = append(p.Alerts, aa)
	}
	if s := commonSource(alerts); s != "" && p.CommonAnnotations[msg.SourceAnnotation] == "" {
		p.CommonAnnotations[msg.SourceAnnotation] = s
	}
	return p
}

// commonSource is the alerts' vigil_source when they all have the same,
// as Alertmanager's commonAnnotations holds what every alert shares.
func commonSource(alerts []model.Alert) string {
	if len(alerts) == 0 || alerts[0].Source == nil {
		return ""
	}
	s := alerts[0].Source.String()
	for _, a := range alerts[1:] {
		if a.Source.String() != s {
			return ""
		}
	}
	return s
}

// withAlertname adds alertname as every alert's labels have it, so that
// commonLabels holds groupLabels, as Alertmanager's always does.
func withAlertname(common model.Labels, rule string) map[string]string {
	out := common.Copy()
	if _, ok := out["alertname"]; !ok {
		out["alertname"] = rule
	}
	return out
}

func commonAnnotations(alerts []model.Alert) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	keys := make([]string, 0, len(alerts[0].Annotations))
	for k := range alerts[0].Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := alerts[0].Annotations[k]
		same := true
		for _, a := range alerts[1:] {
			if a.Annotations[k] != v {
				same = false
				break
			}
		}
		if same {
			out[k] = v
		}
	}
	return out
}
