package collectors_test

import (
	"context"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-alerts/vigil/collectors"
)

type file struct {
	Collectors []collectors.Config `yaml:"collectors"`
}

func load(t *testing.T, src string) []collectors.Config {
	t.Helper()
	var f file
	if err := yaml.UnmarshalWithOptions([]byte(src), &f, yaml.Strict()); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return f.Collectors
}

func build(t *testing.T, cfgs []collectors.Config) []collectors.Collector {
	t.Helper()
	cs, err := collectors.Build(cfgs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, c := range cs {
			c.(*collectors.TargetCollector).Close()
		}
	})
	return cs
}

// The shipped example must always load, strictly.
func TestExampleConfig(t *testing.T) {
	src, err := os.ReadFile("../examples/vigil-collectors.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs := load(t, string(src))
	cs := build(t, cfgs)
	want := []string{"etcd", "etcd-metrics", "etcd-from-prod-pods", "etcd-disk"}
	if len(cs) != len(want) {
		t.Fatalf("%d collectors, want %d", len(cs), len(want))
	}
	for i, c := range cs {
		if c.Name() != want[i] {
			t.Errorf("collector %d is %q, want %q", i, c.Name(), want[i])
		}
	}
	if got := cs[0].(*collectors.TargetCollector).Interval().String(); got != "15s" {
		t.Errorf("interval %s", got)
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want []string // every one must appear in the joined error
	}{
		{
			name: "unknown type and missing name",
			src: `collectors:
  - type: snmp
    targets: [{address: "x:1"}]`,
			want: []string{`collector 0: name is required`, `unknown type "snmp"`},
		},
		{
			name: "all errors at once, each naming its collector",
			src: `collectors:
  - {name: a, type: probe, interval: 5s, timeout: 10s, targets: [{address: "nohost"}]}
  - {name: b, type: etcd, targets: [{address: "etcd:2379"}]}
  - {name: c, type: exec, targets: [{command: [du], format: value}]}`,
			want: []string{`collector "a": timeout 10s is longer than interval 5s`, `collector "a": address "nohost"`,
				`collector "b": member 0: endpoint "etcd:2379" must start with http`, `collector "c": command 0: format "value" needs a metric name`},
		},
		{
			name: "duplicate collector and target names",
			src: `collectors:
  - {name: a, type: probe, targets: [{address: "h:1"}, {address: "h:1"}]}
  - {name: a, type: probe, targets: [{address: "h:2"}]}`,
			want: []string{`collector "a": name used twice`, `target 1 (h:1): name used twice`},
		},
		{
			name: "reserved tag and misplaced fields",
			src: `collectors:
  - name: p
    type: prometheus
    etcd: {username: u, password: p}
    targets: [{address: "http://h/metrics", metrics_url: "http://h/m", command: [ls], tags: {target: x}}]`,
			want: []string{`section "etcd" does not apply to type "prometheus"`, `metrics_url is for etcd targets`,
				`command, shell, format and metric are for exec targets`, `tag "target" is set by Vigil`},
		},
		{
			name: "vantage tag clashing with a target tag",
			src: `collectors:
  - name: p
    type: probe
    probe: {vantage_point: pods, vantage_tags: {zone: a}}
    targets: [{address: "h:1", tags: {zone: b}}]`,
			want: []string{`tag "zone" is also a vantage tag`},
		},
		{
			name: "missing TLS files",
			src: `collectors:
  - {name: e, type: etcd, tls: {ca_file: /nonexistent/ca.pem}, targets: [{address: "https://h:2379"}]}`,
			want: []string{`collector "e": tls: open /nonexistent/ca.pem`},
		},
		{
			name: "no targets",
			src:  `collectors: [{name: x, type: exec}]`,
			want: []string{`collector "x": no targets`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := collectors.Build(load(t, tc.src), nil)
			if err == nil {
				t.Fatalf("built %d collectors, want an error", len(cs))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestStrictDecoding(t *testing.T) {
	var f file
	err := yaml.UnmarshalWithOptions([]byte("collectors: [{name: a, type: probe, intervall: 5s}]"), &f, yaml.Strict())
	if err == nil || !strings.Contains(err.Error(), "intervall") {
		t.Fatalf("err = %v", err)
	}
	err = yaml.UnmarshalWithOptions([]byte("collectors: [{name: a, type: probe, interval: soon}]"), &f, yaml.Strict())
	if err == nil || !strings.Contains(err.Error(), "soon") {
		t.Fatalf("err = %v", err)
	}
}

// reconnect_max_delay reaches the etcd client: a member that accepts and
// drops every connection is retried about every 300 ms. With the default
// (2 s) the eighth attempt would come after about 7 s.
func TestEtcdReconnectMaxDelay(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var attempts atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			c.Close()
		}
	}()
	cs := build(t, load(t, `collectors:
  - name: e
    type: etcd
    timeout: 1s
    etcd: {skip_metrics_page: true, reconnect_max_delay: 300ms}
    targets: [{address: "http://`+l.Addr().String()+`"}]`))
	// The first collection creates the client; then it retries unprompted.
	cs[0].Collect(context.Background(), time.Unix(0, 0))
	deadline := time.Now().Add(4 * time.Second)
	for attempts.Load() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnection attempts in 4s, want 8 with reconnect_max_delay 300ms", attempts.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
