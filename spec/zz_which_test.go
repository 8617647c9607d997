package spec

import (
	"io/fs"
	"os"
	"path"
	"testing"
	"testing/fstest"
)

func TestWhichISC(t *testing.T) {
	root := "../testdata/oc-mirror/imageset-configs"
	fs.WalkDir(os.DirFS(root), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !isYAML(p) {
			return nil
		}
		data, _ := os.ReadFile(path.Join(root, p))
		_, err = Load(fstest.MapFS{path.Base(p): {Data: data}}, LoadOptions{})
		if err != nil {
			t.Logf("%s: %v", p, err)
		}
		return nil
	})
}
