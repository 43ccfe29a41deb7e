package redact

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

func TestRedactorForms(t *testing.T) {
	r := New()
	r.Add("s3cr3t/pass word", SMTPPlain("alice", "s3cr3t/pass word"), BasicAuth("bob", "hunter22"))
	texts := []string{
		"plain s3cr3t/pass word",
		"b64 " + base64.StdEncoding.EncodeToString([]byte("s3cr3t/pass word")),
		"b64url " + base64.RawURLEncoding.EncodeToString([]byte("s3cr3t/pass word")),
		"query " + url.QueryEscape("s3cr3t/pass word"),
		"path " + url.PathEscape("s3cr3t/pass word"),
		"535 5.7.8 AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00s3cr3t/pass word")) + " rejected",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bob:hunter22")),
	}
	for _, s := range texts {
		got := r.String(s)
		if !strings.Contains(got, Mask) || strings.Contains(got, "s3cr3t") || strings.Contains(got, "hunter22") {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
	if got := r.String("nothing here"); got != "nothing here" {
		t.Errorf("clean text changed: %q", got)
	}
	var nilR *Redactor
	if nilR.String("x") != "x" || nilR.Error(nil) != nil {
		t.Error("a nil Redactor changed something")
	}
}

func TestRedactorError(t *testing.T) {
	r := New()
	r.Add("tok-123456")
	base := errors.New("401: echo Bearer tok-123456")
	err := r.Error(fmt.Errorf("webhook: %w", base))
	if strings.Contains(err.Error(), "tok-123456") || errors.Unwrap(err) != nil {
		t.Errorf("Error = %v (unwraps: %v)", err, errors.Unwrap(err))
	}
	clean := errors.New("dial tcp: refused")
	if r.Error(clean) != clean {
		t.Error("a clean error was replaced")
	}
}

func TestURLParts(t *testing.T) {
	r := New()
	r.AddURL("https://user:pa55-word@hooks.example/services/T0/B0/XYZtoken0123?sig=abcdefgh12")
	for _, s := range []string{
		"POST /services/T0/B0/XYZtoken0123?sig=abcdefgh12",
		"pa55-word",
		"Basic " + base64.StdEncoding.EncodeToString([]byte("user:pa55-word")),
		"path token XYZtoken0123",
		"sig abcdefgh12",
		"https://hooks.example/services/T0/B0/XYZtoken0123?sig=abcdefgh12",
	} {
		if got := r.String(s); strings.Contains(got, "XYZtoken") || strings.Contains(got, "pa55") || strings.Contains(got, "abcdefgh12") || got == s {
			t.Errorf("String(%q) = %q", s, got)
		}
	}
	// Short path words are not secrets of their own.
	if got := r.String("services hooks T0"); got != "services hooks T0" {
		t.Errorf("short segments masked: %q", got)
	}
}

func TestShowURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:p@h:9100/metrics":                        "https://h:9100/metrics",
		"http://h/metrics?module=if_mib&access_token=abc":   "http://h/metrics?access_token=<redacted>&module=if_mib",
		"http://h/metrics?apiKey=1&target=x&Password=2&x=3": "http://h/metrics?Password=<redacted>&apiKey=<redacted>&target=x&x=3",
		"http://h/metrics":                                  "http://h/metrics",
		"http://h/%zz":                                      Mask,
	} {
		if got := ShowURL(in); got != want {
			t.Errorf("ShowURL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := SecretParams("http://h/m?token=abc&module=x"); len(got) != 1 || got[0] != "abc" {
		t.Errorf("SecretParams = %q", got)
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", MaxBody)
	got := Truncate(long)
	if len(got) > MaxBody+len("…(truncated)") || !strings.HasSuffix(got, "…(truncated)") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…(truncated)")) {
		t.Errorf("Truncate: %d bytes, %q...", len(got), got[:20])
	}
	if Truncate("short") != "short" {
		t.Error("short text changed")
	}
}

// Every value a log line carries passes through the Redactor: the
// message, strings, errors, values printed as text, groups, and
// attributes attached with With.
func TestHandler(t *testing.T) {
	r := New()
	r.Add("canary-log-secret")
	var buf bytes.Buffer
	log := slog.New(Handler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), r))
	log = log.With("url", "http://h/canary-log-secret")
	log.WithGroup("g").Debug("msg canary-log-secret", "err", errors.New("echo canary-log-secret"),
		"any", []string{"canary-log-secret"}, "n", 3, slog.Group("inner", "s", "canary-log-secret"))
	out := buf.String()
	if strings.Contains(out, "canary-log-secret") || !strings.Contains(out, "n=3") {
		t.Errorf("log line: %s", out)
	}
	if strings.Count(out, Mask) != 5 {
		t.Errorf("want 5 masks: %s", out)
	}
}

// Values too short to be secrets, such as the Basic value of an empty
// user and password, are not learnt: they would mask every colon.
func TestShortValuesIgnored(t *testing.T) {
	r := New()
	r.Add(BasicAuth("", ""), "", "ab")
	r.AddURL("http://u:@h/x")
	if got := r.String("file.yaml:9:46: u: ab"); got != "file.yaml:9:46: u: ab" {
		t.Errorf("short values masked: %q", got)
	}
}
