package notifiers

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/notifiers/email"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// Config is the `notifiers:` section of Vigil's config. It holds names of
// environment variables and files, never secrets, so it is safe to print.
type Config struct {
	Channels []ChannelConfig `yaml:"channels" json:"channels"`
	Routes   []RouteConfig   `yaml:"routes,omitempty" json:"routes,omitempty"`
	// DefaultChannels receive alerts that neither their rule's notify
	// list nor any route sends anywhere.
	DefaultChannels []string        `yaml:"default_channels,omitempty" json:"default_channels,omitempty"`
	Inhibit         []InhibitConfig `yaml:"inhibit_rules,omitempty" json:"inhibit_rules,omitempty"`
	// TimeIntervals are named times, as Alertmanager's time_intervals,
	// that routes and channels mute or limit notifications by
	// (mute_time_intervals, active_time_intervals).
	TimeIntervals []TimeIntervalConfig `yaml:"time_intervals,omitempty" json:"time_intervals,omitempty"`

	// GroupBy adds labels to the grouping key; alerts are always grouped
	// by rule first. A channel may set its own (ChannelConfig.GroupBy).
	GroupBy []string `yaml:"group_by,omitempty" json:"group_by,omitempty"`
	// GroupWait is how long a new group waits for more alerts before its
	// first message (default 30s).
	GroupWait time.Duration `yaml:"group_wait,omitempty" json:"group_wait,omitempty"`
	// GroupInterval is the least time between two messages of one group
	// about changes (default 5m).
	GroupInterval time.Duration `yaml:"group_interval,omitempty" json:"group_interval,omitempty"`
	// RepeatInterval is when an unchanged, still firing group is sent
	// again (default 4h).
	RepeatInterval time.Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`

	// DeliveryTimeout bounds all attempts of one message (default 2m);
	// after it the failure is logged, counted and retried at the next
	// group interval.
	DeliveryTimeout time.Duration `yaml:"delivery_timeout,omitempty" json:"delivery_timeout,omitempty"`
	// BackoffBase and BackoffMax shape retries between attempts
	// (defaults 500ms and 30s).
	BackoffBase time.Duration `yaml:"backoff_base,omitempty" json:"backoff_base,omitempty"`
	BackoffMax  time.Duration `yaml:"backoff_max,omitempty" json:"backoff_max,omitempty"`
}

// ChannelConfig is one named destination; exactly one integration block.
type ChannelConfig struct {
	Name string `yaml:"name" json:"name"`
	// SendResolved sends a message when alerts resolve (default true).
	SendResolved *bool `yaml:"send_resolved,omitempty" json:"send_resolved,omitempty"`
	// Concurrency is how many groups of this channel are delivered at
	// once (default 2).
	Concurrency int `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`

	// GroupBy, GroupWait, GroupInterval and RepeatInterval, when set,
	// replace the global settings of the same name for this channel's
	// groups, as a receiver-specific route does in Alertmanager: email may
	// repeat daily where Slack repeats every 4h. Unset (nil, 0) is the
	// global value; `group_by: []` groups by rule alone even when the
	// global group_by is set. They shape messages, not the sender: a
	// reload that changes only them keeps the channel's sender, queue and
	// deliveries.
	GroupBy        []string      `yaml:"group_by,omitempty" json:"group_by,omitzero"`
	GroupWait      time.Duration `yaml:"group_wait,omitempty" json:"group_wait,omitempty"`
	GroupInterval  time.Duration `yaml:"group_interval,omitempty" json:"group_interval,omitempty"`
	RepeatInterval time.Duration `yaml:"repeat_interval,omitempty" json:"repeat_interval,omitempty"`

	// MuteTimeIntervals and ActiveTimeIntervals name time_intervals when
	// this channel sends nothing (in a mute interval, or outside every
	// active one), as on an Alertmanager route. Like the grouping
	// settings they time messages and leave the sender as it is.
	MuteTimeIntervals   []string `yaml:"mute_time_intervals,omitempty" json:"mute_time_intervals,omitempty"`
	ActiveTimeIntervals []string `yaml:"active_time_intervals,omitempty" json:"active_time_intervals,omitempty"`

	Slack   *slack.Config   `yaml:"slack,omitempty" json:"slack,omitempty"`
	Email   *email.Config   `yaml:"email,omitempty" json:"email,omitempty"`
	Webhook *webhook.Config `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Console *console.Config `yaml:"console,omitempty" json:"console,omitempty"`
	// Alertmanager hands alerts to existing Alertmanagers.
	Alertmanager *alertmanager.Config `yaml:"alertmanager,omitempty" json:"alertmanager,omitempty"`
}

