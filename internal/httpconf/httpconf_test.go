package httpconf

import (
	"net/url"
	"strings"
	"testing"

	promconfig "github.com/prometheus/common/config"
)

// Every client built here (the alertmanager channel's too) refuses
// credentials in URLs, where they would be logged with the URL, and
// never quotes them.
func TestClientRefusesUserInfo(t *testing.T) {
	u := func(s string) promconfig.URL {
		p, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return promconfig.URL{URL: p}
	}
	for _, tc := range []struct {
		name string
		c    promconfig.HTTPClientConfig
		want string
	}{
		{"proxy", promconfig.HTTPClientConfig{ProxyConfig: promconfig.ProxyConfig{ProxyURL: u("http://u:canary@proxy:3128")}},
			"alertmanager.proxy_url: the URL holds a user name or password"},
		{"token endpoint", promconfig.HTTPClientConfig{OAuth2: &promconfig.OAuth2{ClientID: "c", ClientSecretRef: "SECRET", TokenURL: "http://u:canary@sso/token"}},
			"alertmanager.oauth2.token_url: the URL holds a user name or password"},
		{"token endpoint's proxy", promconfig.HTTPClientConfig{OAuth2: &promconfig.OAuth2{ClientID: "c", ClientSecretRef: "SECRET", TokenURL: "http://sso/token",
			ProxyConfig: promconfig.ProxyConfig{ProxyURL: u("http://u:canary@proxy:3128")}}},
			"alertmanager.oauth2.proxy_url: the URL holds a user name or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := func(string) (string, bool) { return "s3cret", true }
			_, _, err := Client(tc.c, "alertmanager", env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "canary") {
				t.Errorf("the error quotes the password: %v", err)
			}
		})
	}
}
