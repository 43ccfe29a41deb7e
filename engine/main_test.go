package engine_test

import (
	"testing"

	"github.com/vigil-alerts/vigil/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m, leakcheck.Options{}) }
