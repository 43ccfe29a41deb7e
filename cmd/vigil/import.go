package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-alerts/vigil/promimport"
)

const importUsage = `usage: vigil import prometheus [flags] FILE...   convert Prometheus alerting rule files
       vigil import promtool [flags] FILE...     convert promtool rule test files (and the rules they name)

Each FILE becomes NAME.vigil.yaml (rule files) or NAME.vigil_test.yaml (test
files) in the output directory. What cannot be converted is printed on
stderr rule by rule with the reason, and kept as a comment in the output.
docs/coming-from-prometheus.md says what converts.

flags:
  -o, --out DIR            write into DIR (default: beside each FILE)
  -f, --force              overwrite existing output files
  --rename-label FROM=TO   use label TO for Prometheus' FROM (repeatable;
                           default job=collector and instance=target;
                           FROM=FROM keeps a name)

Exit status: 0 everything converted; 1 something was not converted (the
rest is written) or a file could not be read; 2 usage errors.
`

// renames is a repeatable FROM=TO flag.
type renames map[string]string

func (r renames) String() string { return "" }

func (r renames) Set(s string) error {
	from, to, ok := strings.Cut(s, "=")
	if !ok || from == "" || to == "" {
		return fmt.Errorf("want FROM=TO, like instance=host")
	}
	r[from] = to
	return nil
}

func importCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (isHelp(args[:1])) {
		if len(args) == 0 {
			fmt.Fprint(stderr, importUsage)
			return 2
		}
		fmt.Fprint(stdout, importUsage)
		return 0
	}
	kind := args[0]
	if kind != "prometheus" && kind != "promtool" {
		fmt.Fprintf(stderr, "vigil import: unknown source %q: want prometheus or promtool\n\n%s", kind, importUsage)
		return 2
	}
	fs := flag.NewFlagSet("import "+kind, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), importUsage) }
	out := fs.String("out", "", "output directory")
	fs.StringVar(out, "o", "", "output directory")
	force := fs.Bool("force", false, "overwrite existing files")
	fs.BoolVar(force, "f", false, "overwrite existing files")
	labels := renames{}
	for k, v := range promimport.DefaultLabels {
		labels[k] = v
	}
	fs.Var(labels, "rename-label", "FROM=TO")
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	files := fs.Args()
	if len(files) == 0 {
		fmt.Fprint(stderr, importUsage)
		return 2
	}
	opts := promimport.Options{Labels: labels}
	code := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		var (
			conv []byte
			rep  *promimport.Report
		)
		if kind == "prometheus" {
			conv, rep, err = promimport.Rules(f, data, opts)
		} else {
			conv, rep, err = promimport.Tests(f, data, os.ReadFile, opts)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		fmt.Fprint(stderr, rep.String())
		if !rep.Complete() {
			code = 1
		}
		if conv == nil {
			fmt.Fprintf(stderr, "%s: no rule converted; nothing written\n", f)
			continue
		}
		dir := *out
		if dir == "" {
			dir = filepath.Dir(f)
		}
		dest := filepath.Join(dir, promimport.OutputName(f, kind == "promtool"))
		if err := writeNew(dest, conv, *force); err != nil {
			fmt.Fprintln(stderr, err)
			code = 1
			continue
		}
		converted, rules, incomplete := rep.Counts()
		if kind == "prometheus" {
			fmt.Fprintf(stdout, "%s: %d of %d rule(s) converted, %d with something not converted\n", dest, converted, rules, incomplete)
		} else {
			fmt.Fprintf(stdout, "%s: written, %d item(s) not converted\n", dest, incomplete)
		}
	}
	return code
}

// writeNew writes a file, refusing to replace one unless force.
func writeNew(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
