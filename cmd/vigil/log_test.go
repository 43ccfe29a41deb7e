package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `vigil run --log.format=json` writes nothing but JSON objects on
// stderr, from start to shutdown, the failing collector's line and the
// etcd client's own (bridged from zap) included.
func TestRunLogFormatJSON(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(upRule), 0o644)
	cfg := strings.Replace(baseConfig(sharedEtcd(t), ""), "collectors:\n", `collectors:
  - name: dead
    type: etcd
    interval: 1s
    timeout: 500ms
    targets: [{name: gone, address: "http://127.0.0.1:1"}]
`, 1)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
	var stderr, stdout syncBuf
	code := make(chan int, 1)
	go func() {
		code <- runDaemon([]string{"--config", filepath.Join(dir, "vigil.yaml"), "--log.format=json", "--log.level=debug"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"target collection failing"`) ||
		!strings.Contains(stderr.String(), `"client":"etcd"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no failing collection logged:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// "vigil running" is logged after the signal handler is installed.
	if !strings.Contains(stderr.String(), `"msg":"vigil running"`) {
		t.Fatalf("daemon not running:\n%s", stderr.String())
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	if c := <-code; c != 0 {
		t.Fatalf("exit %d:\n%s", c, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("not JSON: %q: %v", l, err)
			continue
		}
		if m["time"] == nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("line without time, level or msg: %q", l)
		}
		if k := duplicateKey(l); k != "" {
			t.Errorf("key %q twice (JSON readers keep one): %q", k, l)
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no shutdown logged:\n%s", stderr.String())
	}
}

// duplicateKey is a top-level key that occurs twice in the JSON object
// line, if any: two scoped loggers adding the same key.
func duplicateKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	seen := map[string]bool{}
	depth, key := 0, true
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '{' || tok == '[' {
				depth++
			} else {
				depth--
			}
			if depth == 1 {
				key = true
			}
			continue
		case string:
			if depth == 1 && key {
				if seen[tok] {
					return tok
				}
				seen[tok] = true
				key = false
				continue
			}
		}
		if depth == 1 {
			key = true
		}
	}
}

// A log format or level that does not exist is a usage error (exit 2)
// that names the flag.
func TestRunLogFlagsBadValue(t *testing.T) {
	for _, args := range [][]string{{"--log.format=xml"}, {"--log.level=loud"}} {
		var stdout, stderr syncBuf
		if c := runDaemon(args, &stdout, &stderr); c != 2 {
			t.Errorf("%v: exit %d, want 2", args, c)
		}
		flag := strings.TrimPrefix(strings.SplitN(args[0], "=", 2)[0], "--")
		contains(t, "stderr", stderr.String(), "invalid value", flag)
	}
	var stdout, stderr syncBuf
	if c := demo([]string{"--log.format=yaml"}, &stdout, &stderr); c != 2 {
		t.Errorf("demo --log.format=yaml: exit %d, want 2", c)
	}
}
