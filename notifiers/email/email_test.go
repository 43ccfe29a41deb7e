package email_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/email"
)

type captured struct {
	from string
	rcpt []string
	data []byte
	tls  *tls.ConnectionState // of the connection at AUTH time; nil if plain
}

// backend is a real SMTP server that requires PLAIN auth and keeps mail.
type backend struct {
	mu   sync.Mutex
	msgs []captured
	fail error // answer to DATA, if set
	// auths counts successful AUTHs, plaintext ones apart.
	auths, plainAuths int
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{b: b, conn: c}, nil }

func (b *backend) authCounts() (all, plain int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.auths, b.plainAuths
}

func (b *backend) mails() []captured {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]captured(nil), b.msgs...)
}

type session struct {
	b       *backend
	conn    *smtp.Conn
	auth    bool
	authTLS *tls.ConnectionState
	cur     captured
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "vigil" || pass != "s3cret-pw" {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.auth = true
		s.b.mu.Lock()
		s.b.auths++
		if st, ok := s.conn.TLSConnectionState(); ok {
			s.authTLS = &st
		} else {
			s.b.plainAuths++
		}
		s.b.mu.Unlock()
		return nil
	}), nil
}
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.rcpt = append(s.cur.rcpt, to)
	return nil
}
func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.b.fail != nil {
		return s.b.fail
	}
	s.cur.data = b
	s.cur.tls = s.authTLS
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}
func (s *session) Reset()        { s.cur = captured{} }
func (s *session) Logout() error { return nil }

func startSMTP(t *testing.T, be *backend) string {
	t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l) //nolint:errcheck // returns on Close
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func alerts() []model.Alert {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	mk := func(m string) model.Alert {
		seg := model.Labels{"member": m}
		return model.Alert{Fingerprint: model.Fingerprint("EtcdMemberUnreachable", seg), Rule: "EtcdMemberUnreachable",
			Severity: "critical", Description: "etcd member <unreachable>", State: model.StateFiring,
			Labels: model.Labels{"member": m}, Segment: seg, FiredAt: t0,
			Annotations: map[string]string{"runbook_url": "https://runbooks.example/etcd"},
			Source:      &model.Source{File: "etcd.yaml", Line: 12, Commit: "1d22bfc5e0a1b2c3d4e5f60718293a4b5c6d7e8f"}}
	}
	return []model.Alert{mk("etcd-1"), mk("etcd-2")}
}

