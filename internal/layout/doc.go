// Package layout holds the test that keeps Vigil's imports one way:
// cmd -> config -> ha, ruletest, replay -> engine, collectors, notifiers
// -> rules, silences, recording -> model -> internal.
package layout
