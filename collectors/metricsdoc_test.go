package collectors_test

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/collectors/etcd"
	"github.com/vigil-alerts/vigil/model"
)

var update = flag.Bool("update", false, "rewrite the generated tables of docs/metrics.md")

// table renders one catalogue list as docs/metrics.md shows it.
func table(ms []model.MetricInfo) string {
	var b strings.Builder
	b.WriteString("| metric | kind | unit | labels | source |\n|---|---|---|---|---|\n")
	for _, m := range ms {
		labels := ""
		for i, l := range m.Labels {
			if i > 0 {
				labels += ", "
			}
			labels += "`" + l + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", m.Name, m.Kind, m.Unit, labels, m.Doc)
	}
	return b.String()
}

var generated = regexp.MustCompile(`(?s)<!-- generated from the catalogue: (\S+) -->\n.*?<!-- end -->`)

// docs/metrics.md's tables are generated from the catalogue the rules are
// checked against, so the two cannot drift: this fails when they differ,
// and `go test ./collectors -run TestMetricsDoc -update` rewrites them.
func TestMetricsDocMatchesCatalogue(t *testing.T) {
	tables := map[string][]model.MetricInfo{
		"health":      collectors.HealthMetrics,
		"store":       collectors.StoreMetrics,
		"etcd-status": etcd.StatusMetrics,
		"etcd-page":   etcd.PageMetrics,
		"probe":       collectors.ProbeMetrics,
		"exec":        collectors.ExecMetrics,
	}
	const path = "../docs/metrics.md"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	out := generated.ReplaceAllStringFunc(string(doc), func(block string) string {
		name := generated.FindStringSubmatch(block)[1]
		ms, ok := tables[name]
		if !ok {
			t.Errorf("docs/metrics.md: no catalogue list named %q", name)
			return block
		}
		found[name] = true
		return "<!-- generated from the catalogue: " + name + " -->\n" + table(ms) + "<!-- end -->"
	})
	for name := range tables {
		if !found[name] {
			t.Errorf("docs/metrics.md has no generated table %q", name)
		}
	}
	if out == string(doc) {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/metrics.md differs from the catalogue; run go test ./collectors -run TestMetricsDoc -update")
}
