package webhook_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// A receiver that answers 500 with the whole request it got: the error
// keeps the status and the start of the answer, but none of the URL's
// password and path token, the secret header or the Basic header built
// from the URL, and no more than 512 bytes of the answer.
func TestEchoingReceiverError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, true)
		w.WriteHeader(http.StatusInternalServerError)
		w.Write(dump)
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("hook", "userinfo-secret-77")
	u.Path = "/hooks/path-token-secret-77"
	n, err := webhook.New(webhook.Config{URLEnv: "U", HeadersEnv: map[string]string{"X-Api-Key": "H"}},
		webhook.Options{LookupEnv: env("U", u.String(), "H", "header-secret-77")})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), testAlerts()...)
	if !retry || err == nil {
		t.Fatalf("retry=%v err=%v, want a retried failure", retry, err)
	}
	msg := err.Error()
	for _, s := range []string{"userinfo-secret-77", "path-token-secret-77", "header-secret-77",
		base64.StdEncoding.EncodeToString([]byte("hook:userinfo-secret-77"))} {
		if strings.Contains(msg, s) {
			t.Errorf("%q in the error: %s", s, msg)
		}
	}
	if !strings.Contains(msg, "unexpected status 500") || !strings.Contains(msg, "X-Api-Key: <redacted>") {
		t.Errorf("the error does not say what the receiver answered: %s", msg)
	}
	if body := msg[strings.Index(msg, "POST"):]; len(body) > 512+len("…(truncated)") {
		t.Errorf("%d bytes of the answer kept, want at most 512", len(body))
	}
}
