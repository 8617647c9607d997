package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/spec"
)

// TestSamplesMirrored: the sample images are copied to where the samples
// operator will import them from; a stream whose image cannot be copied is
// added to skippedImagestreams (with why), and only copied images are in
// samples/mapping.txt.
func TestSamplesMirrored(t *testing.T) {
	src, dst := testenv.StartMemRegistry(t), testenv.StartMemRegistry(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(src.Host + "/ubi9/ruby-33:latest")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	list := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"imagestreamtag-to-image"},"data":{
  "ruby_3.3": "` + src.Host + `/ubi9/ruby-33:latest",
  "nodejs_20": "` + src.Host + `/ubi9/nodejs-20:latest",
  "jenkins_2": "` + src.Host + `/ocp/jenkins:v4"}}`
	if err := os.MkdirAll(filepath.Join(dir, "samples"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "samples/list.json"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	smp := &spec.Samples{Metadata: spec.ObjectMeta{Name: "cluster"}, Origin: &spec.Origin{File: "samples.yaml", Line: 1}, Spec: spec.SamplesSpec{
		ManagementState: spec.Managed, MirrorImages: true, ImagesFrom: "./samples/list.json",
		SamplesRegistry: dst.Host + "/samples", Architectures: []string{"x86_64"},
	}}
	rc, err := registry.New(registry.Options{AuthFile: testenv.AuthFile(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{Observer: &Observer{Registry: rc}}
	p := &Planned{Dir: dir, Config: &spec.Config{Samples: smp}, Plan: &Plan{}, Result: &Result{Files: map[string][]byte{}, Instance: "lab"}}
	if err := r.planSamples(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if n := len(p.Plan.Samples.Images); n != 2 {
		t.Fatalf("%d sample images planned, want 2 (jenkins streams are the payload's): %+v", n, p.Plan.Samples.Images)
	}
	out := &Outcome{Files: p.Result.Files}
	opts := Options{Apply: ApplyOptions{Copy: engine.DefaultOptions(nil)}}
	opts.Apply.Copy.Retry.Attempts = 1
	opts.Apply.Copy.Retry.Initial = time.Millisecond
	if err := r.copySamples(t.Context(), p, opts, out); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(mustRef(t, dst.Host+"/samples/ubi9/ruby-33:latest")); err != nil {
		t.Errorf("ruby is not where the operator will import it: %v", err)
	}
	cfg := string(out.Files[render.SamplesConfigFile])
	if !strings.Contains(cfg, "skippedImagestreams:\n  - nodejs\n") || strings.Contains(cfg, "ruby") {
		t.Errorf("samples Config:\n%s", cfg)
	}
	if why := out.Samples.Skipped["nodejs"]; !strings.Contains(why, "nodejs-20") {
		t.Errorf("the reason for skipping nodejs does not name its image: %q", why)
	}
	mapping := string(out.Files[render.SamplesMappingFile])
	if want := src.Host + "/ubi9/ruby-33:latest=" + dst.Host + "/samples/ubi9/ruby-33:latest\n"; mapping != want {
		t.Errorf("samples/mapping.txt %q, want %q", mapping, want)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
