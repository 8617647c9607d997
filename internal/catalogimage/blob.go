package catalogimage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// checkManifest refuses an image whose manifest declares a config or a
// layer over the limits, before any of it is read: the declared size is
// what go-containerregistry reads up to, into memory for a config.
func checkManifest(img v1.Image, limits Limits, name string) (*v1.Manifest, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("%s: read manifest: %w", name, err)
	}
	if m.Config.Size > limits.MaxConfigBytes {
		return nil, &registry.TooLargeError{What: fmt.Sprintf("%s: config %s", name, m.Config.Digest), Size: m.Config.Size, Limit: limits.MaxConfigBytes}
	}
	for i, l := range m.Layers {
		if l.Size > limits.MaxBlobBytes {
			return nil, &registry.TooLargeError{What: fmt.Sprintf("%s: layer %d (%s)", name, i, l.Digest), Size: l.Size, Limit: limits.MaxBlobBytes}
		}
		if l.Size < 0 {
			return nil, fmt.Errorf("%s: layer %d (%s) declares a negative size", name, i, l.Digest)
		}
	}
	return m, nil
}

// configFile reads an image's config once its declared size passed
// checkManifest, reading it again when the stream broke off.
func configFile(ctx context.Context, img v1.Image, opts ReadOptions, name string) (*v1.ConfigFile, error) {
	var cf *v1.ConfigFile
	err := opts.transfer(ctx, func(context.Context) error {
		var err error
		cf, err = img.ConfigFile()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: read config: %w", name, err)
	}
	return cf, nil
}

// spool downloads a layer's compressed bytes into a temporary file,
// hashing them on the way, and returns the file positioned at its start
// once the bytes match the layer's digest and declared size. Nothing of a
// layer is used before that. A download that breaks off, stalls or arrives
// with other bytes is read again from the start (opts.Transfer); at most
// the declared size is ever read, so an endless body costs nothing more.
func spool(ctx context.Context, l v1.Layer, opts ReadOptions, what string) (*os.File, error) {
	digest, err := l.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	size, err := l.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if size > opts.Limits.MaxBlobBytes {
		return nil, &registry.TooLargeError{What: what, Size: size, Limit: opts.Limits.MaxBlobBytes}
	}
	f, err := os.CreateTemp(opts.TempDir, "ferry-layer-*")
	if err != nil {
		return nil, err
	}
	// The file is unlinked at once: it lives only as long as it is open,
	// so no path is left behind whatever happens to the process.
	_ = os.Remove(f.Name())
	err = opts.transfer(ctx, func(context.Context) error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		h, err := v1.Hasher(digest.Algorithm)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		// One byte past the declared size tells a body that is too long
		// from one that is exactly right.
		n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, size+1))
		got := v1.Hash{Algorithm: digest.Algorithm, Hex: hex.EncodeToString(h.Sum(nil))}
		switch {
		case n > size:
			return &registry.DigestError{What: what, Want: digest.String(), Got: fmt.Sprintf("more than the declared %d bytes", size), Size: n}
		case n == size && got != digest:
			return &registry.DigestError{What: what, Want: digest.String(), Got: got.String(), Size: n}
		case err != nil:
			return fmt.Errorf("%s: after %d of %d bytes: %w", what, n, size, err)
		case n < size:
			return fmt.Errorf("%s: body ended after %d of %d bytes: %w", what, n, size, io.ErrUnexpectedEOF)
		}
		return nil
	})
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Magic numbers of the layer compressions images use.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// expanded is a verified layer's tar stream: decompressed by sniffing (as
// container runtimes do, whatever the media type claims), and counted
// against the image's expansion budget.
type expanded struct {
	io.Reader
	close func()
}

func expand(f *os.File, budget *int64, limit int64, what string) (*expanded, error) {
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(4)
	var r io.Reader = br
	closeFn := func() {}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		r, closeFn = zr, func() { zr.Close() }
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		r, closeFn = zr, zr.Close
	}
	return &expanded{Reader: &budgetReader{r: r, left: budget, limit: limit, what: what}, close: closeFn}, nil
}

// ErrExpansion is the cause of a layer refused for what it expands to.
var ErrExpansion = errors.New("layers expand beyond the limit")

// budgetReader counts uncompressed bytes against what all layers of one
// image may expand to: a gzip bomb costs time even where nothing is kept.
type budgetReader struct {
	r     io.Reader
	left  *int64
	limit int64
	what  string
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if *b.left <= 0 {
		return 0, fmt.Errorf("%s: %w of %d bytes", b.what, ErrExpansion, b.limit)
	}
	if int64(len(p)) > *b.left {
		p = p[:*b.left]
	}
	n, err := b.r.Read(p)
	*b.left -= int64(n)
	return n, err
}
