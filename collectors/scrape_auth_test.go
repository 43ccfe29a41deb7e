package collectors_test

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/internal/testkit"
)

// authTarget serves a page only to a request carrying want as its
// Authorization header; any other gets 401 with that header echoed, as a
// careless proxy would.
func authTarget(t *testing.T, want string, tlsOn bool) *httptest.Server {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != want {
			http.Error(w, "denied: Authorization: "+got, http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "app_up 1")
	})
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func scrapeUp(t *testing.T, src string, opts ...collectors.Option) (float64, error) {
	t.Helper()
	cs, err := collectors.Build(load(t, src), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].(*collectors.TargetCollector).Close()
	samples, err := cs[0].Collect(context.Background(), time.Unix(0, 0))
	v, _ := testkit.Value(samples, "app_up")
	return v, err
}

// Each kind of scrape credential reaches the target: basic auth with a
// password file, a bearer token from a file and from the environment
// (*_ref), all over TLS verified against a CA file.
func TestScrapeAuth(t *testing.T) {
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("vigil:pw-from-file"))
	srv := authTarget(t, basic, true)
	ca := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	pw := writeFile(t, "pw", "pw-from-file")
	up, err := scrapeUp(t, `collectors:
  - name: app
    type: prometheus
    prometheus:
      basic_auth: {username: vigil, password_file: `+pw+`}
      tls_config: {ca_file: `+ca+`}
    targets: [{address: "`+srv.URL+`/metrics"}]`)
	if up != 1 || err != nil {
		t.Errorf("basic auth over TLS: app_up %v, err %v", up, err)
	}

	bearer := authTarget(t, "Bearer tok-from-env", false)
	up, err = scrapeUp(t, `collectors:
  - name: app
    type: prometheus
    prometheus: {authorization: {credentials_ref: SCRAPE_TOKEN}}
    targets: [{address: "`+bearer.URL+`/metrics"}]`, collectors.WithLookupEnv(testkit.Env("SCRAPE_TOKEN", "tok-from-env")))
	if up != 1 || err != nil {
		t.Errorf("bearer token from the environment: app_up %v, err %v", up, err)
	}

	fromFile := authTarget(t, "Bearer tok-from-file", false)
	tok := writeFile(t, "tok", "tok-from-file")
	up, err = scrapeUp(t, `collectors:
  - name: app
    type: prometheus
    prometheus: {authorization: {credentials_file: `+tok+`}}
    targets: [{address: "`+fromFile.URL+`/metrics"}]`)
	if up != 1 || err != nil {
		t.Errorf("bearer token from a file: app_up %v, err %v", up, err)
	}
}

// A target that refuses the credential and echoes it back: the error the
// collector logs and returns, and the target label, carry no secret in
// any form, and the redactor knows the password, its Basic form and the
// URL's query token.
func TestScrapeErrorsCarryNoSecret(t *testing.T) {
	srv := authTarget(t, "Bearer something-else", false)
	pw := writeFile(t, "pw", "canary-scrape-pw")
	var logs strings.Builder
	r := redact.New()
	cs, err := collectors.Build(load(t, `collectors:
  - name: app
    type: prometheus
    prometheus: {basic_auth: {username: vigil, password_file: `+pw+`}}
    targets: [{address: "`+srv.URL+`/metrics?module=x&access_token=canary-query-token"}]`),
		slog.New(slog.NewTextHandler(&logs, nil)), collectors.WithRedactor(r))
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].(*collectors.TargetCollector).Close()
	samples, err := cs[0].Collect(context.Background(), time.Unix(0, 0))
	if err == nil {
		t.Fatal("the scrape succeeded")
	}
	out := err.Error() + logs.String()
	for _, s := range samples {
		out += s.Labels.String()
	}
	for _, secret := range []string{"canary-scrape-pw", "canary-query-token", base64.StdEncoding.EncodeToString([]byte("vigil:canary-scrape-pw"))} {
		if strings.Contains(out, secret) {
			t.Errorf("%q in the error, log or labels:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, `target="`+srv.URL+`/metrics?access_token=<redacted>&module=x"`) {
		t.Errorf("target label not the URL without its token:\n%s", out)
	}
	echo := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("vigil:canary-scrape-pw")) + " token canary-query-token"
	if got := r.String(echo); strings.Contains(got, "canary") || strings.Count(got, redact.Mask) != 2 {
		t.Errorf("the redactor did not learn the credentials: %s", got)
	}

	// The client reads the file at every request: a rotated password is
	// sent at once, and learnt by the redactor at the first failure.
	os.WriteFile(pw, []byte("rotated-scrape-pw\n"), 0o600)
	cs[0].Collect(context.Background(), time.Unix(10, 0))
	if got := r.String("echo rotated-scrape-pw"); got != "echo "+redact.Mask {
		t.Errorf("the rotated password was not learnt: %s", got)
	}
}

