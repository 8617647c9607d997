package world

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // pure-Go driver: no cgo in Ferry's build
)

// SQLiteSchemaVersion is the last migration of operator-registry v1.73.0
// (013_rm_truncated_deprecations), the last release that reads SQLite
// indexes; opm migrates older databases up to it before reading.
const SQLiteSchemaVersion = 13

// sqliteSchema is the schema an index database has after all of
// operator-registry v1.73.0's migrations ran, statement for statement as
// sqlite_master holds it (dumped from a database `opm render` migrated;
// TestSQLiteSchemaMatchesOPM keeps it honest). Creating it directly instead
// of replaying migrations keeps every table rename's quoting ("api_provider")
// exactly as opm leaves it.
var sqliteSchema = []string{
	"CREATE TABLE schema_migrations (\n\t\tversion bigint NOT NULL,\n        timestamp DATETIME DEFAULT CURRENT_TIMESTAMP\n\t)",
	"CREATE TABLE api (\n\t\t\tgroup_name TEXT,\n\t\t\tversion TEXT,\n\t\t\tkind TEXT,\n\t\t\tplural TEXT NOT NULL,\n\t\t\tPRIMARY KEY(group_name, version, kind)\n\t\t)",
	"CREATE TABLE operatorbundle (\n\t\t\tname TEXT PRIMARY KEY,\n\t\t\tcsv TEXT,\n\t\t\tbundle TEXT,\n\t\t\tbundlepath TEXT, skiprange TEXT, version TEXT, replaces TEXT, skips TEXT, substitutesfor TEXT)",
	"CREATE TABLE package (\n\t\t\tname TEXT PRIMARY KEY,\n\t\t\tdefault_channel TEXT,\n\t\t\tFOREIGN KEY(name, default_channel) REFERENCES channel(package_name,name) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE channel (\n\t\t\tname TEXT,\n\t\t\tpackage_name TEXT,\n\t\t\thead_operatorbundle_name TEXT,\n\t\t\tPRIMARY KEY(name, package_name),\n\t\t\tFOREIGN KEY(head_operatorbundle_name) REFERENCES operatorbundle(name) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE channel_entry (\n\t\t\tentry_id INTEGER PRIMARY KEY,\n\t\t\tchannel_name TEXT,\n\t\t\tpackage_name TEXT,\n\t\t\toperatorbundle_name TEXT,\n\t\t\treplaces INTEGER,\n\t\t\tdepth INTEGER,\n\t\t\tFOREIGN KEY(replaces) REFERENCES channel_entry(entry_id) DEFERRABLE INITIALLY DEFERRED, \n\t\t\tFOREIGN KEY(channel_name, package_name) REFERENCES channel(name, package_name) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE related_image (\n\t\t\timage TEXT,\n     \t\toperatorbundle_name TEXT,\n     \t\tFOREIGN KEY(operatorbundle_name) REFERENCES operatorbundle(name) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE \"api_provider\" (\n\t\t\tgroup_name TEXT,\n\t\t\tversion TEXT,\n\t\t\tkind TEXT,\n\t\t\toperatorbundle_name TEXT,\n\t\t\toperatorbundle_version TEXT,\n\t\t\toperatorbundle_path TEXT,\n\t\t\tFOREIGN KEY(operatorbundle_name, operatorbundle_version, operatorbundle_path) REFERENCES operatorbundle(name, version, bundlepath) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,\n\t\t\tFOREIGN KEY(group_name, version, kind) REFERENCES api(group_name, version, kind) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE \"api_requirer\" (\n\t\t\tgroup_name TEXT,\n\t\t\tversion TEXT,\n\t\t\tkind TEXT,\n\t\t\toperatorbundle_name TEXT,\n\t\t\toperatorbundle_version TEXT,\n\t\t\toperatorbundle_path TEXT,\n\t\t\tFOREIGN KEY(operatorbundle_name, operatorbundle_version, operatorbundle_path) REFERENCES operatorbundle(name, version, bundlepath) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,\n\t\t\tFOREIGN KEY(group_name, version, kind) REFERENCES api(group_name, version, kind) ON DELETE CASCADE\n\t\t)",
	"CREATE UNIQUE INDEX pk ON operatorbundle(name, version, bundlepath)",
	"CREATE TRIGGER api_provider_cleanup\n\t\tAFTER DELETE ON api_provider\n\t\tWHEN NOT EXISTS (SELECT 1 FROM api_provider JOIN api_requirer WHERE \n\t\t    (api_provider.group_name = OLD.group_name AND api_provider.version = OLD.version AND api_provider.kind = OLD.kind) OR \n\t\t\t(api_requirer.group_name = OLD.group_name AND api_requirer.version = OLD.version AND api_requirer.kind = OLD.kind))\n\t\tBEGIN\n\t\t\tDELETE FROM api WHERE group_name = OLD.group_name AND version = OLD.version AND kind = OLD.kind;\n\t\tEND",
	"CREATE TRIGGER api_requirer_cleanup\n\t\tAFTER DELETE ON api_requirer\n\t\tWHEN NOT EXISTS (SELECT 1 FROM api_provider JOIN api_requirer WHERE \n\t\t    (api_provider.group_name = OLD.group_name AND api_provider.version = OLD.version AND api_provider.kind = OLD.kind) OR \n\t\t\t(api_requirer.group_name = OLD.group_name AND api_requirer.version = OLD.version AND api_requirer.kind = OLD.kind))\t\n\t\tBEGIN\n\t\t\tDELETE FROM api WHERE group_name = OLD.group_name AND version = OLD.version AND kind = OLD.kind;\n\t\tEND",
	"CREATE TABLE dependencies (\n\t\t\ttype TEXT,\n\t\t\tvalue TEXT,\n\t\t\toperatorbundle_name TEXT,\n\t\t\toperatorbundle_version TEXT,\n\t\t\toperatorbundle_path TEXT,\n\t\t\tFOREIGN KEY(operatorbundle_name, operatorbundle_version, operatorbundle_path) REFERENCES operatorbundle(name, version, bundlepath) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE properties (\n\t\t\ttype TEXT,\n\t\t\tvalue TEXT,\n\t\t\toperatorbundle_name TEXT,\n\t\t\toperatorbundle_version TEXT,\n\t\t\toperatorbundle_path TEXT,\n\t\t\tFOREIGN KEY(operatorbundle_name, operatorbundle_version, operatorbundle_path) REFERENCES operatorbundle(name, version, bundlepath) ON DELETE CASCADE\n\t\t)",
	"CREATE TABLE deprecated (\n\t\t\toperatorbundle_name TEXT PRIMARY KEY\n\t\t)",
}

