package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/rules"
)

// The demo's config is a valid config for the example rules, and its
// speed-up divides every duration the rules and groups have.
func TestDemoConfigAndScaling(t *testing.T) {
	rulesDir, _ := filepath.Abs("../../examples/rules")
	p := filepath.Join(t.TempDir(), "vigil.yaml")
	eps := []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"}
	os.WriteFile(p, []byte(demoConfig(eps, rulesDir, 10)), 0o644)
	cfg, err := config.Load(p, config.Options{})
	if err != nil {
		t.Fatalf("demo config:\n%v", err)
	}
	if _, err := cfg.LoadRules(); err != nil {
		t.Fatalf("example rules against the demo channels:\n%v", err)
	}

	rs, err := rules.Load(rulesDir)
	if err != nil {
		t.Fatal(err)
	}
	fast := scaleRules(rs, 10)
	for i, g := range fast.Groups {
		if want := max(time.Second, rs.Groups[i].Interval/10); g.Interval != want {
			t.Errorf("group %s interval %v, want %v", g.Name, g.Interval, want)
		}
		for j, r := range g.Rules {
			orig := rs.Groups[i].Rules[j]
			if r.For != orig.For/10 || r.Window != orig.Window/10 || r.KeepFiringFor != orig.KeepFiringFor/10 {
				t.Errorf("rule %s not scaled: for %v window %v", r.Name, r.For, r.Window)
			}
			if r == orig {
				t.Errorf("rule %s modified in place", r.Name)
			}
		}
	}
	if fast.MaxWindow != rs.MaxWindow/10 {
		t.Errorf("max window %v", fast.MaxWindow)
	}
}