func newNotifier(t *testing.T, addr string, mod func(*email.Config)) *email.Notifier {
	t.Helper()
	cfg := email.Config{Smarthost: addr, TLS: email.TLSNone, Username: "vigil", PasswordEnv: "PW",
		From: "vigil@example.com", To: []string{"oncall@example.com"}, Cc: []string{"lead@example.com"},
		Headers: map[string]string{"X-Vigil-Env": "test"}, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	n, err := email.New(cfg, email.Options{LookupEnv: func(k string) (string, bool) {
		if k == "PW" {
			return "s3cret-pw", true
		}
		return "", false
	}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMailHasHeadersAndBothParts(t *testing.T) {
	be := &backend{}
	n := newNotifier(t, startSMTP(t, be), nil)
	if retry, err := n.Notify(context.Background(), alerts()...); err != nil {
		t.Fatalf("Notify: retry=%v %v", retry, err)
	}
	if len(be.msgs) != 1 {
		t.Fatalf("got %d mails", len(be.msgs))
	}
	checkMail(t, be.msgs[0])
}

// checkMail asserts the envelope, headers and both parts of the mail that
// newNotifier's config sends for alerts().
func checkMail(t *testing.T, got captured) {
	t.Helper()
	if got.from != "vigil@example.com" || strings.Join(got.rcpt, ",") != "oncall@example.com,lead@example.com" {
		t.Errorf("envelope from=%s rcpt=%v", got.from, got.rcpt)
	}
	m, err := netmail.ReadMessage(strings.NewReader(string(got.data)))
	if err != nil {
		t.Fatal(err)
	}
	for h, want := range map[string]string{
		"Subject": "[FIRING:2] EtcdMemberUnreachable: etcd-1, etcd-2", "From": "<vigil@example.com>",
		"To": "<oncall@example.com>", "Cc": "<lead@example.com>", "X-Vigil-Env": "test",
	} {
		if v := m.Header.Get(h); v != want {
			t.Errorf("%s = %q, want %q", h, v, want)
		}
	}
	if m.Header.Get("Message-Id") == "" || m.Header.Get("Date") == "" {
		t.Error("Message-ID or Date missing")
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q: %v", mt, err)
	}
	parts := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		parts[ct] = string(b)
	}
	text, html := parts["text/plain"], parts["text/html"]
	for _, want := range []string{"[FIRING:2] EtcdMemberUnreachable", "member=etcd-1", "member=etcd-2", "Runbook: https://runbooks.example/etcd", "Source:  etcd.yaml:12@1d22bfc5"} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"<li>member=etcd-1", `href="https://runbooks.example/etcd"`, "etcd member &lt;unreachable&gt;", "#d00000", "Source: <code>etcd.yaml:12@1d22bfc5</code>"} {
		if !strings.Contains(html, want) {
			t.Errorf("html part lacks %q:\n%s", want, html)
		}
	}
}

func TestSubjectTemplateAndFallback(t *testing.T) {
	be := &backend{}
	addr := startSMTP(t, be)
	n := newNotifier(t, addr, func(c *email.Config) { c.Subject = "{{ .Status | upper }}: {{ .Rule }}" })
	if _, err := n.Notify(context.Background(), alerts()...); err != nil {
		t.Fatal(err)
	}
	bad := newNotifier(t, addr, func(c *email.Config) { c.Subject = "{{ .Nope }}" })
	_, err := bad.Notify(context.Background(), alerts()...)
	var dv interface{ Delivered() bool }
	if !errors.As(err, &dv) {
		t.Fatalf("template error not reported as delivered: %v", err)
	}
	subj := func(i int) string {
		m, _ := netmail.ReadMessage(strings.NewReader(string(be.msgs[i].data)))
		return m.Header.Get("Subject")
	}
	if subj(0) != "FIRING: EtcdMemberUnreachable" {
		t.Errorf("subject = %q", subj(0))
	}
	if s := subj(1); !strings.Contains(s, "EtcdMemberUnreachable") || !strings.Contains(s, "member=etcd-1") {
		t.Errorf("fallback subject = %q", s)
	}
}

func TestSMTPErrorsClassified(t *testing.T) {
	be := &backend{fail: &smtp.SMTPError{Code: 451, Message: "try later"}}
	n := newNotifier(t, startSMTP(t, be), nil)
	if retry, err := n.Notify(context.Background(), alerts()...); err == nil || !retry {
		t.Errorf("451: retry=%v err=%v, want retried", retry, err)
	}
	be.fail = &smtp.SMTPError{Code: 554, Message: "rejected"}
	if retry, err := n.Notify(context.Background(), alerts()...); err == nil || retry {
		t.Errorf("554: retry=%v err=%v, want permanent", retry, err)
	}
	wrong := newNotifier(t, startSMTP(t, &backend{}), func(c *email.Config) { c.Username = "intruder" })
	retry, err := wrong.Notify(context.Background(), alerts()...)
	if err == nil || retry {
		t.Errorf("bad auth: retry=%v err=%v, want permanent", retry, err)
	}
	if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("password in error: %v", err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	if retry, err := newNotifier(t, dead, nil).Notify(context.Background(), alerts()...); err == nil || !retry {
		t.Errorf("dead server: retry=%v err=%v, want retried", retry, err)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := email.New(email.Config{Smarthost: "nohost", TLS: "sometimes", From: "not an address", Username: "u"},
		email.Options{LookupEnv: func(string) (string, bool) { return "", false }})
	for _, want := range []string{"smarthost", "tls:", "from:", "to:", "password"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}
