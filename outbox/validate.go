package outbox

import (
	"errors"
	"fmt"
	"strings"
)

// MaxSubjectLen is the longest subject the outbox accepts, in bytes.
const MaxSubjectLen = 255

// The rules the bus.outbox CHECK constraints enforce, one error per
// constraint. Errors returned by this package wrap them with the offending
// subject or header name; test with errors.Is.
var (
	ErrEmptySubject      = errors.New("empty subject")                                                         // outbox_subject_not_empty
	ErrSubjectTooLong    = fmt.Errorf("subject longer than %d bytes", MaxSubjectLen)                           // outbox_subject_too_long
	ErrSubjectBadDots    = errors.New("subject starts or ends with a dot, or has an empty token (..)")         // outbox_subject_bad_dots
	ErrSubjectWhitespace = errors.New("subject contains whitespace or a control character")                    // outbox_subject_no_whitespace
	ErrSubjectWildcard   = errors.New("subject contains a wildcard (* or >)")                                  // outbox_subject_no_wildcards
	ErrHeaderName        = errors.New("header name is empty or has a colon or a non-printable-ASCII byte")     // outbox_headers_bad_name
	ErrReservedHeader    = errors.New("header name starts with Nats- (reserved: the relay sets those itself)") // outbox_headers_reserved_name
)

// ErrStatusWithoutPayload is returned for an event with an empty payload and
// a "Status" header: NATS clients take such a message for a status message
// from the server (nats.go's consumers drop it), so it would be stored but
// never delivered. The relay dead-letters one inserted by other means.
var ErrStatusWithoutPayload = errors.New(`a "Status" header on an event with an empty payload, which NATS clients take for a server status message and never deliver`)

// ValidateSubject reports whether NATS (and the outbox's CHECK constraints)
// would accept subject as the subject of a published message: non-empty, at
// most MaxSubjectLen bytes, no leading or trailing dot nor empty token, no
// space or ASCII control character, and no * or > anywhere.
//
// When a subject breaks several rules, the error is for the rule PostgreSQL
// would report: it evaluates CHECK constraints in order of their names, and
// the checks below run in that order.
func ValidateSubject(subject string) error {
	switch {
	case strings.HasPrefix(subject, ".") || strings.HasSuffix(subject, ".") || strings.Contains(subject, ".."):
		return fmt.Errorf("%w: %q", ErrSubjectBadDots, clip(subject))
	case strings.ContainsFunc(subject, isSpaceOrControl):
		return fmt.Errorf("%w: %q", ErrSubjectWhitespace, clip(subject))
	case strings.ContainsAny(subject, "*>"):
		return fmt.Errorf("%w: %q", ErrSubjectWildcard, clip(subject))
	case subject == "":
		return ErrEmptySubject
	case len(subject) > MaxSubjectLen:
		return fmt.Errorf("%w: %q", ErrSubjectTooLong, clip(subject))
	}
	return nil
}

// ValidateHeaderName reports whether name may be the name of a header on an
// outbox event: printable ASCII other than a colon (the name must survive
// NATS's MIME-style header block), and not starting with "Nats-" in any case.
func ValidateHeaderName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: %q", ErrHeaderName, name)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' || c == ':' {
			return fmt.Errorf("%w: %q", ErrHeaderName, clip(name))
		}
	}
	if len(name) >= 5 && strings.EqualFold(name[:5], "Nats-") {
		return fmt.Errorf("%w: %q", ErrReservedHeader, clip(name))
	}
	return nil
}

// isSpaceOrControl matches the CHECK's [\x01-\x20\x7f] (and NUL, which
// PostgreSQL text cannot hold at all). Non-ASCII spaces are allowed, as NATS
// allows them.
func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// clip keeps error messages one readable line for absurdly long input.
func clip(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
