package main

import (
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// newLogger builds the logger the global flags --log-level and --log-format
// ask for, writing to the app's error writer (stderr).
func newLogger(c *cli.Context) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(c.String("log-level"))
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", c.String("log-level"))
	}
	w := c.App.ErrWriter
	terminal := isTerminal(w)
	format := c.String("log-format")
	if format == "" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !terminal}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want json or console", format)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// isTerminal is true for a character device, which is what a terminal is
// (and /dev/null, where the format does not matter).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
