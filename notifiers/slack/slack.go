// Package slack posts alert groups to Slack as Block Kit messages coloured
// by severity, through an incoming webhook or a bot token and
// chat.postMessage.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/slack-go/slack"

	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/internal/secret"
)

// Config is the `slack:` block of a channel. Set webhook_url_env/_file for
// an incoming webhook, or token_env/_file plus channel for a bot.
type Config struct {
	WebhookURLEnv  string `yaml:"webhook_url_env,omitempty" json:"webhook_url_env,omitempty"`
	WebhookURLFile string `yaml:"webhook_url_file,omitempty" json:"webhook_url_file,omitempty"`
	TokenEnv       string `yaml:"token_env,omitempty" json:"token_env,omitempty"`
	TokenFile      string `yaml:"token_file,omitempty" json:"token_file,omitempty"`
	// Channel is "#name" or a channel ID; required with a token, optional
	// (and often ignored by Slack) with a webhook.
	Channel   string `yaml:"channel,omitempty" json:"channel,omitempty"`
	Username  string `yaml:"username,omitempty" json:"username,omitempty"`
	IconEmoji string `yaml:"icon_emoji,omitempty" json:"icon_emoji,omitempty"`
	// Title and Text optionally replace the header and the body
	// (Go text/template; see docs/notifiers.md).
	Title string `yaml:"title,omitempty" json:"title,omitempty"`
	Text  string `yaml:"text,omitempty" json:"text,omitempty"`
	// MaxAlerts caps the segments listed in one message (default 20).
	MaxAlerts int `yaml:"max_alerts,omitempty" json:"max_alerts,omitempty"`
}

// Options are what the caller, not the config file, decides.
type Options struct {
	HTTPClient *http.Client
	LookupEnv  secret.LookupEnv
	// APIURL overrides https://slack.com/api/ (slacktest in tests).
	APIURL string
	// RenderOnly builds a Notifier for Render alone (rule tests): the
	// webhook URL or token is not read, so none need be set, and Notify
	// fails.
	RenderOnly bool
}

// Notifier posts to one Slack destination.
type Notifier struct {
	webhook     secret.Secret
	token       secret.Secret
	api         *slack.Client
	client      *http.Client
	cfg         Config
	title, text *template.Template
	renderOnly  bool
}

// New resolves the webhook URL or token and checks cfg.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{cfg: cfg, client: opts.HTTPClient, renderOnly: opts.RenderOnly}
	if n.client == nil {
		n.client = &http.Client{}
	}
	if n.cfg.MaxAlerts <= 0 {
		n.cfg.MaxAlerts = 20
	}
	var errs []error
	hasWebhook := cfg.WebhookURLEnv != "" || cfg.WebhookURLFile != ""
	hasToken := cfg.TokenEnv != "" || cfg.TokenFile != ""
	switch {
	case hasWebhook && hasToken:
		errs = append(errs, errors.New("set either webhook_url_env/webhook_url_file or token_env/token_file, not both"))
	case hasWebhook:
		var err error
		n.webhook, err = secret.LoadUnless(opts.RenderOnly, "webhook_url", cfg.WebhookURLEnv, cfg.WebhookURLFile, opts.LookupEnv)
		errs = append(errs, err)
		if !n.webhook.IsZero() {
			if u, err := url.Parse(n.webhook.Reveal()); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				errs = append(errs, errors.New("webhook_url: not an absolute http(s) URL"))
			}
		}
	case hasToken:
		var err error
		n.token, err = secret.LoadUnless(opts.RenderOnly, "token", cfg.TokenEnv, cfg.TokenFile, opts.LookupEnv)
		errs = append(errs, err)
		if cfg.Channel == "" {
			errs = append(errs, errors.New("channel: required with a bot token"))
		}
		o := []slack.Option{slack.OptionHTTPClient(n.client)}
		if opts.APIURL != "" {
			o = append(o, slack.OptionAPIURL(opts.APIURL))
		}
		n.api = slack.New(n.token.Reveal(), o...)
	default:
		errs = append(errs, errors.New("set webhook_url_env/webhook_url_file or token_env/token_file"))
	}
	var err error
	n.title, err = msg.Parse("title", cfg.Title)
	errs = append(errs, err)
	n.text, err = msg.Parse("text", cfg.Text)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return n, nil
}

