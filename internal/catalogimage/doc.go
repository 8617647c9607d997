// Package catalogimage reads catalogs out of index images and builds new
// catalog images.
//
// Reading follows the image's labels, as opm does: the FBC directory named by
// operators.operatorframework.io.index.configs.v1, or the SQLite database
// named by operators.operatorframework.io.index.database.v1. Layers are
// applied top-down with whiteouts (plain and opaque), and entries that leave
// the target directory or exceed size limits are refused: a catalog image is
// untrusted input.
//
// Building puts a /configs layer on a base image: opaque whiteouts hide the
// base's old configs and any pre-built cache, so the pod never fails with
// "cache requires rebuild", and the entrypoint is opm serving /configs with
// cache integrity enforcement off, so opm builds a fresh cache at start.
package catalogimage
