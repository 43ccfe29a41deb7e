package etcdtest

import (
	"fmt"
	"net"
	"os"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Start is StartCluster for programs that are not tests (`vigil demo`):
// it starts an n-member cluster keeping each member's data in a
// sub-directory of dir, which must exist and which the caller removes
// after Close. It returns errors instead of failing a test.
func Start(n int, dir string) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcdtest: cluster size %d", n)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("etcdtest: data directory %q: not a directory", dir)
	}
	c := &Cluster{token: fmt.Sprintf("vigil-%d", time.Now().UnixNano())}
	ports, err := freePortList(2 * n)
	if err != nil {
		c.Close()
		return nil, err
	}
	var initial []string
	for i := range n {
		m := &Member{
			Name:      fmt.Sprintf("m%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			c:         c,
			dir:       fmt.Sprintf("%s/m%d", dir, i),
		}
		m.MetricsURL = m.ClientURL + "/metrics"
		c.members = append(c.members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	c.initial = joinComma(initial)
	for _, m := range c.members {
		e, err := embed.StartEtcd(m.config("new"))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("etcdtest: start %s: %w", m.Name, err)
		}
		m.mu.Lock()
		m.etcd = e
		m.mu.Unlock()
	}
	for _, m := range c.members {
		if err := m.ready(); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Close stops every member of a cluster from Start, at once (no
// leadership hand-over). Safe to call more than once.
func (c *Cluster) Close() { c.close() }

// Resume starts a stopped member again (Restart without a test).
func (m *Member) Resume() error {
	m.mu.Lock()
	if m.etcd != nil {
		m.mu.Unlock()
		return nil
	}
	e, err := embed.StartEtcd(m.config("existing"))
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("etcdtest: restart %s: %w", m.Name, err)
	}
	m.etcd = e
	m.mu.Unlock()
	return m.ready()
}

func (m *Member) ready() error {
	e := m.running()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcdtest: %s failed: %w", m.Name, err)
	case <-time.After(startTimeout):
		return fmt.Errorf("etcdtest: %s not ready after %v", m.Name, startTimeout)
	}
}

func freePortList(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

// Shutdown stops the member as `systemctl stop etcd` would: embed's Close
// stops serving clients and peers before it stops the server, handing
// leadership over. Unlike Stop (HardStop first), it cannot close the
// backend under a request still being served — a Status arriving during
// HardStop can panic the whole process in etcd 3.7.3 (nil bbolt
// transaction in StorageVersion) — so it suits a demo a collector polls.
func (m *Member) Shutdown() {
	m.mu.Lock()
	e := m.etcd
	m.etcd = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}
