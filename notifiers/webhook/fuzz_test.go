package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// FuzzPayload renders alerts with arbitrary labels, annotations, values
// and times in both formats and posts them to a real receiver. Every
// payload must be sent, be valid JSON, verify under its signature, and
// carry the labels, annotations and value as they were (text that is not
// UTF-8 aside, which JSON cannot carry).
func FuzzPayload(f *testing.F) {
	f.Add("EtcdMemberUnreachable", "member", "etcd-1", "summary", "etcd-1 is down", 0.0, int64(0), uint8(1), false)
	f.Add("AgentSilent", "host.mac", "00:00:5e:00:53:01", "summary", "no heartbeat", math.NaN(), int64(3600), uint8(1), false)
	f.Add("Quorum", "cluster", "prod", "description", "<b>&amp;</b>\u2028\"", math.Inf(1), int64(-86400), uint8(2), true)
	f.Add("x", "", "", "", "", math.Copysign(0, -1), int64(1), uint8(0), true)
	f.Add("r", "k", "\xff\xfe", "a", "\x00", 1e308, int64(7), uint8(2), false)

	var bodies = make(chan []byte, 1)
	var sigs = make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- b
		sigs <- r.Header.Get(webhook.SignatureHeader)
		w.WriteHeader(http.StatusNoContent)
	}))
	f.Cleanup(srv.Close)
	notifier := func(format string) *webhook.Notifier {
		n, err := webhook.New(webhook.Config{URL: srv.URL, Format: format, SecretEnv: "KEY"},
			webhook.Options{Name: "fuzz", LookupEnv: env("KEY", "k3y"), ExternalURL: "https://vigil.example.com/"})
		if err != nil {
			f.Fatal(err)
		}
		return n
	}
	vigil, am := notifier(webhook.FormatVigil), notifier(webhook.FormatAlertmanager)

	f.Fuzz(func(t *testing.T, rule, name, value, annName, annValue string, v float64, offset int64, state uint8, alertmanager bool) {
		at := t0.Add(time.Duration(offset%(1<<35)) * time.Second) // within a thousand years of 2026
		a := model.Alert{
			Fingerprint: model.Fingerprint(rule, model.Labels{name: value}), Rule: rule, Severity: "high",
			State:  []model.AlertState{model.StatePending, model.StateFiring, model.StateResolved}[state%3],
			Labels: model.Labels{"alertname": rule, name: value}, Annotations: map[string]string{annName: annValue},
			Segment: model.Labels{name: value}, Value: v, ActiveAt: at, FiredAt: at,
			Segments: []model.SegmentValue{{Labels: model.Labels{name: value}, Value: v}},
		}
		if a.State == model.StateResolved {
			a.ResolvedAt = at.Add(time.Minute)
		}
		n := vigil
		if alertmanager {
			n = am
		}
		if _, err := n.Notify(context.Background(), a); err != nil {
			t.Fatalf("alert %+v not sent: %v", a, err)
		}
		body, sig := <-bodies, <-sigs
		if !json.Valid(body) {
			t.Fatalf("payload is not JSON: %q", body)
		}
		if !webhook.Verify("k3y", body, sig) {
			t.Fatalf("signature %q does not verify", sig)
		}
		text := utf8.ValidString(rule) && utf8.ValidString(name) && utf8.ValidString(value) && utf8.ValidString(annName) && utf8.ValidString(annValue)
		if alertmanager {
			var p webhook.AlertmanagerPayload
			if err := json.Unmarshal(body, &p); err != nil || len(p.Alerts) != 1 {
				t.Fatalf("alertmanager payload %s: %v", body, err)
			}
			if text && (!maps.Equal(p.Alerts[0].Labels, a.Labels) || p.Alerts[0].Annotations[annName] != annValue) {
				t.Fatalf("labels or annotations changed on the way: %s", body)
			}
			return
		}
		var p webhook.Payload
		if err := json.Unmarshal(body, &p); err != nil || len(p.Alerts) != 1 || len(p.Alerts[0].Segments) != 1 {
			t.Fatalf("payload %s: %v", body, err)
		}
		got := p.Alerts[0]
		if text && (!maps.Equal(got.Labels, a.Labels) || got.Annotations[annName] != annValue || got.Rule != rule) {
			t.Fatalf("labels, annotations or rule changed on the way: %s", body)
		}
		want := v
		if math.IsInf(v, 0) {
			want = math.NaN() // sent as null, like no data
		}
		for _, gv := range []float64{got.Value, got.Segments[0].Value} {
			if gv != want && !(math.IsNaN(gv) && math.IsNaN(want)) {
				t.Fatalf("value %v arrived as %v: %s", v, gv, body)
			}
		}
		if got.Status != a.State.String() || !got.ActiveAt.Equal(at) {
			t.Fatalf("status or time changed on the way: %s", body)
		}
	})
}
