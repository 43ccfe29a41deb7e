package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// `vigil demo`: a 3-member etcd cluster in this process, Vigil watching it
// with examples/rules on a clock sped up by --speed, the console as every
// channel and the status page served. One member is stopped, later a
// second (quorum lost), then both come back. Everything lives in a
// temporary directory that is removed at exit.
//
// The embedded etcd server weighs most of a binary, so it is built in only
// with the build tag demo (demo_etcd.go): `go run -tags demo ./cmd/vigil
// demo`. The production binary answers `vigil demo` with that command.

// demoCluster is the etcd cluster the demo watches; member i counts from 0.
type demoCluster interface {
	Endpoints() []string
	Shutdown(i int)
	Resume(i int) error
	Close()
}

// startDemoCluster starts n etcd members with their data under dir. It is
// nil unless the binary is built with the tag demo.
var startDemoCluster func(n int, dir string) (demoCluster, error)

// demoHint says how to get the demo from a binary built without it.
const demoHint = `vigil demo: this binary is built without the demo's embedded etcd server.
From a clone of Vigil, run:
  go run -tags demo ./cmd/vigil demo
`

// demoTimeline is the script, in evaluation time (divided by the speed).
var demoTimeline = struct {
	healthy, oneDown, twoDown, recovered time.Duration
}{healthy: 80 * time.Second, oneDown: 6 * time.Minute, twoDown: 3 * time.Minute, recovered: 2 * time.Minute}

func demo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	speed := fs.Float64("speed", 10, "how much faster than real time rule durations, intervals and the script run")
	httpAddr := fs.String("http", "127.0.0.1:9099", "status page address (a free port is used if taken)")
	rulesDir := fs.String("rules", "examples/rules", "rule directory")
	logFlags := addLogFlags(fs, slog.LevelError) // logs go to stderr
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if startDemoCluster == nil {
		fmt.Fprint(stderr, demoHint)
		return 2
	}
	if *speed < 1 {
		fmt.Fprintln(stderr, "demo: --speed must be at least 1")
		return 2
	}
	logger := logFlags.logger(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	say := func(format string, a ...any) {
		fmt.Fprintf(stdout, "\n== demo: "+format+"\n", a...)
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / *speed) }

	absRules, err := filepath.Abs(*rulesDir)
	if err == nil {
		_, err = os.Stat(absRules)
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: rules: %v (run from the repository root, or pass --rules)\n", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "vigil-demo-*")
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	os.Mkdir(filepath.Join(tmp, "etcd"), 0o755)

	say("starting a 3-member etcd cluster in this process")
	cluster, err := startDemoCluster(3, filepath.Join(tmp, "etcd"))
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer cluster.Close()

	cfgPath := filepath.Join(tmp, "vigil.yaml")
	if err := os.WriteFile(cfgPath, []byte(demoConfig(cluster.Endpoints(), absRules, *speed)), 0o644); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	writes := isLoopback(ln.Addr())
	d, err := newDaemon(daemonOptions{ConfigPath: cfgPath, Logger: logger, Console: stdout, Listener: ln,
		Rules: func(rs *rules.RuleSet) *rules.RuleSet { return scaleRules(rs, *speed) }, DeliveryBound: 5 * time.Second,
		// Writes without authentication only where no one else can reach.
		Web: webOptions{EnableUnauthenticatedWrites: writes}})
	if err != nil {
		ln.Close()
		printLoadError(stderr, err)
		return 1
	}
	if err := d.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer d.Stop()
	say("Vigil evaluates %d rules from %s, %gx faster than real time: a 5m `for` takes %v",
		len(d.eng.Rules().Rules()), *rulesDir, *speed, scale(5*time.Minute).Round(100*time.Millisecond))
	say("status page: http://%s/   (Ctrl-C stops the demo)", d.Addr())
	if writes {
		say("to mute etcd-3's pages meanwhile: go run ./cmd/vigil silence add --url http://%s --for 1h --comment maintenance 'host.hostName=\"etcd-3\"'", d.Addr())
	} else {
		say("silences are off: %s is not a loopback address, and the demo has no authentication (docs/deploy.md#security)", d.Addr())
	}

	// Pending alerts reach no channel: print every state change as well.
	watchDone, watchStopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchStopped)
		printTransitions(d, stdout, watchDone)
	}()
	defer func() { close(watchDone); <-watchStopped }()

	name := func(i int) string { return fmt.Sprintf("etcd-%d", i+1) }
	wait := func(evalTime time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(scale(evalTime)):
			return true
		}
	}
	steps := []func() bool{
		func() bool {
			say("all members healthy; nothing should fire")
			return wait(demoTimeline.healthy)
		},
		func() bool {
			say("stopping member %s: EtcdMemberDown goes pending, then fires; EtcdMemberUnreachable after its 5m", name(2))
			cluster.Shutdown(2)
			return wait(demoTimeline.oneDown)
		},
		func() bool {
			say("stopping member %s too: quorum is lost, the survivor has no leader -> EtcdQuorumLost and the grouped critical EtcdServiceUnavailable, which inhibits the per-member pages", name(1))
			cluster.Shutdown(1)
			return wait(demoTimeline.twoDown)
		},
		func() bool {
			say("bringing %s and %s back: alerts resolve", name(1), name(2))
			for _, i := range []int{1, 2} {
				if err := cluster.Resume(i); err != nil {
					fmt.Fprintln(stderr, "demo:", err)
				}
			}
			return wait(demoTimeline.recovered)
		},
	}
	for _, step := range steps {
		if !step() {
			say("interrupted")
			break
		}
	}
	say("stopping Vigil and etcd, removing %s", tmp)
	if err := d.Stop(); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
	}
	return 0
}

