package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The crash test runs `vigil run` as a real child process (this test
// binary re-executed as vigil) on the real scheduler and wall clock, kills
// it with SIGKILL (as the OOM killer or a lost node would: no Stop, no
// final save) and starts it again on the same files.

// childArgsEnv makes this test binary run as vigil with the given
// arguments (separated by newlines) instead of running tests.
const childArgsEnv = "VIGIL_TEST_CHILD_ARGS"

func init() {
	if args := os.Getenv(childArgsEnv); args != "" {
		os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
}

// vigilProcess is one `vigil run` child.
type vigilProcess struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

func startVigilProcess(t *testing.T, dir, addr string) *vigilProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childArgsEnv+"=run\n--config\nvigil.yaml")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &vigilProcess{cmd: cmd, addr: addr, done: make(chan error, 1)}
	go func() {
		// The child's log goes to the test log, line by line.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log("vigil: " + sc.Text())
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *vigilProcess) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// evaluations is how many evaluation slots the process has run.
func (p *vigilProcess) evaluations(t *testing.T) int {
	m := regexp.MustCompile(`(?m)^vigil_scheduler_runs_total\{job="eval/crash"\} (\d+)`).FindStringSubmatch(p.get(t, "/metrics"))
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

type crashAlert struct {
	Rule     string    `json:"rule"`
	State    string    `json:"state"`
	ActiveAt time.Time `json:"active_at"`
	FiredAt  time.Time `json:"fired_at"`
}

func (p *vigilProcess) alerts(t *testing.T) map[string]crashAlert {
	var out struct {
		Alerts []crashAlert `json:"alerts"`
	}
	json.Unmarshal([]byte(p.get(t, "/api/v1/alerts")), &out)
	m := map[string]crashAlert{}
	for _, a := range out.Alerts {
		m[a.Rule] = a
	}
	return m
}

const crashRules = `groups:
  - name: crash
    interval: 1s
    rules:
      - name: MemberUpFires
        severity: info
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 2s
        notify: [hook]
      - name: MemberUpPending
        severity: info
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 1h
        notify: [hook]
`

func TestCrashKeepsStateAndDoesNotRepage(t *testing.T) {
	if testing.Short() {
		t.Skip("runs vigil as a child process on the wall clock")
	}
	var mu sync.Mutex
	var got []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct{ Status, Rule string }
		json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		got = append(got, p.Status+" "+p.Rule)
		mu.Unlock()
	}))
	defer hook.Close()
	messages := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}

	dir := t.TempDir()
	addr := freeAddr(t)
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "crash.yaml"), []byte(crashRules), 0o644)
	cfg := strings.Replace(baseConfig(sharedEtcd(t), "    - name: hook\n      webhook: {url: \""+hook.URL+"\"}\n"),
		"address: 127.0.0.1:0", "address: "+addr, 1)
	cfg = strings.NewReplacer("interval: 10s\n    timeout: 2s", "interval: 1s\n    timeout: 900ms",
		"group_interval: 10s", "group_interval: 1s").Replace(cfg)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)

	first := startVigilProcess(t, dir, addr)
	if !poll(30*time.Second, func() bool { return len(messages()) == 1 }) {
		t.Fatalf("the first page was not delivered: %v\n%s\n%s", messages(), first.get(t, "/api/v1/alerts"), first.get(t, "/metrics"))
	}
	if m := messages(); m[0] != "firing MemberUpFires" {
		t.Fatalf("first message: %v", m)
	}
	before := first.alerts(t)
	if before["MemberUpPending"].State != "pending" || before["MemberUpFires"].State != "firing" {
		t.Fatalf("alerts before the crash: %+v", before)
	}
	// The delivery is recorded at the next save: one save period, which
	// docs/deploy.md states, is what a crash may lose.
	if !poll(10*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "state.json"))
		return strings.Contains(string(b), `"last_sent"`)
	}) {
		t.Fatal("the delivery never reached the state file")
	}

	first.cmd.Process.Signal(syscall.SIGKILL)
	if err := <-first.done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	first.done <- nil // for the cleanup

	second := startVigilProcess(t, dir, addr)
	// Five evaluations after the restart: long past group_wait and
	// group_interval, so a re-page would have been sent by then.
	if !poll(30*time.Second, func() bool { return second.evaluations(t) >= 5 }) {
		t.Fatal("the restarted vigil does not evaluate")
	}
	if m := messages(); len(m) != 1 {
		t.Errorf("re-paged after the crash: %v", m)
	}
	after := second.alerts(t)
	for _, rule := range []string{"MemberUpPending", "MemberUpFires"} {
		b, a := before[rule], after[rule]
		if a.State != b.State || !a.ActiveAt.Equal(b.ActiveAt) || !a.FiredAt.Equal(b.FiredAt) {
			t.Errorf("%s after the crash: %+v, before: %+v (its timers must survive)", rule, a, b)
		}
	}

	// An orderly stop of the second process still exits 0.
	second.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-second.done:
		if err != nil {
			t.Errorf("SIGTERM: %v", err)
		}
		second.done <- nil
	case <-time.After(20 * time.Second):
		t.Fatal("vigil did not stop within 20s of SIGTERM")
	}
}

// freeAddr is a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
