package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // pure-Go driver: no cgo in Ferry's build
)

// MinSchemaVersion is the oldest schema Load reads. Migrations up to 9
// (properties) change what a rendering contains; opm applies them on read,
// Ferry does not write to the database. Migrations 10 to 13 do not change
// what opm renders.
const MinSchemaVersion = 9

// sqliteMagic starts every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// index is the content of the tables a rendering reads.
type index struct {
	packages   []packageRow
	channels   []channelRow
	bundles    map[string]bundleRow // by name
	entries    []entryRow
	properties map[string][]typedValue // by bundle name, in row order
	deps       map[string][]typedValue
	images     map[string][]string // related_image by bundle name
}

type packageRow struct {
	name           string
	defaultChannel sql.NullString
}

type channelRow struct {
	name, pkg sql.NullString
	head      sql.NullString
}

type bundleRow struct {
	name       string
	csv        sql.NullString
	bundle     sql.NullString
	bundlePath sql.NullString
	version    sql.NullString
	skipRange  sql.NullString
}

type entryRow struct {
	id       int64
	channel  sql.NullString
	pkg      sql.NullString
	bundle   sql.NullString
	replaces sql.NullInt64
	depth    sql.NullInt64
}

// typedValue is a properties or dependencies row.
type typedValue struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// open opens the database at path read only.
func open(path string) (*sql.DB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, len(sqliteMagic))
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil || !bytes.Equal(head, sqliteMagic) {
		return nil, fmt.Errorf("%s is not a SQLite database", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "mode=ro&_pragma=query_only(1)"}
	return sql.Open("sqlite", u.String())
}

// schemaVersion is schema_migrations' version, -1 without the table.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").Scan(&n); err != nil {
		return 0, err
	}
	if n == 0 {
		return -1, nil
	}
	var v int
	err := db.QueryRowContext(ctx, "SELECT version FROM schema_migrations LIMIT 1").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	return v, err
}

// tableCount counts the database's tables.
func tableCount(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table'").Scan(&n)
	return n, err
}

// readIndex reads every row a rendering needs.
func readIndex(ctx context.Context, db *sql.DB) (*index, error) {
	x := &index{
		bundles:    map[string]bundleRow{},
		properties: map[string][]typedValue{},
		deps:       map[string][]typedValue{},
		images:     map[string][]string{},
	}
	err := query(ctx, db, "SELECT DISTINCT name, default_channel FROM package WHERE name IS NOT NULL", func(rows *sql.Rows) error {
		var p packageRow
		if err := rows.Scan(&p.name, &p.defaultChannel); err != nil {
			return err
		}
		x.packages = append(x.packages, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	}
	err = query(ctx, db, "SELECT name, package_name, head_operatorbundle_name FROM channel", func(rows *sql.Rows) error {
		var c channelRow
		if err := rows.Scan(&c.name, &c.pkg, &c.head); err != nil {
			return err
		}
		x.channels = append(x.channels, c)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read channels: %w", err)
	}
	err = query(ctx, db, "SELECT name, csv, bundle, bundlepath, version, skiprange FROM operatorbundle WHERE name IS NOT NULL", func(rows *sql.Rows) error {
		var b bundleRow
		if err := rows.Scan(&b.name, &b.csv, &b.bundle, &b.bundlePath, &b.version, &b.skipRange); err != nil {
			return err
		}
		x.bundles[b.name] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read bundles: %w", err)
	}
	err = query(ctx, db, "SELECT entry_id, channel_name, package_name, operatorbundle_name, replaces, depth FROM channel_entry ORDER BY entry_id", func(rows *sql.Rows) error {
		var e entryRow
		if err := rows.Scan(&e.id, &e.channel, &e.pkg, &e.bundle, &e.replaces, &e.depth); err != nil {
			return err
		}
		x.entries = append(x.entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read channel entries: %w", err)
	}
	for _, t := range []struct {
		table string
		into  map[string][]typedValue
	}{{"properties", x.properties}, {"dependencies", x.deps}} {
		err := query(ctx, db, "SELECT CAST(type AS TEXT), CAST(value AS TEXT), operatorbundle_name FROM "+t.table+" WHERE operatorbundle_name IS NOT NULL", func(rows *sql.Rows) error {
			var typ, value sql.NullString
			var name string
			if err := rows.Scan(&typ, &value, &name); err != nil {
				return err
			}
			t.into[name] = append(t.into[name], typedValue{Type: typ.String, Value: value.String})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", t.table, err)
		}
	}
	err = query(ctx, db, "SELECT image, operatorbundle_name FROM related_image WHERE image IS NOT NULL AND operatorbundle_name IS NOT NULL", func(rows *sql.Rows) error {
		var img, name string
		if err := rows.Scan(&img, &name); err != nil {
			return err
		}
		x.images[name] = append(x.images[name], img)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read related images: %w", err)
	}
	return x, nil
}

func query(ctx context.Context, db *sql.DB, q string, row func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
