// Package exec runs operator-configured commands as checks and turns
// their output into samples. Commands come only from Vigil's own config,
// never from rule files, and run without a shell unless asked for one.
package exec

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	osexec "os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/model"
)

// Output formats.
const (
	// FormatLines is one "name value" pair per line; blank lines and lines
	// starting with # are skipped.
	FormatLines = "lines"
	// FormatPrometheus is the Prometheus text exposition format.
	FormatPrometheus = "prometheus"
	// FormatValue takes the first field of the output as the value of
	// Command.Metric, as `du -sb DIR` or `wc -l < FILE` print it.
	FormatValue = "value"
)

// Metrics every run yields besides those parsed from its output.
const (
	MetricExitCode  = "exec.exit_code" // -1 when killed
	MetricDuration  = "exec.duration"  // seconds
	MetricTruncated = "exec.output_truncated"
)

// DefaultMaxOutputBytes bounds stdout when Config.MaxOutputBytes is 0.
const DefaultMaxOutputBytes = 1 << 20

// maxStderr is how much stderr is kept for error messages: more than the
// collector shows, so that the secrets in it are whole when the redactor
// sees them (collectors.WithRedactor), before the cut.
const maxStderr = 8 * redact.MaxBody

var metricName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:-]*$`)

// Command is one check.
type Command struct {
	// Argv is the program and its arguments, run directly. With Shell, it
	// is one string given to /bin/sh -c.
	Argv   []string
	Shell  bool
	Format string // FormatLines (default), FormatPrometheus or FormatValue
	Metric string // the sample's name, with FormatValue only
}

// Config configures a Scraper.
type Config struct {
	Commands       []Command // one per target
	MaxOutputBytes int64     // stdout beyond this is cut; 0 means DefaultMaxOutputBytes
}

// Scraper runs one command per target index.
type Scraper struct {
	cmds []Command
	max  int64
}

// New validates every command.
func New(cfg Config) (*Scraper, error) {
	if len(cfg.Commands) == 0 {
		return nil, errors.New("no commands")
	}
	s := &Scraper{max: cfg.MaxOutputBytes}
	if s.max <= 0 {
		s.max = DefaultMaxOutputBytes
	}
	var errs []error
	for i, c := range cfg.Commands {
		if c.Format == "" {
			c.Format = FormatLines
		}
		if err := validate(c); err != nil {
			errs = append(errs, fmt.Errorf("command %d: %w", i, err))
		}
		s.cmds = append(s.cmds, c)
	}
	return s, errors.Join(errs...)
}

func validate(c Command) error {
	var errs []error
	switch {
	case len(c.Argv) == 0 || c.Argv[0] == "":
		errs = append(errs, errors.New("empty command"))
	case c.Shell && len(c.Argv) != 1:
		errs = append(errs, errors.New("with shell: true the command is a single string"))
	}
	switch c.Format {
	case FormatLines, FormatPrometheus:
		if c.Metric != "" {
			errs = append(errs, fmt.Errorf("metric is only for format %q", FormatValue))
		}
	case FormatValue:
		if !metricName.MatchString(c.Metric) {
			errs = append(errs, fmt.Errorf("format %q needs a metric name, got %q", FormatValue, c.Metric))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown format %q (want %s, %s or %s)", c.Format, FormatLines, FormatPrometheus, FormatValue))
	}
	return errors.Join(errs...)
}

// Scrape runs command i once. When ctx ends, or the output passes the
// limit, the command's whole process group is killed, so a shell's
// children die with it.
func (s *Scraper) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	c := s.cmds[i]
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	argv := c.Argv
	if c.Shell {
		argv = []string{"/bin/sh", "-c", c.Argv[0]}
	}
	cmd := osexec.CommandContext(runCtx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// If a grandchild escaped the group and holds stdout, stop waiting.
	cmd.WaitDelay = time.Second
	stdout := &capped{max: s.max, full: cancel}
	stderr := &capped{max: maxStderr}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	start := time.Now()
	runErr := cmd.Run()
	took := time.Since(start)

	exitCode := -1.0
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() >= 0 {
		exitCode = float64(cmd.ProcessState.ExitCode())
	}
	truncated := stdout.truncated()
	out := []model.Sample{
		{Metric: MetricExitCode, Value: exitCode, Time: now},
		{Metric: MetricDuration, Value: took.Seconds(), Time: now},
		{Metric: MetricTruncated, Value: b2f(truncated), Time: now},
	}

	var errs []error
	switch {
	case ctx.Err() != nil:
		errs = append(errs, fmt.Errorf("killed after %v: %w", took.Round(time.Millisecond), ctx.Err()))
	case truncated:
		errs = append(errs, fmt.Errorf("output cut at %d bytes, command killed", s.max))
	case runErr != nil:
		msg := strings.TrimSpace(stderr.String())
		if msg != "" {
			msg = ": " + msg
		}
		errs = append(errs, fmt.Errorf("%w%s", runErr, msg))
	}
	if ctx.Err() == nil {
		data := stdout.Bytes()
		if truncated {
			// The last line is cut mid-way; keep only whole lines.
			data = data[:bytes.LastIndexByte(data, '\n')+1]
		}
		parsed, err := parse(c, data, now)
		if err != nil {
			errs = append(errs, err)
		} else {
			out = append(out, parsed...)
		}
	}
	return out, errors.Join(errs...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// parse reads a command's output. Any bad line makes the whole output an
// error: half a check's output is easy to misread.
func parse(c Command, data []byte, now time.Time) ([]model.Sample, error) {
	switch c.Format {
	case FormatPrometheus:
		fams, err := prom.Parse(bytes.NewReader(data), nil)
		if err != nil {
			return nil, err
		}
		return prom.Samples(fams, now), nil
	case FormatValue:
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			return nil, errors.New("no output, want a number")
		}
		v, err := parseValue(fields[0])
		if err != nil {
			return nil, err
		}
		return []model.Sample{{Metric: c.Metric, Value: v, Time: now}}, nil
	}
	var out []model.Sample
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"name value\", got %q", n, clip(line))
		}
		if !metricName.MatchString(f[0]) {
			return nil, fmt.Errorf("line %d: bad metric name %q", n, clip(f[0]))
		}
		v, err := parseValue(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, model.Sample{Metric: f[0], Value: v, Time: now})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseValue(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a number", clip(s))
	}
	return v, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// capped keeps the first max bytes written, and calls full once when more
// arrive. It accepts everything so the writer never sees an error.
type capped struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	max      int64
	over     bool
	full     func()
	fullOnce sync.Once
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.max - int64(c.buf.Len())
	if int64(len(p)) > room {
		c.buf.Write(p[:max(room, 0)])
		c.over = true
		if c.full != nil {
			c.fullOnce.Do(c.full)
		}
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}

func (c *capped) truncated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.over
}

func (c *capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Bytes()
}

func (c *capped) String() string { return string(c.Bytes()) }
