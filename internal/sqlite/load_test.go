package sqlite

import (
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// schema is the part of operator-registry's index schema Load reads.
var schema = []string{
	`CREATE TABLE schema_migrations (version bigint NOT NULL, timestamp DATETIME)`,
	`CREATE TABLE operatorbundle (name TEXT PRIMARY KEY, csv TEXT, bundle TEXT, bundlepath TEXT, skiprange TEXT, version TEXT, replaces TEXT, skips TEXT, substitutesfor TEXT)`,
	`CREATE TABLE package (name TEXT PRIMARY KEY, default_channel TEXT)`,
	`CREATE TABLE channel (name TEXT, package_name TEXT, head_operatorbundle_name TEXT, PRIMARY KEY(name, package_name))`,
	`CREATE TABLE channel_entry (entry_id INTEGER PRIMARY KEY, channel_name TEXT, package_name TEXT, operatorbundle_name TEXT, replaces INTEGER, depth INTEGER)`,
	`CREATE TABLE related_image (image TEXT, operatorbundle_name TEXT)`,
	`CREATE TABLE dependencies (type TEXT, value TEXT, operatorbundle_name TEXT, operatorbundle_version TEXT, operatorbundle_path TEXT)`,
	`CREATE TABLE properties (type TEXT, value TEXT, operatorbundle_name TEXT, operatorbundle_version TEXT, operatorbundle_path TEXT)`,
	`INSERT INTO schema_migrations(version) VALUES (13)`,
}

// The manifests of the base fixture, as the bundle column stores them.
const (
	csv1 = `{"apiVersion":"operators.coreos.com/v1alpha1","kind":"ClusterServiceVersion","metadata":{"name":"p.v1"},"spec":{"version":"1.0.0"}}`
	crd1 = `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"ks.g.example.com"}}`
	csv3 = `{"apiVersion":"operators.coreos.com/v1alpha1","kind":"ClusterServiceVersion","metadata":{"name":"p.v3"},"spec":{"version":"1.1.0","icon":[{"base64data":"PHN2 Zy8+","mediatype":"image/svg+xml"}],"relatedImages":[{"name":"op","image":"example.com/op:3"}]}}`
)

// base is package p, default channel stable, laid out as opm's loader lays
// it out: stable is p.v3 -> p.v2 -> p.v1; fast is p.v3 -> p.v2, p.v3 also
// skipping p.v0-gone, which the index does not have (a placeholder entry).
var base = []string{
	`INSERT INTO package VALUES ('p', 'stable')`,
	`INSERT INTO channel VALUES ('stable', 'p', 'p.v3'), ('fast', 'p', 'p.v3')`,
	`INSERT INTO operatorbundle(name, csv, bundle, bundlepath, version, skiprange) VALUES
		('p.v1', '` + csv1 + `', '` + csv1 + "\n" + crd1 + `', 'example.com/p:1', '1.0.0', NULL),
		('p.v2', NULL, NULL, 'example.com/p:2', '1.0.1', ''),
		('p.v3', '` + csv3 + `', '` + csv3 + `', 'example.com/p:3', '1.1.0', '>=1.0.0 <1.1.0')`,
	`INSERT INTO channel_entry VALUES
		(1, 'stable', 'p', 'p.v3', 2, 0),
		(2, 'stable', 'p', 'p.v2', 3, 1),
		(3, 'stable', 'p', 'p.v1', NULL, 2),
		(4, 'fast', 'p', 'p.v3', 6, 0),
		(5, 'fast', 'p', 'p.v3', 7, 1),
		(6, 'fast', 'p', 'p.v2', NULL, 1),
		(7, 'fast', 'p', 'p.v0-gone', NULL, 1)`,
	`INSERT INTO properties(type, value, operatorbundle_name) VALUES
		('olm.package', '{"packageName":"p","version":"1.0.0"}', 'p.v1'),
		('olm.gvk', '{"group":"g.example.com","kind":"K","version":"v1"}', 'p.v1'),
		('olm.package', '{ "packageName": "p", "version": "1.1.0" }', 'p.v3'),
		('olm.gvk', '{"group":"g.example.com","kind":"K","version":"v2"}', 'p.v3'),
		('olm.gvk', '{"group":"g.example.com","kind":"K","version":"v2"}', 'p.v3'),
		('com.example.custom', '{"b": 1, "a": [true, "<&>"]}', 'p.v3')`,
	`INSERT INTO dependencies(type, value, operatorbundle_name) VALUES
		('olm.package', '{"packageName":"q","version":">=1.0.0"}', 'p.v3'),
		('olm.gvk', '{"group":"d.example.com","kind":"D","version":"v1"}', 'p.v3'),
		('olm.label', '{"label":"dropped"}', 'p.v3')`,
	`INSERT INTO related_image VALUES
		('example.com/p:1', 'p.v1'),
		('example.com/p:3', 'p.v3'), ('example.com/op:3', 'p.v3'), ('example.com/extra:1', 'p.v3')`,
}

// writeDB creates a database from statements and returns its path.
func writeDB(t *testing.T, stmts ...[]string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "index.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, group := range stmts {
		for _, s := range group {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	return path
}

func prop(typ, value string) fbc.Property {
	return fbc.Property{Type: typ, Value: json.RawMessage(value)}
}

func object(data string) fbc.Property {
	return prop(fbc.PropertyBundleObject, `{"data":"`+base64.StdEncoding.EncodeToString([]byte(data))+`"}`)
}

// TestLoad checks every field of the base fixture's rendering, byte for
// byte.
func TestLoad(t *testing.T) {
	got, err := Load(t.Context(), writeDB(t, schema, base))
	if err != nil {
		t.Fatal(err)
	}
	want := &fbc.DeclarativeConfig{
		Packages: []fbc.Package{{
			Schema: fbc.SchemaPackage, Name: "p", DefaultChannel: "stable",
			// The head's icon, decoded once the spaces are gone.
			Icon: &fbc.Icon{Data: []byte("<svg/>"), MediaType: "image/svg+xml"},
		}},
		Channels: []fbc.Channel{
			{Schema: fbc.SchemaChannel, Name: "fast", Package: "p", Entries: []fbc.ChannelEntry{
				{Name: "p.v2"},
				{Name: "p.v3", Replaces: "p.v2", Skips: []string{"p.v0-gone"}, SkipRange: ">=1.0.0 <1.1.0"},
			}},
			{Schema: fbc.SchemaChannel, Name: "stable", Package: "p", Entries: []fbc.ChannelEntry{
				{Name: "p.v1"},
				{Name: "p.v2", Replaces: "p.v1"},
				{Name: "p.v3", Replaces: "p.v2", SkipRange: ">=1.0.0 <1.1.0"},
			}},
		},
		Bundles: []fbc.Bundle{
			{
				Schema: fbc.SchemaBundle, Name: "p.v1", Package: "p", Image: "example.com/p:1",
				Properties: []fbc.Property{
					prop("olm.gvk", `{"group":"g.example.com","kind":"K","version":"v1"}`),
					prop("olm.package", `{"packageName":"p","version":"1.0.0"}`),
					object(crd1), // ordered by the base64 of the data
					object(csv1),
				},
				RelatedImages: []fbc.RelatedImage{{Image: "example.com/p:1"}},
			},
			{
				// No properties rows: olm.package from the version column.
				Schema: fbc.SchemaBundle, Name: "p.v2", Package: "p", Image: "example.com/p:2",
				Properties: []fbc.Property{prop("olm.package", `{"packageName":"p","version":"1.0.1"}`)},
			},
			{
				Schema: fbc.SchemaBundle, Name: "p.v3", Package: "p", Image: "example.com/p:3",
				Properties: []fbc.Property{
					prop("com.example.custom", `{"b":1,"a":[true,"<&>"]}`),
					prop("olm.gvk", `{"group":"g.example.com","kind":"K","version":"v2"}`),
					prop("olm.gvk.required", `{"group":"d.example.com","kind":"D","version":"v1"}`),
					prop("olm.package", `{"packageName":"p","version":"1.1.0"}`),
					prop("olm.package.required", `{"packageName":"q","versionRange":">=1.0.0"}`),
					object(csv3),
				},
				RelatedImages: []fbc.RelatedImage{
					{Image: "example.com/extra:1"},
					{Name: "op", Image: "example.com/op:3"},
					{Image: "example.com/p:3"},
				},
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

// variations change the base fixture one way at a time;
// TestOPMAgreesOnVariations holds opm to the same outcomes.
var variations = []struct {
	name    string
	stmts   []string
	wantErr string // "" for success
	check   func(t *testing.T, cfg *fbc.DeclarativeConfig)
}{
	{
		name:  "a deprecated bundle is left out",
		stmts: []string{`INSERT INTO properties(type, value, operatorbundle_name) VALUES ('olm.deprecated', '{}', 'p.v1')`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) {
			wantBundles(t, cfg, "p.v2", "p.v3")
			wantEntry(t, cfg, "stable", fbc.ChannelEntry{Name: "p.v2", Replaces: "p.v1"})
		},
	},
	{
		name:  "a bundle without bundlepath is left out",
		stmts: []string{`UPDATE operatorbundle SET bundlepath = NULL WHERE name = 'p.v1'`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) { wantBundles(t, cfg, "p.v2", "p.v3") },
	},
	{
		name:  "an empty bundlepath is kept",
		stmts: []string{`UPDATE operatorbundle SET bundlepath = '' WHERE name = 'p.v1'`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) { wantBundles(t, cfg, "p.v1", "p.v2", "p.v3") },
	},
	{
		name: "the replaced bundle with the greatest name wins",
		stmts: []string{
			`INSERT INTO operatorbundle(name, bundlepath, version) VALUES ('p.v2a', 'example.com/p:2a', '1.0.2')`,
			`UPDATE channel_entry SET replaces = 9 WHERE entry_id = 1`,
			`INSERT INTO channel_entry VALUES (8, 'stable', 'p', 'p.v3', 2, 0), (9, 'stable', 'p', 'p.v2a', 2, 1)`,
		},
		// p.v3 now replaces both p.v2 and p.v2a on the chain: opm
		// takes max(name); p.v2a then replaces p.v2.
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) {
			wantEntry(t, cfg, "stable", fbc.ChannelEntry{Name: "p.v3", Replaces: "p.v2a", SkipRange: ">=1.0.0 <1.1.0"})
			wantEntry(t, cfg, "stable", fbc.ChannelEntry{Name: "p.v2a", Replaces: "p.v2"})
		},
	},
	{
		name:  "a skipped name with a comma comes out in pieces",
		stmts: []string{`UPDATE channel_entry SET operatorbundle_name = 'p.v0,gone' WHERE entry_id = 7`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) {
			wantEntry(t, cfg, "fast", fbc.ChannelEntry{Name: "p.v3", Replaces: "p.v2", Skips: []string{"p.v0", "gone"}, SkipRange: ">=1.0.0 <1.1.0"})
		},
	},
	{
		name:  "no icon when it is not base64",
		stmts: []string{`UPDATE operatorbundle SET csv = replace(csv, 'PHN2 Zy8+', '!!') WHERE name = 'p.v3'`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) {
			if cfg.Packages[0].Icon != nil {
				t.Errorf("icon %v, want none", cfg.Packages[0].Icon)
			}
		},
	},
	{
		name:    "a schema older than 9",
		stmts:   []string{`UPDATE schema_migrations SET version = 8`},
		wantErr: "schema version 8 is older than 9",
	},
	{
		name:    "a default channel that is not a channel",
		stmts:   []string{`UPDATE package SET default_channel = 'nope'`},
		wantErr: `package "p": default channel is not one of its channels`,
	},
	{
		name: "two heads",
		stmts: []string{
			`INSERT INTO operatorbundle(name, bundlepath, version) VALUES ('p.v4', 'example.com/p:4', '1.2.0')`,
			`INSERT INTO channel_entry VALUES (8, 'stable', 'p', 'p.v4', NULL, 0)`,
		},
		wantErr: `invalid channel "stable": multiple channel heads found in graph: p.v3, p.v4`,
	},
	{
		name:    "a bundle column without a CSV",
		stmts:   []string{`UPDATE operatorbundle SET bundle = '` + crd1 + `' WHERE name = 'p.v1'`},
		wantErr: "no csv in bundle",
	},
	{
		name:    "an object without a kind before the CSV",
		stmts:   []string{`UPDATE operatorbundle SET bundle = '{"apiVersion":"v1"}' || bundle WHERE name = 'p.v1'`},
		wantErr: "object 'Kind' is missing",
	},
	{
		// opm stops reading objects at the CSV.
		name:  "an object without a kind after the CSV",
		stmts: []string{`UPDATE operatorbundle SET bundle = bundle || '{"apiVersion":"v1"}' WHERE name = 'p.v1'`},
		check: func(t *testing.T, cfg *fbc.DeclarativeConfig) {
			if n := len(cfg.Bundles[0].Properties); n != 5 {
				t.Errorf("p.v1 has %d properties, want 5 (three objects)", n)
			}
		},
	},
	{
		name:    "duplicate versions",
		stmts:   []string{`UPDATE operatorbundle SET version = '1.0.0' WHERE name = 'p.v2'`, `DELETE FROM properties WHERE operatorbundle_name = 'p.v1'`},
		wantErr: "duplicate versions found in bundles: [{1.0.0: [p.v1, p.v2]}]",
	},
	{
		name:    "a version that is not semver",
		stmts:   []string{`UPDATE operatorbundle SET version = 'one' WHERE name = 'p.v2'`},
		wantErr: `parse version "one"`,
	},
	{
		name:    "the default channel head has no CSV",
		stmts:   []string{`UPDATE operatorbundle SET csv = NULL WHERE name = 'p.v3'`},
		wantErr: `unmarshal CSV json for bundle "p.v3"`,
	},
	{
		name:    "two olm.package properties",
		stmts:   []string{`INSERT INTO properties(type, value, operatorbundle_name) VALUES ('olm.package', '{"packageName":"p","version":"9.9.9"}', 'p.v1')`},
		wantErr: `invalid bundle "p.v1": must be exactly one property with type "olm.package"`,
	},
	{
		name:    "a bad skipRange",
		stmts:   []string{`UPDATE operatorbundle SET skiprange = 'soon' WHERE name = 'p.v3'`},
		wantErr: `invalid skipRange "soon"`,
	},
	{
		name:    "a channel of a package the package table lacks",
		stmts:   []string{`UPDATE channel_entry SET package_name = 'q' WHERE entry_id = 3`},
		wantErr: `unknown package "q" for bundle "p.v1"`,
	},
}

func TestLoadVariations(t *testing.T) {
	for _, tc := range variations {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Load(t.Context(), writeDB(t, schema, base, tc.stmts))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Load: got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, cfg)
		})
	}
}

func wantBundles(t *testing.T, cfg *fbc.DeclarativeConfig, names ...string) {
	t.Helper()
	var got []string
	for _, b := range cfg.Bundles {
		got = append(got, b.Name)
	}
	if diff := cmp.Diff(names, got); diff != "" {
		t.Errorf("bundles (-want +got):\n%s", diff)
	}
}

func wantEntry(t *testing.T, cfg *fbc.DeclarativeConfig, channel string, want fbc.ChannelEntry) {
	t.Helper()
	for _, c := range cfg.Channels {
		if c.Name != channel {
			continue
		}
		i := slices.IndexFunc(c.Entries, func(e fbc.ChannelEntry) bool { return e.Name == want.Name })
		if i < 0 {
			t.Errorf("channel %s has no entry %s", channel, want.Name)
			return
		}
		if diff := cmp.Diff(want, c.Entries[i]); diff != "" {
			t.Errorf("channel %s entry (-want +got):\n%s", channel, diff)
		}
		return
	}
	t.Errorf("no channel %s", channel)
}

func TestLoadFiles(t *testing.T) {
	t.Run("an empty database is an empty catalog", func(t *testing.T) {
		path := writeDB(t, []string{"CREATE TABLE x(a)", "DROP TABLE x"})
		cfg, err := Load(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&fbc.DeclarativeConfig{}, cfg); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("tables but no schema_migrations", func(t *testing.T) {
		if _, err := Load(t.Context(), writeDB(t, []string{"CREATE TABLE package (name TEXT)"})); err == nil || !strings.Contains(err.Error(), "not an operator-registry index") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "index.db")
		if err := os.WriteFile(path, []byte("schema: olm.package\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(t.Context(), path); err == nil || !strings.Contains(err.Error(), "is not a SQLite database") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a path with URI characters", func(t *testing.T) {
		data, err := os.ReadFile(writeDB(t, schema, base))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "a b#c", "in?dex%20.db")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if cfg, err := Load(t.Context(), path); err != nil || len(cfg.Bundles) != 3 {
			t.Fatalf("Load(%q): %v", path, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Load(t.Context(), filepath.Join(t.TempDir(), "nope.db")); err == nil {
			t.Fatal("Load of a missing file succeeded")
		}
	})
	t.Run("Load does not write", func(t *testing.T) {
		path := writeDB(t, schema, base)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(t.Context(), path); err != nil {
			t.Fatal(err)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(before) != string(after) {
			t.Error("Load changed the database file")
		}
	})
}
