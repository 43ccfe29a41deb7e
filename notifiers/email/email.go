// Package email sends alert groups over SMTP with go-mail: STARTTLS or
// implicit TLS, optional auth, and a plain-text and an HTML part.
package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"net"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/internal/secret"
)

// TLS modes.
const (
	TLSStartTLS      = "starttls"      // STARTTLS required (default)
	TLSOpportunistic = "opportunistic" // STARTTLS if offered
	TLSImplicit      = "implicit"      // TLS from the first byte (port 465)
	TLSNone          = "none"          // plain text; only for local relays and tests
)

// Config is the `email:` block of a channel.
type Config struct {
	// Smarthost is host:port of the SMTP server.
	Smarthost string `yaml:"smarthost" json:"smarthost"`
	TLS       string `yaml:"tls,omitempty" json:"tls,omitempty"`
	// InsecureSkipVerify disables certificate checks (self-signed relays).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty" json:"insecure_skip_verify,omitempty"`
	// Auth is plain (default when a username is set), login or cram-md5.
	Auth         string   `yaml:"auth,omitempty" json:"auth,omitempty"`
	Username     string   `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordEnv  string   `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	From         string   `yaml:"from" json:"from"`
	To           []string `yaml:"to" json:"to"`
	Cc           []string `yaml:"cc,omitempty" json:"cc,omitempty"`
	// Hello is the EHLO name (default: the local host name).
	Hello   string            `yaml:"hello,omitempty" json:"hello,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// Subject optionally replaces "[FIRING:2] Rule" (Go text/template).
	Subject string        `yaml:"subject,omitempty" json:"subject,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Options are what the caller, not the config file, decides.
type Options struct {
	LookupEnv secret.LookupEnv
	// TLSConfig overrides the TLS settings (private CAs, tests).
	TLSConfig *tls.Config
	// RenderOnly builds a Notifier for Render alone (rule tests): the
	// password is not read, so it need not be set, and Notify fails.
	RenderOnly bool
}

// Notifier sends to one SMTP server; each Notify opens its own connection
// so concurrent groups do not share SMTP state.
type Notifier struct {
	cfg      Config
	password secret.Secret
	opts     []mail.Option
	host     string
	subject  *template.Template
	// renderOnly: built for Render; Notify sends nothing.
	renderOnly bool
}

// New resolves the password and checks cfg; all problems at once.
func New(cfg Config, opts Options) (*Notifier, error) {
	n := &Notifier{cfg: cfg, renderOnly: opts.RenderOnly}
	var errs []error
	host, portStr, err := net.SplitHostPort(cfg.Smarthost)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || host == "" {
		errs = append(errs, fmt.Errorf("smarthost: %q is not host:port", cfg.Smarthost))
	}
	n.host = host
	if n.cfg.Timeout <= 0 {
		n.cfg.Timeout = 30 * time.Second
	}
	o := []mail.Option{mail.WithPort(port), mail.WithTimeout(n.cfg.Timeout)}
	tlsConf := opts.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // opt-in
	} else if tlsConf.ServerName == "" {
		// One override (a private CA) serves every email channel, so it has
		// no ServerName; STARTTLS does not derive one from the address the
		// way implicit TLS's dialer does, and fails every handshake without.
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName = host
	}
	o = append(o, mail.WithTLSConfig(tlsConf))
	switch cfg.TLS {
	case "", TLSStartTLS:
		o = append(o, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSOpportunistic:
		o = append(o, mail.WithTLSPolicy(mail.TLSOpportunistic))
	case TLSImplicit:
		o = append(o, mail.WithSSL())
	case TLSNone:
		o = append(o, mail.WithTLSPolicy(mail.NoTLS))
	default:
		errs = append(errs, fmt.Errorf("tls: %q is not one of starttls, opportunistic, implicit, none", cfg.TLS))
	}
	if cfg.Hello != "" {
		o = append(o, mail.WithHELO(cfg.Hello))
	}
	if cfg.Username != "" {
		n.password, err = secret.LoadUnless(opts.RenderOnly, "password", cfg.PasswordEnv, cfg.PasswordFile, opts.LookupEnv)
		errs = append(errs, err)
		var auth mail.SMTPAuthType
		switch strings.ToLower(cfg.Auth) {
		case "", "plain":
			auth = mail.SMTPAuthPlain
		case "login":
			auth = mail.SMTPAuthLogin
		case "cram-md5":
			auth = mail.SMTPAuthCramMD5
		default:
			errs = append(errs, fmt.Errorf("auth: %q is not one of plain, login, cram-md5", cfg.Auth))
		}
		o = append(o, mail.WithSMTPAuth(auth), mail.WithUsername(cfg.Username), mail.WithPassword(n.password.Reveal()))
	} else if cfg.PasswordEnv != "" || cfg.PasswordFile != "" || cfg.Auth != "" {
		errs = append(errs, errors.New("username: required when auth or a password is set"))
	}
	n.opts = o
	if len(cfg.To) == 0 {
		errs = append(errs, errors.New("to: at least one recipient is required"))
	}
	// Check addresses now rather than at 3 a.m.
	m := mail.NewMsg()
	if err := m.From(cfg.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %w", err))
	}
	if len(cfg.To) > 0 {
		if err := m.To(cfg.To...); err != nil {
			errs = append(errs, fmt.Errorf("to: %w", err))
		}
	}
	if len(cfg.Cc) > 0 {
		if err := m.Cc(cfg.Cc...); err != nil {
			errs = append(errs, fmt.Errorf("cc: %w", err))
		}
	}
	n.subject, err = msg.Parse("subject", cfg.Subject)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return n, nil
}

// SecretFiles lists the file cfg reads the password from, if any, so a
// caller can tell when it is rotated.
func (cfg Config) SecretFiles() []string {
	if cfg.PasswordFile == "" {
		return nil
	}
	return []string{cfg.PasswordFile}
}

// SecretDigest is a hash of the password in use, to tell whether a
// password read again differs (secret.Digest).
func (n *Notifier) SecretDigest() [32]byte { return secret.Digest(n.password) }

// Secrets lists the values a redact.Redactor must learn for this
// channel: the password, and the AUTH PLAIN message whose base64 servers
// quote in their errors. Never logged or shown.
func (n *Notifier) Secrets() []string {
	if n.password.IsZero() {
		return nil
	}
	return []string{n.password.Reveal(), redact.SMTPPlain(n.cfg.Username, n.password.Reveal())}
}

// redact removes every form of the password from err, then cuts what a
// server answered to redact.MaxBody bytes.
func (n *Notifier) redact(err error) error {
	r := redact.New()
	r.Add(n.Secrets()...)
	if err = r.Error(err); len(err.Error()) > redact.MaxBody {
		return errors.New(redact.Truncate(err.Error()))
	}
	return err
}

// String never shows the password.
func (n *Notifier) String() string { return "email(" + n.cfg.Smarthost + ")" }

// Notify sends one mail for the group.
func (n *Notifier) Notify(ctx context.Context, alerts ...model.Alert) (bool, error) {
	if n.renderOnly {
		return false, errors.New("email: built to render only (a rule test); nothing is sent")
	}
	m, _, terr, err := n.message(alerts, func(m *mail.Msg) { m.SetMessageID(); m.SetDate() })
	if err != nil {
		return false, err
	}
	c, err := mail.NewClient(n.host, n.opts...)
	if err != nil {
		return false, n.redact(fmt.Errorf("email: client: %w", err))
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return retryable(err), n.redact(fmt.Errorf("email: %w", err))
	}
	if terr != nil {
		return false, &msg.TemplateError{Err: terr}
	}
	return false, nil
}

// bodyParts are a mail's parts before MIME encoding.
type bodyParts struct{ text, html string }

// message builds the mail Notify sends for alerts; stamp sets its
// Message-ID and Date before the configured headers, so that a configured
// one wins. terr is a template's error (the fallback is in the mail).
func (n *Notifier) message(alerts []model.Alert, stamp func(*mail.Msg)) (m *mail.Msg, parts bodyParts, terr, err error) {
	if len(alerts) == 0 {
		return nil, parts, nil, msg.ErrNoAlerts
	}
	d := msg.New(alerts)
	subject, terr := msg.Execute(n.subject, d, d.Title)
	subject = strings.Join(strings.Fields(subject), " ") // no header injection via newlines
	parts.text = Text(d)
	html, herr := HTML(d)
	if herr != nil {
		terr = errors.Join(terr, herr)
		html = ""
	}
	parts.html = html
	m = mail.NewMsg()
	_ = m.From(n.cfg.From) // checked in New
	_ = m.To(n.cfg.To...)
	if len(n.cfg.Cc) > 0 {
		_ = m.Cc(n.cfg.Cc...)
	}
	m.Subject(subject)
	stamp(m)
	for k, v := range n.cfg.Headers {
		m.SetGenHeader(mail.Header(k), v)
	}
	m.SetBodyString(mail.TypeTextPlain, parts.text)
	if parts.html != "" {
		m.AddAlternativeString(mail.TypeTextHTML, parts.html)
	}
	return m, parts, terr, nil
}

// Render is the mail Notify sends for alerts, without sending it, for
// rule tests' golden files: its headers as the receiver reads them
// (From, To, Cc, Subject, Date as at, then the other configured headers,
// sorted, each once, decoded; no Message-ID unless configured: it is
// random), a blank line, then each part
// decoded (text/plain, then text/html), each under a "--- type ---"
// line, with \n line ends (SMTP sends \r\n). A template error comes
// with the fallback it rendered.
func (n *Notifier) Render(at time.Time, alerts ...model.Alert) ([]byte, error) {
	m, parts, terr, err := n.message(alerts, func(m *mail.Msg) { m.SetDateWithValue(at) })
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	shown := map[string]bool{}
	dec := new(mime.WordDecoder)
	header := func(name string, vs []string) {
		if len(vs) == 0 || shown[strings.ToLower(name)] {
			return
		}
		shown[strings.ToLower(name)] = true
		v := strings.Join(vs, ", ")
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d // as the receiver's mail client shows it
		}
		fmt.Fprintf(&b, "%s: %s\n", name, v)
	}
	header("From", m.GetFromString())
	header("To", m.GetToString())
	header("Cc", m.GetCcString())
	header("Subject", m.GetGenHeader(mail.HeaderSubject))
	header("Date", m.GetGenHeader(mail.HeaderDate))
	names := make([]string, 0, len(n.cfg.Headers))
	for k := range n.cfg.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		header(k, m.GetGenHeader(mail.Header(k)))
	}
	fmt.Fprintf(&b, "\n--- %s ---\n%s", mail.TypeTextPlain, parts.text)
	if parts.html != "" {
		fmt.Fprintf(&b, "--- %s ---\n%s", mail.TypeTextHTML, parts.html)
	}
	if terr != nil {
		return b.Bytes(), &msg.TemplateError{Err: terr}
	}
	return b.Bytes(), nil
}

