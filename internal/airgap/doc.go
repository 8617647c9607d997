// Package airgap carries images across an air gap: Export copies an image
// set from its source registries into an archive on the connected side,
// Import pushes the archive into the mirror registry on the disconnected
// side, which never reaches a source.
//
//	rep, err := airgap.Export(ctx, pairs, airgap.ExportOptions{
//		Path:    "/media/usb/ferry-2.tar", // a directory, or a tar when it ends in .tar
//		Remotes: client,                   // *registry.Client: source credentials
//		Built:   []airgap.Built{{Image: catalog, Destination: "mirror.lab:5000/ferry/catalog:v4.20"}},
//		Since:   []string{"/media/usb/ferry-1.tar"}, // incremental: leave out what it carried
//		Files:   map[string][]byte{"ferry.lock": lock},
//	})
//	...
//	rep, files, err := airgap.Import(ctx, "/media/usb/ferry-2.tar", airgap.ImportOptions{Remotes: mirrorClient})
//
// # The archive
//
// An archive is an OCI image layout (oci-layout, index.json, blobs/sha256/)
// with one index.json entry per image, named by its destination in
// org.opencontainers.image.ref.name and by its source in AnnotationSource.
// Manifests are stored byte for byte, so every digest is the source's, and
// an index always has all its children. Next to the layout:
//
//   - RecordFile, the Record: every image (source, destination, digest),
//     every blob and manifest the archive holds, every digest it left out
//     because an earlier archive carried it with the mirror repository
//     that archive's import put it in, and the cumulative set of what all
//     archives so far carried, so the next export's Since needs only the
//     newest archive. It is written last: a directory without it is an
//     export that did not finish.
//   - FilesPrefix/<name>: the extra files (rendered manifests, lock file).
//
// A full archive (no Since) is a standard layout other OCI tools read. An
// incremental one references blobs it does not hold: only Import, against
// a mirror holding the earlier archives' images, completes it.
//
// An incremental archive leaves out every blob an earlier archive carried,
// and every manifest an earlier archive carried to the same repository;
// an image carried before to the same destination is left out whole. A
// manifest carried to another repository is carried again (manifests are
// small; blobs can be mounted from another repository, manifests cannot).
//
// # How the copying is done
//
// Both directions are the copy engine (internal/mirror) talking to a tiny
// registry that this package serves on 127.0.0.1:0: Export copies the
// sources into a write-only registry that stores what it receives into the
// archive, reporting what earlier archives carried as present; Import
// copies from a read-only registry serving the archive. So both get the
// engine's contract: an image present costs one HEAD, each blob moves at
// most once, blobs stream (source -> disk, disk -> mirror) in bounded
// memory, failures are retried and stalls cut, concurrency is bounded,
// errors name the image and never carry a credential. Import passes the
// record's locations of left-out blobs as the engine's BlobHints, so they
// are found by a HEAD in the destination repository or mounted from where
// the earlier import put them, never uploaded.
//
// Writing: an upload is staged in a file, hashed as it arrives, and becomes
// part of the archive only once its digest matches; a manifest only once
// everything it references is in the archive or was carried before. A tar
// is appended to as blobs complete (disk use is the archive plus the blobs
// in flight) and renamed from .partial when complete.
//
// Reading: a tar is never extracted; its members are located by a scan of
// the tar headers and read in place with io.SectionReader. Before anything
// is pushed, Import checks the whole archive against its record (sizes,
// digests, every image complete with what it holds and left out) and
// returns an *ArchiveError listing every problem.
package airgap
