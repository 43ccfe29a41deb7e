// Package layout holds the test that keeps Vigil's imports one way:
// cmd -> config -> ha, ruletest -> engine, collectors, notifiers ->
// rules, silences -> model -> internal.
package layout
