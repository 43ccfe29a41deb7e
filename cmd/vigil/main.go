// Command vigil evaluates alert rules written as code.
//
//	vigil check PATH...          validate rule files and directories
//	vigil check --config FILE    validate a config and the rules it names
//	vigil test [--update] FILE...  run rule unit tests
//	vigil run --config FILE      the daemon: collect, evaluate, notify, serve
//	vigil demo                   all of it against an in-process etcd cluster (-tags demo)
//	vigil silence add|list|expire  silences on a running Vigil, through its API
//	vigil alerts                 a running Vigil's alerts
//	vigil explain ALERT          why an alert is in its state
//	vigil record                 record what the collectors gather
//	vigil replay, vigil diff     rules over a recording; two git revisions compared
//	vigil capture                an incident in a recording as a rule test
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/ruletest"
)

const usage = `usage: vigil <command> [arguments]

commands:
  check PATH...          validate rule files (directories are read recursively)
  check --config FILE    validate a config file and the rules it names
  test [--update] FILE...  run rule unit tests (--update rewrites golden files)
  run --config FILE      run the daemon (see examples/vigil.yaml)
  demo                   run Vigil against an in-process 3-member etcd cluster
                         (built in with: go run -tags demo ./cmd/vigil demo)
  silence add|list|expire  mute alerts on a running Vigil (vigil silence for help)
  alerts                 list a running Vigil's firing and pending alerts
  explain ALERT [L=V...] the values of an alert's condition, per segment
  record --config FILE --out DIR   record what the config's collectors gather
  replay --rules PATH --data REC   the alerts rules would have raised over a recording
  diff --base REV --data REC [PATH]  what a rule change does to those alerts (git)
  capture --rules PATH --data REC --alert RULE --out FILE  an incident as a rule test
  import prometheus|promtool FILE...  convert Prometheus rules or promtool tests
  version                print the version, commit and Go version (also --version)

Every command answers -h/--help. Exit status: 0 ok; 1 findings or a refusal
(rule or config errors, failing rule tests, a request the running Vigil
refused, vigil run unable to start); 2 usage errors (unknown command or flag,
missing arguments).
`

const checkUsage = `usage: vigil check PATH...          validate rule files (directories are read recursively)
       vigil check --config FILE [--data RECORDING]
                                    validate a config file and the rules it names, and
                                    check every metric and label the rules read against
                                    what the collectors produce (and the recording shows)
Every error is printed with file:line:col and the rule. Exit status 1 when any.
`

const testUsage = `usage: vigil test [--update] FILE...  run rule unit tests (docs/rules.md, "vigil test")
  --update   rewrite the golden files of expect_notifications with what
             the channels would send, instead of failing on a difference
Exit status 1 when a test fails or a rule errs during it.
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
	case "run":
		return runDaemon(args[1:], stdout, stderr)
	case "demo":
		return demo(args[1:], stdout, stderr)
	case "silence":
		return silenceCmd(args[1:], stdout, stderr)
	case "alerts":
		return alertsCmd(args[1:], stdout, stderr)
	case "explain":
		return explainCmd(args[1:], stdout, stderr)
	case "replay":
		return replayCmd(args[1:], stdout, stderr)
	case "diff":
		return diffCmd(args[1:], stdout, stderr)
	case "capture":
		return captureCmd(args[1:], stdout, stderr)
	case "record":
		return recordCmd(args[1:], stdout, stderr)
	case "import":
		return importCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		fmt.Fprint(stdout, versionInfo())
		return 0
	}
	fmt.Fprintf(stderr, "vigil: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func check(paths []string, stdout, stderr io.Writer) int {
	if isHelp(paths) {
		fmt.Fprint(stdout, checkUsage)
		return 0
	}
	if len(paths) == 0 {
		fmt.Fprint(stderr, checkUsage)
		return 2
	}
	if strings.HasPrefix(paths[0], "--config") || strings.HasPrefix(paths[0], "-config") {
		fs := flag.NewFlagSet("check", flag.ContinueOnError)
		fs.Usage = func() { fmt.Fprint(fs.Output(), checkUsage) }
		cfgPath := fs.String("config", "", "config file")
		data := fs.String("data", "", "recording whose metrics and labels count as known")
		if code, ok := parseFlags(fs, paths, stdout, stderr); !ok {
			return code
		}
		if *cfgPath == "" || fs.NArg() > 0 {
			fmt.Fprint(stderr, "usage: vigil check --config FILE [--data RECORDING]\n")
			return 2
		}
		return checkConfig(*cfgPath, *data, stdout, stderr)
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

// checkConfig validates a config and its rules as `vigil run` would load
// them, without starting anything.
func checkConfig(path, data string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path, config.Options{})
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	set, err := cfg.LoadRules()
	if err != nil {
		fmt.Fprintln(stderr, err)
		var errs rules.Errors
		if errors.As(err, &errs) {
			fmt.Fprintf(stderr, "%d error(s)\n", len(errs))
		}
		return 1
	}
	// Every metric and label a rule names must be one a collector can
	// produce: a typo would otherwise never fire.
	var seen []model.Sample
	if data != "" {
		var ok bool
		if seen, ok = loadRecording(data, stderr); !ok {
			return 1
		}
	}
	errs, warnings := config.CheckCatalogue(set, cfg.Catalogue(seen))
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning: "+w.Error())
	}
	if len(errs) > 0 {
		fmt.Fprintln(stderr, errs.Error())
		fmt.Fprintf(stderr, "%d error(s)\n", len(errs))
		return 1
	}
	fmt.Fprintf(stdout, "ok: config %s, %d collector(s), %d channel(s), %d rule(s)\n", path,
		len(cfg.Collectors), len(cfg.Notifiers.Channels), len(set.Rules()))
	return 0
}

func test(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		fmt.Fprint(stdout, testUsage)
		return 0
	}
	// --update may come before or after the files, as with go test's
	// flags people are used to writing last.
	var opts ruletest.Options
	var paths []string
	for _, a := range args {
		switch {
		case a == "--update" || a == "-update":
			opts.Update = true
		case strings.HasPrefix(a, "-") && a != "-":
			fmt.Fprintf(stderr, "vigil test: unknown flag %s\n\n%s", a, testUsage)
			return 2
		default:
			paths = append(paths, a)
		}
	}
	if len(paths) == 0 {
		fmt.Fprint(stderr, testUsage)
		return 2
	}
	res, err := ruletest.RunWith(stdout, opts, paths...)
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
