package promimport

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vigil-alerts/vigil/rules"
)

// FuzzRules converts arbitrary rule files: it never panics, and what it
// writes loads with Vigil's rule loader (unless it uses an aggregate
// Vigil does not have yet), so an import never hands over a broken file.
func FuzzRules(f *testing.F) {
	files, _ := filepath.Glob("testdata/rules/*.yml")
	more, _ := filepath.Glob("testdata/promtool/*/*.yml")
	for _, p := range append(files, more...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: 'sum by (a) (rate(x[5m])) > 1'\n        labels: {severity: warning, '\"x': \"\\x01\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		out, rep, err := Rules("f.yml", data, Options{})
		if err != nil {
			return
		}
		_ = rep.String()
		if out == nil {
			return
		}
		if _, err := rules.Parse([]string{"f.yml"}, map[string][]byte{"f.yml": out}); err != nil {
			for _, p := range pending {
				if p.use.Match(out) {
					return
				}
			}
			t.Fatalf("converted rules do not load: %v\ninput:\n%s\noutput:\n%s", err, data, out)
		}
	})
}

// FuzzTests converts arbitrary promtool test files against a fixed rule
// file: it never panics.
func FuzzTests(f *testing.F) {
	rulesYAML, err := os.ReadFile("testdata/promtool/threshold/alerts.yml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range []string{"testdata/promtool/threshold/alerts_test.yml", "testdata/promtool/aggregate/cluster_test.yml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	read := func(string) ([]byte, error) { return rulesYAML, nil }
	f.Fuzz(func(t *testing.T, data []byte) {
		_, rep, err := Tests("t_test.yml", data, read, Options{})
		if err == nil && rep != nil {
			_ = rep.String()
		}
	})
}
