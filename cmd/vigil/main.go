// Command vigil evaluates alert rules written as code.
//
//	vigil check PATH...     validate rule files and directories
//	vigil test FILE...      run rule unit tests
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/rules/ruletest"
)

const usage = `usage: vigil <command> [arguments]

commands:
  check PATH...   validate rule files (directories are read recursively)
  test FILE...    run rule unit tests
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "check":
		return check(args[1:], stdout, stderr)
	case "test":
		return test(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func check(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		fmt.Fprint(stderr, "usage: vigil check PATH...\n")
		return 2
	}
	set, err := rules.Load(paths...)
	if err != nil {
		var errs rules.Errors
		if errors.As(err, &errs) {
			fmt.Fprintln(stderr, errs.Error())
			fmt.Fprintf(stderr, "%d error(s)\n", len(errs))
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d file(s), %d group(s), %d rule(s)\n", len(set.Files), len(set.Groups), len(set.Rules()))
	return 0
}

func test(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 0 {
		fmt.Fprint(stderr, "usage: vigil test FILE...\n")
		return 2
	}
	res, err := ruletest.Run(stdout, paths...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if res.Failed > 0 {
		fmt.Fprintf(stdout, "FAIL: %d of %d rule test(s) failed\n", res.Failed, res.Passed+res.Failed)
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d rule test(s) passed\n", res.Passed)
	return 0
}
