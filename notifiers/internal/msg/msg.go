// Package msg holds what every integration shares: the data a message is
// rendered from, the default wording, the minimal fallback used when a
// template fails, and how an HTTP answer maps to "retry or not".
package msg

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
)

// Data is what templates see: one group of alerts of one rule.
type Data struct {
	Status   string // "firing" if any alert fires, else "resolved"
	Rule     string
	Severity string
	// Title is the header and subject: the counts and the first few
	// segments, e.g. "[FIRING:2] EtcdMemberUnreachable: etcd-1, etcd-2".
	Title        string
	Firing       []model.Alert
	Resolved     []model.Alert
	CommonLabels model.Labels
	// GroupLabels are the labels the group is keyed by (alertname and
	// the channel's group_by); GroupKey is the group's identity, stable
	// for its life. Both are empty when the caller gave no group.
	GroupLabels model.Labels
	GroupKey    string
	// Description and Runbook come from the first alert: alerts of one
	// rule share them. Summary is the summary annotation when every alert
	// has the same one, else empty: a summary templated per segment names
	// one segment, which a header about the whole group must not do.
	Description string
	Summary     string
	Runbook     string
	// Source is where the rule is written, "etcd.yaml:12@1d22bfc5"
	// (model.Source.String), from the first alert; empty when unknown.
	Source string
}

// Group is what a message is about beyond its alerts: which group of
// which channel, and what the channel kept of the group's earlier
// messages.
type Group struct {
	// Key is the group's identity, stable for its life, in
	// Alertmanager's format: `{}/{channel="oncall"}:{alertname="X", cluster="prod"}`.
	Key string
	// Labels are alertname and the channel's group_by labels with the
	// group's values (labels an alert lacks are left out).
	Labels model.Labels
	// Thread is what the channel returned for an earlier message of this
	// group (Slack: the channel and ts of the first firing post), empty
	// when there is none. It is saved with the delivery state, so it
	// survives a restart and an HA hand-over.
	Thread string
}

// GroupKey is a group's key as receivers see it (the webhook's groupKey
// and group_key), in Alertmanager's format "<route key>:<group labels>":
// Vigil groups per channel, so the route is the channel, written as
// Alertmanager writes a route under the root with one matcher:
// `{}/{channel="oncall"}:{alertname="EtcdDown", cluster="prod"}`.
func GroupKey(channel string, labels model.Labels) string {
	b := []byte(`{}/{channel=`)
	b = strconv.AppendQuote(b, channel)
	b = append(b, "}:{"...)
	for i, k := range labels.Names() {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, labels[k])
	}
	return string(append(b, '}'))
}

// New builds Data; firing alerts first, each list in segment order so
// messages are stable across evaluations.
func New(alerts []model.Alert) Data {
	d := Data{Status: "resolved"}
	for _, a := range alerts {
		if a.State == model.StateResolved {
			d.Resolved = append(d.Resolved, a)
		} else {
			d.Firing = append(d.Firing, a)
		}
	}
	bySegment := func(as []model.Alert) {
		sort.SliceStable(as, func(i, j int) bool { return Segment(as[i]) < Segment(as[j]) })
	}
	bySegment(d.Firing)
	bySegment(d.Resolved)
	if len(d.Firing) > 0 {
		d.Status = "firing"
	}
	first := firstOf(d)
	d.Rule, d.Severity, d.Description = first.Rule, first.Severity, first.Description
	d.Summary = commonAnnotation(alerts, "summary")
	d.Runbook = first.Annotations["runbook_url"]
	d.Source = first.Source.String()
	d.CommonLabels = CommonLabels(alerts)
	d.Title = Title(d)
	return d
}

// ForGroup is New with the group's key and labels.
func ForGroup(g Group, alerts []model.Alert) Data {
	d := New(alerts)
	d.GroupKey, d.GroupLabels = g.Key, g.Labels
	return d
}

// commonAnnotation is annotation k when every alert has the same value.
func commonAnnotation(alerts []model.Alert, k string) string {
	if len(alerts) == 0 {
		return ""
	}
	v := alerts[0].Annotations[k]
	for _, a := range alerts[1:] {
		if a.Annotations[k] != v {
			return ""
		}
	}
	return v
}

func firstOf(d Data) model.Alert {
	if len(d.Firing) > 0 {
		return d.Firing[0]
	}
	if len(d.Resolved) > 0 {
		return d.Resolved[0]
	}
	return model.Alert{}
}

// TitleNames is how many segments a title names per list before
// "and N more".
const TitleNames = 3

