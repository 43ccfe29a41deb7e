package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/recording"
)

const recordUsage = `usage: vigil record --config FILE --out DIR [--for D] [--collections N]
Runs the config's collectors (nothing is evaluated or sent) and records
everything they gather into DIR, for vigil replay, diff and capture. It
stops after --for (default 10m), after N collections of each collector, or
on SIGINT/SIGTERM, and always closes the recording cleanly.
`

func recordCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("record", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), recordUsage) }
	cfgPath := fs.String("config", "", "config file whose collectors to run")
	out := fs.String("out", "", "directory for the recording files")
	span := fs.Duration("for", 10*time.Minute, "how long to record")
	n := fs.Int("collections", 0, "stop after this many collections of each collector (0: no limit)")
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	if *cfgPath == "" || *out == "" || fs.NArg() > 0 || *span <= 0 || *n < 0 {
		fmt.Fprint(stderr, recordUsage)
		return 2
	}
	red := redact.New()
	logger := slog.New(redact.Handler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), red))
	cfg, err := config.Load(*cfgPath, config.Options{LookupEnv: os.LookupEnv, Logger: logger})
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	colls, err := collectors.Build(cfg.Collectors, logger, collectors.WithRedactor(red), collectors.WithLookupEnv(os.LookupEnv))
	if err != nil {
		fmt.Fprintln(stderr, "vigil record:", err)
		return 1
	}
	defer closeCollectors(colls)
	rec, err := recording.NewRecorder(*out, recording.Bounds{FileSpan: *span + time.Minute})
	if err != nil {
		fmt.Fprintln(stderr, "vigil record:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *span)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var samples, failed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range colls {
		interval, timeout := collectors.DefaultInterval, collectors.DefaultTimeout
		if tc, ok := c.(*collectors.TargetCollector); ok {
			interval, timeout = tc.Interval(), tc.Timeout()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; *n == 0 || i < *n; i++ {
				cctx, ccancel := context.WithTimeout(ctx, timeout)
				// Collections on the interval's grid, as vigil run's.
				got, err := c.Collect(cctx, time.Now().Truncate(time.Second))
				ccancel()
				if err != nil {
					failed.Add(1)
					logger.Warn("collection incomplete", "collector", c.Name(), "err", err)
				}
				if ctx.Err() != nil {
					return // cut short: not a whole collection
				}
				if err := rec.Record(got); err != nil {
					failed.Add(1)
					logger.Error("recording failed", "collector", c.Name(), "err", err)
				}
				samples.Add(int64(len(got)))
				if *n != 0 && i+1 == *n {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	wg.Wait()
	if err := rec.Close(); err != nil {
		fmt.Fprintln(stderr, "vigil record:", err)
		return 1
	}
	fmt.Fprintf(stdout, "recorded %d samples from %d collector(s) into %s\n", samples.Load(), len(colls), *out)
	if failed.Load() > 0 {
		fmt.Fprintf(stdout, "%d collection(s) incomplete or not written (see the warnings)\n", failed.Load())
	}
	return 0
}
