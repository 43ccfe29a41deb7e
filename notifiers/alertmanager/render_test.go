package alertmanager_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/alertmanager"
)

// Render, built without http_config's credentials, is the body posted to
// /api/v2/alerts, indented.
func TestRenderIsWhatIsPosted(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	t.Cleanup(srv.Close)
	t0 := time.Date(2026, 1, 1, 0, 8, 0, 0, time.UTC)
	alerts := []model.Alert{alertAt("EtcdMemberUnreachable", 1, model.StateFiring, t0, t0),
		alertAt("EtcdMemberUnreachable", 2, model.StateResolved, t0.Add(-time.Hour), t0)}
	cfg := alertmanager.Config{URLs: []string{srv.URL}}
	cfg.HTTPConfig.BearerTokenFile = "/nonexistent/token"
	real, err := alertmanager.New(alertmanager.Config{URLs: []string{srv.URL}}, alertmanager.Options{Name: "am", ExternalURL: "http://vigil:9099"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := real.Notify(context.Background(), alerts...); err != nil {
		t.Fatal(err)
	}
	r, err := alertmanager.New(cfg, alertmanager.Options{Name: "am", ExternalURL: "http://vigil:9099", RenderOnly: true})
	if err != nil {
		t.Fatalf("render-only without the token file: %v", err)
	}
	if _, err := r.Notify(context.Background(), alerts...); err == nil {
		t.Error("a render-only notifier posted")
	}
	body, err := r.Render(t0, alerts...)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	if compact.String() != string(got) {
		t.Errorf("rendered:\n%s\nposted:\n%s", compact.String(), got)
	}
}
