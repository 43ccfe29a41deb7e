package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .err golden files of testdata/bad")

// TestLoadBad loads every testdata/bad/<case>.yaml and compares its errors,
// one per line, with <case>.err: each mistake at its line:col with its
// field, none hiding another.
func TestLoadBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/bad: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := Load(f, Options{LookupEnv: noEnv})
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load(%s) = %v, want Errors", f, err)
			}
			for _, e := range errs {
				if e.Line == 0 {
					t.Errorf("error without line:col: %v", e)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestLoadBad -update, then read the file)", err)
			}
			if got != string(want) {
				t.Errorf("Load(%s) errors differ\n got:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}
