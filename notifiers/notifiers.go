// Package notifiers is where an alert reaches a person: it routes the
// engine's alerts to named channels, holds back inhibited and silenced
// ones, groups, deduplicates and repeats them against the caller's clock,
// and delivers each group through a per-channel queue with retries.
//
// One integration per sub-package (slack, email, webhook, console); Build
// is the one place that builds them all from config.
package notifiers

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/notifiers/email"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/internal/secret"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
	"github.com/vigil-alerts/vigil/silences"
)

// Notifier delivers one group of alerts. retry says whether a failure is
// worth another attempt (network errors and 5xx yes, 4xx no). An error
// with a `RetryAfter() time.Duration` method asks for that wait; one with
// a `Delivered() bool` method reporting true means a message did go out
// (e.g. with fallback text) and is logged, not retried.
type Notifier interface {
	Notify(ctx context.Context, alerts ...model.Alert) (retry bool, err error)
}

// Group is what a message is about beyond its alerts: the group's
// stable key, its labels, and the thread its channel keeps (see
// GroupNotifier).
type Group = msg.Group

// GroupNotifier is a Notifier that is told which group a message is
// about; the dispatcher calls NotifyGroup instead of Notify. thread is
// what the channel wants to be given with the group's next messages (a
// Slack thread), "" to keep what it has; the dispatcher keeps it for the
// group's life, in its saved state too, when the message went out (err
// nil or Delivered).
type GroupNotifier interface {
	NotifyGroup(ctx context.Context, g Group, alerts ...model.Alert) (thread string, retry bool, err error)
}

// Option adjusts Build with things that are not config.
type Option func(*options)

type options struct {
	logger      *slog.Logger
	reg         prometheus.Registerer
	lookupEnv   secret.LookupEnv
	httpClient  *http.Client
	console     io.Writer
	slackAPIURL string
	externalURL string
	emailTLS    *tls.Config
	extra       []extraChannel
	silences    *silences.Store
	redactor    *redact.Redactor
	capture     func(Message)
}

type extraChannel struct {
	name         string
	n            Notifier
	sendResolved bool
}

// WithLogger sets the logger (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRegisterer registers self-metrics on r; without it metrics are kept
// but not exported.
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithLookupEnv replaces os.LookupEnv for *_env secrets.
func WithLookupEnv(f func(string) (string, bool)) Option {
	return func(o *options) { o.lookupEnv = f }
}

// WithHTTPClient is used by the slack and webhook channels.
func WithHTTPClient(c *http.Client) Option { return func(o *options) { o.httpClient = c } }

// WithConsoleWriter sends console channels' output to w instead of stdout.
func WithConsoleWriter(w io.Writer) Option { return func(o *options) { o.console = w } }

// WithSlackAPIURL points bot-token Slack channels elsewhere (slacktest).
func WithSlackAPIURL(u string) Option { return func(o *options) { o.slackAPIURL = u } }

// WithExternalURL is Vigil's own address, used in Alertmanager payloads.
func WithExternalURL(u string) Option { return func(o *options) { o.externalURL = u } }

// WithEmailTLSConfig overrides TLS settings of email channels (private CA).
func WithEmailTLSConfig(c *tls.Config) Option { return func(o *options) { o.emailTLS = c } }

// WithSilences makes Process hold back firing alerts muted by an active
// silence of s, as it holds back inhibited ones. The store is not config:
// Apply keeps it. Without this option nothing is silenced.
func WithSilences(s *silences.Store) Option { return func(o *options) { o.silences = s } }

// WithRedactor makes r learn the secrets of every channel built (at Build
// and at every Apply), and passes every delivery error through r before
// it is logged or kept for Status: a receiver that echoes its request
// back echoes the secrets it was sent.
func WithRedactor(r *redact.Redactor) Option { return func(o *options) { o.redactor = r } }

// WithCapture makes every channel of the config render its messages
// instead of sending them, for rule tests (`vigil test`): each message
// the dispatcher decides to send is built by the channel's own code
// (Render) and given to f, from the channel's worker, and counts as
// delivered. Nothing goes over the network, and no channel reads its
// secrets, so none need be set. Channels added with WithNotifier are
// not captured. Settle waits until every message decided is given.
func WithCapture(f func(Message)) Option { return func(o *options) { o.capture = f } }