// migrationTimestamp replaces CURRENT_TIMESTAMP in schema_migrations so the
// database file is a function of its content.
const migrationTimestamp = "2024-01-01 00:00:00"

// buildIndexDB writes the SQLite index database for idx, whose bundles are
// described by contents (keyed "package/bundle"), and returns the file's
// bytes.
//
// The tables are filled the way operator-registry's loader fills them, with
// one deliberate extension: the loader can only record a channel's replaces
// chain from its head (bundles reached only through skips lose their own
// replaces edge); here every bundle off that chain gets a depth-0 entry of
// its own, which opm's ListBundles query follows like a head's, so a
// catalog's upgrade graph survives the round trip through SQLite; and the
// placeholder entries skips and replaces need are filed under a channel that
// holds the bundle they name, where the loader would make that bundle a
// member of the channel doing the skipping. A bundle has one skipRange in
// SQLite, so a bundle whose skipRange differs between channels keeps the
// default channel's.
func buildIndexDB(ctx context.Context, idx *packageIndex, contents map[string]*bundleContent) ([]byte, error) {
	dir, err := os.MkdirTemp("", "ferry-world-index-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	dbPath := filepath.Join(dir, "index.db")
	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=foreign_keys(1)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	// One connection: the pragma and the transaction must share it.
	db.SetMaxOpenConns(1)

	if err := fillIndexDB(ctx, db, idx, contents); err != nil {
		return nil, fmt.Errorf("build index database: %w", err)
	}
	if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
		return nil, fmt.Errorf("build index database: %w", err)
	}
	if err := db.Close(); err != nil {
		return nil, err
	}
	return os.ReadFile(dbPath)
}

