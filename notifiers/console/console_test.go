package console_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/console"
)

// Render is exactly what Notify prints, the template's fallback included.
func TestRenderIsWhatIsPrinted(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 3, 0, 0, time.UTC)
	seg := model.Labels{"host": "a"}
	alerts := []model.Alert{{Fingerprint: "f", Rule: "Down", Severity: "high", State: model.StateFiring,
		Labels: model.Labels{"alertname": "Down", "host": "a"}, Segment: seg, FiredAt: t0,
		Annotations: map[string]string{"summary": "a is down"}}}
	for _, tmpl := range []string{"", "{{ .Title }} ({{ len .Firing }})", "{{ .Nope }}"} {
		var printed bytes.Buffer
		n, err := console.New(console.Config{Template: tmpl}, console.Options{Writer: &printed})
		if err != nil {
			t.Fatal(err)
		}
		_, nerr := n.Notify(context.Background(), alerts...)
		body, rerr := n.Render(alerts...)
		if (nerr == nil) != (rerr == nil) {
			t.Errorf("template %q: Notify err %v, Render err %v", tmpl, nerr, rerr)
		}
		if printed.String() != string(body) || len(body) == 0 || body[len(body)-1] != '\n' {
			t.Errorf("template %q: printed %q, rendered %q", tmpl, printed.String(), body)
		}
	}
}
