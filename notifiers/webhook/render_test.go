package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// Render, built without any secret, is the body a receiver gets, in both
// formats, indented; the secrets are neither needed nor shown.
func TestRenderIsWhatIsPosted(t *testing.T) {
	for _, format := range []string{webhook.FormatVigil, webhook.FormatAlertmanager} {
		t.Run(format, func(t *testing.T) {
			srv, got := serve(t, 200)
			cfg := webhook.Config{URLEnv: "URL", Format: format, SecretEnv: "KEY",
				HeadersEnv: map[string]string{"Authorization": "AUTH"}}
			real, err := webhook.New(cfg, webhook.Options{Name: "ops", LookupEnv: env("URL", srv.URL+"/hook?token=url-secret", "KEY", "signing-key", "AUTH", "Bearer t0k")})
			if err != nil {
				t.Fatal(err)
			}
			g := msg.Group{Key: msg.GroupKey("ops", model.Labels{"alertname": "EtcdMemberUnreachable"}), Labels: model.Labels{"alertname": "EtcdMemberUnreachable"}}
			if _, _, err := real.NotifyGroup(context.Background(), g, testAlerts()...); err != nil {
				t.Fatal(err)
			}
			r, err := webhook.New(cfg, webhook.Options{Name: "ops", LookupEnv: env(), RenderOnly: true})
			if err != nil {
				t.Fatalf("render-only without secrets: %v", err)
			}
			if _, err := r.Notify(context.Background(), testAlerts()...); err == nil || len(*got) != 1 {
				t.Errorf("a render-only notifier posted (err %v)", err)
			}
			body, err := r.Render(g, testAlerts()...)
			if err != nil {
				t.Fatal(err)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, body); err != nil {
				t.Fatal(err)
			}
			if compact.String() != string((*got)[0].body) {
				t.Errorf("rendered:\n%s\nposted:\n%s", compact.String(), (*got)[0].body)
			}
			for _, s := range []string{"url-secret", "signing-key", "t0k"} {
				if strings.Contains(string(body), s) {
					t.Errorf("the rendering holds %q", s)
				}
			}
		})
	}
}
