package alertmanager_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
)

// TestTLSAndBasicAuth: an Alertmanager served over TLS with basic auth,
// as its --web.config.file sets them up, takes alerts from a channel whose
// http_config trusts its CA and reads the password from a file; with a
// wrong password or without the CA the post fails, and the error names
// neither password. A 401 is not retried (a 4xx never is, as in
// Alertmanager's own notifiers): retrying cannot fix the credentials.
func TestTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testkit.TLSFiles(t, dir)
	const password = "s3cret-am-pass+/="
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := "tls_server_config:\n  cert_file: " + certFile + "\n  key_file: " + keyFile +
		"\nbasic_auth_users:\n  vigil: " + string(hash) + "\n"
	addr, _ := startAlertmanager(t, "127.0.0.1:0", web)
	base := "https://" + addr

	pwFile := filepath.Join(dir, "am-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpConfig := func(pwFile, ca string) promconfig.HTTPClientConfig {
		return promconfig.HTTPClientConfig{
			BasicAuth: &promconfig.BasicAuth{Username: "vigil", PasswordFile: pwFile},
			TLSConfig: promconfig.TLSConfig{CAFile: ca},
		}
	}
	now := time.Now().Truncate(time.Second)
	alert := alertAt("EtcdMemberUnreachable", 1, model.StateFiring, now, now)

	n, err := alertmanager.New(alertmanager.Config{URLs: []string{base}, Timeout: 5 * time.Second, HTTPConfig: httpConfig(pwFile, caFile)}, alertmanager.Options{Name: "am"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), alert); err != nil {
		t.Fatalf("Notify over TLS with basic auth: %v", err)
	}
	client := amClient(t, caFile, password)
	if got := alertsOf(t, client, base); len(got) != 1 || got[0].Labels["member"] != "etcd-1" {
		t.Fatalf("Alertmanager has %+v, want the alert of etcd-1", got)
	}

	// Wrong password: Alertmanager answers 401; not retried, and silent
	// about both passwords.
	const wrong = "not-the-pass-0451"
	badFile := filepath.Join(dir, "wrong-password")
	if err := os.WriteFile(badFile, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err = alertmanager.New(alertmanager.Config{URLs: []string{base}, Timeout: 5 * time.Second, HTTPConfig: httpConfig(badFile, caFile)}, alertmanager.Options{Name: "am"})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), alert)
	if err == nil || retry {
		t.Fatalf("wrong password: Notify = %v, %v; want an error not retried", retry, err)
	}
	if !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong password: error %q does not say 401", err)
	}
	for _, secret := range []string{password, wrong} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows a password: %v", err)
		}
	}

	// Not trusting the CA: the TLS handshake fails.
	n, err = alertmanager.New(alertmanager.Config{URLs: []string{base}, Timeout: 5 * time.Second, HTTPConfig: httpConfig(pwFile, "")}, alertmanager.Options{Name: "am"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), alert); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: Notify = %v, want a certificate error", err)
	}
}

// amClient reads Alertmanager's API as the test's own user.
func amClient(t *testing.T, caFile, password string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	b, err := os.ReadFile(caFile)
	if err != nil || !pool.AppendCertsFromPEM(b) {
		t.Fatalf("reading CA: %v", err)
	}
	return &http.Client{Transport: basicAuth{"vigil", password, &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

type basicAuth struct {
	user, pass string
	next       http.RoundTripper
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.pass)
	return b.next.RoundTrip(r)
}
