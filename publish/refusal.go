package publish

import (
	"errors"
	"regexp"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What is permanent: a refusal that is about this one event (its size, its
// headers, a subject the relay's NATS user may not publish to) comes back
// however often it is retried, so the event is dead-lettered and the relay
// goes on. What is about the stream, the server or the cluster (no leader,
// limits reached, sealed, storage failing, no stream at all) is transient:
// retried with back-off and reported through Config.OnRetry, because every
// event would be refused alike and an operator can fix it.

// permanentSendErr reports whether a publish that failed before reaching the
// server would fail again however often it is retried.
func permanentSendErr(err error) bool {
	return errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, nats.ErrBadSubject) ||
		errors.Is(err, nats.ErrBadHeaderMsg)
}

// permanentCodes are the JetStream errors about one message. Only the
// first two can happen to an outbox event; the others answer Nats-* headers
// (per-message TTL, counters, schedules, stream source), which the outbox's
// CHECK refuses, so only a row written around it can get one.
var permanentCodes = map[jetstream.ErrorCode]bool{
	jetstream.JSErrCodeStreamMessageExceedsMaximum: true, // larger than the stream's max_msg_size
	10097: true, // JSStreamHeaderExceedsMaximumErr: headers over 64 KiB
	10165: true, // JSMessageTTLInvalidErr
	10166: true, // JSMessageTTLDisabledErr
	10168: true, // JSMessageIncrDisabledErr
	10169: true, // JSMessageIncrMissingErr
	10170: true, // JSMessageIncrPayloadErr
	10171: true, // JSMessageIncrInvalidErr
	10172: true, // JSMessageCounterBrokenErr
	10188: true, // JSMessageSchedulesDisabledErr
	10189: true, // JSMessageSchedulesPatternInvalidErr
	10190: true, // JSMessageSchedulesTargetInvalidErr
	10191: true, // JSMessageSchedulesTTLInvalidErr
	10192: true, // JSMessageSchedulesRollupInvalidErr
	10203: true, // JSMessageSchedulesSourceInvalidErr
	10212: true, // JSMessageSchedulesSchedulerInvalidErr
	10223: true, // JSMessageSchedulesTimeZoneInvalidErr
	10227: true, // JSMessageSourceHdrNotAllowedErr
}

// permanentAckErr reports whether JetStream refused a message for good.
func permanentAckErr(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return permanentCodes[apiErr.ErrorCode]
}

// PermissionError is the dead-letter cause of an event whose subject the
// stream captures but the relay's NATS user may not publish to.
type PermissionError struct {
	Subject string
	Err     error // the server's permissions violation
}

func (e *PermissionError) Error() string {
	return "the relay's NATS user may not publish to " + e.Subject + " (grant it, then replay the dead letter): " + e.Err.Error()
}

func (e *PermissionError) Unwrap() error { return e.Err }

// denials remembers the subjects the server refused to let this connection
// publish to. A publish permission violation never reaches JetStream: the
// server drops the message and tells the client asynchronously, naming
// the subject, so the pipeline learns of it from the connection's error
// handler, never from an ack.
type denials struct {
	mu sync.Mutex
	at map[string]denial
	// ch is signalled on each new denial, so a wait for an ack that will
	// never come ends at once.
	ch chan struct{}
}

type denial struct {
	at  time.Time
	err error
}

func newDenials() *denials {
	return &denials{at: map[string]denial{}, ch: make(chan struct{}, 1)}
}

// permissionSubject finds the subject in nats.go's wording of the server's
// `-ERR 'Permissions Violation for Publish to "subject"'`; nats.go offers
// nothing more structured.
var permissionSubject = regexp.MustCompile(`Permissions Violation for Publish to "([^"]+)"`)

// note records a connection error if it is a publish permission violation.
func (d *denials) note(err error) {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return
	}
	m := permissionSubject.FindStringSubmatch(err.Error())
	if m == nil {
		return
	}
	d.mu.Lock()
	d.at[m[1]] = denial{at: time.Now(), err: err}
	d.mu.Unlock()
	signal(d.ch)
}

// since returns the refusal of subject if one came at or after t.
func (d *denials) since(subject string, t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dn, ok := d.at[subject]; ok && !dn.at.Before(t) {
		return &PermissionError{Subject: subject, Err: dn.err}
	}
	return nil
}

// watch chains the pipeline's handler before the connection's own async
// error handler; the returned func restores the previous one. One pipeline
// at a time may watch a connection.
func (d *denials) watch(nc *nats.Conn) (restore func()) {
	prev := nc.ErrorHandler()
	nc.SetErrorHandler(func(c *nats.Conn, s *nats.Subscription, err error) {
		d.note(err)
		if prev != nil {
			prev(c, s, err)
		}
	})
	return func() { nc.SetErrorHandler(prev) }
}
