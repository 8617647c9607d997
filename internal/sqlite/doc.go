// Package sqlite reads the SQLite index databases of old catalog images
// (/database/index.db, operator-registry's schema) and converts them to a
// file-based catalog, giving what `opm render <index image>` of
// operator-registry v1.73.0 (the last release that reads them) gives.
//
// It uses the pure-Go modernc.org/sqlite driver and opens databases read
// only: unlike opm it does not migrate an old schema in place, so databases
// older than schema version 9 are refused (every index built by a 2021 or
// later opm is at 12 or 13).
package sqlite
