package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"
)

// configFlag is --config: a YAML or TOML file of flag values.
func configFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "config",
		EnvVars: []string{"CDCRELAY_CONFIG"},
		Usage:   "YAML (.yaml, .yml) or TOML (.toml) file of flag values, keyed by flag name (database-url: ...); flags and CDCRELAY_* variables override it",
	}
}

// withConfig lets cmd's flags come from the --config file as well. The order
// of precedence is command line, then environment, then file, then default.
// A key that names no flag of any command is refused, so a typo does not
// silently leave a setting at its default; one file serves every command.
func withConfig(cmd *cli.Command) *cli.Command {
	flags := make([]cli.Flag, 0, len(cmd.Flags)+1)
	for _, f := range cmd.Flags {
		flags = append(flags, fileFlag(f))
	}
	flags = append(flags, configFlag())
	cmd.Flags = flags
	before := cmd.Before
	cmd.Before = func(c *cli.Context) error {
		if path := c.String("config"); path != "" {
			src, err := loadConfig(c, path)
			if err != nil {
				return err
			}
			if err := altsrc.ApplyInputSourceValues(c, src, flags); err != nil {
				return fmt.Errorf("--config %s: %w", path, err)
			}
		}
		if before != nil {
			return before(c)
		}
		return nil
	}
	return cmd
}

// fileFlag wraps a flag so that the config file can set it.
func fileFlag(f cli.Flag) cli.Flag {
	switch f := f.(type) {
	case *cli.StringFlag:
		return altsrc.NewStringFlag(f)
	case *cli.BoolFlag:
		return altsrc.NewBoolFlag(f)
	case *cli.IntFlag:
		return altsrc.NewIntFlag(f)
	case *cli.Int64Flag:
		return altsrc.NewInt64Flag(f)
	case *cli.DurationFlag:
		return altsrc.NewDurationFlag(f)
	case *cli.StringSliceFlag:
		return altsrc.NewStringSliceFlag(f)
	}
	return f
}

// loadConfig reads the file after checking its keys against every flag the
// program has.
func loadConfig(c *cli.Context, path string) (altsrc.InputSourceContext, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	keys := map[string]any{}
	var load func(string) (altsrc.InputSourceContext, error)
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		err, load = yaml.Unmarshal(b, &keys), altsrc.NewYamlSourceFromFile
	case ".toml":
		_, err = toml.Decode(string(b), &keys)
		load = altsrc.NewTomlSourceFromFile
	default:
		return nil, fmt.Errorf("--config %s: name it .yaml, .yml or .toml so its format is known", path)
	}
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	known := allFlagNames(c.App)
	var unknown []string
	for k := range keys {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	switch {
	case len(unknown) > 0 && (unknown[0] == "log-level" || unknown[0] == "log-format"):
		return nil, fmt.Errorf("--config %s: %s is a global flag, which the file cannot set: use CDCRELAY_%s", path,
			unknown[0], strings.ToUpper(strings.ReplaceAll(unknown[0], "-", "_")))
	case len(unknown) > 0:
		return nil, fmt.Errorf("--config %s: unknown key(s) %s: keys are flag names, e.g. database-url", path, strings.Join(unknown, ", "))
	}
	src, err := load(path)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return src, nil
}

// allFlagNames are the names of the flags of every command (the global
// flags excluded: the file is read after they are parsed).
func allFlagNames(app *cli.App) map[string]bool {
	names := map[string]bool{}
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, cmd := range cmds {
			for _, f := range cmd.Flags {
				for _, n := range f.Names() {
					names[n] = true
				}
			}
			walk(cmd.Subcommands)
		}
	}
	walk(app.Commands)
	delete(names, "config")
	return names
}