// SecretFiles lists the files cfg reads secrets from, so a caller can
// tell when one is rotated.
func (cfg Config) SecretFiles() []string {
	var fs []string
	for _, f := range []string{cfg.WebhookURLFile, cfg.TokenFile} {
		if f != "" {
			fs = append(fs, f)
		}
	}
	return fs
}

// SecretDigest is a hash of the webhook URL or token in use, to tell
// whether secrets read again differ (secret.Digest).
func (n *Notifier) SecretDigest() [32]byte { return secret.Digest(n.webhook, n.token) }

// Secrets lists the values a redact.Redactor must learn for this
// channel: the webhook URL and its parts, or the token. Never logged or
// shown.
func (n *Notifier) Secrets() []string { return secret.Values(n.webhook, n.token) }

// String never shows the URL or token.
func (n *Notifier) String() string {
	if n.api != nil {
		return "slack(chat.postMessage " + n.cfg.Channel + ")"
	}
	return "slack(incoming webhook)"
}

// Notify posts one message for alerts of one rule, without threading (the
// dispatcher calls NotifyGroup).
func (n *Notifier) Notify(ctx context.Context, alerts ...model.Alert) (bool, error) {
	_, retry, err := n.NotifyGroup(ctx, msg.Group{}, alerts...)
	return retry, err
}

// NotifyGroup posts one message for the group. With a bot token, the
// group's first post starts a thread (returned as "channel/ts"); later
// messages are replies in it, those with firing alerts also sent to the
// channel, and each one then updates the first post to the group's
// current state, so a resolution turns it green. A reply that went out
// is not lost to a failed update: the update's error is reported as
// delivered, not retried (a retry would post the reply again).
func (n *Notifier) NotifyGroup(ctx context.Context, g msg.Group, alerts ...model.Alert) (string, bool, error) {
	if n.renderOnly {
		return "", false, errRenderOnly
	}
	m, err := n.message(g, alerts)
	if err != nil {
		return "", false, err
	}
	if n.api == nil {
		if err := slack.PostWebhookCustomHTTPContext(ctx, n.webhook.Reveal(), n.client, m.webhookMessage()); err != nil {
			retry, err := n.failed(err)
			return "", retry, err
		}
		return "", false, m.terr
	}
	channel, ts, threaded := m.threadOf(g)
	if !threaded {
		ch, ts, err := n.api.PostMessageContext(ctx, n.cfg.Channel, m.opts...)
		if err != nil {
			retry, err := n.failed(err)
			return "", retry, err
		}
		return m.startsThread(ch, ts), false, m.terr
	}
	if _, _, err := n.api.PostMessageContext(ctx, channel, m.reply(ts)...); err != nil {
		retry, err := n.failed(err)
		return "", retry, err
	}
	if _, _, _, err := n.api.UpdateMessageContext(ctx, channel, ts, m.opts...); err != nil {
		_, err = n.failed(err)
		return g.Thread, false, &updateError{err: errors.Join(fmt.Errorf("reply posted in the thread, but updating its first message failed: %w", err), m.terr)}
	}
	return g.Thread, false, m.terr
}

// errRenderOnly is Notify's answer on a Notifier built for Render.
var errRenderOnly = errors.New("slack: built to render only (a rule test); nothing is sent")

// message is one group's message as NotifyGroup sends it and Render
// shows it: the attachment, the fallback text, and the chat.postMessage
// options built from them.
type message struct {
	n            *Notifier
	d            msg.Data
	att          slack.Attachment
	fallbackText string
	opts         []slack.MsgOption
	terr         error // a template failed: the fallback went out
}

func (n *Notifier) message(g msg.Group, alerts []model.Alert) (*message, error) {
	if len(alerts) == 0 {
		return nil, msg.ErrNoAlerts
	}
	m := &message{n: n, d: msg.ForGroup(g, alerts)}
	m.att, m.fallbackText, m.terr = n.render(m.d)
	m.opts = []slack.MsgOption{slack.MsgOptionText(m.fallbackText, false), slack.MsgOptionAttachments(m.att)}
	if n.cfg.Username != "" {
		m.opts = append(m.opts, slack.MsgOptionUsername(n.cfg.Username))
	}
	if n.cfg.IconEmoji != "" {
		m.opts = append(m.opts, slack.MsgOptionIconEmoji(n.cfg.IconEmoji))
	}
	return m, nil
}

