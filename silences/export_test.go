package silences

// Compiled reports whether m carries its compiled regex (tests only).
func Compiled(m Matcher) bool { return m.re != nil }
