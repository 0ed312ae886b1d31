package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Run(m, &env) }

// runCLI runs the program as main would, with env cleared of the variables
// that would change the outcome.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for _, v := range []string{"CDCRELAY_DATABASE_URL", "DATABASE_URL", "CDCRELAY_LOG_LEVEL", "CDCRELAY_LOG_FORMAT"} {
		t.Setenv(v, "") // restored when the test ends
		os.Unsetenv(v)
	}
	t.Setenv("CDCRELAY_PROCS", "0") // the test process keeps its GOMAXPROCS
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code = run(ctx, append([]string{"cdcrelay"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "cdcrelay dev") || !strings.Contains(out, "go       go1.") || !strings.Contains(out, "pgx ") {
		t.Errorf("version: status %d, output:\n%s", code, out)
	}
}

func TestErrorIsOneLineAndStatusOne(t *testing.T) {
	code, _, errOut := runCLI(t, "migrate")
	if code != 1 || errOut != "cdcrelay: Required flag \"database-url\" not set\n" {
		t.Errorf("migrate without a URL: status %d, stderr %q", code, errOut)
	}
}

func TestMigrate(t *testing.T) {
	u, err := url.Parse(env.DB(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "s3cret-pw") // trust auth ignores it

	code, out, errOut := runCLI(t, "migrate", "--database-url", u.String())
	if code != 0 {
		t.Fatalf("migrate: status %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"migrating database t_", "applied 0001_outbox", "applied 0003_inbox", "schema at version"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	code, out, errOut = runCLI(t, "migrate", "--database-url", u.String())
	if code != 0 || !strings.Contains(out, "nothing to apply") || strings.Contains(out, "applied 0") {
		t.Errorf("second migrate: status %d, stderr %s, output:\n%s", code, errOut, out)
	}
	if strings.Contains(out+errOut, "s3cret-pw") {
		t.Errorf("the password was printed:\n%s%s", out, errOut)
	}
}

func TestMigrateNeverPrintsPassword(t *testing.T) {
	for _, dsn := range []string{
		"postgres://alice:s3cret-pw@127.0.0.1:1/db?connect_timeout=1",           // nobody listens
		"postgres://alice:s3cret-pw@127.0.0.1:notaport/db",                      // does not parse
		"host=127.0.0.1 port=1 user=alice password=s3cret-pw connect_timeout=1", // DSN form
	} {
		code, out, errOut := runCLI(t, "migrate", "--database-url", dsn)
		if code != 1 {
			t.Errorf("%s: status %d", dsn, code)
		}
		if strings.Contains(out+errOut, "s3cret-pw") {
			t.Errorf("the password was printed:\n%s%s", out, errOut)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var got []byte
	var logErr error
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	var stderr bytes.Buffer
	app.ErrWriter = &stderr
	app.Commands = []*cli.Command{{Name: "log", Action: func(c *cli.Context) error {
		log, err := newLogger(c)
		if err != nil {
			logErr = err
			return err
		}
		log.Debug().Msg("hidden")
		log.Info().Str("k", "v").Msg("shown")
		got = stderr.Bytes()
		return nil
	}}}
	ctx := context.Background()
	if err := app.RunContext(ctx, []string{"cdcrelay", "--log-format", "json", "log"}); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(got, &line); err != nil || line["message"] != "shown" || line["k"] != "v" || line["time"] == nil {
		t.Errorf("json log = %s (%v), want one info line with time", got, err)
	}
	if err := app.RunContext(ctx, []string{"cdcrelay", "--log-level", "loud", "log"}); err == nil || logErr == nil {
		t.Error("--log-level loud accepted")
	}
	if err := app.RunContext(ctx, []string{"cdcrelay", "--log-format", "xml", "log"}); err == nil {
		t.Error("--log-format xml accepted")
	}
	stderr.Reset()
	if err := app.RunContext(ctx, []string{"cdcrelay", "--log-format", "console", "--log-level", "debug", "log"}); err != nil {
		t.Fatal(err)
	}
	if s := stderr.String(); !strings.Contains(s, "hidden") || !strings.Contains(s, "k=v") {
		t.Errorf("console debug log = %q", s)
	}
}

// The first SIGTERM cancels the context (a graceful shutdown); stop then
// releases the signal.
func TestSignalCancelsContext(t *testing.T) {
	var stderr bytes.Buffer
	ctx, stop := signalContext(context.Background(), &stderr)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	stop()
	if !strings.Contains(stderr.String(), "shutting down (again to exit at once)") {
		t.Errorf("stderr = %q", stderr.String())
	}
}
