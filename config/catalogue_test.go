package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/model"
)

const catalogueConfig = `rule_dirs: [rules]
collectors:
  - name: etcd
    type: etcd
    targets:
      - {name: m1, address: http://127.0.0.1:2379, tags: {host.mac: "aa", host.hostName: m1, agent.tag.role: etcd}}
  - name: app
    type: prometheus
    targets:
      - {name: app, address: http://127.0.0.1:9100/metrics}
`

// check loads cfg and one rule file and runs the catalogue check.
func check(t *testing.T, cfg, rules string, seen ...model.Sample) (errs, warnings []string) {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(rules), 0o644)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
	c, err := config.Load(filepath.Join(dir, "vigil.yaml"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	es, ws := config.CheckCatalogue(rs, c.Catalogue(seen))
	for _, e := range es {
		errs = append(errs, strings.TrimPrefix(e.Error(), dir+"/"))
	}
	for _, w := range ws {
		warnings = append(warnings, strings.TrimPrefix(w.Error(), dir+"/"))
	}
	return errs, warnings
}

const typoRules = `groups:
  - name: etcd
    rules:
      - name: MemberDown
        severity: high
        scope: labels["agent.tag.rol"] == "etcd"
        segment_by: [host.mac, host.macc]
        condition: max("etcd.can_conect") == 0 && labels["host.hostName"] != ""
        annotations:
          summary: '{{ label "host.hostname" }} is down'
      - name: LoadHigh
        severity: low
        condition: avg(rate("etcd.has_leader")) > 100
`

// A typo in a metric or a label never fires; with only built-in
// collectors it is an error at its place, with the nearest name.
func TestCatalogueFindsTypos(t *testing.T) {
	etcdOnly := strings.SplitN(catalogueConfig, "  - name: app", 2)[0]
	errs, warnings := check(t, etcdOnly, typoRules)
	want := []string{
		`rules/r.yaml:8:25: rule "MemberDown": condition: no collector produces metric "etcd.can_conect" (did you mean "etcd.can_connect"?)`,
		`rules/r.yaml:6:24: rule "MemberDown": scope: no collector produces label "agent.tag.rol" (did you mean "agent.tag.role"?)`,
		`rules/r.yaml:7:32: rule "MemberDown": segment_by: no collector produces label "host.macc" (did you mean "host.mac"?)`,
		`rules/r.yaml:10:20: rule "MemberDown": annotation "summary": no collector produces label "host.hostname" (did you mean "host.hostName"?)`,
	}
	if strings.Join(errs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `rules/r.yaml:13:30: rule "LoadHigh": condition: rate("etcd.has_leader"): etcd.has_leader is a gauge`) {
		t.Fatalf("a rate over a gauge must warn: %q", warnings)
	}
}

// A prometheus collector exposes what its targets expose: an unknown name
// may come from it, so it is a warning until the collector declares its
// metrics, or a recording shows them.
func TestCatalogueOpenCollectors(t *testing.T) {
	rule := `groups:
  - name: app
    rules:
      - name: AppDown
        severity: high
        condition: max("up") == 0 && max("etcd.can_conect") == 0
`
	errs, warnings := check(t, catalogueConfig, rule)
	if len(errs) != 0 || len(warnings) != 2 || !strings.Contains(warnings[0], "collectors app declare no metrics") {
		t.Fatalf("errors %q, warnings %q; want two warnings", errs, warnings)
	}
	declared := catalogueConfig + "    metrics:\n      - {name: up, kind: gauge}\n"
	errs, _ = check(t, declared, rule)
	if len(errs) != 1 || !strings.Contains(errs[0], `"etcd.can_conect"`) {
		t.Fatalf("with app's metrics declared, only the typo is an error: %q", errs)
	}
	now := time.Now()
	errs, warnings = check(t, strings.SplitN(catalogueConfig, "  - name: app", 2)[0],
		strings.Replace(rule, ` && max("etcd.can_conect") == 0`, "", 1),
		model.Sample{Metric: "up", Labels: model.Labels{"job": "app"}, Value: 1, Time: now})
	if len(errs) != 0 || len(warnings) != 0 {
		t.Fatalf("a metric seen in a recording is known: %q %q", errs, warnings)
	}
}

// The example config and rules pass: every metric the rules read is one
// the example collectors produce.
func TestExampleRulesMatchTheCatalogue(t *testing.T) {
	c, err := config.Load("../examples/vigil.yaml", config.Options{LookupEnv: func(string) (string, bool) { return "x", true }})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := c.LoadRules()
	if err != nil {
		t.Fatal(err)
	}
	errs, warnings := config.CheckCatalogue(rs, c.Catalogue(nil))
	if len(errs) > 0 || len(warnings) > 0 {
		t.Fatalf("%v\n%v", errs, warnings)
	}
}
