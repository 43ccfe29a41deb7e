package exec

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

// Shared with other packages' tests.
var (
	get = testkit.Value
)

func TestExec(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	// Commands that must be killed get a short timeout; the others a long
	// one, so that a fork on a loaded machine is not mistaken for a hang.
	const killAt, ample = 500 * time.Millisecond, 20 * time.Second
	for _, tc := range []struct {
		name     string
		kill     bool // the command runs until killed
		cmd      Command
		max      int64
		want     map[string]float64 // metric -> value; -1 means "present, any value"
		wantErr  string
		exitCode float64
	}{
		{
			name: "name value lines through sh -c",
			cmd:  Command{Argv: []string{"echo 'etcd.backup.age 120'; echo '# comment'; echo; echo 'queue_depth 2.5'"}, Shell: true},
			want: map[string]float64{"etcd.backup.age": 120, "queue_depth": 2.5},
		},
		{
			name:    "no shell without shell: true",
			cmd:     Command{Argv: []string{"echo", "a 1; echo b 2"}},
			wantErr: `line 1: want "name value"`,
		},
		{
			name: "du -sb as a value",
			cmd:  Command{Argv: []string{"du", "-sb", dir}, Format: FormatValue, Metric: "etcd.data_dir.size"},
			want: map[string]float64{"etcd.data_dir.size": -1},
		},
		{
			name: "prometheus text",
			cmd:  Command{Argv: []string{"printf", `# TYPE x_total counter\nx_total{disk="a"} 7\n`}, Format: FormatPrometheus},
			want: map[string]float64{"x_total": 7},
		},
		{
			name:     "non-zero exit keeps output",
			cmd:      Command{Argv: []string{"echo 'partial 1'; echo oops >&2; exit 3"}, Shell: true},
			want:     map[string]float64{"partial": 1},
			wantErr:  "exit status 3: oops",
			exitCode: 3,
		},
		{
			name:     "sleeping command killed at the timeout",
			cmd:      Command{Argv: []string{"sleep", "30"}},
			kill:     true,
			wantErr:  "killed after",
			exitCode: -1,
		},
		{
			name:     "shell's children die with it",
			cmd:      Command{Argv: []string{"sleep 30 & sleep 30; echo never 1"}, Shell: true},
			kill:     true,
			wantErr:  "killed after",
			exitCode: -1,
		},
		{
			name:     "huge output cut",
			cmd:      Command{Argv: []string{"yes", "lines 1"}},
			max:      1000,
			want:     map[string]float64{"lines": 1, MetricTruncated: 1},
			wantErr:  "output cut at 1000 bytes",
			exitCode: -1,
		},
		{
			name:    "garbage",
			cmd:     Command{Argv: []string{"printf", `\001\002 binary \377 junk`}},
			wantErr: "line 1",
		},
		{
			name:    "not a number",
			cmd:     Command{Argv: []string{"echo", "x", "NaN"}},
			wantErr: `"NaN" is not a number`,
		},
		{
			name:    "bad prometheus text",
			cmd:     Command{Argv: []string{"echo", "x{ 1"}, Format: FormatPrometheus},
			wantErr: "parse text page",
		},
		{
			name:     "missing program",
			cmd:      Command{Argv: []string{"/nonexistent/vigil-check"}},
			wantErr:  "no such file",
			exitCode: -1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{Commands: []Command{tc.cmd}, MaxOutputBytes: tc.max})
			if err != nil {
				t.Fatal(err)
			}
			timeout := ample
			if tc.kill {
				timeout = killAt
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			out, err := s.Scrape(ctx, 0, time.Unix(0, 0))
			// Killed long before the command's 30 s: the process group
			// went, not just the shell.
			if took := time.Since(start); tc.kill && took > 10*time.Second {
				t.Errorf("took %v with a %v timeout", took, timeout)
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			for m, want := range tc.want {
				v, ok := get(out, m)
				if !ok || (want != -1 && v != want) {
					t.Errorf("%s = %v (present %v), want %v", m, v, ok, want)
				}
			}
			if v, _ := get(out, MetricExitCode); v != tc.exitCode {
				t.Errorf("exit code %v, want %v", v, tc.exitCode)
			}
			if tc.cmd.Format == FormatValue {
				if v, _ := get(out, tc.cmd.Metric); v < 4096 {
					t.Errorf("du says %v bytes, wrote 4096", v)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  Command
		want string
	}{
		{"empty", Command{}, "empty command"},
		{"shell with argv", Command{Argv: []string{"echo", "x"}, Shell: true}, "single string"},
		{"value without metric", Command{Argv: []string{"du"}, Format: FormatValue}, "needs a metric name"},
		{"metric without value", Command{Argv: []string{"du"}, Metric: "x"}, "only for format"},
		{"unknown format", Command{Argv: []string{"du"}, Format: "json"}, "unknown format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Commands: []Command{tc.cmd}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
