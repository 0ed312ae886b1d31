package publish

import (
	"fmt"
	"slices"
	"strings"
)

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

// subjectContains reports whether every subject that inner matches, outer
// matches too (both may hold wildcards).
func subjectContains(outer, inner string) bool {
	for {
		oTok, oRest, oMore := strings.Cut(outer, ".")
		iTok, iRest, iMore := strings.Cut(inner, ".")
		switch {
		case oTok == ">":
			return true
		case iTok == ">":
			return false
		case oTok != "*" && (iTok == "*" || oTok != iTok):
			return false
		case !oMore || !iMore:
			return oMore == iMore
		}
		outer, inner = oRest, iRest
	}
}

// subjectsCollide reports whether some subject matches both a and b, which
// JetStream refuses among one stream's subjects.
func subjectsCollide(a, b string) bool {
	for {
		aTok, aRest, aMore := strings.Cut(a, ".")
		bTok, bRest, bMore := strings.Cut(b, ".")
		switch {
		case aTok == ">" || bTok == ">":
			return true
		case aTok != "*" && bTok != "*" && aTok != bTok:
			return false
		case !aMore || !bMore:
			return aMore == bMore
		}
		a, b = aRest, bRest
	}
}

// addSubjects returns the stream's subjects with the wanted ones added,
// taking none away: a wanted subject that one of them contains is captured
// already, one that contains some of them takes their place, and one that
// only overlaps one of them cannot be added without changing it, an error.
// added lists what the stream captures now that it did not before.
func addSubjects(have, want []string) (subjects, added []string, err error) {
	subjects = slices.Clone(have)
	for _, w := range want {
		if slices.ContainsFunc(subjects, func(h string) bool { return subjectContains(h, w) }) {
			continue
		}
		if i := slices.IndexFunc(subjects, func(h string) bool {
			return subjectsCollide(h, w) && !subjectContains(w, h)
		}); i >= 0 {
			return nil, nil, fmt.Errorf("subject %q overlaps the stream's %q without containing it or lying inside it", w, subjects[i])
		}
		// w takes the place of the first subject it contains; the others it
		// contains go, being captured by w.
		kept, placed := make([]string, 0, len(subjects)+1), false
		for _, h := range subjects {
			switch {
			case !subjectContains(w, h):
				kept = append(kept, h)
			case !placed:
				kept, placed = append(kept, w), true
			}
		}
		if !placed {
			kept = append(kept, w)
		}
		subjects = kept
		added = append(added, w)
	}
	return subjects, added, nil
}
