// Package e2e holds the process-level tests of cdcrelay: they build the
// binary and run relays as real processes against a throwaway PostgreSQL
// and an embedded JetStream server, to kill them with SIGKILL, fail over
// between replicas, restart PostgreSQL under them, and check that a
// misconfigured start-up is refused with one line naming the fix.
package e2e