// WithNotifier adds a channel that is not in config, for embedding Vigil
// with a custom integration.
func WithNotifier(name string, n Notifier, sendResolved bool) Option {
	return func(o *options) { o.extra = append(o.extra, extraChannel{name, n, sendResolved}) }
}

// Build makes every channel from cfg, checks routes and inhibit rules, and
// starts the delivery workers. Every problem is reported at once, each
// naming the channel or route it is about.
func Build(cfg Config, opts ...Option) (*Dispatcher, error) {
	o := options{}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	p, err := o.parts(cfg, nil)
	if err != nil {
		return nil, err
	}
	d := newDispatcher(p, o)
	for _, c := range p.chans {
		d.launch(c)
	}
	return d, nil
}

// parts is everything one Config makes, before any of it is in use: what
// Build starts with and what Apply swaps in.
type parts struct {
	cfg   Config
	chans []*channel
	// grouping is each channel's effective grouping, by the same index
	// as chans: a reload can change it without replacing the channel.
	grouping []grouping
	// mutes is each channel's own time intervals, by the same index as
	// chans (nil: none).
	mutes  []*intervals
	byName map[string]int
	routes []route
	// timedRoutes is set when a route has time intervals: only then does
	// placing an alert work out which routes brought it.
	timedRoutes bool
	defaults    []int
	inhibits    []inhibitRule
}

