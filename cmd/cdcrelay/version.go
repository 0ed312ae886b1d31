package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is set at build time: go build -ldflags '-X main.version=v1.2.3'
// (make build does).
var version = "dev"

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version of cdcrelay, of Go and of the client libraries it is built with",
		Action: func(c *cli.Context) error {
			return printVersion(c.App.Writer)
		},
	}
}

func printVersion(w io.Writer) error {
	v := version
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		// go install module@v1.2.3 records the version without -ldflags.
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && v == "dev" {
				v += " (" + s.Value + ")"
			}
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			deps[d.Path] = d.Version
		}
	}
	_, err := fmt.Fprintf(w, "cdcrelay %s\ngo       %s\npgx      %s\nnats.go  %s\n", v, runtime.Version(),
		orNone(deps["github.com/jackc/pgx/v5"]), orNone(deps["github.com/nats-io/nats.go"]))
	return err
}

func orNone(v string) string {
	if v == "" {
		return "(not linked)"
	}
	return v
}
