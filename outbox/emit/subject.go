package emit

import (
	"errors"
	"fmt"
)

// errBadSubject is what every subject refusal wraps.
var errBadSubject = errors.New("invalid subject")

// validateSubject applies the outbox subject rules (the client and the
// bus.outbox CHECK agree on them): non-empty, at most 255 bytes, no empty
// token, no whitespace or control characters, no wildcards.
//
// TODO(issue 7): call outbox.ValidateSubject once the outbox package lands, so
// the rules live in one place.
func validateSubject(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", errBadSubject)
	}
	if len(s) > 255 {
		return fmt.Errorf("%w: %d bytes, over 255", errBadSubject, len(s))
	}
	if s[0] == '.' || s[len(s)-1] == '.' {
		return fmt.Errorf("%w: %q starts or ends with a dot", errBadSubject, s)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == 0x7f:
			return fmt.Errorf("%w: %q has whitespace or a control character", errBadSubject, s)
		case c == '*' || c == '>':
			return fmt.Errorf("%w: %q has a wildcard", errBadSubject, s)
		case c == '.' && s[i+1] == '.':
			return fmt.Errorf("%w: %q has an empty token", errBadSubject, s)
		}
	}
	return nil
}
