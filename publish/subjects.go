package publish

import "strings"

// subjectFilter is the set of subjects a stream captures.
type subjectFilter []string

// matches reports whether subject (a literal, as the outbox CHECK
// guarantees) is captured by any of the filters, NATS wildcard rules: `*`
// matches one token, a final `>` one or more.
func (f subjectFilter) matches(subject string) bool {
	for _, pattern := range f {
		if subjectMatch(pattern, subject) {
			return true
		}
	}
	return false
}

func subjectMatch(pattern, subject string) bool {
	for {
		pTok, pRest, pMore := strings.Cut(pattern, ".")
		sTok, sRest, sMore := strings.Cut(subject, ".")
		switch {
		case pTok == ">":
			return sTok != ""
		case pTok != "*" && pTok != sTok:
			return false
		case !pMore || !sMore:
			return pMore == sMore
		}
		pattern, subject = pRest, sRest
	}
}
