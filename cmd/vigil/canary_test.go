package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// The canary test: every kind of secret Vigil can be configured with gets
// a distinct value, every channel and collector is made to fail in the
// ways that have leaked secrets (receivers echoing the whole request, an
// SMTP server quoting the AUTH PLAIN blob, a Slack API echoing the token,
// scrape targets echoing their Authorization header, a check printing
// secrets on stderr, a config with a password in a scrape URL), and then
// every log line, API answer, the page, /metrics, the state file and
// every message sent is searched for each value in every form it travels
// in. None may appear.

// canaries are the secret values, by kind.
var canaries = map[string]string{
	"slack bot token":          "xoxb-canary-slack-bot-token-4242",
	"slack webhook path token": "canary-slack-webhook-token-4242",
	"smtp password":            "canary-smtp-password-4242",
	"webhook user info":        "canary-webhook-userpass-4242",
	"webhook path token":       "canary-webhook-path-token-4242",
	"webhook header":           "canary-webhook-header-4242",
	"hmac key":                 "canary-hmac-key-4242",
	"scrape password":          "???canary-scrape-password-4242", // base64 of "vigil:???" has a "/": the standard and URL-safe forms differ
	"scrape bearer token":      "canary-scrape-bearer-4242",
	"scrape query token":       "canary-scrape-query-4242",
	"vigil api token":          "canary-vigil-api-token-4242",
	"url user info (refused)":  "canary-refused-userinfo-4242",
}

// forms lists v as it may travel: raw, base64 (padded or not, standard or
// URL alphabet) and URL-escaped.
func forms(v string) []string {
	b := []byte(v)
	return []string{v, base64.StdEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b),
		base64.URLEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(v), url.PathEscape(v)}
}

// echo is a receiver that answers status with the whole request (request
// line, headers, body) and keeps the bodies it was sent: the messages.
type echo struct {
	mu       sync.Mutex
	requests int
	bodies   []string
	status   int
	// answer, when set, writes the answer instead (the Slack API).
	answer func(w http.ResponseWriter, dump []byte, r *http.Request)
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dump, _ := httputil.DumpRequest(r, true)
	body, _ := io.ReadAll(r.Body)
	if len(body) == 0 { // DumpRequest consumed it
		if _, b, ok := strings.Cut(string(dump), "\r\n\r\n"); ok {
			body = []byte(b)
		}
	}
	e.mu.Lock()
	e.requests++
	e.bodies = append(e.bodies, string(body))
	e.mu.Unlock()
	if e.answer != nil {
		e.answer(w, dump, r)
		return
	}
	w.WriteHeader(e.status)
	w.Write(dump)
}

func (e *echo) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests
}

func (e *echo) messages() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.bodies, "\n")
}

func serveEcho(t *testing.T, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// quotingSMTP refuses every AUTH, quoting the AUTH PLAIN blob it got, as
// some servers do in their 535 answer.
type quotingSMTP struct {
	mu    sync.Mutex
	auths int
	mail  []string
}

func (b *quotingSMTP) NewSession(*smtp.Conn) (smtp.Session, error) { return &quotingSession{b: b}, nil }

type quotingSession struct{ b *quotingSMTP }

func (s *quotingSession) AuthMechanisms() []string             { return []string{sasl.Plain} }
func (s *quotingSession) Auth(string) (sasl.Server, error)     { return quotingSASL{s.b}, nil }
func (s *quotingSession) Mail(string, *smtp.MailOptions) error { return smtp.ErrAuthRequired }
func (s *quotingSession) Rcpt(string, *smtp.RcptOptions) error { return smtp.ErrAuthRequired }
func (s *quotingSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.b.mu.Lock()
	s.b.mail = append(s.b.mail, string(b))
	s.b.mu.Unlock()
	return nil
}
func (s *quotingSession) Reset()        {}
func (s *quotingSession) Logout() error { return nil }

type quotingSASL struct{ b *quotingSMTP }

func (q quotingSASL) Next(resp []byte) ([]byte, bool, error) {
	q.b.mu.Lock()
	q.b.auths++
	q.b.mu.Unlock()
	return nil, false, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "authentication failed for AUTH PLAIN " + base64.StdEncoding.EncodeToString(resp)}
}