// Title is the subject line: the counts, the rule and the segments,
// "[FIRING:2] Rule: etcd-1, etcd-2", "[FIRING:1, RESOLVED:1] Rule:
// etcd-1 (resolved: etcd-2)", "[RESOLVED:2] Rule: etcd-1, etcd-2". A
// group of one alert about the whole scope names no segment.
func Title(d Data) string {
	var b strings.Builder
	b.WriteString(counts(d))
	if len(d.Firing)+len(d.Resolved) == 1 {
		if a := firstOf(d); len(a.Segment) == 0 && len(a.Segments) == 0 {
			return b.String()
		}
	}
	switch {
	case len(d.Firing) > 0 && len(d.Resolved) > 0:
		fmt.Fprintf(&b, ": %s (resolved: %s)", Names(d.Firing, TitleNames), Names(d.Resolved, TitleNames))
	case len(d.Firing) > 0:
		fmt.Fprintf(&b, ": %s", Names(d.Firing, TitleNames))
	default:
		fmt.Fprintf(&b, ": %s", Names(d.Resolved, TitleNames))
	}
	return b.String()
}

// counts is the start of a title: "[FIRING:2, RESOLVED:1] Rule".
func counts(d Data) string {
	switch {
	case len(d.Firing) > 0 && len(d.Resolved) > 0:
		return fmt.Sprintf("[FIRING:%d, RESOLVED:%d] %s", len(d.Firing), len(d.Resolved), d.Rule)
	case len(d.Firing) > 0:
		return fmt.Sprintf("[FIRING:%d] %s", len(d.Firing), d.Rule)
	default:
		return fmt.Sprintf("[RESOLVED:%d] %s", len(d.Resolved), d.Rule)
	}
}

// Names lists the short names of alerts' segments (ShortSegment), the
// first max of them, then "and N more".
func Names(alerts []model.Alert, max int) string {
	var b strings.Builder
	for i, a := range alerts {
		if i == max {
			fmt.Fprintf(&b, " and %d more", len(alerts)-max)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ShortSegment(a))
	}
	return b.String()
}

// ShortSegment names a segment by its values, in the order of its label
// names: "etcd-1", "prod/etcd-1"; "all segments (3)" for `across:
// every`, "whole scope" without segment_by. Headers use it; the full
// "member=etcd-1" form (Segment) is in the body.
func ShortSegment(a model.Alert) string {
	if len(a.Segment) > 0 {
		var b strings.Builder
		for i, k := range a.Segment.Names() {
			if i > 0 {
				b.WriteByte('/')
			}
			b.WriteString(a.Segment[k])
		}
		return b.String()
	}
	return Segment(a)
}

// CommonLabels are the labels every alert shares with the same value.
func CommonLabels(alerts []model.Alert) model.Labels {
	if len(alerts) == 0 {
		return model.Labels{}
	}
	common := alerts[0].Labels.Copy()
	for _, a := range alerts[1:] {
		for k, v := range common {
			if a.Labels[k] != v {
				delete(common, k)
			}
		}
	}
	return common
}

// Segment names which segment an alert is about, as people read it:
// "member=etcd-1, cluster=prod"; "all segments (3)" for `across: every`.
func Segment(a model.Alert) string {
	if len(a.Segment) > 0 {
		var b strings.Builder
		for i, k := range a.Segment.Names() {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(a.Segment[k])
		}
		return b.String()
	}
	if len(a.Segments) > 0 {
		return fmt.Sprintf("all segments (%d)", len(a.Segments))
	}
	return "whole scope"
}

