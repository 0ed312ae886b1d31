// Package sql holds cdcrelay's repeatable SQL: the functions services call
// from SQL (bus.publish, bus.uuidv7) and settings that depend on them. Every
// `cdcrelay migrate` runs these files again, after the versioned migrations,
// in lexical order of their names, so each must be safe to re-run
// (CREATE OR REPLACE, or guarded).
package sql

import "embed"

// Files are the repeatable SQL files; run them in lexical order of name.
//
//go:embed *.sql
var Files embed.FS