// retryable: SMTP 5xx answers and untrusted certificates are permanent,
// 4xx and network trouble not.
func retryable(err error) bool {
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return false // a CA or hostname mismatch needs an operator, not a backoff
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		if c := se.ErrorCode(); c >= 500 {
			return false
		}
		return true
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code < 500
	}
	return true
}

// Text is the plain-text part.
func Text(d msg.Data) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nRule:     %s\nSeverity: %s\n", d.Title, d.Rule, d.Severity)
	if d.Summary != "" {
		fmt.Fprintf(&b, "Summary:  %s\n", d.Summary)
	}
	if d.Description != "" {
		fmt.Fprintf(&b, "\n%s\n", d.Description)
	}
	if len(d.Firing) > 0 {
		fmt.Fprintf(&b, "\nFiring (%d):\n", len(d.Firing))
		for _, a := range d.Firing {
			fmt.Fprintf(&b, "  - %s\n", msg.Line(a))
		}
	}
	if len(d.Resolved) > 0 {
		fmt.Fprintf(&b, "\nResolved (%d):\n", len(d.Resolved))
		for _, a := range d.Resolved {
			fmt.Fprintf(&b, "  - %s\n", msg.Line(a))
		}
	}
	if d.Runbook != "" {
		fmt.Fprintf(&b, "\nRunbook: %s\n", d.Runbook)
	}
	if d.Source != "" {
		fmt.Fprintf(&b, "Source:  %s\n", d.Source)
	}
	return b.String()
}