// webhookMessage is the incoming webhook's body.
func (m *message) webhookMessage() *slack.WebhookMessage {
	return &slack.WebhookMessage{
		Text: m.fallbackText, Attachments: []slack.Attachment{m.att}, Channel: m.n.cfg.Channel,
		Username: m.n.cfg.Username, IconEmoji: m.n.cfg.IconEmoji,
	}
}

// threadOf is the channel and ts of the group's thread, if it has one.
func (m *message) threadOf(g msg.Group) (channel, ts string, ok bool) {
	channel, ts, ok = strings.Cut(g.Thread, "/")
	return channel, ts, ok && channel != "" && ts != ""
}

// startsThread is the thread a first post (at channel ch, ts) starts:
// only a firing one does.
func (m *message) startsThread(ch, ts string) string {
	if m.d.Status == "firing" && ch != "" && ts != "" {
		return ch + "/" + ts
	}
	return ""
}

// reply is the options of a reply in thread ts: sent to the channel too
// when something fires.
func (m *message) reply(ts string) []slack.MsgOption {
	reply := append([]slack.MsgOption{slack.MsgOptionTS(ts)}, m.opts...)
	if m.d.Status == "firing" {
		reply = append(reply, slack.MsgOptionBroadcast())
	}
	return reply
}

// Render is what NotifyGroup sends for the group, without sending it,
// for rule tests' golden files: with an incoming webhook, the JSON body
// posted; with a bot token, each Web API call in order
// (chat.postMessage, then for a reply in the group's thread
// chat.update of its first post), as its form fields, the token left
// out, JSON-valued fields (attachments) shown as JSON. Both indented,
// form fields sorted, JSON in its own order. at is when the message
// goes out: the ts Slack would give a first post, so that thread is what
// NotifyGroup would return (the channel as configured, where Slack answers with the channel's ID). A
// template error comes with the fallback it rendered, as NotifyGroup
// sends it.
func (n *Notifier) Render(g msg.Group, at time.Time, alerts ...model.Alert) (body []byte, thread string, err error) {
	m, err := n.message(g, alerts)
	if err != nil {
		return nil, "", err
	}
	if n.api == nil {
		body, err = json.MarshalIndent(m.webhookMessage(), "", "  ")
		if err != nil {
			return nil, "", err
		}
		return append(body, '\n'), "", m.terr
	}
	type call struct {
		Method string                     `json:"method"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	form := func(channel string, opts ...slack.MsgOption) (call, error) {
		endpoint, values, err := slack.UnsafeApplyMsgOptions("", channel, "", opts...)
		if err != nil {
			return call{}, err
		}
		c := call{Method: endpoint, Fields: map[string]json.RawMessage{}}
		// slack-go adds the attachments as it builds the request, as
		// JSON: the same bytes.
		att, err := json.Marshal([]slack.Attachment{m.att})
		if err != nil {
			return call{}, err
		}
		values.Set("attachments", string(att))
		for k, vs := range values {
			if k == "token" || len(vs) == 0 {
				continue
			}
			v := vs[0]
			if (k == "attachments" || k == "blocks") && json.Valid([]byte(v)) {
				c.Fields[k] = json.RawMessage(v)
				continue
			}
			c.Fields[k], _ = json.Marshal(v)
		}
		return c, nil
	}
	var calls []call
	channel, ts, threaded := m.threadOf(g)
	if !threaded {
		c, err := form(n.cfg.Channel, m.opts...)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, c)
		thread = m.startsThread(n.cfg.Channel, fmt.Sprintf("%d.000000", at.Unix()))
	} else {
		reply, err := form(channel, m.reply(ts)...)
		if err != nil {
			return nil, "", err
		}
		update, err := form(channel, append([]slack.MsgOption{slack.MsgOptionUpdate(ts)}, m.opts...)...)
		if err != nil {
			return nil, "", err
		}
		calls, thread = append(calls, reply, update), g.Thread
	}
	body, err = json.MarshalIndent(calls, "", "  ")
	if err != nil {
		return nil, "", err
	}
	return append(body, '\n'), thread, m.terr
}

// updateError reports a reply that went out whose chat.update failed: a
// message did go out (the dispatcher logs it and does not retry).
type updateError struct{ err error }

func (e *updateError) Error() string   { return e.err.Error() }
func (e *updateError) Unwrap() error   { return e.err }
func (e *updateError) Delivered() bool { return true }

// failed classifies err and removes secrets from it.
func (n *Notifier) failed(err error) (bool, error) {
	retry, err := classify(err)
	// Slack's answers are short; a proxy's error page need not be.
	if err = secret.Redact(fmt.Errorf("slack: %w", err), n.webhook, n.token); len(err.Error()) > redact.MaxBody {
		err = errors.New(redact.Truncate(err.Error()))
	}
	return retry, err
}

// classify applies the house rule: network errors and 5xx retried, 4xx
// not, 429 after Retry-After.
func classify(err error) (bool, error) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return true, &msg.RetryAfterError{After: rl.RetryAfter, Err: err}
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		return sc.Code >= 500 || sc.Code == http.StatusTooManyRequests, err
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		// ok:false answers are permanent (invalid_auth, channel_not_found)
		// except Slack's own trouble.
		switch se.Err {
		case "internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited":
			return true, err
		}
		return false, err
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// Keep only the cause: the URL may be the webhook secret.
		return true, uerr.Err
	}
	return true, err
}

// render builds the attachment (for the colour bar) holding Block Kit
// blocks, plus the plain text used for notifications and old clients.
func (n *Notifier) render(d msg.Data) (slack.Attachment, string, error) {
	var terrs []error
	title, err := msg.Execute(n.title, d, defaultTitle(d))
	if err != nil {
		terrs = append(terrs, err)
	}
	body, err := msg.Execute(n.text, d, n.defaultText(d))
	if err != nil {
		terrs = append(terrs, err)
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, clip(title, 150), true, false)),
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, clip(body, 3000), false, false), nil, nil),
	}
	var context []slack.MixedElement
	if d.Runbook != "" {
		context = append(context, slack.NewTextBlockObject(slack.MarkdownType, fmt.Sprintf("<%s|Runbook>", d.Runbook), false, false))
	}
	if d.Source != "" {
		context = append(context, slack.NewTextBlockObject(slack.MarkdownType, "Source: `"+d.Source+"`", false, false))
	}
	if len(context) > 0 {
		blocks = append(blocks, slack.NewContextBlock("", context...))
	}
	att := slack.Attachment{Color: msg.Colour(d), Fallback: title, Blocks: slack.Blocks{BlockSet: blocks}}
	var terr error
	if len(terrs) > 0 {
		terr = &msg.TemplateError{Err: errors.Join(terrs...)}
	}
	return att, title, terr
}

func defaultTitle(d msg.Data) string {
	if d.Status == "resolved" {
		return "✅ " + d.Title
	}
	return "🔥 " + d.Title
}

func (n *Notifier) defaultText(d msg.Data) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Rule:* %s   *Severity:* %s\n", d.Rule, d.Severity)
	if d.Summary != "" {
		fmt.Fprintf(&b, "*Summary:* %s\n", d.Summary)
	}
	if d.Description != "" {
		fmt.Fprintf(&b, "%s\n", d.Description)
	}
	listed := 0
	write := func(a model.Alert, resolved bool) {
		if listed >= n.cfg.MaxAlerts {
			return
		}
		listed++
		if resolved {
			fmt.Fprintf(&b, "• `%s` resolved after %s (value %s)\n", msg.Segment(a), msg.FiredFor(a), msg.Value(a.Value))
			return
		}
		fmt.Fprintf(&b, "• `%s` value *%s* since %s\n", msg.Segment(a), msg.Value(a.Value), msg.Since(a).Format(msg.TimeFormat))
	}
	for _, a := range d.Firing {
		write(a, false)
	}
	for _, a := range d.Resolved {
		write(a, true)
	}
	if more := len(d.Firing) + len(d.Resolved) - listed; more > 0 {
		fmt.Fprintf(&b, "… and %d more\n", more)
	}
	return b.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