// parts builds and checks everything cfg describes. keep, when set, may
// return a running channel to use as it is instead of the one just built
// from conf, whose sender is n (Apply: same name, same config but for
// grouping, same secrets, see sameChannel); conf is nil for a channel
// added with WithNotifier. Every channel of cfg is built, kept or not, so
// that its secrets are read again.
func (o options) parts(cfg Config, keep func(name string, conf *ChannelConfig, n Notifier) *channel) (*parts, error) {
	errs := checkGrouping("", cfg.GroupBy, cfg.GroupWait, cfg.GroupInterval, cfg.RepeatInterval)
	cfg = cfg.withDefaults()
	tis, tiErrs := compileTimeIntervals(cfg.TimeIntervals)
	errs = append(errs, tiErrs...)
	var chans []*channel
	var groupings []grouping
	var mutes []*intervals
	byName := map[string]int{}
	add := func(c *channel, conf *ChannelConfig) {
		if _, dup := byName[c.name]; dup {
			errs = append(errs, fmt.Errorf("channel %q: defined twice", c.name))
			return
		}
		byName[c.name] = len(chans)
		chans = append(chans, c)
		groupings = append(groupings, cfg.grouping(conf))
		var iv *intervals
		if conf != nil {
			var ivErrs []error
			iv, ivErrs = resolveIntervals(fmt.Sprintf("channel %q: ", c.name), tis, conf.MuteTimeIntervals, conf.ActiveTimeIntervals)
			errs = append(errs, ivErrs...)
		}
		mutes = append(mutes, iv)
	}
	for i, cc := range cfg.Channels {
		where := fmt.Sprintf("channels[%d]", i)
		if cc.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", where))
			continue
		}
		where = fmt.Sprintf("channel %q", cc.Name)
		errs = append(errs, checkGrouping(where+": ", cc.GroupBy, cc.GroupWait, cc.GroupInterval, cc.RepeatInterval)...)
		n, err := buildOne(cc, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if o.capture != nil {
			n = &captureNotifier{name: cc.Name, n: n, f: o.capture}
		}
		if s, ok := n.(interface{ Secrets() []string }); ok {
			o.redactor.Add(s.Secrets()...)
		}
		if keep != nil {
			if c := keep(cc.Name, &cc, n); c != nil {
				add(c, &cc)
				continue
			}
		}
		sendResolved := true
		if cc.SendResolved != nil {
			sendResolved = *cc.SendResolved
		}
		workers := cc.Concurrency
		if o.capture != nil {
			workers = 1 // rendering does not wait on a receiver
		}
		add(newChannel(cc.Name, &cc, n, sendResolved, workers), &cc)
	}
	for _, e := range o.extra {
		if keep != nil {
			if c := keep(e.name, nil, e.n); c != nil {
				add(c, nil)
				continue
			}
		}
		add(newChannel(e.name, nil, e.n, e.sendResolved, 0), nil)
	}
	known := func(where string, names []string) []int {
		var idx []int
		for _, n := range names {
			i, ok := byName[n]
			if !ok {
				// A channel that failed to build is reported above.
				if !slices.ContainsFunc(cfg.Channels, func(c ChannelConfig) bool { return c.Name == n }) {
					errs = append(errs, fmt.Errorf("%s: unknown channel %q", where, n))
				}
				continue
			}
			if !slices.Contains(idx, i) {
				idx = append(idx, i)
			}
		}
		return idx
	}
	var routes []route
	timedRoutes := false
	for i, rc := range cfg.Routes {
		where := fmt.Sprintf("routes[%d]", i)
		m, err := compileMatch(where+".match", rc.Match)
		errs = append(errs, err)
		if len(rc.Channels) == 0 {
			errs = append(errs, fmt.Errorf("%s: channels is empty", where))
		}
		iv, ivErrs := resolveIntervals(where+".", tis, rc.MuteTimeIntervals, rc.ActiveTimeIntervals)
		errs = append(errs, ivErrs...)
		timedRoutes = timedRoutes || iv != nil
		routes = append(routes, route{m: m, channels: known(where, rc.Channels), iv: iv})
	}
	defaults := known("default_channels", cfg.DefaultChannels)
	var inhibits []inhibitRule
	for i, ic := range cfg.Inhibit {
		where := fmt.Sprintf("inhibit_rules[%d]", i)
		src, err := compileMatch(where+".source", ic.Source)
		errs = append(errs, err)
		tgt, err2 := compileMatch(where+".target", ic.Target)
		errs = append(errs, err2)
		if err == nil && err2 == nil && (src.empty() || tgt.empty()) {
			errs = append(errs, fmt.Errorf("%s: source and target must each match something", where))
		}
		inhibits = append(inhibits, inhibitRule{source: src, target: tgt, equal: ic.Equal})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &parts{cfg: cfg, chans: chans, grouping: groupings, mutes: mutes, byName: byName, routes: routes,
		timedRoutes: timedRoutes, defaults: defaults, inhibits: inhibits}, nil
}

// buildOne builds the single integration a channel names.
func buildOne(cc ChannelConfig, o options) (Notifier, error) {
	count := 0
	for _, set := range []bool{cc.Slack != nil, cc.Email != nil, cc.Webhook != nil, cc.Console != nil, cc.Alertmanager != nil} {
		if set {
			count++
		}
	}
	if count != 1 {
		return nil, errors.New("exactly one of slack, email, webhook, console, alertmanager is required")
	}
	render := o.capture != nil
	switch {
	case cc.Slack != nil:
		n, err := slack.New(*cc.Slack, slack.Options{HTTPClient: o.httpClient, LookupEnv: o.lookupEnv, APIURL: o.slackAPIURL,
			RenderOnly: render})
		return wrap(n, err, "slack")
	case cc.Email != nil:
		n, err := email.New(*cc.Email, email.Options{LookupEnv: o.lookupEnv, TLSConfig: o.emailTLS, RenderOnly: render})
		return wrap(n, err, "email")
	case cc.Webhook != nil:
		n, err := webhook.New(*cc.Webhook, webhook.Options{Name: cc.Name, HTTPClient: o.httpClient, LookupEnv: o.lookupEnv,
			ExternalURL: o.externalURL, RenderOnly: render})
		return wrap(n, err, "webhook")
	case cc.Alertmanager != nil:
		n, err := alertmanager.New(*cc.Alertmanager, alertmanager.Options{Name: cc.Name, LookupEnv: o.lookupEnv,
			Registerer: o.reg, ExternalURL: o.externalURL, RenderOnly: render})
		return wrap(n, err, "alertmanager")
	default:
		w := o.console
		if render && w == nil {
			w = io.Discard // never written: Render only
		}
		n, err := console.New(*cc.Console, console.Options{Writer: w})
		return wrap(n, err, "console")
	}
}

// wrap avoids a typed-nil Notifier and prefixes the block name.
func wrap[N Notifier](n N, err error, block string) (Notifier, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", block, err)
	}
	return n, nil
}