var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Funcs(htmltemplate.FuncMap{
	"colour": msg.Colour, "line": msg.Line,
}).Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2 style="border-left: 6px solid {{colour .}}; padding-left: 8px">{{.Title}}</h2>
<p><b>Rule:</b> {{.Rule}} &nbsp; <b>Severity:</b> {{.Severity}}</p>
{{if .Summary}}<p><b>Summary:</b> {{.Summary}}</p>{{end}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Firing}}<h3>Firing ({{len .Firing}})</h3><ul>{{range .Firing}}<li>{{line .}}</li>{{end}}</ul>{{end}}
{{if .Resolved}}<h3>Resolved ({{len .Resolved}})</h3><ul>{{range .Resolved}}<li>{{line .}}</li>{{end}}</ul>{{end}}
{{if .Runbook}}<p><a href="{{.Runbook}}">Runbook</a></p>{{end}}
{{if .Source}}<p style="color: #666; font-size: smaller">Source: <code>{{.Source}}</code></p>{{end}}
</body></html>
`))

// HTML is the HTML part.
func HTML(d msg.Data) (string, error) {
	var b bytes.Buffer
	if err := htmlTmpl.Execute(&b, d); err != nil {
		return "", fmt.Errorf("html part: %w", err)
	}
	return b.String(), nil
}