func fillIndexDB(ctx context.Context, db *sql.DB, idx *packageIndex, contents map[string]*bundleContent) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	exec := func(q string, args ...any) (sql.Result, error) { return tx.ExecContext(ctx, q, args...) }

	for _, stmt := range sqliteSchema {
		if _, err := exec(stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := exec("INSERT INTO schema_migrations(version, timestamp) VALUES(?, ?)", SQLiteSchemaVersion, migrationTimestamp); err != nil {
		return err
	}

	for _, pn := range sortedKeys(idx.packages) {
		p := idx.packages[pn]
		for _, bn := range sortedKeys(p.bundles) {
			b := contents[pn+"/"+bn]
			if b == nil {
				return fmt.Errorf("bundle %s/%s: no content", pn, bn)
			}
			if err := insertBundle(exec, p.bundles[bn], b); err != nil {
				return fmt.Errorf("bundle %s: %w", bn, err)
			}
		}
		if err := insertPackage(exec, p); err != nil {
			return fmt.Errorf("package %s: %w", pn, err)
		}
	}
	return tx.Commit()
}

type execFunc func(q string, args ...any) (sql.Result, error)

func insertBundle(exec execFunc, d doc, b *bundleContent) error {
	csvJSON, err := marshalJSON(b.csv())
	if err != nil {
		return err
	}
	// The bundle column holds the manifests as concatenated JSON objects,
	// as bundle.Serialize writes them.
	var objs strings.Builder
	for _, o := range b.objects {
		j, err := marshalJSON(o)
		if err != nil {
			return err
		}
		objs.Write(j)
	}
	if _, err := exec(`INSERT INTO operatorbundle(name, csv, bundle, bundlepath, version, skiprange, replaces, skips) VALUES(?, ?, ?, ?, ?, ?, ?, ?)`,
		b.name, string(csvJSON), objs.String(), b.image, b.version, b.entry.SkipRange, b.entry.Replaces, strings.Join(b.entry.Skips, ",")); err != nil {
		return err
	}

	// related_image: every image of the bundle, the bundle image included,
	// each once (bundle.Images() is a set).
	seen := map[string]bool{}
	images := []string{}
	if b.image != "" {
		images = append(images, b.image)
	}
	for _, ri := range relatedImages(d) {
		images = append(images, ri.Image)
	}
	for _, img := range images {
		if img == "" || seen[img] {
			continue
		}
		seen[img] = true
		if _, err := exec("INSERT INTO related_image(image, operatorbundle_name) VALUES(?, ?)", img, b.name); err != nil {
			return err
		}
	}

	path := nullIfEmpty(b.image)
	for _, pr := range bundleProperties(d) {
		switch pr.Type {
		case propBundleObject, propCSVMetadata:
			// Carried by the bundle and csv columns instead, as in an index
			// built from bundle images.
			continue
		case propGVKRequired:
			v, _ := pr.Value.(map[string]any)
			val, err := marshalJSON(map[string]any{"group": v["group"], "kind": v["kind"], "version": v["version"]})
			if err != nil {
				return err
			}
			if _, err := exec("INSERT INTO dependencies(type, value, operatorbundle_name, operatorbundle_version, operatorbundle_path) VALUES(?, ?, ?, ?, ?)",
				propGVK, string(val), b.name, b.version, path); err != nil {
				return err
			}
			continue
		case propPackageRequired:
			v, _ := pr.Value.(map[string]any)
			val, err := marshalJSON(map[string]any{"packageName": v["packageName"], "version": v["versionRange"]})
			if err != nil {
				return err
			}
			if _, err := exec("INSERT INTO dependencies(type, value, operatorbundle_name, operatorbundle_version, operatorbundle_path) VALUES(?, ?, ?, ?, ?)",
				propPackage, string(val), b.name, b.version, path); err != nil {
				return err
			}
			continue
		}
		val, err := marshalJSON(pr.Value)
		if err != nil {
			return err
		}
		if _, err := exec("INSERT INTO properties(type, value, operatorbundle_name, operatorbundle_version, operatorbundle_path) VALUES(?, ?, ?, ?, ?)",
			pr.Type, string(val), b.name, b.version, path); err != nil {
			return err
		}
	}

	for _, g := range b.provided {
		if err := insertAPI(exec, "api_provider", g, b.name, b.version, path); err != nil {
			return err
		}
	}
	for _, g := range b.required {
		if err := insertAPI(exec, "api_requirer", g, b.name, b.version, path); err != nil {
			return err
		}
	}
	return nil
}

func insertAPI(exec execFunc, table string, g gvk, bundle, version string, path any) error {
	if _, err := exec("INSERT OR IGNORE INTO api(group_name, version, kind, plural) VALUES(?, ?, ?, ?)", g.Group, g.Version, g.Kind, g.Plural); err != nil {
		return err
	}
	_, err := exec("INSERT INTO "+table+"(group_name, version, kind, operatorbundle_name, operatorbundle_version, operatorbundle_path) VALUES(?, ?, ?, ?, ?, ?)",
		g.Group, g.Version, g.Kind, bundle, version, path)
	return err
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// insertPackage writes package, channel and channel_entry rows in the
// loader's order (package first with no default channel, which the foreign
// key to channel requires, then channels, then the default).
func insertPackage(exec execFunc, p *pkgInfo) error {
	if _, err := exec("INSERT INTO package(name) VALUES(?)", p.name); err != nil {
		return err
	}
	heads := map[string]string{}
	for _, cn := range sortedKeys(p.channels) {
		head, err := channelHead(p.channels[cn])
		if err != nil {
			return fmt.Errorf("channel %s: %w", cn, err)
		}
		heads[cn] = head
		if _, err := exec("INSERT INTO channel(name, package_name, head_operatorbundle_name) VALUES(?, ?, ?)", cn, p.name, head); err != nil {
			return fmt.Errorf("channel %s: %w", cn, err)
		}
	}
	// home is the channel a placeholder entry for bundle goes to. An entry
	// makes its bundle a member of its channel in opm's eyes, so a
	// placeholder for a bundle the channel does not contain (a skipped or
	// replaced bundle that lives in another channel) is filed under a
	// channel that does contain it; skips and replaces are joined by entry
	// id, not by channel, so the edge still counts where it was written.
	home := func(c *chanInfo, bundle string) string {
		for _, e := range c.entries {
			if e.Name == bundle {
				return c.name
			}
		}
		if chans := p.channelsOf(bundle); len(chans) > 0 {
			return chans[0]
		}
		return c.name // not in the catalog: opm drops the entry, keeps the name
	}
	for _, cn := range sortedKeys(p.channels) {
		c := p.channels[cn]
		if err := insertChannelEntries(exec, p.name, c, heads[cn], func(b string) string { return home(c, b) }); err != nil {
			return fmt.Errorf("channel %s: %w", cn, err)
		}
	}
	if _, ok := p.channels[p.defaultChannel]; !ok {
		return fmt.Errorf("default channel %q is not a channel of the package", p.defaultChannel)
	}
	_, err := exec("UPDATE package SET default_channel = ? WHERE name = ?", p.defaultChannel, p.name)
	return err
}

// channelHead is the one entry no other entry of the channel replaces or
// skips.
func channelHead(c *chanInfo) (string, error) {
	incoming := map[string]bool{}
	for _, e := range c.entries {
		if e.Replaces != "" {
			incoming[e.Replaces] = true
		}
		for _, s := range e.Skips {
			incoming[s] = true
		}
	}
	var heads []string
	for _, e := range c.entries {
		if !incoming[e.Name] {
			heads = append(heads, e.Name)
		}
	}
	if len(heads) != 1 {
		return "", fmt.Errorf("want exactly one head, found %d (%s)", len(heads), lines(heads))
	}
	return heads[0], nil
}

// insertChannelEntries lays out one channel's upgrade graph as
// channel_entry rows; see buildIndexDB for the layout.
func insertChannelEntries(exec execFunc, pkg string, c *chanInfo, head string, home func(string) string) error {
	byName := map[string]entry{}
	for _, e := range c.entries {
		byName[e.Name] = e
	}
	addIn := func(channel, bundle string, depth int) (int64, error) {
		res, err := exec("INSERT INTO channel_entry(channel_name, package_name, operatorbundle_name, depth) VALUES(?, ?, ?, ?)", channel, pkg, bundle, depth)
		if err != nil {
			return 0, err
		}
		return res.LastInsertId()
	}
	add := func(bundle string, depth int) (int64, error) { return addIn(c.name, bundle, depth) }
	placeholder := func(bundle string, depth int) (int64, error) { return addIn(home(bundle), bundle, depth) }
	setReplaces := func(id, replaced int64) error {
		_, err := exec("UPDATE channel_entry SET replaces = ? WHERE entry_id = ?", replaced, id)
		return err
	}
	// addSkips records e's skips as the loader does: a placeholder entry for
	// the skipped bundle and a synthesised entry for e replacing it, one
	// level deeper each.
	addSkips := func(e entry, depth int) (int, error) {
		for _, s := range e.Skips {
			skipped, err := placeholder(s, depth)
			if err != nil {
				return depth, err
			}
			synth, err := add(e.Name, depth)
			if err != nil {
				return depth, err
			}
			if err := setReplaces(synth, skipped); err != nil {
				return depth, err
			}
			depth++
		}
		return depth, nil
	}

	main := map[string]int64{}
	chain := map[string]bool{head: true} // bundles whose replaces the walk wrote
	// The head's replaces chain, as the loader walks it.
	cur := head
	id, err := add(cur, 0)
	if err != nil {
		return err
	}
	main[cur] = id
	depth := 1
	for {
		e := byName[cur]
		if depth, err = addSkips(e, depth); err != nil {
			return err
		}
		if e.Replaces == "" {
			break
		}
		if _, seen := main[e.Replaces]; seen {
			return fmt.Errorf("replaces cycle through %s", e.Replaces)
		}
		rid, err := placeholder(e.Replaces, depth)
		if err != nil {
			return err
		}
		if err := setReplaces(main[cur], rid); err != nil {
			return err
		}
		if _, inChannel := byName[e.Replaces]; !inChannel {
			// Real catalogs replace bundles they no longer ship; the
			// placeholder keeps the name, as opm keeps it in FBC.
			break
		}
		main[e.Replaces] = rid
		chain[e.Replaces] = true
		cur = e.Replaces
		depth++
	}

	// Everything the chain did not reach: a depth-0 entry each, which opm's
	// ListBundles query starts from like a head, so its replaces edge counts
	// as replaces and not as a skip.
	for _, e := range c.entries {
		if _, ok := main[e.Name]; ok {
			continue
		}
		id, err := add(e.Name, 0)
		if err != nil {
			return err
		}
		main[e.Name] = id
		if _, err := addSkips(e, 1); err != nil {
			return err
		}
	}
	for _, e := range c.entries {
		if e.Replaces == "" || chain[e.Name] {
			continue
		}
		target, ok := main[e.Replaces]
		if !ok {
			if target, err = placeholder(e.Replaces, 1); err != nil {
				return err
			}
		}
		if err := setReplaces(main[e.Name], target); err != nil {
			return err
		}
	}
	return nil
}
