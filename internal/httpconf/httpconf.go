// Package httpconf builds HTTP clients from Prometheus' own client config
// (prometheus/common/config.HTTPClientConfig: basic_auth, authorization,
// oauth2, tls_config, proxy, http_headers) under Vigil's secret rules:
// secrets come from *_file fields or from *_ref fields naming environment
// variables; a secret written in the config is refused, so the config
// file can be shared and shown. Scrapes (collectors/prom) and the
// alertmanager channel build their clients with it.
package httpconf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"

	promconfig "github.com/prometheus/common/config"

	"github.com/vigil-alerts/vigil/internal/redact"
)

// Client checks c and builds its client. prefix names the block in
// errors ("alertmanager"). It returns the credential values the client
// sends, read now (files are read again at every request), for a
// redact.Redactor; the zero c is promconfig.DefaultHTTPClientConfig.
func Client(c promconfig.HTTPClientConfig, prefix string, lookupEnv func(string) (string, bool)) (*http.Client, []string, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	if reflect.ValueOf(c).IsZero() {
		c = promconfig.DefaultHTTPClientConfig
	}
	errs := []error{Check(c, prefix)}
	env := envSecrets(lookupEnv)
	secrets, err := credentials(c, prefix, env)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	client, err := promconfig.NewClientFromConfig(c, "vigil", promconfig.WithUserAgent("vigil"), promconfig.WithSecretManager(env))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return client, secrets, nil
}

// Check checks c as Client does, reading no secret: a channel built to
// render only (a rule test) refuses what the daemon would.
func Check(c promconfig.HTTPClientConfig, prefix string) error {
	if reflect.ValueOf(c).IsZero() {
		return nil
	}
	var errs []error
	if err := c.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
	}
	errs = append(errs, inlineSecrets(reflect.ValueOf(c), prefix)...)
	for _, u := range []struct {
		field string
		u     *url.URL
	}{{"proxy_url", c.ProxyURL.URL}, {"oauth2.proxy_url", oauthProxy(c.OAuth2)}} {
		if u.u != nil && u.u.User != nil {
			errs = append(errs, fmt.Errorf("%s.%s: %w; the proxy's credentials go in proxy_connect_header files", prefix, u.field, redact.ErrUserInfo))
		}
	}
	if o := c.OAuth2; o != nil {
		if tu, err := url.Parse(o.TokenURL); err == nil && tu.User != nil {
			errs = append(errs, fmt.Errorf("%s.oauth2.token_url: %w; use client_id and client_secret_file", prefix, redact.ErrUserInfo))
		}
	}
	return errors.Join(errs...)
}

// Credentials reads again the credential values c's client sends (files
// are read at every request, so a rotated one is in use before any
// reload), for a redactor to learn before an error is shown.
func Credentials(c promconfig.HTTPClientConfig, prefix string, lookupEnv func(string) (string, bool)) ([]string, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	return credentials(c, prefix, envSecrets(lookupEnv))
}

// HasCredentials says whether c's client sends any credential.
func HasCredentials(c promconfig.HTTPClientConfig) bool { return len(sources(c)) > 0 }

func oauthProxy(o *promconfig.OAuth2) *url.URL {
	if o == nil {
		return nil
	}
	return o.ProxyURL.URL
}

// SecretFiles lists the files c reads credentials from, so a reload can
// notice a rotated one.
func SecretFiles(c promconfig.HTTPClientConfig) []string {
	var fs []string
	for _, s := range sources(c) {
		if s.file != "" {
			fs = append(fs, s.file)
		}
	}
	return fs
}

// envSecrets is the SecretManager behind *_ref fields.
type envSecrets func(string) (string, bool)

func (e envSecrets) Fetch(_ context.Context, name string) (string, error) {
	v, ok := e(name)
	if v = strings.TrimSpace(v); !ok || v == "" {
		return "", fmt.Errorf("environment variable %s is not set or empty", name)
	}
	return v, nil
}

type source struct{ field, file, ref string }

func sources(c promconfig.HTTPClientConfig) []source {
	var out []source
	add := func(field, file, ref string) {
		if file != "" || ref != "" {
			out = append(out, source{field, file, ref})
		}
	}
	if a := c.Authorization; a != nil {
		add("authorization.credentials", a.CredentialsFile, a.CredentialsRef)
	}
	add("bearer_token", c.BearerTokenFile, "")
	if o := c.OAuth2; o != nil {
		add("oauth2.client_secret", o.ClientSecretFile, o.ClientSecretRef)
	}
	if h := c.HTTPHeaders; h != nil {
		for name, hv := range h.Headers {
			for _, f := range hv.Files {
				add("http_headers."+name+".files", f, "")
			}
		}
	}
	if b := c.BasicAuth; b != nil {
		add("basic_auth.password", b.PasswordFile, b.PasswordRef)
	}
	return out
}

// credentials reads every credential c sends, with the "user:password"
// form whose base64 a Basic header carries.
func credentials(c promconfig.HTTPClientConfig, prefix string, env envSecrets) ([]string, error) {
	read := func(s source) (string, error) {
		if s.file != "" {
			b, err := os.ReadFile(s.file)
			if err == nil && strings.TrimSpace(string(b)) == "" {
				err = fmt.Errorf("%s is empty", s.file)
			}
			if err != nil {
				return "", fmt.Errorf("%s.%s_file: %w", prefix, s.field, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		v, err := env.Fetch(context.Background(), s.ref)
		if err != nil {
			return "", fmt.Errorf("%s.%s_ref: %w", prefix, s.field, err)
		}
		return v, nil
	}
	var out []string
	var errs []error
	for _, s := range sources(c) {
		v, err := read(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, v)
		if b := c.BasicAuth; s.field == "basic_auth.password" {
			user := b.Username
			if b.UsernameFile != "" || b.UsernameRef != "" {
				user, _ = read(source{"basic_auth.username", b.UsernameFile, b.UsernameRef})
			}
			out = append(out, redact.BasicAuth(user, v))
		}
	}
	return out, errors.Join(errs...)
}

var secretType = reflect.TypeFor[promconfig.Secret]()

// inlineSecrets reports every secret written into the config itself. It
// walks the struct, so a Secret field a later library version adds is
// covered too.
func inlineSecrets(v reflect.Value, path string) []error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return inlineSecrets(v.Elem(), path)
	case reflect.Struct:
		var errs []error
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			p := path
			if !strings.Contains(opts, "inline") && name != "" {
				p = path + "." + name
			}
			if f.Type == secretType {
				if v.Field(i).String() != "" {
					field := p[strings.IndexByte(p, '.')+1:]
					errs = append(errs, fmt.Errorf("%s: a secret written in the config; use %s_file, or %s_ref naming an environment variable", p, field, field))
				}
				continue
			}
			errs = append(errs, inlineSecrets(v.Field(i), p)...)
		}
		return errs
	case reflect.Map:
		var errs []error
		iter := v.MapRange()
		for iter.Next() {
			errs = append(errs, inlineSecrets(iter.Value(), path+"."+fmt.Sprint(iter.Key().Interface()))...)
		}
		return errs
	case reflect.Slice:
		if v.Type().Elem() == secretType && v.Len() > 0 {
			return []error{fmt.Errorf("%s: secrets written in the config; use files", path)}
		}
		var errs []error
		for i := range v.Len() {
			errs = append(errs, inlineSecrets(v.Index(i), path)...)
		}
		return errs
	}
	return nil
}
