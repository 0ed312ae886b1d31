// Package integration checks package decode against what a real PostgreSQL
// walsender emits, in text and binary modes. It has no code of its own: the
// tests live here so that decode's unit tests, fuzzing and benchmarks do not
// start a PostgreSQL cluster.
package integration