func (b *quotingSMTP) counts() (int, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.auths, strings.Join(b.mail, "\n")
}

func startQuotingSMTP(t *testing.T, b *quotingSMTP) string {
	srv := smtp.NewServer(b)
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

const canaryRules = `groups:
  - name: canary
    interval: 10s
    rules:
      - name: CollectionFailing
        severity: critical
        segment_by: [collector, target]
        condition: max("vigil.collector.up") == 0
        for: 0s
        annotations:
          summary: '{{ label "collector" }} cannot collect {{ label "target" }}'
        notify: [slackbot, slackhook, mail, hook]
`

func TestCanaryNoSecretAnywhere(t *testing.T) {
	dir := t.TempDir()
	secretFile := func(name, v string) string {
		p := filepath.Join(dir, "secrets", name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// Receivers answer 500 (the Slack webhook) or ok:false (the Slack
	// API) with the whole request in the answer. The webhook is a relay
	// that also quotes its own settings, among them a secret it shares
	// with another channel (the SMTP password): only the one place that
	// knows every secret can hide that.
	hook := &echo{answer: func(w http.ResponseWriter, dump []byte, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "relay smtp_password=%s\n%s", canaries["smtp password"], dump)
	}}
	slackHook := &echo{status: http.StatusInternalServerError}
	slackAPI := &echo{answer: func(w http.ResponseWriter, dump []byte, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth: " + string(dump)})
	}}
	// Scrape targets refuse and echo the Authorization header and URL.
	scrapeSeen := map[string]string{}
	var scrapeMu sync.Mutex
	scrape := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scrapeMu.Lock()
		scrapeSeen[r.URL.Path] = r.Header.Get("Authorization")
		scrapeMu.Unlock()
		http.Error(w, "denied "+r.URL.String()+" Authorization: "+r.Header.Get("Authorization"), http.StatusUnauthorized)
	})
	smtpSrv := &quotingSMTP{}
	smtpAddr := startQuotingSMTP(t, smtpSrv)
	hookURL, _ := url.Parse(serveEcho(t, hook))
	hookURL.User = url.UserPassword("hookuser", canaries["webhook user info"])
	hookURL.Path = "/hooks/" + canaries["webhook path token"]
	slackHookURL := serveEcho(t, slackHook) + "/services/T0CANARY/B0CANARY/" + canaries["slack webhook path token"]
	scrapeURL := serveEcho(t, scrape)

	files := map[string]string{
		"slack-token": canaries["slack bot token"], "slack-url": slackHookURL, "smtp": canaries["smtp password"],
		"hook-url": hookURL.String(), "hook-header": canaries["webhook header"], "hmac": canaries["hmac key"],
		"scrape-pw": canaries["scrape password"], "scrape-token": canaries["scrape bearer token"],
		"api-token": canaries["vigil api token"],
	}
	path := map[string]string{}
	for name, v := range files {
		path[name] = secretFile(name, v)
	}
	// The check prints secrets from the files it can read, raw and base64.
	leak := fmt.Sprintf(`printf 'token=%%s pw=%%s hdr=%%s b64=%%s\n' "$(cat %s)" "$(cat %s)" "$(cat %s)" "$(base64 < %s)" >&2; exit 3`,
		path["slack-token"], path["smtp"], path["hook-header"], path["scrape-pw"])

	cfg := `rule_dirs: [rules]
http:
  address: 127.0.0.1:0
  bearer_token_file: ` + path["api-token"] + `
state:
  path: state.json
reload:
  notify: [hook]
  debounce: 20ms
collectors:
  - name: scrape-basic
    type: prometheus
    interval: 10s
    timeout: 2s
    prometheus:
      basic_auth: {username: vigil, password_file: ` + path["scrape-pw"] + `}
    targets:
      - address: "` + scrapeURL + `/basic?module=x&access_token=` + canaries["scrape query token"] + `"
  - name: scrape-bearer
    type: prometheus
    interval: 10s
    timeout: 2s
    prometheus:
      authorization: {credentials_file: ` + path["scrape-token"] + `}
    targets:
      - address: "` + scrapeURL + `/bearer"
  - name: check
    type: exec
    interval: 10s
    timeout: 2s
    targets:
      - name: leaky-check
        shell: true
        command:
          - |-
            ` + leak + `
notifiers:
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
  delivery_timeout: 1s
  backoff_base: 10ms
  backoff_max: 50ms
  channels:
    - name: slackbot
      slack: {token_file: ` + path["slack-token"] + `, channel: "#ops"}
    - name: slackhook
      slack: {webhook_url_file: ` + path["slack-url"] + `}
    - name: mail
      email:
        smarthost: ` + smtpAddr + `
        tls: none
        username: vigil
        password_file: ` + path["smtp"] + `
        from: vigil@example.com
        to: [oncall@example.com]
        timeout: 5s
    - name: hook
      webhook:
        url_file: ` + path["hook-url"] + `
        headers_file: {X-Api-Key: ` + path["hook-header"] + `}
        secret_file: ` + path["hmac"] + `
`
	h := harnessIn(t, dir, webOptions{})
	h.write("rules/canary.yaml", canaryRules)
	h.write("vigil.yaml", cfg)
	h.console, h.logs = &syncBuf{}, &syncBuf{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(daemonOptions{ConfigPath: h.cfgPath, Now: h.now, Console: h.console, Listener: ln,
		Logger:     slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		NoSchedule: true, DeliveryBound: 5 * time.Second, LookupEnv: func(string) (string, bool) { return "", false },
		SlackAPIURL: serveEcho(t, slackAPI) + "/api/"})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	h.d = d
	t.Cleanup(func() { d.Stop() })
	token := canaries["vigil api token"]

	h.tick(1) // every collector fails; the alerts fire
	h.tick(1) // group_wait has passed: every channel is sent to, and fails
	h.waitFor("every channel to fail", func() bool {
		failed := map[string]bool{}
		for _, g := range d.disp.Status() {
			if g.Failures > 0 {
				failed[g.Channel] = true
			}
		}
		return len(failed) == 4
	})

	// A config with a password in a scrape URL is refused; the refusal is
	// on the page, in the API and in the VigilReloadFailed message.
	h.write("vigil.yaml", strings.Replace(cfg, scrapeURL+"/bearer", strings.Replace(scrapeURL, "http://", "http://u:"+canaries["url user info (refused)"]+"@", 1)+"/bearer", 1))
	if err := d.Reload("test"); err == nil || !strings.Contains(err.Error(), "the URL holds a user name or password") {
		t.Fatalf("reload with a password in a scrape URL: %v", err)
	}
	reloadCode, reloadAnswer := request(t, "POST", "http://"+d.Addr()+"/-/reload", token, "")
	if reloadCode != http.StatusUnprocessableEntity {
		t.Errorf("POST /-/reload of the refused config: %d %s", reloadCode, reloadAnswer)
	}
	n := hook.count()
	h.tick(1)
	h.waitFor("the VigilReloadFailed message", func() bool { return hook.count() > n })
	h.waitFor("deliveries to finish", func() bool {
		for _, g := range d.disp.Status() {
			if g.InFlight {
				return false
			}
		}
		return true
	})

	// Everything failed the way it was meant to: the secrets were in play.
	auths, mail := smtpSrv.counts()
	if auths == 0 || slackAPI.count() == 0 || slackHook.count() == 0 || hook.count() == 0 {
		t.Fatalf("not every channel was tried: smtp auths %d, slack api %d, slack hook %d, webhook %d",
			auths, slackAPI.count(), slackHook.count(), hook.count())
	}
	scrapeMu.Lock()
	wantBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("vigil:"+canaries["scrape password"]))
	if scrapeSeen["/basic"] != wantBasic || scrapeSeen["/bearer"] != "Bearer "+canaries["scrape bearer token"] {
		t.Errorf("scrape credentials not sent: %q", scrapeSeen)
	}
	scrapeMu.Unlock()
	// A collector's error, as any caller of Collect gets it.
	var collectErrs []string
	for _, c := range d.collectors() {
		if _, err := c.Collect(context.Background(), h.now()); err != nil {
			collectErrs = append(collectErrs, err.Error())
		}
	}
	if len(collectErrs) != 3 {
		t.Errorf("%d collectors failed, want 3: %q", len(collectErrs), collectErrs)
	}
	// A careless log line somewhere in the daemon.
	d.log.Warn("careless", "header", "Authorization: Bearer "+token, "err", fmt.Errorf("smtp: %s", canaries["smtp password"]))
	logs := h.logs.String()
	contains(t, "log", logs, "notification failed", `channel=hook`, `channel=mail`, `channel=slackbot`, `channel=slackhook`,
		`target=leaky-check`, `collector=scrape-basic`, "<redacted>")

	// Everything a person or a program can read.
	out := map[string]string{"log": logs, "console": h.console.String(), "collection errors": strings.Join(collectErrs, "\n"),
		"webhook messages": hook.messages(), "slack webhook messages": slackHook.messages(), "mail": mail}
	for _, p := range []string{"/api/v1/alerts", "/api/v1/groups", "/api/v1/rules", "/api/v1/status", "/api/v1/silences", "/"} {
		code, body := h.get(p, token)
		if code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
		out["GET "+p] = body
	}
	_, out["GET /metrics"] = h.get("/metrics", "")
	out["POST /-/reload"] = reloadAnswer
	// Redaction hides secrets, not the file:line of a config error.
	contains(t, "/api/v1/status", out["GET /api/v1/status"], "the URL holds a user name or password", h.cfgPath+":")
	contains(t, "/api/v1/alerts", out["GET /api/v1/alerts"], `"target": "`+scrapeURL+`/basic?access_token=\u003credacted\u003e\u0026module=x"`)
	// A failing receiver's answer is shown per group, with what it echoed
	// of the secrets redacted.
	contains(t, "/api/v1/groups", out["GET /api/v1/groups"], `"channel": "hook"`, `"failures": `, `\u003credacted\u003e`)
	status, _ := json.Marshal(d.disp.Status())
	out["dispatcher status"] = string(status)
	// The Slack API's form carries the token by design; its message is
	// the text and attachments.
	for _, b := range strings.Split(slackAPI.messages(), "\n") {
		if q, err := url.ParseQuery(b); err == nil {
			out["slack api messages"] += q.Get("text") + q.Get("attachments") + q.Get("blocks")
		}
	}
	d.Stop() // the final save
	state, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	out["state file"] = string(state)

	secrets := map[string]string{}
	for kind, v := range canaries {
		secrets[kind] = v
	}
	// Compound values whose base64 travels: Basic auth and AUTH PLAIN.
	secrets["webhook basic auth"] = "hookuser:" + canaries["webhook user info"]
	secrets["scrape basic auth"] = "vigil:" + canaries["scrape password"]
	secrets["smtp auth plain"] = "\x00vigil\x00" + canaries["smtp password"]
	secrets["slack webhook url"] = slackHookURL
	secrets["webhook url"] = hookURL.String()
	for where, text := range out {
		for kind, v := range secrets {
			for _, f := range forms(v) {
				if strings.Contains(text, f) {
					i := strings.Index(text, f)
					t.Errorf("%s (%q) found in %s: ...%s...", kind, f, where, text[max(0, i-80):min(len(text), i+len(f)+40)])
				}
			}
		}
	}
}
