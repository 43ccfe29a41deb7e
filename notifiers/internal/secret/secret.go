// Package secret loads tokens, passwords and URLs named by *_env / *_file
// config fields and keeps them out of logs, errors and serialised output.
package secret

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/vigil-alerts/vigil/internal/redact"
)

// Secret holds a sensitive string behind a pointer, so that even %+v of a
// struct holding it prints an address, never the value.
type Secret struct{ p *string }

// Redacted is what a Secret prints as.
const Redacted = "<redacted>"

// New wraps v; an empty v gives the zero Secret.
func New(v string) Secret {
	if v == "" {
		return Secret{}
	}
	return Secret{p: &v}
}

// Reveal returns the value for the one place that must send it.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether no value is set.
func (s Secret) IsZero() bool { return s.p == nil }

func (s Secret) String() string               { return Redacted }
func (s Secret) GoString() string             { return Redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(Redacted) }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
func (s Secret) MarshalYAML() (any, error)    { return Redacted, nil }

// LookupEnv is os.LookupEnv's shape, injectable for tests.
type LookupEnv func(string) (string, bool)

// ErrMissing says that a required secret was given neither by env nor file.
var ErrMissing = errors.New("secret not configured")

// Load reads the secret named by exactly one of env or file. The field
// name (e.g. "token") appears in errors; the value never does.
func Load(field, env, file string, lookup LookupEnv) (Secret, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if err := Check(field, env, file); err != nil {
		return Secret{}, err
	}
	switch {
	case env != "":
		v, ok := lookup(env)
		if !ok || strings.TrimSpace(v) == "" {
			return Secret{}, fmt.Errorf("%s_env: environment variable %s is not set or empty", field, env)
		}
		return New(strings.TrimSpace(v)), nil
	default: // file, as Check made sure
		b, err := os.ReadFile(file)
		if err != nil {
			// The *PathError names only the path, which is config, not secret.
			return Secret{}, fmt.Errorf("%s_file: %w", field, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return Secret{}, fmt.Errorf("%s_file: %s is empty", field, file)
		}
		return New(v), nil
	}
}

// Check reports what Load would about how field is set, without reading
// it: both ways set, or neither.
func Check(field, env, file string) error {
	switch {
	case env != "" && file != "":
		return fmt.Errorf("%s_env and %s_file are mutually exclusive", field, field)
	case env == "" && file == "":
		return fmt.Errorf("%s: %w (set %s_env or %s_file)", field, ErrMissing, field, field)
	}
	return nil
}

// LoadUnless is Load, or, when dry (a channel built to render only, in a
// rule test), Check alone: the settings are checked as the daemon checks
// them and nothing is read.
func LoadUnless(dry bool, field, env, file string, lookup LookupEnv) (Secret, error) {
	if dry {
		return Secret{}, Check(field, env, file)
	}
	return Load(field, env, file, lookup)
}

// Redact returns err with every secret value replaced, in every form it
// travels in (redact.Forms; a secret URL's parts, redact.URLParts),
// keeping nothing of the original chain: libraries put request URLs
// (which may embed tokens) into their errors, and receivers echo what
// they were sent. A nil err stays nil.
func Redact(err error, secrets ...Secret) error {
	if err == nil {
		return nil
	}
	r := redact.New()
	r.Add(Values(secrets...)...)
	return r.Error(err)
}

// Values lists what a redact.Redactor must learn for ss: each value, and
// for a URL the parts of it that travel on their own (redact.URLParts).
// For the redactor only: never logged or shown.
func Values(ss ...Secret) []string {
	var out []string
	for _, s := range ss {
		v := s.Reveal()
		if v == "" {
			continue
		}
		if strings.Contains(v, "://") {
			out = append(out, redact.URLParts(v)...)
			continue
		}
		out = append(out, v)
	}
	return out
}

// Digest is a hash of the values of ss, in order, for telling whether
// secrets read again (a rotated file) differ from those in use without
// keeping a second copy. It is compared, never logged or shown.
func Digest(ss ...Secret) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range ss {
		v := s.Reveal()
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		io.WriteString(h, v)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
