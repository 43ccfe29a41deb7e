package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// Shared with other packages' tests.
var (
	env = testkit.Env
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testAlerts() []model.Alert {
	seg := model.Labels{"member": "etcd-1"}
	firing := model.Alert{Fingerprint: "f1", Rule: "EtcdMemberUnreachable", Severity: "high", State: model.StateFiring,
		Labels:      model.Labels{"alertname": "EtcdMemberUnreachable", "cluster": "prod", "member": "etcd-1"},
		Annotations: map[string]string{"summary": "down"}, Segment: seg, Value: 0, ActiveAt: t0, FiredAt: t0}
	resolved := firing
	resolved.Fingerprint, resolved.State, resolved.ResolvedAt = "f2", model.StateResolved, t0.Add(time.Minute)
	resolved.Labels = model.Labels{"alertname": "EtcdMemberUnreachable", "cluster": "prod", "member": "etcd-2"}
	resolved.Segment = model.Labels{"member": "etcd-2"}
	return []model.Alert{resolved, firing}
}

type capture struct {
	body   []byte
	header http.Header
}

func serve(t *testing.T, code int) (*httptest.Server, *[]capture) {
	var got []capture
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, capture{b, r.Header.Clone()})
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func TestSignedVigilPayload(t *testing.T) {
	srv, got := serve(t, http.StatusNoContent)
	n, err := webhook.New(webhook.Config{
		URLEnv: "URL", SecretEnv: "KEY", Headers: map[string]string{"X-Team": "ops"},
		HeadersEnv: map[string]string{"Authorization": "AUTH"},
	}, webhook.Options{Name: "ops-webhook", LookupEnv: env("URL", srv.URL, "KEY", "signing-key", "AUTH", "Bearer t0k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), testAlerts()...); err != nil {
		t.Fatal(err)
	}
	c := (*got)[0]
	if !webhook.Verify("signing-key", c.body, c.header.Get(webhook.SignatureHeader)) {
		t.Errorf("bad signature %q", c.header.Get(webhook.SignatureHeader))
	}
	if webhook.Verify("other-key", c.body, c.header.Get(webhook.SignatureHeader)) {
		t.Error("signature verifies under another key")
	}
	if c.header.Get("X-Team") != "ops" || c.header.Get("Authorization") != "Bearer t0k" || c.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", c.header)
	}
	var p webhook.Payload
	if err := json.Unmarshal(c.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != "1" || p.Receiver != "ops-webhook" || p.Status != "firing" || p.Rule != "EtcdMemberUnreachable" ||
		p.Title != "[FIRING:1, RESOLVED:1] EtcdMemberUnreachable: etcd-1 (resolved: etcd-2)" || p.CommonLabels["cluster"] != "prod" || p.CommonLabels["member"] != "" {
		t.Errorf("payload %+v", p)
	}
	if len(p.Alerts) != 2 || p.Alerts[0].Status != "firing" || p.Alerts[1].Status != "resolved" ||
		p.Alerts[1].ResolvedAt == nil || p.Alerts[0].ResolvedAt != nil || p.Alerts[0].Segment["member"] != "etcd-1" {
		t.Errorf("alerts %+v", p.Alerts)
	}
	// The documented field names, literally.
	for _, f := range []string{`"version":"1"`, `"group_key"`, `"common_labels"`, `"truncated_alerts":0`, `"fired_at"`, `"active_at"`} {
		if !strings.Contains(string(c.body), f) {
			t.Errorf("body lacks %s", f)
		}
	}
}

func TestAlertmanagerPayload(t *testing.T) {
	srv, got := serve(t, http.StatusOK)
	n, err := webhook.New(webhook.Config{URL: srv.URL, Format: webhook.FormatAlertmanager, MaxAlerts: 1},
		webhook.Options{Name: "am", ExternalURL: "https://vigil.example/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), testAlerts()...); err != nil {
		t.Fatal(err)
	}
	var p webhook.AlertmanagerPayload
	if err := json.Unmarshal((*got)[0].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Version != "4" || p.Receiver != "am" || p.Status != "firing" || p.TruncatedAlerts != 1 || len(p.Alerts) != 1 ||
		p.GroupLabels["alertname"] != "EtcdMemberUnreachable" || p.CommonAnnotations["summary"] != "down" {
		t.Errorf("payload %+v", p)
	}
	a := p.Alerts[0]
	if a.Status != "firing" || !a.StartsAt.Equal(t0) || a.GeneratorURL != "https://vigil.example/rules/EtcdMemberUnreachable" || a.Labels["member"] != "etcd-1" {
		t.Errorf("alert %+v", a)
	}
	for _, f := range []string{`"groupKey"`, `"truncatedAlerts"`, `"commonLabels"`, `"startsAt"`, `"endsAt"`, `"generatorURL"`} {
		if !strings.Contains(string((*got)[0].body), f) {
			t.Errorf("body lacks %s", f)
		}
	}
}

func TestStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		code       int
		retry      bool
		retryAfter time.Duration
	}{{500, true, 0}, {503, true, 0}, {429, true, 2 * time.Second}, {404, false, 0}, {401, false, 0}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.code == 429 {
				w.Header().Set("Retry-After", "2")
			}
			w.WriteHeader(tc.code)
		}))
		n, err := webhook.New(webhook.Config{URL: srv.URL}, webhook.Options{})
		if err != nil {
			t.Fatal(err)
		}
		retry, err := n.Notify(context.Background(), testAlerts()...)
		srv.Close()
		var ra interface{ RetryAfter() time.Duration }
		gotRA := time.Duration(0)
		if asRA(err, &ra) {
			gotRA = ra.RetryAfter()
		}
		if err == nil || retry != tc.retry || gotRA != tc.retryAfter {
			t.Errorf("%d: retry=%v retryAfter=%v err=%v", tc.code, retry, gotRA, err)
		}
	}
}

func TestSecretsStayOut(t *testing.T) {
	srv, _ := serve(t, 200)
	srv.Close() // dead
	secretURL := srv.URL + "/hook?token=url-secret-123"
	n, err := webhook.New(webhook.Config{URLEnv: "U", SecretEnv: "K"},
		webhook.Options{LookupEnv: env("U", secretURL, "K", "key-secret-456")})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), testAlerts()...)
	if !retry || err == nil {
		t.Fatalf("dead receiver: retry=%v err=%v", retry, err)
	}
	for _, s := range []string{err.Error(), n.String()} {
		if strings.Contains(s, "url-secret-123") || strings.Contains(s, "key-secret-456") {
			t.Errorf("secret leaked: %s", s)
		}
	}
	_, err = webhook.New(webhook.Config{URLEnv: "U"}, webhook.Options{LookupEnv: env("U", "::not-a-url-secret")})
	if err == nil || strings.Contains(err.Error(), "not-a-url-secret") {
		t.Errorf("bad URL error: %v", err)
	}
}

func asRA(err error, target any) bool { return err != nil && errors.As(err, target) }

// A header whose variable is unset is named in the error, with the variable.
func TestHeaderEnvUnset(t *testing.T) {
	_, err := webhook.New(webhook.Config{URL: "http://127.0.0.1:1/hook", HeadersEnv: map[string]string{"Authorization": "VIGIL_TEST_UNSET"}},
		webhook.Options{LookupEnv: env()})
	want := `header "Authorization": headers_env: environment variable VIGIL_TEST_UNSET is not set or empty`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want it to contain %s", err, want)
	}
}