// SecretFiles lists, sorted and once each, every file the channels read a
// secret from (*_file fields): what a reload re-reads to notice a rotated
// secret, as a Kubernetes Secret volume rotates one in place.
func (c Config) SecretFiles() []string {
	var fs []string
	for _, cc := range c.Channels {
		switch {
		case cc.Slack != nil:
			fs = append(fs, cc.Slack.SecretFiles()...)
		case cc.Email != nil:
			fs = append(fs, cc.Email.SecretFiles()...)
		case cc.Webhook != nil:
			fs = append(fs, cc.Webhook.SecretFiles()...)
		case cc.Alertmanager != nil:
			fs = append(fs, cc.Alertmanager.SecretFiles()...)
		}
	}
	slices.Sort(fs)
	return slices.Compact(fs)
}

// RouteConfig sends alerts that match every given condition to Channels,
// in addition to their rule's notify list. All matching routes apply.
type RouteConfig struct {
	Match    MatchConfig `yaml:"match" json:"match"`
	Channels []string    `yaml:"channels" json:"channels"`
	// MuteTimeIntervals and ActiveTimeIntervals name time_intervals when
	// this route sends nothing, as on an Alertmanager route: in any mute
	// interval, or, when active intervals are set, outside all of them.
	// An alert that reaches a channel by another way too (its rule's
	// notify list, another route) is held only if every way is muted.
	MuteTimeIntervals   []string `yaml:"mute_time_intervals,omitempty" json:"mute_time_intervals,omitempty"`
	ActiveTimeIntervals []string `yaml:"active_time_intervals,omitempty" json:"active_time_intervals,omitempty"`
}

// MatchConfig selects alerts; empty fields match everything.
type MatchConfig struct {
	Severity []string          `yaml:"severity,omitempty" json:"severity,omitempty"`
	Rules    []string          `yaml:"rules,omitempty" json:"rules,omitempty"`
	Labels   map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// LabelsRegex values are anchored regular expressions (RE2).
	LabelsRegex map[string]string `yaml:"labels_regex,omitempty" json:"labels_regex,omitempty"`
}

// InhibitConfig is an Alertmanager-style inhibit rule: while an alert
// matching Source fires, alerts matching Target that agree with it on
// every Equal label are not sent.
type InhibitConfig struct {
	Source MatchConfig `yaml:"source" json:"source"`
	Target MatchConfig `yaml:"target" json:"target"`
	Equal  []string    `yaml:"equal,omitempty" json:"equal,omitempty"`
}

// Defaults.
const (
	DefaultGroupWait       = 30 * time.Second
	DefaultGroupInterval   = 5 * time.Minute
	DefaultRepeatInterval  = 4 * time.Hour
	DefaultDeliveryTimeout = 2 * time.Minute
	DefaultBackoffBase     = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultConcurrency     = 2
)

// withDefaults is the one place defaults are applied.
func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.GroupWait, DefaultGroupWait)
	set(&c.GroupInterval, DefaultGroupInterval)
	set(&c.RepeatInterval, DefaultRepeatInterval)
	set(&c.DeliveryTimeout, DefaultDeliveryTimeout)
	set(&c.BackoffBase, DefaultBackoffBase)
	set(&c.BackoffMax, DefaultBackoffMax)
	return c
}

// grouping is how one channel groups and times its messages: its own
// settings where it has them, the global ones (after defaults) elsewhere.
type grouping struct {
	by                     []string
	wait, interval, repeat time.Duration
}

