package engine_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/vigil-alerts/vigil/ruletest"
)

// TestRuleFiles runs the `vigil test` suites in testdata: engine behaviour
// a rule author sees, written as a rule author would test it.
func TestRuleFiles(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*_test.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no rule tests in testdata (%v)", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			var out bytes.Buffer
			res, err := ruletest.Run(&out, p)
			if err != nil {
				t.Fatal(err)
			}
			if res.Failed != 0 || res.Passed == 0 {
				t.Errorf("%+v\n%s", res, out.String())
			}
		})
	}
}
