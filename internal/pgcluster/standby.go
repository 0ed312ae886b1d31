package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// StandbyOptions tunes a physical standby.
type StandbyOptions struct {
	// Name is the standby's physical replication slot on the primary and its
	// application_name there (pg_stat_replication, synchronous_standby_names).
	Name string
	// Settings are the standby's own server settings over the defaults; the
	// primary's Options.Settings are not copied (a promoted standby must not
	// inherit, say, a synchronized_standby_slots naming its own slot).
	// primary_conninfo, primary_slot_name and hot_standby are set here.
	Settings map[string]string
}

// StartStandby creates a physical streaming standby of c on a free loopback
// port and starts it. The server binaries the npm packages ship have no
// pg_basebackup, so the standby starts from a copy of c's data directory
// taken while c is cleanly stopped: c is restarted (fast shutdown) on the
// way, its sessions end. A physical slot named opts.Name, created on c
// first, keeps the WAL the standby needs from the copy on.
func (c *Cluster) StartStandby(ctx context.Context, opts StandbyOptions) (*Cluster, error) {
	if opts.Name == "" {
		return nil, fmt.Errorf("standby: no name")
	}
	if err := c.exec(ctx, "postgres", `SELECT pg_create_physical_replication_slot($1, true)`, opts.Name); err != nil {
		return nil, fmt.Errorf("standby %s: create physical slot: %w", opts.Name, err)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres application_name=%s", c.port, opts.Name)
	s, err := prepare(Options{Bin: c.bin, Settings: opts.Settings}, map[string]string{
		"primary_conninfo":  conninfo,
		"primary_slot_name": opts.Name,
		"hot_standby":       "on",
	})
	if err != nil {
		return nil, err
	}
	if err := c.copyData(ctx, s); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("standby %s: %w", opts.Name, err)
	}
	if err := s.start(ctx); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("standby %s: %w", opts.Name, err)
	}
	return s, nil
}

// copyData stops c, copies its data directory into s as a standby's, and
// starts c again.
func (c *Cluster) copyData(ctx context.Context, s *Cluster) error {
	if err := c.StopServer(ctx, "fast"); err != nil {
		return err
	}
	// cp -a keeps modes and owners (the data directory must be 0700 and the
	// postgres user's).
	out, cpErr := exec.CommandContext(ctx, "cp", "-a", c.DataDir(), s.DataDir()).CombinedOutput()
	if err := c.start(ctx); err != nil {
		return err
	}
	if cpErr != nil {
		return fmt.Errorf("copy data directory: %w: %s", cpErr, out)
	}
	// What pg_basebackup leaves out: the primary's slots (the standby would
	// keep WAL for them after a promotion) and its pid file.
	slots, err := filepath.Glob(filepath.Join(s.DataDir(), "pg_replslot", "*"))
	if err != nil {
		return err
	}
	for _, p := range append(slots, filepath.Join(s.DataDir(), "postmaster.pid"), filepath.Join(s.DataDir(), "postmaster.opts")) {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clean copied data directory: %w", err)
		}
	}
	signal := filepath.Join(s.DataDir(), "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return fmt.Errorf("write standby.signal: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(signal, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return fmt.Errorf("chown standby.signal: %w", err)
		}
	}
	return nil
}

// Promote ends recovery on a standby (pg_ctl promote) and waits until it
// accepts writes.
func (c *Cluster) Promote(ctx context.Context) error {
	out, err := c.run(ctx, "pg_ctl", "promote", "-w", "-t", "60", "-D", c.DataDir())
	if err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, out)
	}
	return nil
}

// exec runs one statement as the superuser on database db.
func (c *Cluster) exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// MultiHostURL is a superuser connection string for database that names
// every cluster as a host, in order, and asks for the one that accepts
// writes (target_session_attrs=read-write): after a failover, a client
// using it reconnects to whichever was promoted.
func MultiHostURL(database string, clusters ...*Cluster) string {
	hosts := ""
	for i, c := range clusters {
		if i > 0 {
			hosts += ","
		}
		hosts += "127.0.0.1:" + strconv.Itoa(c.port)
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&target_session_attrs=read-write", hosts, database)
}
