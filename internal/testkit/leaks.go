package testkit

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// VerifyNoLeaks runs the tests, then cleanup (shared fixtures), then fails
// the test binary if goroutines are left, as goleak finds them. Unlike
// goleak.VerifyTestMain, whose retries give up after about half a second,
// it waits up to wait: gRPC and HTTP clients of a closed etcd member take
// a few seconds to wind down on a busy machine.
func VerifyNoLeaks(m *testing.M, wait time.Duration, cleanup func(), opts ...goleak.Option) {
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	if code == 0 {
		deadline := time.Now().Add(wait)
		err := goleak.Find(opts...)
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			err = goleak.Find(opts...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
