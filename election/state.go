package election

import "strconv"

// State is where an Elector stands. Readiness and metrics export it.
type State int

const (
	// StateStandby: not leading, and able to take over (connected and
	// retrying the lock, or between terms). A new Elector starts here.
	StateStandby State = iota
	// StateLeader: this process holds the lock.
	StateLeader
	// StateUnhealthy: not leading and unable to take over: the lock
	// connection failed and is being re-established with back-off.
	StateUnhealthy
)

// String is the lower-case name used in logs, metrics and readiness output.
func (s State) String() string {
	switch s {
	case StateStandby:
		return "standby"
	case StateLeader:
		return "leader"
	case StateUnhealthy:
		return "unhealthy"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}
