package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/recording"
	"github.com/vigil-alerts/vigil/replay"
	"github.com/vigil-alerts/vigil/rules"
	"github.com/vigil-alerts/vigil/ruletest"
)

const replayUsage = `usage: vigil replay --rules PATH --data RECORDING
Replays a recording (a file or a directory, see docs/recordings.md) through
the rules at PATH and prints every alert state change with its time,
segment and value. Exit status 1 when the rules do not load or a rule
fails to evaluate.
`

const diffUsage = `usage: vigil diff --base REV [--head REV] --data RECORDING [--format text|markdown] [PATH]
Replays a recording through the rule files under PATH (default ".") as they
are at git revision REV and as they are at --head (default: the files on
disk), and prints, per rule, the alerts that appear, disappear, fire or
resolve earlier or later, or change labels or severity.
Exit status: 0 nothing changes, 1 something does, 2 an error.
`

func replayCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), replayUsage) }
	rulesPath := fs.String("rules", "", "rule file or directory")
	data := fs.String("data", "", "recording file or directory")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *rulesPath == "" || *data == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, replayUsage)
		return 2
	}
	rs, err := rules.Load(*rulesPath)
	if err != nil {
		printRuleErrors(stderr, err)
		return 1
	}
	samples, ok := loadRecording(*data, stderr)
	if !ok {
		return 1
	}
	tl, err := replay.Run(rs, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil replay:", err)
		return 1
	}
	replay.WriteTimeline(stdout, tl)
	if len(tl.Errors) > 0 {
		return 1
	}
	return 0
}

func diffCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diff", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), diffUsage) }
	base := fs.String("base", "", "git revision of the rules before the change")
	head := fs.String("head", "", "git revision after the change (default: the files on disk)")
	data := fs.String("data", "", "recording file or directory")
	format := fs.String("format", "text", "text or markdown")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *base == "" || *data == "" || fs.NArg() > 1 || (*format != "text" && *format != "markdown") {
		fmt.Fprint(stderr, diffUsage)
		return 2
	}
	path := "."
	if fs.NArg() == 1 {
		path = fs.Arg(0)
	}
	baseRules, baseName, err := replay.LoadRevision(path, *base)
	if err != nil {
		printRuleErrors(stderr, fmt.Errorf("base %s: %w", *base, err))
		return 2
	}
	var headRules *rules.RuleSet
	headName := "working tree"
	if *head != "" {
		headRules, headName, err = replay.LoadRevision(path, *head)
	} else {
		headRules, err = rules.Load(path)
	}
	if err != nil {
		printRuleErrors(stderr, fmt.Errorf("head %s: %w", headName, err))
		return 2
	}
	samples, ok := loadRecording(*data, stderr)
	if !ok {
		return 2
	}
	bt, err := replay.Run(baseRules, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil diff: base:", err)
		return 2
	}
	ht, err := replay.Run(headRules, samples)
	if err != nil {
		fmt.Fprintln(stderr, "vigil diff: head:", err)
		return 2
	}
	for _, e := range append(bt.Errors, ht.Errors...) {
		fmt.Fprintln(stderr, "warning:", e)
	}
	changes := replay.Diff(bt, ht)
	if *format == "markdown" {
		replay.WriteMarkdown(stdout, changes, *base+" ("+baseName+")", headName, ht)
	} else {
		fmt.Fprintf(stdout, "%s (%s) -> %s\n", *base, baseName, headName)
		replay.WriteText(stdout, changes)
	}
	if len(changes) > 0 {
		return 1
	}
	return 0
}

func loadRecording(path string, stderr io.Writer) ([]model.Sample, bool) {
	samples, warnings, err := recording.Load(path)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		fmt.Fprintln(stderr, "recording:", err)
		return nil, false
	}
	return samples, true
}

func printRuleErrors(w io.Writer, err error) {
	fmt.Fprintln(w, err)
	var errs rules.Errors
	if errors.As(err, &errs) {
		fmt.Fprintf(w, "%d error(s)\n", len(errs))
	}
}

const captureUsage = `usage: vigil capture --rules PATH --data RECORDING --alert RULE [--match k=v,...] [--before D] [--after D] --out FILE
Turns an incident into a regression test: replays the recording, finds the
first firing of RULE (whose labels include --match), and writes a vigil test
file with the series the rule reads for that alert, from its window and
for: before the firing (plus --before) to its resolution (plus --after),
and the alert states as they happened. The file is run with vigil test
before the command ends. Exit status 1 when the alert never fires or the
written test does not pass.
`

func captureCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("capture", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), captureUsage) }
	rulesPath := fs.String("rules", "", "rule file or directory")
	data := fs.String("data", "", "recording file or directory")
	alert := fs.String("alert", "", "rule name of the alert")
	match := fs.String("match", "", "labels the alert must have, k=v,k=v")
	before := fs.Duration("before", 0, "extra time captured before the firing")
	after := fs.Duration("after", time.Minute, "time captured after the resolution")
	out := fs.String("out", "", "test file to write")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *rulesPath == "" || *data == "" || *alert == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, captureUsage)
		return 2
	}
	m := model.Labels{}
	for _, kv := range strings.Split(*match, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			fmt.Fprintf(stderr, "--match: %q is not k=v\n", kv)
			return 2
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	rs, err := rules.Load(*rulesPath)
	if err != nil {
		printRuleErrors(stderr, err)
		return 1
	}
	samples, ok := loadRecording(*data, stderr)
	if !ok {
		return 1
	}
	var buf bytes.Buffer
	if err := replay.Capture(&buf, rs, samples, replay.CaptureOptions{Rule: *alert, Match: m, Before: *before, After: *after, Out: *out}); err != nil {
		fmt.Fprintln(stderr, "vigil capture:", err)
		return 1
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(stderr, "vigil capture:", err)
		return 1
	}
	var report bytes.Buffer
	res, err := ruletest.Run(&report, *out)
	if err != nil || res.Failed > 0 {
		fmt.Fprintf(stderr, "vigil capture: the written test does not pass: %v\n%s", err, report.String())
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s: %d expectation(s); it passes vigil test\n", *out, strings.Count(buf.String(), "- at: "))
	return 0
}
