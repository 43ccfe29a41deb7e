package etcd

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
)

// TestCaptureMetricsPage refreshes testdata/metrics.txt, the real /metrics
// page of a loaded embedded member that BenchmarkParseEtcdMetrics and the
// parser tests read. Run with VIGIL_CAPTURE_METRICS=1.
func TestCaptureMetricsPage(t *testing.T) {
	if os.Getenv("VIGIL_CAPTURE_METRICS") == "" {
		t.Skip("set VIGIL_CAPTURE_METRICS=1 to recapture testdata/metrics.txt")
	}
	c := etcdtest.StartCluster(t, 3)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Exercise every request type so the page has its full set of series.
	for i := range 300 {
		k := fmt.Sprintf("key-%d", i%50)
		if _, err := cli.Put(ctx, k, "value"); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", "value")).Then(clientv3.OpPut(k, "v2")).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.KeepAliveOnce(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	_ = cli.Watch(wctx, "key-1")
	if _, err := cli.Put(ctx, "key-1", "watched"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(ctx, "key-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, 10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // let the peer RTT prober record a few rounds

	resp, err := http.Get(c.Members()[0].MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "metrics.txt"), page, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("captured %d bytes", len(page))
}
