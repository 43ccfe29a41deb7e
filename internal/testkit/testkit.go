// Package testkit holds the small helpers several packages' tests share:
// misbehaving network peers, a fake environment, sample lookup.
package testkit

import (
	"net"
	"runtime"
	"testing"

	"github.com/vigil-alerts/vigil/model"
)

// SilentListener accepts connections and never writes, as a wedged
// server does; it returns its host:port.
func SilentListener(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

// ClosedPort is a host:port nothing listens on: connecting is refused.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Env is a LookupEnv over key, value pairs.
func Env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

// Value is the value of the first sample of metric, if any.
func Value(samples []model.Sample, metric string) (float64, bool) {
	for _, s := range samples {
		if s.Metric == metric {
			return s.Value, true
		}
	}
	return 0, false
}

// LiveHeap is the heap still reachable: after two collections, so that
// what sync.Pools hold is let go too. Tests and benchmarks of memory
// bounds compare it before and after.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
