package silences

// Compiled reports whether m carries its compiled regex (tests only).
func Compiled(m Matcher) bool { return m.re != nil }

// NewStoreWith is NewStore with limits set (tests only).
func NewStoreWith(l Limits) *Store {
	st := NewStore()
	st.SetLimits(l)
	return st
}
