package email_test

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/notifiers/email"
)

// Render, built without the password, shows the headers and both parts
// of the mail a real SMTP server receives, decoded, and never the password.
func TestRenderIsWhatIsSent(t *testing.T) {
	be := &backend{}
	addr := startSMTP(t, be)
	n := newNotifier(t, addr, nil)
	if _, err := n.Notify(context.Background(), alerts()...); err != nil {
		t.Fatal(err)
	}
	got := be.mails()[0]
	m, err := netmail.ReadMessage(strings.NewReader(string(got.data)))
	if err != nil {
		t.Fatal(err)
	}
	_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	mr := multipart.NewReader(m.Body, params["boundary"])
	var want strings.Builder
	for _, h := range []string{"From", "To", "Cc", "Subject"} {
		want.WriteString(h + ": " + m.Header.Get(h) + "\n")
	}
	want.WriteString("Date: Thu, 01 Jan 2026 00:08:00 +0000\n")
	want.WriteString("X-Vigil-Env: " + m.Header.Get("X-Vigil-Env") + "\n\n")
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		// SMTP ends lines with CRLF on the wire; the rendering with LF.
		want.WriteString("--- " + ct + " ---\n" + strings.ReplaceAll(string(b), "\r\n", "\n"))
	}

	cfg := email.Config{Smarthost: addr, TLS: email.TLSNone, Username: "vigil", PasswordEnv: "PW",
		From: "vigil@example.com", To: []string{"oncall@example.com"}, Cc: []string{"lead@example.com"},
		Headers: map[string]string{"X-Vigil-Env": "test"}, Timeout: 5 * time.Second}
	r, err := email.New(cfg, email.Options{LookupEnv: func(string) (string, bool) { return "", false }, RenderOnly: true})
	if err != nil {
		t.Fatalf("render-only without the password: %v", err)
	}
	if _, err := r.Notify(context.Background(), alerts()...); err == nil || len(be.mails()) != 1 {
		t.Errorf("a render-only notifier sent mail (err %v)", err)
	}
	body, err := r.Render(time.Date(2026, 1, 1, 0, 8, 0, 0, time.UTC), alerts()...)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != want.String() {
		t.Errorf("rendered:\n%q\nreceived (decoded):\n%q", body, want.String())
	}
	if strings.Contains(string(body), "s3cret-pw") {
		t.Error("the rendering holds the password")
	}
}

// A Date or Message-ID set in headers: wins over the generated one, as it
// always did, in the mail sent and in the rendering (shown once); a
// subject beyond ASCII is rendered as the reader sees it, not encoded.
func TestConfiguredHeadersWin(t *testing.T) {
	be := &backend{}
	hdrs := map[string]string{"Date": "Mon, 02 Mar 2026 09:00:00 +0000", "Message-ID": "<fixed@example.com>"}
	n := newNotifier(t, startSMTP(t, be), func(c *email.Config) {
		c.Headers = hdrs
		c.Subject = "🔥 {{ .Title }}"
	})
	if _, err := n.Notify(context.Background(), alerts()...); err != nil {
		t.Fatal(err)
	}
	m, err := netmail.ReadMessage(strings.NewReader(string(be.mails()[0].data)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("Date") != hdrs["Date"] || m.Header.Get("Message-Id") != hdrs["Message-ID"] {
		t.Errorf("sent Date %q, Message-ID %q: want the configured ones", m.Header.Get("Date"), m.Header.Get("Message-Id"))
	}
	body, err := n.Render(time.Date(2026, 1, 1, 0, 8, 0, 0, time.UTC), alerts()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Subject: 🔥 [FIRING:2] EtcdMemberUnreachable", "Date: " + hdrs["Date"] + "\n", "Message-ID: " + hdrs["Message-ID"] + "\n"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("rendering lacks %q:\n%s", want, body)
		}
	}
	if c := strings.Count(string(body), "Date: "); c != 1 {
		t.Errorf("rendering shows Date %d times:\n%s", c, body)
	}
}
