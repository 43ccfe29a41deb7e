// Package redact is the one place that knows every secret value Vigil was
// configured with: tokens, passwords, secret URLs and the encodings they
// travel in (base64 for Basic and SMTP AUTH, URL escaping). Everything
// that can reach a log, the API, the page, a message or the state file
// and may carry text from outside (an error, a receiver's answer, a
// command's stderr) passes through a Redactor first.
package redact

import (
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Mask is what a secret is replaced with.
const Mask = "<redacted>"

// MaxBody is how much of a receiver's answer, or a command's stderr, is
// kept for an error message.
const MaxBody = 512

// Redactor replaces known secret values in text. The zero value is not
// usable; a nil *Redactor redacts nothing. Values are only ever added: a
// secret rotated out is still a secret.
type Redactor struct {
	mu     sync.RWMutex
	known  map[string]bool
	repl   *strings.Replacer
	values []string // longest first, so a value hides the shorter ones inside it
}

// New returns an empty Redactor.
func New() *Redactor { return &Redactor{known: map[string]bool{}} }

// Add learns secret values and their encoded forms (see Forms). Values
// shorter than 3 bytes are ignored: they protect nothing, and masking
// them (a ":" from an empty user and password) would garble every line.
func (r *Redactor) Add(values ...string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, v := range values {
		if len(v) < minSecret {
			continue
		}
		for _, f := range Forms(v) {
			if !r.known[f] {
				r.known[f] = true
				r.values = append(r.values, f)
				changed = true
			}
		}
	}
	if !changed {
		return
	}
	slices.SortStableFunc(r.values, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(r.values))
	for _, v := range r.values {
		pairs = append(pairs, v, Mask)
	}
	r.repl = strings.NewReplacer(pairs...)
}

// AddURL learns a secret URL: the whole of it, and the parts of it that
// travel on their own (see URLParts).
func (r *Redactor) AddURL(u string) { r.Add(URLParts(u)...) }

// String returns s with every known secret form replaced by Mask.
func (r *Redactor) String(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	repl := r.repl
	r.mu.RUnlock()
	if repl == nil {
		return s
	}
	return repl.Replace(s)
}

// Error returns err unchanged when its text holds no secret, and otherwise
// an error with the redacted text that does not unwrap to the original:
// printing the chain must not reach the secret. A nil err stays nil.
func (r *Redactor) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if red := r.String(msg); red != msg {
		return redacted(red)
	}
	return err
}

type redacted string

func (e redacted) Error() string { return string(e) }

// minSecret is the shortest value Add learns.
const minSecret = 3

// minForm is the shortest encoded form learnt: base64 of a one-byte
// secret is two characters, which would mask half of every log line.
const minForm = 4

// Forms lists v and the forms it is sent in: standard and URL base64,
// padded and not (HTTP Basic, SMTP AUTH, tokens in JSON), and query and
// path escaping (a token in a URL).
func Forms(v string) []string {
	if v == "" {
		return nil
	}
	out := []string{v}
	for _, f := range []string{
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.RawStdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte(v)),
		base64.RawURLEncoding.EncodeToString([]byte(v)),
		url.QueryEscape(v),
		url.PathEscape(v),
	} {
		if len(f) >= minForm && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// BasicAuth is the value HTTP Basic authentication encodes, to learn
// with Add: its base64 is what the Authorization header carries.
func BasicAuth(user, password string) string { return user + ":" + password }

// SMTPPlain is the SMTP AUTH PLAIN message (RFC 4616) for user and
// password, to learn with Add: servers quote its base64 in errors.
func SMTPPlain(user, password string) string { return "\x00" + user + "\x00" + password }

// tokenLike reports whether a path segment or query value of a secret URL
// is worth learning on its own: tokens are long and mix digits and
// letters; words like "services" or "hooks" are not, and masking them
// would garble every log line that uses the word.
func tokenLike(s string) bool {
	if len(s) >= 20 {
		return true
	}
	return len(s) >= 8 && strings.ContainsAny(s, "0123456789") && strings.IndexFunc(s, func(c rune) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}) >= 0
}

// URLParts lists the values of a secret URL that can show up on their
// own: the URL as written and without its user info, the password and
// the "user:password" Basic value, the path with its query (a receiver
// echoing its request line), and every path segment and query value that
// looks like a token (tokenLike).
func URLParts(raw string) []string {
	if raw == "" {
		return nil
	}
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			out = append(out, p, BasicAuth(u.User.Username(), p))
		}
		bare := *u
		bare.User = nil
		out = append(out, bare.String())
	}
	if rp := u.RequestURI(); len(rp) > 1 {
		out = append(out, rp)
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if tokenLike(seg) {
			out = append(out, seg)
			if un, err := url.PathUnescape(seg); err == nil && un != seg {
				out = append(out, un)
			}
		}
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if tokenLike(v) {
				out = append(out, v)
			}
		}
	}
	return out
}

// secretParam matches query parameter names that carry credentials.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, s := range []string{"token", "secret", "key", "pass", "pwd", "auth", "sig", "credential", "session"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// ErrUserInfo says that a URL holds a user name or password.
var ErrUserInfo = errors.New("the URL holds a user name or password")

// ShowURL is raw as it may be shown (a label, a log line, an error): no
// user info, and the values of query parameters whose names suggest a
// credential (token, key, secret, password, signature, ...) replaced by
// Mask. Text that does not parse as a URL is shown as Mask, since it
// cannot be checked.
func ShowURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if secretParam(k) {
				for i := range vs {
					vs[i] = Mask
				}
			}
		}
		// Encode sorts the keys: a stable name for a label.
		u.RawQuery = strings.ReplaceAll(q.Encode(), url.QueryEscape(Mask), Mask)
	}
	return u.String()
}

// SecretParams lists the values of raw's query parameters that ShowURL
// hides, for a Redactor to learn.
func SecretParams(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	for k, vs := range u.Query() {
		if secretParam(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// Truncate keeps at most MaxBody bytes of s, cut at a rune boundary and
// marked as cut. Redact first: a cut can halve a secret, and half a
// secret is no longer recognised.
func Truncate(s string) string {
	if len(s) <= MaxBody {
		return s
	}
	cut := MaxBody
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(truncated)"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
