package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The store section has defaults (5m slack, no series bound), takes
// values, and a mistake in it is reported at its line:col.
func TestStoreSection(t *testing.T) {
	dir := t.TempDir()
	load := func(src string) (*Config, error) {
		p := filepath.Join(dir, "v.yaml")
		if err := os.WriteFile(p, []byte("rule_dirs: [.]\n"+src), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(p, Options{LookupEnv: noEnv})
	}
	c, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Store; time.Duration(got.RetentionSlack) != 5*time.Minute || got.MaxSeries != 0 {
		t.Errorf("defaults: %+v", got)
	}
	c, err = load("store:\n  retention_slack: 30m\n  max_series: 50000\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Store; time.Duration(got.RetentionSlack) != 30*time.Minute || got.MaxSeries != 50000 {
		t.Errorf("set: %+v", got)
	}
	for _, tc := range []struct{ src, want string }{
		{"store:\n  max_series: -1\n", ":3:15: store.max_series: -1 is negative"},
		{"store:\n  retention_slack: -1m\n", ":3:"},
		{"store:\n  retention_slack: soon\n", ":3:"},
		{"store:\n  max_serie: 5\n", `:3:3: unknown field "max_serie"`},
	} {
		if _, err := load(tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}
