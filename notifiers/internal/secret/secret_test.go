package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	env := func(k string) (string, bool) {
		return map[string]string{"SET": " tok \n", "EMPTY": ""}[k], k != "UNSET"
	}
	file := t.TempDir() + "/f"
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env, file, want, err string
	}{
		{env: "SET", want: "tok"},
		{file: file, want: "from-file"},
		{env: "UNSET", err: "token_env: environment variable UNSET is not set"},
		{env: "EMPTY", err: "not set or empty"},
		{env: "SET", file: file, err: "mutually exclusive"},
		{err: "set token_env or token_file"},
		{file: file + "x", err: "token_file: open"},
	} {
		s, err := Load("token", tc.env, tc.file, env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: err = %v", tc, err)
			}
			continue
		}
		if err != nil || s.Reveal() != tc.want {
			t.Errorf("%+v: got %q, %v", tc, s.Reveal(), err)
		}
	}
}

func TestNeverPrinted(t *testing.T) {
	s := New("hunter2")
	holder := struct {
		S Secret
		p Secret
	}{s, s}
	js, _ := json.Marshal(holder)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "s", s)
	out := fmt.Sprintf("%v %+v %#v %s %q", s, holder, holder, s, s) + string(js) + b.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("leaked: %s", out)
	}
}

func TestRedact(t *testing.T) {
	base := errors.New(`Post "https://hooks.example/T0/hunter2": dial tcp: refused`)
	err := Redact(fmt.Errorf("slack: %w", base), New("https://hooks.example/T0/hunter2"), Secret{})
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "dial tcp: refused") {
		t.Errorf("Redact = %v", err)
	}
	if errors.Unwrap(err) != nil {
		t.Error("redacted error still unwraps to the original")
	}
	if Redact(nil, Secret{}) != nil || Redact(base, New("absent")) != base {
		t.Error("Redact changed what it should not")
	}
}

func TestDigest(t *testing.T) {
	a, b := Digest(New("ab"), New("c")), Digest(New("a"), New("bc"))
	if a == b {
		t.Error("Digest does not tell value boundaries apart")
	}
	x1, x2 := Digest(New("x")), Digest(New("x")) // two Secrets, same value
	if x1 != x2 || x1 == Digest(New("y")) {
		t.Error("Digest is not a function of the values")
	}
}
