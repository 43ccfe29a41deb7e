package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Every subcommand answers -h and --help with its usage on stdout and exit
// 0, as Prometheus' tools do; none takes the flag for a path or starts.
func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"check"}, {"test"}, {"run"}, {"demo"}, {"alerts"}, {"explain"}, {"record"}, {"replay"}, {"diff"}, {"capture"},
		{"silence"}, {"silence", "add"}, {"silence", "list"}, {"silence", "expire"},
	} {
		for _, flag := range []string{"-h", "--help"} {
			args := append(append([]string(nil), cmd...), flag)
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			if code != 0 || !strings.Contains(strings.ToLower(stdout.String()), "usage") || stderr.Len() != 0 {
				t.Errorf("vigil %s: exit %d, stdout %q, stderr %q; want 0 and the usage on stdout",
					strings.Join(args, " "), code, stdout.String(), stderr.String())
			}
		}
	}
}

// A flag that does not exist is a usage error: exit 2 and the usage on
// stderr, nothing on stdout.
func TestBadFlagIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"run", "--nope"}, {"demo", "--nope"}, {"alerts", "--nope"}, {"explain", "--nope"}, {"silence", "list", "--nope"}, {"replay", "--nope"}, {"diff", "--nope"}, {"capture", "--nope"}, {"record", "--nope"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-nope") || stdout.Len() != 0 {
			t.Errorf("vigil %s: exit %d, stdout %q, stderr %q; want 2 with the error on stderr", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 {
			t.Fatalf("vigil %s: exit %d: %s", arg, code, stderr.String())
		}
		out := stdout.String()
		if !strings.HasPrefix(out, "vigil ") || !strings.Contains(out, "commit: ") || !strings.Contains(out, "go: "+runtime.Version()) {
			t.Errorf("vigil %s:\n%s", arg, out)
		}
	}
	version = "v9.8.7"
	defer func() { version = "" }()
	var stdout bytes.Buffer
	run([]string{"--version"}, &stdout, &bytes.Buffer{})
	if !strings.HasPrefix(stdout.String(), "vigil v9.8.7\n") {
		t.Errorf("the version set at build time is not shown:\n%s", stdout.String())
	}
}
