package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Habits from Prometheus' tools: every subcommand answers -h/--help on
// stdout with exit 0, and --version says what was built.
//
// Exit status, for every command: 0 ok; 1 findings or a refusal (rule or
// config errors, failing rule tests, a request the running Vigil refused,
// vigil run unable to start); 2 usage errors.

// version is set at build time (-ldflags "-X main.version=v1.2.3"); without
// it the module version from the build info is shown.
var version string

// isHelp reports whether args ask for help before any "--".
func isHelp(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// parseFlags parses args into fs: -h/--help prints fs's usage on stdout
// (exit 0), a bad flag the error and the usage on stderr (exit 2). ok is
// true when the command should go on.
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	usage := fs.Usage
	if usage == nil {
		usage = func() {
			fmt.Fprintf(fs.Output(), "usage of vigil %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	fs.Usage = func() {} // printed below, where it belongs
	fs.SetOutput(stderr)
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		usage()
		return 0, false
	default:
		usage()
		return 2, false
	}
}

// buildVersion is the version (set at build time, else the module's),
// the commit (with " (modified)" for a dirty tree) and the Go version.
func buildVersion() (v, commit, goVersion string) {
	v, commit, goVersion = version, "unknown", runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		modified := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (modified)"
				}
			}
		}
		commit += modified
	}
	if v == "" {
		v = "(devel)"
	}
	return v, commit, goVersion
}

// versionInfo is what `vigil --version` prints.
func versionInfo() string {
	v, commit, goVersion := buildVersion()
	return fmt.Sprintf("vigil %s\n  commit: %s\n  go: %s\n", v, commit, goVersion)
}
