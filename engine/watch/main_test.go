package watch

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m, 2*time.Second, nil) }