// Value formats a sample value compactly.
func Value(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// Since is when the alert started firing (or became active), in UTC.
func Since(a model.Alert) time.Time {
	if !a.FiredAt.IsZero() {
		return a.FiredAt.UTC()
	}
	return a.ActiveAt.UTC()
}

// FiredFor is how long a resolved alert fired, to the second.
func FiredFor(a model.Alert) time.Duration {
	if a.ResolvedAt.IsZero() {
		return 0
	}
	return a.ResolvedAt.Sub(Since(a)).Round(time.Second)
}

// TimeFormat is how times appear in messages.
const TimeFormat = "2006-01-02 15:04:05 MST"

// Line is one alert as one readable line, shared by console and text mail.
func Line(a model.Alert) string {
	if a.State == model.StateResolved {
		return fmt.Sprintf("%s value=%s resolved at %s after %s", Segment(a), Value(a.Value),
			a.ResolvedAt.UTC().Format(TimeFormat), FiredFor(a))
	}
	return fmt.Sprintf("%s value=%s since %s", Segment(a), Value(a.Value), Since(a).Format(TimeFormat))
}

// Funcs are available in user templates.
var Funcs = template.FuncMap{
	"segment":  Segment,
	"value":    Value,
	"since":    func(a model.Alert) string { return Since(a).Format(TimeFormat) },
	"firedFor": func(a model.Alert) string { return FiredFor(a).String() },
	"line":     Line,
	"join":     strings.Join,
	"upper":    strings.ToUpper,
}

// Parse compiles a user template at load time, so syntax errors are config
// errors rather than missed pages.
func Parse(name, text string) (*template.Template, error) {
	if text == "" {
		return nil, nil
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(Funcs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Execute runs t on d; if t is nil it returns def. On error it returns the
// minimal fallback together with the error, so the caller can log it and
// still send something useful.
func Execute(t *template.Template, d Data, def string) (string, error) {
	if t == nil {
		return def, nil
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return Fallback(d), &TemplateError{Err: fmt.Errorf("template %s: %w", t.Name(), err)}
	}
	return b.String(), nil
}

// TemplateError reports that a template failed and the fallback message
// was sent instead: the message reached its receiver, so the dispatcher
// logs it but does not retry.
type TemplateError struct{ Err error }

func (e *TemplateError) Error() string { return e.Err.Error() }
func (e *TemplateError) Unwrap() error { return e.Err }

// Delivered tells the dispatcher (by method, no import needed) that a
// message did go out.
func (e *TemplateError) Delivered() bool { return true }

// Fallback is the message sent when a template fails: it still says which
// rule fired for which segments.
func Fallback(d Data) string {
	var segs []string
	for _, a := range d.Firing {
		segs = append(segs, Segment(a))
	}
	for _, a := range d.Resolved {
		segs = append(segs, Segment(a)+" (resolved)")
	}
	return fmt.Sprintf("%s: %s", counts(d), strings.Join(segs, "; "))
}

// Colour is the severity's colour, used by Slack and the HTML mail.
func Colour(d Data) string {
	if d.Status == "resolved" {
		return "#2eb886"
	}
	switch d.Severity {
	case "critical":
		return "#d00000"
	case "high":
		return "#e8590c"
	case "medium":
		return "#f2c744"
	case "low":
		return "#2f80ed"
	default:
		return "#9e9e9e"
	}
}

// RetryAfterError asks the dispatcher to wait at least After before the
// next attempt (HTTP 429 with Retry-After). The dispatcher finds it by the
// RetryAfter method, so integrations need no shared import.
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.After, e.Err)
}
func (e *RetryAfterError) Unwrap() error             { return e.Err }
func (e *RetryAfterError) RetryAfter() time.Duration { return e.After }

// StatusError is a non-2xx HTTP answer.
type StatusError struct {
	Code int
	Body string // first bytes, to say why
}

// StatusCode is the HTTP status, for the dispatcher's logs.
func (e *StatusError) StatusCode() int { return e.Code }

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("unexpected status %d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("unexpected status %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
}

// CheckResponse maps an HTTP answer to (retry, err): 2xx is success, 5xx
// and 429 are retried (429 after Retry-After), other 4xx are not. The
// error quotes the start of the body after clean (which removes secrets:
// receivers echo requests) and cut to redact.MaxBody bytes; it reads
// more than it keeps, so that a secret at the cut is whole when clean
// sees it.
func CheckResponse(resp *http.Response, now time.Time, clean func(string) string) (bool, error) {
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8*redact.MaxBody))
	serr := &StatusError{Code: resp.StatusCode, Body: redact.Truncate(strings.TrimSpace(clean(string(body))))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now); ok {
			return true, &RetryAfterError{After: d, Err: serr}
		}
		return true, serr
	case resp.StatusCode >= 500:
		return true, serr
	default:
		return false, serr
	}
}

// ParseRetryAfter reads seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d < 0 {
			d = 0
		}
		return d, true
	}
	return 0, false
}

// ErrNoAlerts is returned by integrations asked to send nothing.
var ErrNoAlerts = errors.New("no alerts to send")

// SourceAnnotation is the annotation Alertmanager-shaped payloads carry
// the rule's source in: "etcd.yaml:12@1d22bfc5".
const SourceAnnotation = "vigil_source"

// AddSource sets ann's vigil_source to a's source, unless a has none or
// the rule sets that annotation itself.
func AddSource(ann map[string]string, a model.Alert) {
	if a.Source == nil {
		return
	}
	if _, ok := ann[SourceAnnotation]; !ok {
		ann[SourceAnnotation] = a.Source.String()
	}
}
