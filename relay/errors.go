package relay

import "fmt"

// Settings of Config a ConfigError can name.
const (
	SettingDatabaseURL = "DatabaseURL"
	SettingNATSURL     = "NATSURL"
)

// SettingProblem is what is wrong with a setting.
type SettingProblem int

// The problems a ConfigError reports.
const (
	// SettingUnset: the setting is empty.
	SettingUnset SettingProblem = iota + 1
	// SettingInvalid: its value cannot be used (Err says why).
	SettingInvalid
	// ServerUnreachable: the server it names could not be reached or
	// refused the connection (Err says how).
	ServerUnreachable
)

// ConfigError says a Config setting is unset, invalid, or names a server
// that cannot be reached: a start-up problem a person must fix.
type ConfigError struct {
	// Setting is the Config field: SettingDatabaseURL or SettingNATSURL.
	Setting string
	Problem SettingProblem
	// Err is the cause; nil when Unset.
	Err error
}

func (e *ConfigError) Error() string {
	what, server := "database URL", "PostgreSQL"
	if e.Setting == SettingNATSURL {
		what, server = "NATS URL", "NATS"
	}
	switch e.Problem {
	case SettingUnset:
		return "no " + what
	case ServerUnreachable:
		return fmt.Sprintf("connect to %s: %v", server, e.Err)
	}
	return fmt.Sprintf("%s: %v", what, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }
