package ruletest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestRunValuesLookLikeNumbers: `values: 0x10` is the notation's own
// example (0 and ten more), but YAML reads an unquoted 0x10 as the hex
// integer 16. The series must still be eleven zeros, or the file must be
// rejected; silently testing against a single sample of 16 is wrong.
func TestRunValuesLookLikeNumbers(t *testing.T) {
	for _, values := range []string{"0x10", "0x3"} {
		t.Run(values, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(downRule), 0o644); err != nil {
				t.Fatal(err)
			}
			test := `rule_files: [rules.yaml]
tests:
  - input_series:
      - metric: up
        labels: {host: a}
        values: ` + values + `
    expect:
      - {at: 0m, rule: Down, alerts: [{state: pending}]}
`
			path := filepath.Join(dir, "rules_test.yaml")
			if err := os.WriteFile(path, []byte(test), 0o644); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := Run(&out, path)
			if err != nil {
				return // rejecting the ambiguous scalar is fine too
			}
			if res.Passed != 1 {
				t.Errorf("values: %s (unquoted) was not read as written: %+v\n%s", values, res, out.String())
			}
		})
	}
}
