package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// etcdServer is the module of etcd's server; only the demo embeds it.
const etcdServer = "go.etcd.io/etcd/server/"

// The production binary links no etcd server (it weighed ~half the
// binary); a build with -tags demo does, which shows the check can see it.
func TestProductionBinaryLinksNoEtcdServer(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	deps := func(tags ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args := append([]string{"list"}, tags...)
		out, err := exec.CommandContext(ctx, goTool, append(args, "-deps", ".")...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", tags, err)
		}
		var server []string
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, etcdServer) {
				server = append(server, p)
			}
		}
		return server
	}
	if got := deps(); len(got) > 0 {
		t.Errorf("./cmd/vigil links %d packages of %s, e.g. %s: keep etcdtest behind the demo build tag", len(got), etcdServer, got[0])
	}
	if got := deps("-tags", "demo"); len(got) == 0 {
		t.Errorf("-tags demo links no %s: the demo has lost its cluster, or this check cannot see it", etcdServer)
	}
}

// Without the tag, `vigil demo` says how to run it rather than failing
// obscurely.
func TestDemoWithoutTagSaysHowToGetIt(t *testing.T) {
	if startDemoCluster != nil {
		t.Skip("built with -tags demo")
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"demo"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "go run -tags demo ./cmd/vigil demo") || stdout.Len() != 0 {
		t.Errorf("vigil demo: exit %d, stdout %q, stderr %q; want 2 and the command that runs the demo", code, stdout.String(), stderr.String())
	}
}
