package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// StartOptions are pgoutput's options for Start.
type StartOptions struct {
	// Publication is the publication to stream (publication_names).
	Publication string
	// Binary asks for column values in binary form (PostgreSQL 14+).
	Binary bool
	// Messages asks for logical decoding messages, which the relay's
	// heartbeat uses (PostgreSQL 14+).
	Messages bool
	// Origin is pgoutput's origin option (PostgreSQL 16+): "none" has the
	// walsender drop every change made under a replication origin before
	// decoding it (see FlipOrigin); empty leaves the default, "any".
	Origin string
}

// Start runs START_REPLICATION on slot with pgoutput protocol version 1 and
// switches the Conn to streaming; from then on only Receive, SendStatus,
// RequestKeepalive and Close are allowed.
//
// from is where to resume. Pass the slot's confirmed_flush_lsn (or 0, which
// the server reads as "from confirmed_flush_lsn"); the server never streams a
// transaction that committed before the slot's confirmed position, whatever
// from says.
//
// Server errors leave the Conn usable (not streaming) and match ErrSlotActive
// (another walsender holds the slot) or ErrSlotMissing where they apply.
func (c *Conn) Start(ctx context.Context, slot string, from pglogrepl.LSN, o StartOptions) error {
	const op = "start replication"
	if err := ValidateSlotName(slot); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if o.Publication == "" {
		return fmt.Errorf("%s: no publication", op)
	}
	if (o.Binary || o.Messages) && !c.SupportsMessages() {
		return fmt.Errorf("%s: the binary and messages options need PostgreSQL 14 or later (server is %d)", op, c.version)
	}
	if o.Origin != "" && c.version < OriginVersion {
		return fmt.Errorf("%s: the origin option needs PostgreSQL 16 or later (server is %d)", op, c.version)
	}
	if err := c.usable(op); err != nil {
		return err
	}
	args := []string{"proto_version '1'", "publication_names " + quoteLiteral(quoteIdent(o.Publication))}
	if o.Binary {
		args = append(args, "binary 'true'")
	}
	if o.Messages {
		args = append(args, "messages 'true'")
	}
	if o.Origin != "" {
		args = append(args, "origin "+quoteLiteral(o.Origin))
	}
	sql := fmt.Sprintf(`START_REPLICATION SLOT "%s" LOGICAL %s (%s)`, slot, from, strings.Join(args, ", "))

	c.pg.Frontend().SendQuery(&pgproto3.Query{String: sql})
	if err := c.pg.Frontend().Flush(); err != nil {
		return c.fail(op, err)
	}
	var serverErr error
	for {
		msg, err := c.pg.ReceiveMessage(ctx)
		if err != nil {
			return c.fail(op, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyBothResponse:
			c.streaming = true
			return nil
		case *pgproto3.ErrorResponse:
			// Keep reading up to ReadyForQuery so the Conn can run the next
			// command (CreateSlot after ErrSlotMissing, say).
			serverErr = c.fail(op, pgconn.ErrorResponseToPgError(msg))
			if IsConnLost(serverErr) {
				return serverErr
			}
		case *pgproto3.ReadyForQuery:
			if serverErr == nil {
				serverErr = c.fail(op, errors.New("server ended START_REPLICATION without streaming"))
			}
			return serverErr
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
		default:
			return c.fail(op, fmt.Errorf("unexpected %T", msg))
		}
	}
}

// quoteIdent double-quotes a name for pgoutput's publication_names list, so
// the publication is matched exactly (no down-casing, commas allowed).
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral single-quotes s for the replication command grammar.
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
