// Package slack posts alert groups to Slack as Block Kit messages coloured
// by severity, through an incoming webhook or a bot token and
// chat.postMessage.
package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"text/template"

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
}

// Notifier posts to one Slack destination.
type Notifier struct {
	webhook     secret.Secret
	token       secret.Secret
	api         *slack.Client
	client      *http.Client
	cfg         Config
	title, text *template.Template
}

// New resolves the webhook URL or token and checks cfg.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{cfg: cfg, client: opts.HTTPClient}
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
		n.webhook, err = secret.Load("webhook_url", cfg.WebhookURLEnv, cfg.WebhookURLFile, opts.LookupEnv)
		errs = append(errs, err)
		if !n.webhook.IsZero() {
			if u, err := url.Parse(n.webhook.Reveal()); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				errs = append(errs, errors.New("webhook_url: not an absolute http(s) URL"))
			}
		}
	case hasToken:
		var err error
		n.token, err = secret.Load("token", cfg.TokenEnv, cfg.TokenFile, opts.LookupEnv)
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
	if len(alerts) == 0 {
		return "", false, msg.ErrNoAlerts
	}
	d := msg.ForGroup(g, alerts)
	att, fallbackText, terr := n.render(d)
	if n.api == nil {
		err := slack.PostWebhookCustomHTTPContext(ctx, n.webhook.Reveal(), n.client, &slack.WebhookMessage{
			Text: fallbackText, Attachments: []slack.Attachment{att}, Channel: n.cfg.Channel,
			Username: n.cfg.Username, IconEmoji: n.cfg.IconEmoji,
		})
		if err != nil {
			retry, err := n.failed(err)
			return "", retry, err
		}
		return "", false, terr
	}
	o := []slack.MsgOption{slack.MsgOptionText(fallbackText, false), slack.MsgOptionAttachments(att)}
	if n.cfg.Username != "" {
		o = append(o, slack.MsgOptionUsername(n.cfg.Username))
	}
	if n.cfg.IconEmoji != "" {
		o = append(o, slack.MsgOptionIconEmoji(n.cfg.IconEmoji))
	}
	channel, ts, threaded := strings.Cut(g.Thread, "/")
	if !threaded || channel == "" || ts == "" {
		ch, ts, err := n.api.PostMessageContext(ctx, n.cfg.Channel, o...)
		if err != nil {
			retry, err := n.failed(err)
			return "", retry, err
		}
		thread := ""
		if d.Status == "firing" && ch != "" && ts != "" {
			thread = ch + "/" + ts
		}
		return thread, false, terr
	}
	reply := append([]slack.MsgOption{slack.MsgOptionTS(ts)}, o...)
	if d.Status == "firing" {
		reply = append(reply, slack.MsgOptionBroadcast())
	}
	if _, _, err := n.api.PostMessageContext(ctx, channel, reply...); err != nil {
		retry, err := n.failed(err)
		return "", retry, err
	}
	if _, _, _, err := n.api.UpdateMessageContext(ctx, channel, ts, o...); err != nil {
		_, err = n.failed(err)
		return g.Thread, false, &updateError{err: errors.Join(fmt.Errorf("reply posted in the thread, but updating its first message failed: %w", err), terr)}
	}
	return g.Thread, false, terr
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
