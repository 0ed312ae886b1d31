package decode

import "fmt"

// field is an Event field that an outbox column feeds.
type field uint8

const (
	fieldIgnored field = iota
	fieldID
	fieldEventID
	fieldSubject
	fieldPayload
	fieldHeaders
	fieldCreatedAt
	numFields
)

// column describes one outbox column the Event needs: its name, whether an
// insert must carry it, and the type OIDs whose wire formats we decode.
type column struct {
	name     string
	required bool
	types    [2]uint32
}

// columnOf describes the column that feeds f. A switch rather than a table
// keeps the package free of mutable globals; it inlines to the same thing.
func columnOf(f field) column {
	switch f {
	case fieldID:
		return column{"id", true, [2]uint32{oidInt8, oidInt4}}
	case fieldEventID:
		return column{"event_id", true, [2]uint32{oidUUID}}
	case fieldSubject:
		return column{"subject", true, [2]uint32{oidText, oidVarchar}}
	case fieldPayload:
		return column{"payload", true, [2]uint32{oidBytea}}
	case fieldHeaders:
		return column{"headers", false, [2]uint32{oidJSONB, oidJSON}}
	case fieldCreatedAt:
		return column{"created_at", false, [2]uint32{oidTimestamptz, oidTimestamp}}
	}
	return column{}
}

func fieldOf(name []byte) field {
	for f := fieldID; f < numFields; f++ {
		if string(name) == columnOf(f).name {
			return f
		}
	}
	return fieldIgnored
}

func (c *column) accepts(typ uint32) bool {
	return typ != 0 && (typ == c.types[0] || typ == c.types[1])
}

func (c *column) want() string {
	if c.types[1] == 0 {
		return typeName(c.types[0])
	}
	return typeName(c.types[0]) + " or " + typeName(c.types[1])
}

// relation is the cached layout of one relation the walsender described.
// Only the outbox gets a column map: inserts into anything else are skipped.
type relation struct {
	name   string // schema.table, for errors
	outbox bool
	// cols has one entry per column in the order the tuples send them.
	cols []slot
}

// slot says where a tuple column goes.
type slot struct {
	name  string // for errors
	field field
	typ   uint32
}

// minColumnBytes is the smallest encoding of a Relation column: flags, an
// empty name's NUL, type OID and type modifier.
const minColumnBytes = 1 + 1 + 4 + 4

// relation decodes a Relation message ('R', type byte already read) and
// replaces the cache entry for its OID.
func (d *Decoder) relation(c *cursor) error {
	oid := c.u32("relation OID")
	ns := c.cstring("namespace")
	name := c.cstring("relation name")
	c.u8("replica identity")
	n := int(c.u16("column count"))
	// A Relation that fails to decode must not leave an older layout of the
	// same OID behind to misread later inserts.
	delete(d.rels, oid)
	if c.err != nil {
		return c.err
	}
	rel := &relation{
		name:   string(ns) + "." + string(name),
		outbox: string(ns) == d.table.Schema && string(name) == d.table.Name,
	}
	if n*minColumnBytes > c.left() {
		return fmt.Errorf("%s (OID %d): %d columns cannot fit in the %d bytes left", rel.name, oid, n, c.left())
	}
	var seen [numFields]bool
	if rel.outbox {
		rel.cols = make([]slot, n)
	}
	for i := range n {
		c.u8("column flags")
		cname := c.cstring("column name")
		typ := c.u32("column type OID")
		c.u32("column type modifier")
		if c.err != nil {
			return fmt.Errorf("%s (OID %d): column %d: %w", rel.name, oid, i, c.err)
		}
		if !rel.outbox {
			continue
		}
		f := fieldOf(cname)
		rel.cols[i] = slot{name: string(cname), field: f, typ: typ}
		if f == fieldIgnored {
			continue
		}
		col := columnOf(f)
		if !col.accepts(typ) {
			return fmt.Errorf("outbox %s: column %q has type %s, want %s; apply cdcrelay's migrations",
				rel.name, col.name, typeName(typ), col.want())
		}
		seen[f] = true
	}
	if err := c.end(); err != nil {
		return fmt.Errorf("%s (OID %d): %w", rel.name, oid, err)
	}
	if rel.outbox {
		for f := fieldID; f < numFields; f++ {
			if col := columnOf(f); col.required && !seen[f] {
				return fmt.Errorf("outbox %s: required column %q is missing (or not published); apply cdcrelay's migrations",
					rel.name, col.name)
			}
		}
	}
	d.rels[oid] = rel
	return nil
}
