package collectors_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/rules"
)

// TestExampleCollectorsFeedExampleRules runs the example config's exec and
// probe collectors for real (on a temporary directory and a local
// listener instead of the example's hosts) and checks that the example
// rules reading them find their series: metric names and scope tags agree.
// The etcd collector is checked end to end in collectors/etcd.
func TestExampleCollectorsFeedExampleRules(t *testing.T) {
	src, err := os.ReadFile("../examples/vigil-collectors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]collectors.Config{}
	for _, c := range load(t, string(src)) {
		cfgs[c.Name] = c
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	disk := cfgs["etcd-disk"]
	disk.Targets[0].Command = []string{"du", "-sb", dir}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	probe := cfgs["etcd-from-prod-pods"]
	var tcp []collectors.Target
	for _, tg := range probe.Targets {
		if !strings.HasPrefix(tg.Address, "http") {
			tg.Address = l.Addr().String()
			tcp = append(tcp, tg)
		}
	}
	probe.Targets = tcp

	set, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	eng := engine.New(engine.NewStore(set.MaxWindow))
	eng.SetRules(set)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range build(t, []collectors.Config{disk, probe}) {
		samples, err := c.Collect(context.Background(), now)
		if err != nil {
			t.Fatalf("%s: %v", c.Name(), err)
		}
		eng.Store().Append(samples...)
	}
	eng.Eval(context.Background(), now)

	want := map[string]int{
		"EtcdDatabaseDirLarge":          1, // one host.mac: the exec target's
		"EtcdUnreachableFromProduction": 1, // one namespace: the vantage point's
	}
	for _, st := range eng.RuleStatuses() {
		n, ok := want[st.Rule.Name]
		if !ok {
			continue
		}
		if st.Segments != n {
			t.Errorf("%s: %d segments, want %d: its metric or scope does not match what the example collectors produce", st.Rule.Name, st.Segments, n)
		}
		if !st.Health.OK {
			t.Errorf("%s: %s", st.Rule.Name, st.Health.Err)
		}
	}
	// Reachable and small: neither fires.
	for _, a := range eng.Alerts() {
		t.Errorf("unexpected alert %s %v", a.Rule, a.Segment)
	}
}
