// Package sched sets how the kernel schedules this process's threads
// against others on the same cores.
//
// A relay is woken by every message its walsender sends. Under Linux's
// default policy a thread that wakes up may preempt the thread running on
// its core, and the scheduler puts it on the waker's core first: on a host
// where the relay shares cores with PostgreSQL, the relay's wake-ups take
// the core from the very walsender that feeds it, which then falls behind
// in episodes of 100 ms and more. Under SCHED_BATCH a woken thread waits
// for the running one's slice (or for an idle core) instead; its share of
// the CPU is unchanged (the nice value is kept).
package sched