// grouping is the effective grouping of a channel built from cc; nil (a
// channel added with WithNotifier) has the global settings. c has its
// defaults applied.
func (c Config) grouping(cc *ChannelConfig) grouping {
	g := grouping{by: c.GroupBy, wait: c.GroupWait, interval: c.GroupInterval, repeat: c.RepeatInterval}
	if cc == nil {
		return g
	}
	if am := cc.Alertmanager; am != nil {
		// Alertmanager groups for itself: send at once, every change
		// at the next evaluation, and resend what fires so that it does
		// not expire (Prometheus' resend delay).
		g.wait, g.interval, g.repeat = 0, 0, am.Resend()
	}
	if cc.GroupBy != nil {
		g.by = cc.GroupBy
	}
	override := func(d *time.Duration, v time.Duration) {
		if v > 0 {
			*d = v
		}
	}
	override(&g.wait, cc.GroupWait)
	override(&g.interval, cc.GroupInterval)
	override(&g.repeat, cc.RepeatInterval)
	return g
}

func (g grouping) equal(o grouping) bool {
	return slices.Equal(g.by, o.by) && g.wait == o.wait && g.interval == o.interval && g.repeat == o.repeat
}

// sender is c without its grouping overrides: what its sender, queue and
// workers are built from.
func (c ChannelConfig) sender() ChannelConfig {
	c.GroupBy, c.GroupWait, c.GroupInterval, c.RepeatInterval = nil, 0, 0, 0
	c.MuteTimeIntervals, c.ActiveTimeIntervals = nil, nil
	return c
}

// labelName is what a rule may call a label (rules/load.go labelPattern),
// so every label a rule can set can be grouped by.
var labelName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/-]*$`)

// checkGrouping reports negative timings and group_by entries that are not
// label names, each as "<field>: ..." after where (empty for the global
// settings, `channel "x": ` for a channel's). Zero means unset.
func checkGrouping(where string, by []string, wait, interval, repeat time.Duration) []error {
	var errs []error
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"group_wait", wait}, {"group_interval", interval}, {"repeat_interval", repeat}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s%s: %s is negative", where, d.field, d.v))
		}
	}
	for i, l := range by {
		if !labelName.MatchString(l) {
			errs = append(errs, fmt.Errorf("%sgroup_by[%d]: %q is not a label name", where, i, l))
		}
	}
	return errs
}

// matcher is a compiled MatchConfig.
type matcher struct {
	severity map[string]bool
	rules    map[string]bool
	labels   map[string]string
	regex    map[string]*regexp.Regexp
}

var validSeverity = map[string]bool{"critical": true, "high": true, "medium": true, "low": true, "info": true}

func compileMatch(where string, m MatchConfig) (*matcher, error) {
	var errs []error
	c := &matcher{labels: m.Labels}
	if len(m.Severity) > 0 {
		c.severity = map[string]bool{}
		for _, s := range m.Severity {
			if !validSeverity[s] {
				errs = append(errs, fmt.Errorf("%s.severity: %q is not one of critical, high, medium, low, info", where, s))
			}
			c.severity[s] = true
		}
	}
	if len(m.Rules) > 0 {
		c.rules = map[string]bool{}
		for _, r := range m.Rules {
			c.rules[r] = true
		}
	}
	for k, expr := range m.LabelsRegex {
		re, err := regexp.Compile("^(?:" + expr + ")$")
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.labels_regex[%s]: %w", where, k, err))
			continue
		}
		if c.regex == nil {
			c.regex = map[string]*regexp.Regexp{}
		}
		c.regex[k] = re
	}
	return c, errors.Join(errs...)
}

func (m *matcher) empty() bool {
	return m.severity == nil && m.rules == nil && len(m.labels) == 0 && m.regex == nil
}

// matches reports whether the alert's rule, severity and labels pass.
func (m *matcher) matches(rule, severity string, labels map[string]string) bool {
	if m.severity != nil && !m.severity[severity] {
		return false
	}
	if m.rules != nil && !m.rules[rule] {
		return false
	}
	for k, v := range m.labels {
		if labels[k] != v {
			return false
		}
	}
	for k, re := range m.regex {
		if !re.MatchString(labels[k]) {
			return false
		}
	}
	return true
}
