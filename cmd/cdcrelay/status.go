package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/cdcrelay/cdcrelay/deadletter"
	"github.com/cdcrelay/cdcrelay/election"
	"github.com/cdcrelay/cdcrelay/outbox"
	"github.com/cdcrelay/cdcrelay/relay"
	"github.com/cdcrelay/cdcrelay/replication"
)

func statusCommand() *cli.Command {
	return withConfig(&cli.Command{
		Name:  "status",
		Usage: "show who leads, the slot, the backlog, dead letters and the stream; exit status 1 when unhealthy",
		Description: `Reads PostgreSQL and NATS, not the relays, so it works when no relay runs.
Unhealthy means: no relay holds the leader lock, the slot is missing, inactive
or invalidated, the oldest unpublished event is older than --max-age, or the
stream cannot be read. Dead letters waiting for a replay are a warning.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "database-url", EnvVars: []string{"CDCRELAY_DATABASE_URL", "DATABASE_URL"}, Usage: "PostgreSQL URL or DSN"},
			natsURLFlag(),
			&cli.StringFlag{Name: "stream", EnvVars: []string{"CDCRELAY_STREAM"}, Value: relay.DefaultStream, Usage: "JetStream stream the relay owns"},
			&cli.StringFlag{Name: "slot", EnvVars: []string{"CDCRELAY_SLOT"}, Value: relay.DefaultSlot, Usage: "logical replication slot"},
			&cli.Int64Flag{Name: "lock-id", EnvVars: []string{"CDCRELAY_LOCK_ID"}, Value: election.DefaultLockID, Usage: "advisory lock key of the leader"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON, for scripts"},
			&cli.DurationFlag{Name: "max-age", EnvVars: []string{"CDCRELAY_STATUS_MAX_AGE"}, Value: time.Minute, Usage: "unhealthy when the oldest unpublished event is older"},
			&cli.DurationFlag{Name: "count-timeout", EnvVars: []string{"CDCRELAY_STATUS_COUNT_TIMEOUT"}, Value: 10 * time.Second, Usage: "give up counting unpublished rows after this (the count scans bus.outbox)"},
		}, natsSecurityFlags()...),
		Action: func(c *cli.Context) error {
			if c.String("database-url") == "" {
				return errDatabaseURL
			}
			st, err := gatherStatus(c.Context, c)
			if err != nil {
				return redactError(err, natsSecrets(c)...)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(st); err != nil {
					return err
				}
			} else {
				printStatus(c.App.Writer, st, time.Now())
			}
			if !st.Healthy {
				return fmt.Errorf("unhealthy: %s", strings.Join(st.Problems, "; "))
			}
			return nil
		},
	})
}

// status is what `cdcrelay status` reports; its JSON form is for scripts.
type status struct {
	Healthy  bool     `json:"healthy"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	Database string   `json:"database"` // redacted
	NATS     string   `json:"nats"`     // redacted

	Leader      leaderStatus     `json:"leader"`
	Slot        slotStatus       `json:"slot"`
	Failover    failoverStatus   `json:"failover"`
	Outbox      outboxStatus     `json:"outbox"`
	DeadLetters deadLetterStatus `json:"dead_letters"`
	Stream      streamStatus     `json:"stream"`
}

type leaderStatus struct {
	Held   bool   `json:"held"`
	LockID int64  `json:"lock_id"`
	Host   string `json:"host,omitempty"`
	// PID is the relay's process id, from its application_name; BackendPID
	// the server process of its lock connection.
	PID        int       `json:"pid,omitempty"`
	BackendPID int32     `json:"backend_pid,omitempty"`
	Identity   string    `json:"identity,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	Since      time.Time `json:"since,omitzero"`
}

type slotStatus struct {
	Name          string `json:"name"`
	Exists        bool   `json:"exists"`
	Active        bool   `json:"active"`
	ActivePID     int32  `json:"active_pid,omitempty"`
	ConfirmedLSN  string `json:"confirmed_lsn,omitempty"`
	LagBytes      int64  `json:"lag_bytes"`
	RetainedBytes int64  `json:"retained_wal_bytes"`
	WALStatus     string `json:"wal_status,omitempty"`
	Invalidated   bool   `json:"invalidated"`
	// CreationBlockedBy names the transactions a slot creation waits for.
	CreationBlockedBy string `json:"creation_blocked_by,omitempty"`
}

type outboxStatus struct {
	// Counted is false when the count timed out or failed (Error says why).
	Counted     bool      `json:"counted"`
	Unpublished int64     `json:"unpublished"`
	OldestAt    time.Time `json:"oldest_unpublished_at,omitzero"`
	// OldestAgeSeconds is 0 when nothing is unpublished.
	OldestAgeSeconds float64 `json:"oldest_unpublished_age_seconds"`
	Error            string  `json:"error,omitempty"`
}

type deadLetterStatus struct {
	Total      int64     `json:"total"`
	Unreplayed int64     `json:"unreplayed"`
	LatestAt   time.Time `json:"latest_at,omitzero"`
}

type streamStatus struct {
	Name         string    `json:"name"`
	Reachable    bool      `json:"reachable"`
	Messages     uint64    `json:"messages"`
	Bytes        uint64    `json:"bytes"`
	FirstSeq     uint64    `json:"first_sequence"`
	LastSeq      uint64    `json:"last_sequence"`
	LastTime     time.Time `json:"last_time,omitzero"`
	Subjects     []string  `json:"subjects,omitempty"`
	Consumers    int       `json:"consumers"`
	Replicas     int       `json:"replicas,omitempty"`
	Error        string    `json:"error,omitempty"`
	DuplicateWin string    `json:"duplicate_window,omitempty"`
}

func gatherStatus(ctx context.Context, c *cli.Context) (*status, error) {
	cfg, err := pgx.ParseConfig(c.String("database-url"))
	if err != nil {
		return nil, fmt.Errorf("--database-url: %w", err) // pgx masks the password
	}
	cfg.RuntimeParams["application_name"] = "cdcrelay status"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w: %s", err, fixDatabase)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	st := &status{
		Problems: []string{}, Warnings: []string{},
		Database: redact(c.String("database-url")), NATS: redact(c.String("nats-url")),
	}
	problem := func(format string, args ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, args...)) }
	warn := func(format string, args ...any) { st.Warnings = append(st.Warnings, fmt.Sprintf(format, args...)) }

	lockID := c.Int64("lock-id")
	st.Leader.LockID = lockID
	h, held, err := election.Leader(ctx, conn, lockID)
	if err != nil {
		return nil, err
	}
	if held {
		st.Leader = leaderStatus{Held: true, LockID: lockID, Host: h.Host, PID: h.ProcessID, BackendPID: h.PID,
			Identity: h.Identity, ClientAddr: h.ClientAddr, Since: h.Since}
	} else {
		problem("no relay holds the leader lock (lock id %d): is `cdcrelay run` running with the same --lock-id?", lockID)
	}

	slot, err := replication.ReadSlotWAL(ctx, conn, c.String("slot"))
	if err != nil {
		return nil, err
	}
	st.Slot = slotStatus{Name: c.String("slot"), Exists: slot.Exists, Active: slot.Active, ActivePID: slot.ActivePID,
		LagBytes: slot.LagBytes, RetainedBytes: slot.RetainedBytes, WALStatus: slot.WALStatus, Invalidated: slot.Invalidated}
	if slot.ConfirmedFlush != 0 {
		st.Slot.ConfirmedLSN = slot.ConfirmedFlush.String()
	}
	// A slot being created shows, active, before it has a position.
	if !slot.Exists || slot.ConfirmedFlush == 0 {
		if st.Slot.CreationBlockedBy, err = slotCreationBlockers(ctx, conn, st.Slot.Name); err != nil {
			return nil, err
		}
	}
	switch {
	case st.Slot.CreationBlockedBy != "":
		problem("slot %s is being created but waits for %s: end those transactions", st.Slot.Name, st.Slot.CreationBlockedBy)
	case !slot.Exists:
		problem("slot %s does not exist (the leader creates it when it starts)", st.Slot.Name)
	case slot.Invalidated:
		problem("slot %s is invalidated (wal_status %s): the leader recreates it and backfills", st.Slot.Name, slot.WALStatus)
	case !slot.Active:
		problem("slot %s is not active: no relay is streaming from it", st.Slot.Name)
	}

	if err := failoverState(ctx, conn, c.String("database-url"), st.Slot.Name, st, problem, warn); err != nil {
		return nil, err
	}
	if err := outboxState(ctx, conn, c.Duration("count-timeout"), st, problem, warn, c.Duration("max-age")); err != nil {
		return nil, err
	}
	dead, err := deadletter.Count(ctx, conn)
	if err != nil {
		return nil, err
	}
	st.DeadLetters = deadLetterStatus{Total: dead.Total, Unreplayed: dead.Unreplayed, LatestAt: dead.LatestAt}
	if n := st.DeadLetters.Unreplayed; n > 0 {
		warn("%d dead letter(s) not replayed: see `cdcrelay deadletter list`", n)
	}

	streamState(ctx, c, st)
	if !st.Stream.Reachable {
		problem("stream %s: %s", st.Stream.Name, st.Stream.Error)
	}
	st.Healthy = len(st.Problems) == 0
	return st, nil
}

func outboxState(ctx context.Context, conn *pgx.Conn, timeout time.Duration, st *status, problem, warn func(string, ...any), maxAge time.Duration) error {
	n, err := outbox.CountUnpublished(ctx, conn, 0, timeout)
	switch {
	case outbox.IsTimeout(err):
		st.Outbox.Error = fmt.Sprintf("counting timed out after %v (the count scans bus.outbox; raise --count-timeout)", timeout)
		warn("unpublished events not counted: %s", st.Outbox.Error)
		return nil
	case err != nil:
		return err
	}
	st.Outbox.Counted, st.Outbox.Unpublished, st.Outbox.OldestAt = true, n.Unpublished, n.Oldest
	if !n.Oldest.IsZero() {
		age := max(time.Since(n.Oldest), 0)
		st.Outbox.OldestAgeSeconds = age.Seconds()
		if age > maxAge {
			problem("the oldest unpublished event is %v old (more than --max-age %v)", age.Round(time.Second), maxAge)
		}
	}
	return nil
}

func streamState(ctx context.Context, c *cli.Context, st *status) {
	st.Stream.Name = c.String("stream")
	nc, js, err := connectJetStream(c, "cdcrelay status")
	if err != nil {
		st.Stream.Error = err.Error()
		return
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, st.Stream.Name)
	if err != nil {
		st.Stream.Error = redact(err.Error())
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st.Stream.Error = "does not exist: " + fixStreamMissing(st.Stream.Name)
		}
		return
	}
	info := s.CachedInfo()
	st.Stream.Reachable = true
	st.Stream.Messages, st.Stream.Bytes = info.State.Msgs, info.State.Bytes
	st.Stream.FirstSeq, st.Stream.LastSeq, st.Stream.LastTime = info.State.FirstSeq, info.State.LastSeq, info.State.LastTime
	st.Stream.Consumers, st.Stream.Subjects, st.Stream.Replicas = info.State.Consumers, info.Config.Subjects, info.Config.Replicas
	st.Stream.DuplicateWin = info.Config.Duplicates.String()
}
