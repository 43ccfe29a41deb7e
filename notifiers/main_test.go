package notifiers_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

// Only the dispatcher's goroutines count: slacktest leaks one per post.
func TestMain(m *testing.M) {
	testkit.VerifyNoLeaks(m, 3*time.Second, nil)
}
