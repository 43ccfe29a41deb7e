package etcdtest_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

// TestMain fails the package when its tests leave goroutines behind: a
// collector must not leave a scrape running past Collect or Close.
func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m, 5*time.Second, nil) }
