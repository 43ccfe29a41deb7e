// Command mutate measures how well Vigil's tests guard the decisions an
// on-call engineer relies on: it applies each deliberate break listed in
// mutants.yaml, one at a time, runs the tests of the packages it names and
// reports whether they caught it (killed) or not (survived). Every file is
// restored after each mutant, also when the run is interrupted.
//
//	go run ./internal/mutate                 # every mutant, whole package tests
//	go run ./internal/mutate -only engine    # mutants whose id starts with engine
//	go run ./internal/mutate -fast           # only the test each mutant names
//
// CONTRIBUTING.md says when to add a mutant; BENCHMARKS.md records the score.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/goccy/go-yaml"
)

// mutant is one deliberate break: find is replaced by replace in file.
type mutant struct {
	ID      string `yaml:"id"`
	File    string `yaml:"file"`
	Find    string `yaml:"find"`
	Replace string `yaml:"replace"`
	// Packages are the go test patterns that should catch it.
	Packages []string `yaml:"packages"`
	// Test names the test meant to catch it (-fast runs only it).
	Test string `yaml:"test"`
	// Equivalent explains why a mutant that survives cannot be caught
	// (it changes no behaviour); it is then not counted as a survivor.
	Equivalent string `yaml:"equivalent,omitempty"`
}

type result struct {
	m       mutant
	outcome string // killed, survived, equivalent, invalid
	took    time.Duration
	detail  string
}

func main() {
	list := flag.String("list", "internal/mutate/mutants.yaml", "the mutants")
	only := flag.String("only", "", "run only mutants whose id starts with this")
	fast := flag.Bool("fast", false, "run only each mutant's named test")
	timeout := flag.Duration("timeout", 6*time.Minute, "per-mutant test timeout")
	flag.Parse()
	if err := run(*list, *only, *fast, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(2)
	}
}

func run(list, only string, fast bool, timeout time.Duration) error {
	b, err := os.ReadFile(list)
	if err != nil {
		return err
	}
	var ms []mutant
	if err := yaml.UnmarshalWithOptions(b, &ms, yaml.Strict()); err != nil {
		return fmt.Errorf("%s: %w", list, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var results []result
	for _, m := range ms {
		if !strings.HasPrefix(m.ID, only) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		r := apply(ctx, m, fast, timeout)
		fmt.Printf("%-10s %-40s %6.1fs %s\n", r.outcome, m.ID, r.took.Seconds(), r.detail)
		results = append(results, r)
	}
	report(results)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return nil
}

// apply breaks the file, runs the tests and restores the file.
func apply(ctx context.Context, m mutant, fast bool, timeout time.Duration) result {
	r := result{m: m}
	orig, err := os.ReadFile(m.File)
	if err != nil {
		r.outcome, r.detail = "invalid", err.Error()
		return r
	}
	if n := bytes.Count(orig, []byte(m.Find)); n != 1 {
		r.outcome, r.detail = "invalid", fmt.Sprintf("find text occurs %d times in %s (want once)", n, m.File)
		return r
	}
	mutated := bytes.Replace(orig, []byte(m.Find), []byte(m.Replace), 1)
	if err := os.WriteFile(m.File, mutated, 0o644); err != nil {
		r.outcome, r.detail = "invalid", err.Error()
		return r
	}
	defer os.WriteFile(m.File, orig, 0o644)

	// A mutant that does not compile is no test of the tests.
	if out, err := exec.CommandContext(ctx, "go", "vet", "./"+filepath.Dir(m.File)).CombinedOutput(); err != nil {
		r.outcome, r.detail = "invalid", "does not build: "+firstLine(out)
		return r
	}
	args := []string{"test", "-count=1", "-timeout", timeout.String()}
	if fast && m.Test != "" {
		args = append(args, "-run", "^("+m.Test+")$")
	}
	args = append(args, m.Packages...)
	start := time.Now()
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	r.took = time.Since(start)
	var exit *exec.ExitError
	switch {
	case err == nil && m.Equivalent != "":
		r.outcome, r.detail = "equivalent", m.Equivalent
	case err == nil:
		r.outcome, r.detail = "survived", "no test failed; meant to be caught by "+m.Test
	case errors.As(err, &exit):
		r.outcome, r.detail = "killed", failedTests(out)
	default:
		r.outcome, r.detail = "invalid", err.Error()
	}
	return r
}

// failedTests names the top-level tests that failed.
func failedTests(out []byte) string {
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(l, "--- FAIL: "); ok {
			names = append(names, strings.Fields(name)[0])
		}
	}
	if len(names) == 0 {
		return firstLine(out)
	}
	return "by " + strings.Join(names, ", ")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// report prints the score per package: killed over killed + survived.
func report(results []result) {
	type tally struct{ killed, survived, equivalent, invalid int }
	by := map[string]*tally{}
	for _, r := range results {
		pkg := filepath.Dir(r.m.File)
		if by[pkg] == nil {
			by[pkg] = &tally{}
		}
		t := by[pkg]
		switch r.outcome {
		case "killed":
			t.killed++
		case "survived":
			t.survived++
		case "equivalent":
			t.equivalent++
		default:
			t.invalid++
		}
	}
	pkgs := make([]string, 0, len(by))
	for p := range by {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	fmt.Printf("\n| package | killed | survived | equivalent | invalid | score |\n|---|---:|---:|---:|---:|---:|\n")
	var all tally
	for _, p := range pkgs {
		t := by[p]
		fmt.Printf("| %s | %d | %d | %d | %d | %s |\n", p, t.killed, t.survived, t.equivalent, t.invalid, score(t.killed, t.survived))
		all.killed += t.killed
		all.survived += t.survived
		all.equivalent += t.equivalent
		all.invalid += t.invalid
	}
	fmt.Printf("| all | %d | %d | %d | %d | %s |\n", all.killed, all.survived, all.equivalent, all.invalid, score(all.killed, all.survived))
}

func score(killed, survived int) string {
	if killed+survived == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f %%", 100*float64(killed)/float64(killed+survived))
}
