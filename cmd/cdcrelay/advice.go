package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cdcrelay/cdcrelay/publish"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
)

// The fixes more than one command gives, with the flags that apply them.
const (
	fixDatabaseURL = "check --database-url"
	fixDatabase    = "check --database-url and that the server is reachable"
	fixNATS        = "check --nats-url, the NATS credentials and that NATS is reachable"
)

// errDatabaseURL is the one line for a missing --database-url, which the
// config file may set, so no command marks it required.
var errDatabaseURL = errors.New("--database-url is not set (or CDCRELAY_DATABASE_URL, or database-url in --config)")

// advise adds what an operator must do, naming the flags that do it, to the
// facts the libraries report: the one place where their errors become
// advice. Other errors pass unchanged.
func advise(err error) error {
	var (
		config    *relay.ConfigError
		check     *replication.CheckError
		missing   *publish.StreamNotFoundError
		old       *publish.ServerVersionError
		unbatched *publish.BatchingDisabledError
		noAtomic  *publish.AtomicDisabledError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &config) && config.Setting == relay.SettingDatabaseURL && config.Problem == relay.SettingUnset:
		return errDatabaseURL
	case errors.As(err, &config):
		return fmt.Errorf("%w: %s", err, configFix(config))
	case errors.As(err, &check):
		return rewordCheck(err, check)
	case errors.As(err, &missing):
		return fmt.Errorf("%w: %s or run with --ensure-stream", err, fixStreamMissing(missing.Stream))
	case errors.As(err, &old):
		return fmt.Errorf("%w: upgrade every nats-server the relay can connect to (each node of the cluster) to %s or later", err, old.Need)
	case errors.As(err, &unbatched):
		return fmt.Errorf("%w: set allow_batched: true in the definition of stream %s (where your infrastructure code defines it; the option needs nats-server 2.14 or later and changes nothing for other publishers), or run `cdcrelay stream ensure --stream %s --subjects ...`; the relay publishes in batches to keep its events in order beside the stream's other publishers",
			err, unbatched.Stream, unbatched.Stream)
	case errors.As(err, &noAtomic):
		return fmt.Errorf("%w: --atomic-transactions needs it: set allow_atomic: true in the definition of stream %s (where your infrastructure code defines it; it changes nothing for other publishers), or run `cdcrelay stream ensure --atomic-transactions --stream %s --subjects ...`, or run without --atomic-transactions",
			err, noAtomic.Stream, noAtomic.Stream)
	}
	return err
}

// fixStreamMissing is how to create the stream the relay publishes to.
func fixStreamMissing(stream string) string {
	return fmt.Sprintf("create it with `cdcrelay stream ensure --stream %s --subjects ...`", stream)
}

func configFix(e *relay.ConfigError) string {
	switch {
	case e.Setting == relay.SettingNATSURL && e.Problem == relay.SettingUnset:
		return "set --nats-url or CDCRELAY_NATS_URL (or --embedded-nats)"
	case e.Setting == relay.SettingNATSURL:
		return fixNATS
	case e.Problem == relay.ServerUnreachable:
		return fixDatabase
	}
	return fixDatabaseURL
}

// checkFix words the remedies of a failed start-up check with the command
// and flags that apply them.
func checkFix(e *replication.CheckError) string {
	var fixes []string
	if e.Unmigrated {
		fixes = append(fixes, "run `cdcrelay migrate` against this database")
	}
	switch e.Setting {
	case replication.SettingSlot:
		fixes = append(fixes, "choose another --slot")
	case replication.SettingPublication:
		fixes = append(fixes, "choose another --publication")
	}
	if e.Fix != "" {
		fixes = append(fixes, e.Fix)
	}
	return strings.Join(fixes, ", or ")
}

// rewordCheck puts checkFix in place of the library's wording of the fix
// in err's message, keeping its chain for errors.Is and errors.As.
func rewordCheck(err error, check *replication.CheckError) error {
	msg, lib, fix := err.Error(), check.Error(), checkFix(check)
	if lib == check.Problem+": "+fix {
		return err
	}
	if i := strings.LastIndex(msg, lib); i >= 0 {
		return &rewordedError{msg: msg[:i] + check.Problem + ": " + fix + msg[i+len(lib):], err: err}
	}
	return &rewordedError{msg: msg + ": " + fix, err: err}
}
