package ha_test

import (
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-alerts/vigil/ha"
)

func TestConfigDecodesAndDefaults(t *testing.T) {
	src := `
endpoints: [https://etcd-0:2379, https://etcd-1:2379]
tls: {ca_file: /etc/vigil/etcd-ca.pem}
username: vigil
password_env: VIGIL_ETCD_PASSWORD
prefix: /vigil/prod
session_ttl: 15s
`
	var c ha.Config
	if err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if c.Prefix != "/vigil/prod/" || time.Duration(c.SessionTTL) != 15*time.Second || c.TTL() != 15 || c.Name == "" {
		t.Errorf("defaults: %+v", c)
	}
	if got := (ha.Config{}).WithDefaults(); got.Prefix != ha.DefaultPrefix || got.TTL() != 10 {
		t.Errorf("empty config defaults: %+v", got)
	}
}

func TestConfigErrorsAllAtOnce(t *testing.T) {
	var c ha.Config
	src := "endpoints: [etcd-0:2379]\nsession_ttl: 1500ms\nusername: vigil\npassword_env: A\npassword_file: /b\n"
	if err := yaml.UnmarshalWithOptions([]byte(src), &c, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	for _, want := range []string{
		`endpoints[0]: "etcd-0:2379" must start with http:// or https://`,
		"session_ttl: 1.5s must be a whole number of seconds",
		"password_env and password_file are mutually exclusive",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := (ha.Config{Endpoints: []string{"http://x:2379"}, Username: "u"}).NewClient(nil, nil); err == nil ||
		!strings.Contains(err.Error(), "username and password_env/password_file go together") {
		t.Errorf("username without password: %v", err)
	}
}
