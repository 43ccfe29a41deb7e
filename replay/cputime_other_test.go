//go:build !unix

package replay

import "time"

// cpuTime is not measured here; the benchmark's cpu-s/op reads 0.
func cpuTime() time.Duration { return 0 }