// Secrets are never written in the config, and a URL never carries a
// user name or password: each is refused with an error that says where
// the secret goes instead, and never quotes it.
func TestScrapeConfigRefusesInlineSecrets(t *testing.T) {
	for _, tc := range []struct{ name, section, address, want string }{
		{"basic_auth password", `{basic_auth: {username: u, password: canary-inline}}`, "http://h/metrics",
			"prometheus.basic_auth.password: a secret written in the config; use basic_auth.password_file, or basic_auth.password_ref"},
		{"bearer_token", `{bearer_token: canary-inline}`, "http://h/metrics", "prometheus.authorization.credentials: a secret written in the config"},
		{"oauth2 client_secret", `{oauth2: {client_id: c, client_secret: canary-inline, token_url: "http://h/token"}}`, "http://h/metrics",
			"prometheus.oauth2.client_secret: a secret written in the config"},
		{"header secret", `{http_headers: {X-Token: {secrets: [canary-inline]}}}`, "http://h/metrics", "prometheus.http_headers.X-Token.secrets: secrets written in the config"},
		{"user info in the address", `{}`, "http://user:canary-inline@h/metrics",
			"target 0: address http://h/metrics: the URL holds a user name or password; set prometheus.basic_auth"},
		{"user info in the proxy", `{proxy_url: "http://u:canary-inline@proxy:3128"}`, "http://h/metrics",
			"prometheus.proxy_url: the URL holds a user name or password; the proxy's credentials go in proxy_connect_header files"},
		{"user info in the token endpoint", `{oauth2: {client_id: c, client_secret_file: /dev/null, token_url: "http://u:canary-inline@h/token"}}`, "http://h/metrics",
			"prometheus.oauth2.token_url: the URL holds a user name or password; use client_id and client_secret_file"},
		{"user info in the token endpoint's proxy", `{oauth2: {client_id: c, client_secret_file: /dev/null, token_url: "http://h/token", proxy_url: "http://u:canary-inline@proxy:3128"}}`, "http://h/metrics",
			"prometheus.oauth2.proxy_url: the URL holds a user name or password"},
		{"missing password file", `{basic_auth: {username: u, password_file: /nonexistent/pw}}`, "http://h/metrics", "prometheus.basic_auth.password_file: open /nonexistent/pw"},
		{"unset environment variable", `{authorization: {credentials_ref: UNSET_VAR}}`, "http://h/metrics", "prometheus.authorization.credentials_ref: environment variable UNSET_VAR is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := collectors.Build(load(t, `collectors:
  - name: app
    type: prometheus
    prometheus: `+tc.section+`
    targets: [{address: "`+tc.address+`"}]`), nil, collectors.WithLookupEnv(testkit.Env()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "canary-inline") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

// An address with a password is refused for every type, and no error
// about it, the sources' own included, quotes the password.
func TestAddressPasswordNeverQuoted(t *testing.T) {
	_, err := collectors.Build(load(t, `collectors:
  - {name: e, type: etcd, targets: [{address: "ftp://u:canary-addr-pw@h:2379"}]}
  - {name: p, type: probe, targets: [{address: "https://u:canary-addr-pw@h/x?"}]}
  - {name: m, type: prometheus, targets: [{address: "ftp://u:canary-addr-pw@h/m"}]}`), nil)
	if err == nil {
		t.Fatal("built")
	}
	if strings.Contains(err.Error(), "canary-addr-pw") {
		t.Errorf("the password is quoted:\n%v", err)
	}
	for _, want := range []string{`collector "e": target 0 (ftp://h:2379): address: the URL holds a user name or password`,
		`collector "p": target 0 (https://h/x?): address: the URL holds a user name or password`,
		`collector "m": target 0: address ftp://h/m: want http(s)://host[:port]/path`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// OAuth2 client credentials: the token endpoint gets the client secret
// from its file, and the target the token. A token endpoint that refuses
// and echoes the form it got (client_secret included) shows up in the
// collection error with the secret masked.
func TestScrapeOAuth2(t *testing.T) {
	var refuse atomic.Bool
	sso := serveFunc(t, func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, secret, _ := r.BasicAuth()
		if secret == "" {
			secret = r.Form.Get("client_secret")
		}
		if refuse.Load() || secret != "canary-oauth-secret" {
			http.Error(w, "bad client: "+r.Form.Encode()+" secret="+secret, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"issued-token","token_type":"Bearer","expires_in":3600}`)
	})
	target := authTarget(t, "Bearer issued-token", false)
	secretFile := writeFile(t, "oauth", "canary-oauth-secret")
	src := `collectors:
  - name: app
    type: prometheus
    prometheus:
      oauth2: {client_id: vigil, client_secret_file: ` + secretFile + `, token_url: "` + sso + `/token"}
    targets: [{address: "` + target.URL + `/metrics"}]`
	if up, err := scrapeUp(t, src); up != 1 || err != nil {
		t.Fatalf("oauth2: app_up %v, err %v", up, err)
	}
	refuse.Store(true)
	r := redact.New()
	cs, err := collectors.Build(load(t, src), nil, collectors.WithRedactor(r))
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].(*collectors.TargetCollector).Close()
	_, err = cs[0].Collect(context.Background(), time.Unix(0, 0))
	if err == nil || strings.Contains(err.Error(), "canary-oauth-secret") || !strings.Contains(err.Error(), redact.Mask) {
		t.Errorf("collection error: %v", err)
	}
}

func serveFunc(t *testing.T, f http.HandlerFunc) string {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}