// printTransitions prints each alert's state changes as the engine makes
// them, until done.
func printTransitions(d *daemon, w io.Writer, done <-chan struct{}) {
	seen := map[string]model.AlertState{}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := map[string]model.AlertState{}
		for _, a := range d.eng.Alerts() {
			now[a.Fingerprint] = a.State
			if seen[a.Fingerprint] == a.State {
				continue
			}
			who := a.Labels["host.hostName"]
			if who == "" {
				who = "cluster " + a.Labels["cluster"]
			}
			if len(a.Segments) > 0 {
				who = fmt.Sprintf("%d segments", len(a.Segments))
			}
			fmt.Fprintf(w, "  %-8s %s (%s, %s)\n", a.State, a.Rule, who, a.Severity)
		}
		seen = now
	}
}

// demoConfig points Vigil at the cluster. Every channel the example rules
// name is a console channel that says which one it stands for.
func demoConfig(endpoints []string, rulesDir string, speed float64) string {
	scale := func(d time.Duration) string {
		return max(time.Second, time.Duration(float64(d)/speed)).Round(100 * time.Millisecond).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rule_dirs: [%q]\nhttp:\n  address: 127.0.0.1:0\nstate:\n  path: state.json\n", rulesDir)
	fmt.Fprintf(&b, "collectors:\n  - name: etcd\n    type: etcd\n    interval: %s\n    timeout: 1s\n    targets:\n", scale(15*time.Second))
	for i, ep := range endpoints {
		fmt.Fprintf(&b, "      - name: etcd-%d\n        address: %s\n        tags: {host.hostName: etcd-%d, host.mac: \"02:42:ac:11:00:%02x\", agent.tag.role: etcd, cluster: demo}\n",
			i+1, ep, i+1, i+1)
	}
	fmt.Fprintf(&b, "notifiers:\n  group_wait: %s\n  group_interval: %s\n  repeat_interval: 4h\n  group_by: [cluster]\n  channels:\n",
		scale(30*time.Second), scale(time.Minute))
	for _, ch := range []string{"oncall-slack", "oncall-email", "console"} {
		tmpl := `[` + ch + `] {{.Title}}{{if .Summary}}: {{.Summary}}{{end}}{{"\n"}}` +
			`{{range .Firing}}    FIRING   {{index .Annotations "summary"}}{{"\n"}}{{end}}` +
			`{{range .Resolved}}    RESOLVED {{index .Annotations "summary"}}{{"\n"}}{{end}}`
		fmt.Fprintf(&b, "    - name: %s\n      console:\n        template: %q\n", ch, tmpl)
	}
	b.WriteString("  default_channels: [console]\n")
	return b.String()
}

// scaleRules divides every rule's window, for and keep_firing_for and every
// group's interval by speed (intervals no shorter than cron's 1s).
func scaleRules(rs *rules.RuleSet, speed float64) *rules.RuleSet {
	div := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	out := &rules.RuleSet{Files: rs.Files}
	for _, g := range rs.Groups {
		ng := *g
		ng.Interval = max(time.Second, div(g.Interval))
		ng.Rules = nil
		for _, r := range g.Rules {
			nr := *r
			nr.Window, nr.For, nr.KeepFiringFor = div(r.Window), div(r.For), div(r.KeepFiringFor)
			ng.Rules = append(ng.Rules, &nr)
			out.MaxWindow = max(out.MaxWindow, nr.Window)
		}
		out.Groups = append(out.Groups, &ng)
	}
	return out
}

// isLoopback reports whether addr is a loopback TCP address.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
