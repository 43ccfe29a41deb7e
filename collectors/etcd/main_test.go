package etcd_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/leakcheck"
)

// TestMain fails the package when its tests leave goroutines behind: a
// collector must not leave a scrape running past Collect or Close.
func TestMain(m *testing.M) { leakcheck.Main(m, leakcheck.Options{Wait: 5 * time.Second}) }
