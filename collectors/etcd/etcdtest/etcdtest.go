// Package etcdtest starts a real multi-member etcd cluster inside the test
// process, on loopback ports chosen at run time, for tests and demos that
// need genuine elections, crashes and restarts rather than a fake.
//
// All members share the process's default Prometheus registry, so every
// member's /metrics page shows the same process-wide etcd_* families.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startTimeout bounds how long a cluster or a restarted member may take to
// become ready; a 3-member cluster normally forms in 1-3 s.
const startTimeout = 30 * time.Second

// Cluster is a running in-process etcd cluster. Its methods are safe for
// concurrent use.
type Cluster struct {
	t       testing.TB
	token   string
	initial string
	members []*Member
}

// Member is one etcd member of a Cluster.
type Member struct {
	Name       string
	ClientURL  string // http://127.0.0.1:port, the gRPC and HTTP endpoint
	PeerURL    string
	MetricsURL string // ClientURL + "/metrics"

	c   *Cluster
	dir string

	mu   sync.Mutex
	etcd *embed.Etcd // nil while stopped
}

// StartCluster starts an n-member cluster and waits until every member is
// ready. Members are closed exactly once when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("etcdtest: cluster size %d", n)
	}
	c := &Cluster{t: t, token: fmt.Sprintf("vigil-test-%d", time.Now().UnixNano())}
	ports := freePorts(t, 2*n)
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			c:         c,
			dir:       t.TempDir(),
		}
		m.MetricsURL = m.ClientURL + "/metrics"
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = strings.Join(initial, ",")
	t.Cleanup(c.close)

	// All members must start before any can become ready: a member waits
	// for a quorum of its peers.
	for _, m := range c.members {
		e, err := embed.StartEtcd(m.config("new"))
		if err != nil {
			t.Fatalf("etcdtest: start %s: %v", m.Name, err)
		}
		m.etcd = e
	}
	for _, m := range c.members {
		m.waitReady(t)
	}
	return c
}

// Members returns the cluster's members in start order.
func (c *Cluster) Members() []*Member { return c.members }

// Endpoints returns every member's client URL.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.ClientURL
	}
	return eps
}

// MetricsURLs returns every member's /metrics URL.
func (c *Cluster) MetricsURLs() []string {
	urls := make([]string, len(c.members))
	for i, m := range c.members {
		urls[i] = m.MetricsURL
	}
	return urls
}

// Leader returns the member that running members agree is the leader, or
// nil if no running member knows one.
func (c *Cluster) Leader() *Member {
	for _, m := range c.members {
		e := m.running()
		if e == nil {
			continue
		}
		lead := e.Server.Leader()
		for _, other := range c.members {
			if o := other.running(); o != nil && o.Server.MemberID() == lead {
				return other
			}
		}
	}
	return nil
}

// ID returns the member's raft ID in hex, as etcd prints it, or "" while
// the member is stopped.
func (m *Member) ID() string {
	if e := m.running(); e != nil {
		return e.Server.MemberID().String()
	}
	return ""
}

// Etcd returns the running embedded server, or nil while stopped.
func (m *Member) Etcd() *embed.Etcd { return m.running() }

// Stop crash-stops the member (no leadership hand-over, as a kill -9 would)
// and closes its listeners. Stopping a stopped member does nothing.
func (m *Member) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.etcd == nil {
		return
	}
	m.etcd.Server.HardStop()
	m.etcd.Close()
	m.etcd = nil
}

// Restart starts a stopped member again from its data directory on the
// same ports and waits until it is ready.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	if m.etcd != nil {
		m.mu.Unlock()
		return
	}
	e, err := embed.StartEtcd(m.config("existing"))
	if err != nil {
		m.mu.Unlock()
		t.Fatalf("etcdtest: restart %s: %v", m.Name, err)
	}
	m.etcd = e
	m.mu.Unlock()
	m.waitReady(t)
}

func (m *Member) running() *embed.Etcd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.etcd
}

func (m *Member) waitReady(t testing.TB) {
	t.Helper()
	e := m.running()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatalf("etcdtest: %s failed: %v", m.Name, err)
	case <-time.After(startTimeout):
		t.Fatalf("etcdtest: %s not ready after %v", m.Name, startTimeout)
	}
}

func (m *Member) config(state string) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.dir
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.InitialClusterToken = m.c.token
	cfg.InitialCluster = m.c.initial
	cfg.ClusterState = state
	cu, pu := mustURL(m.ClientURL), mustURL(m.PeerURL)
	cfg.ListenClientUrls = []url.URL{cu}
	cfg.AdvertiseClientUrls = []url.URL{cu}
	cfg.ListenPeerUrls = []url.URL{pu}
	cfg.AdvertisePeerUrls = []url.URL{pu}
	return cfg
}

func (c *Cluster) close() {
	var wg sync.WaitGroup
	for _, m := range c.members {
		m.mu.Lock()
		e := m.etcd
		m.etcd = nil
		m.mu.Unlock()
		if e == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// HardStop first: a graceful Close of the whole cluster member by
			// member would wait on leadership transfers to peers already gone.
			e.Server.HardStop()
			e.Close()
		}()
	}
	wg.Wait()
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// released before etcd binds them; a clash with another process is possible
// but rare.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("etcdtest: free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
