package notifiers_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/leakcheck"
)

// Only the dispatcher's goroutines count: slacktest leaks one per post.
func TestMain(m *testing.M) {
	leakcheck.Main(m, leakcheck.Options{Wait: 3 * time.Second, Only: "notifiers.(*Dispatcher)"})
}
