package render

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/spec"
)

// TestSampleDestination holds Ferry to the samples operator's rewrite of
// pull specs (cluster-samples-operator pkg/stub/imagestreams.go), shapes
// taken from the real imagestreamtag-to-image lists.
func TestSampleDestination(t *testing.T) {
	const reg = "mirror.corp.example.com:5000/olm"
	for _, tc := range []struct{ image, want string }{
		{"registry.access.redhat.com/ubi9/dotnet-100-aspnet", reg + "/ubi9/dotnet-100-aspnet"},
		{"registry.redhat.io/rhscl/nodejs-12-rhel7:latest", reg + "/rhscl/nodejs-12-rhel7:latest"},
		{"quay.io/centos7/php-73-centos7@sha256:0c4a6e7e1f2c9b3b", reg + "/centos7/php-73-centos7@sha256:0c4a6e7e1f2c9b3b"},
		{"docker.io/library/mysql:8.0", reg + "/library/mysql:8.0"},
		// another host: the host is replaced
		{"ghcr.io/org/app:v1", reg + "/org/app:v1"},
		// no host, or a deeper path: the operator prefixes the whole reference
		{"openshift/ruby:2.7", reg + "/openshift/ruby:2.7"},
		{"registry.redhat.io/a/b/c:v1", reg + "/registry.redhat.io/a/b/c:v1"},
		// already under samplesRegistry: left alone
		{reg + "/ubi9/ruby-33:latest", reg + "/ubi9/ruby-33:latest"},
	} {
		if got := SampleDestination(tc.image, reg); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.image, got, tc.want)
		}
	}
}

func TestSampleImages(t *testing.T) {
	b, err := os.ReadFile("../examples/samples/imagestreamtag-to-image.json")
	if err != nil {
		t.Fatal(err)
	}
	list, err := ParseSampleImages(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) < 50 {
		t.Fatalf("%d entries read from the real ConfigMap, want many", len(list))
	}
	s := &spec.SamplesSpec{SamplesRegistry: "mirror.example.com", SkippedImagestreams: []string{"dotnet-aspnet"}}
	imgs := SampleImages(s, list)
	for _, im := range imgs {
		if im.Stream == "dotnet-aspnet" {
			t.Errorf("a skipped stream is mirrored: %+v", im)
		}
		if im.Destination != SampleDestination(im.Source, "mirror.example.com") {
			t.Errorf("%+v: destination is not the operator's", im)
		}
	}
	plain, err := ParseSampleImages([]byte("ruby_3.3: registry.access.redhat.com/ubi9/ruby-33:latest\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []SampleImage{{Stream: "ruby", Tag: "3.3", Source: "registry.access.redhat.com/ubi9/ruby-33:latest", Destination: "mirror.example.com/ubi9/ruby-33:latest"}}
	if diff := cmp.Diff(want, SampleImages(s, plain)); diff != "" {
		t.Errorf("plain mapping (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64", "linux/s390x"}, SamplePlatforms([]string{"x86_64", "aarch64", "s390x"})); diff != "" {
		t.Error(diff)
	}
}
