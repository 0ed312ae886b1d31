package decode

import "unsafe"

// ownedString views b as a string without copying it. Decode copies each
// event's subject, payload and header strings into one buffer it allocates,
// and viewing parts of that buffer as strings saves an allocation per string
// on the hot path. Safe only because b is package-allocated memory that is
// never written after this call; Payload, the one mutable view, is a
// disjoint, capacity-limited slice of the same buffer.
func ownedString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
