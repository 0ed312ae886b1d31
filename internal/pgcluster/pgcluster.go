// Package pgcluster runs a throwaway PostgreSQL cluster in a temporary
// directory, configured for logical replication. Tests, `cdcrelay demo` and the
// benchmarks use it so that nothing has to be set up by hand.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options tunes a cluster. The zero value is a logical-replication-ready
// cluster with settings suited to tests.
type Options struct {
	// Bin is the directory holding initdb, pg_ctl and postgres. Empty means
	// FindBin's choice.
	Bin string
	// Dir is where the cluster lives. Empty means a new temporary directory,
	// removed by Stop.
	Dir string
	// Settings are extra server settings (name → value) passed with -c.
	// They override the defaults, e.g. {"fsync": "on"} for benchmarks.
	Settings map[string]string
	// Log receives the server's log file path once known; nil ignores it.
	Log func(path string)
}

// Cluster is a running PostgreSQL server owned by this process.
type Cluster struct {
	bin     string
	dir     string
	ownsDir bool
	port    int
	cred    *syscall.Credential
	args    []string
}

// defaultSettings favour speed over durability: a test cluster is thrown away.
var defaultSettings = map[string]string{
	"wal_level":               "logical",
	"max_wal_senders":         "40",
	"max_replication_slots":   "40",
	"max_connections":         "300",
	"fsync":                   "off",
	"full_page_writes":        "off",
	"synchronous_commit":      "on",
	"listen_addresses":        "127.0.0.1",
	"unix_socket_directories": "",
	"shared_buffers":          "128MB",
	"log_min_messages":        "warning",
	"max_slot_wal_keep_size":  "-1",
}

// FindBin returns the directory holding initdb, pg_ctl and postgres: the one
// on PATH, else the newest under /usr/lib/postgresql/*/bin.
func FindBin() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries found (pg_ctl on PATH or /usr/lib/postgresql/*/bin): install Debian's postgresql package (make test does this)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start creates and starts a cluster on a free loopback port.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := prepare(opts, nil)
	if err != nil {
		return nil, err
	}
	data := c.DataDir()
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		out, err := c.run(ctx, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
		if err != nil {
			_ = c.Stop()
			return nil, fmt.Errorf("initdb: %w: %s", err, out)
		}
	}
	if opts.Log != nil {
		opts.Log(c.LogFile())
	}
	if err := c.start(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

// prepare makes the cluster's directory and command line: the default
// settings, opts.Settings over them, then extra over those.
func prepare(opts Options, extra map[string]string) (*Cluster, error) {
	bin := opts.Bin
	if bin == "" {
		var err error
		if bin, err = FindBin(); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return nil, fmt.Errorf("no PostgreSQL server in %s: %w", bin, err)
	}
	c := &Cluster{bin: bin, dir: opts.Dir}
	var err error
	if c.port, err = freePort(); err != nil {
		return nil, err
	}
	settings := map[string]string{}
	for _, m := range []map[string]string{defaultSettings, opts.Settings, extra} {
		for k, v := range m {
			settings[k] = v
		}
	}
	settings["port"] = strconv.Itoa(c.port)
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.args = append(c.args, "-c", k+"="+settings[k])
	}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to "postgres".
		if c.cred, err = postgresCredential(); err != nil {
			return nil, err
		}
	}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "cdcrelay-pg-"); err != nil {
			return nil, fmt.Errorf("create cluster dir: %w", err)
		}
		c.ownsDir = true
	}
	if c.cred != nil {
		if err := chownTree(c.dir, c.cred); err != nil {
			_ = c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// postgresCredential finds the unprivileged "postgres" account, which Debian's
// postgresql package creates.
func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a 'postgres' user to own the cluster (install Debian's postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownTree gives the cluster directory to the postgres user and makes sure it
// can reach it (temporary directories are 0700 by default).
func chownTree(dir string, cred *syscall.Credential) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, int(cred.Uid), int(cred.Gid))
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) run(ctx context.Context, tool string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, tool), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		cmd.Dir = c.dir
	}
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (c *Cluster) start(ctx context.Context) error {
	out, err := c.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", c.DataDir(), "-l", c.LogFile(), "-o", shellJoin(c.args))
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, c.logTail())
	}
	return nil
}

// shellJoin quotes server options for pg_ctl -o, which passes them through a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.LogFile())
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.dir, "data") }

// Bin is the directory of the server's binaries.
func (c *Cluster) Bin() string { return c.bin }

// Major is the server's major version (15, 16, ...), from the data
// directory's PG_VERSION file.
func (c *Cluster) Major() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.DataDir(), "PG_VERSION"))
	if err != nil {
		return 0, fmt.Errorf("read server version: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read server version: PG_VERSION %q: %w", b, err)
	}
	return v, nil
}

// LogFile is the server's log.
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, "server.log") }

// Port is the loopback TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// URL is a superuser connection string for the named database.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

// Restart stops the server with the given shutdown mode ("fast" or
// "immediate") and starts it again on the same port and data.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	if err := c.StopServer(ctx, mode); err != nil {
		return err
	}
	return c.start(ctx)
}

// StopServer stops the server but keeps its data, so StartServer can bring it back.
func (c *Cluster) StopServer(ctx context.Context, mode string) error {
	out, err := c.run(ctx, "pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", c.DataDir())
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// StartServer starts a server stopped by StopServer.
func (c *Cluster) StartServer(ctx context.Context) error { return c.start(ctx) }

// Stop shuts the server down and removes a directory that Start created.
func (c *Cluster) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	if _, statErr := os.Stat(filepath.Join(c.DataDir(), "postmaster.pid")); statErr == nil {
		err = c.StopServer(ctx, "immediate")
	}
	if c.ownsDir {
		if rmErr := os.RemoveAll(c.dir); rmErr != nil && err == nil {
			err = fmt.Errorf("remove cluster dir: %w", rmErr)
		}
	}
	return err
}
