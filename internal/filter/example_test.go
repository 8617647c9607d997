package filter_test

import (
	"fmt"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/filter"
	"github.com/ferry-gitops/ferry/spec"
)

// A range keeps what the upgrade graph connects inside it; the top of the
// range becomes the channel head, and a bundle that only skipRange connects
// is dropped with a warning rather than left stranded for opm to reject.
func ExampleFilter() {
	catalog := `
{"schema": "olm.package", "name": "demo", "defaultChannel": "stable"}
{"schema": "olm.channel", "package": "demo", "name": "stable", "entries": [
  {"name": "demo.v1.0.0"},
  {"name": "demo.v1.1.0", "replaces": "demo.v1.0.0"},
  {"name": "demo.v1.2.0", "skipRange": ">=1.0.0 <1.2.0"},
  {"name": "demo.v2.0.0", "replaces": "demo.v1.1.0", "skips": ["demo.v1.2.0"]}
]}
{"schema": "olm.bundle", "package": "demo", "name": "demo.v1.0.0", "image": "example.com/demo:1.0.0",
 "properties": [{"type": "olm.package", "value": {"packageName": "demo", "version": "1.0.0"}}]}
{"schema": "olm.bundle", "package": "demo", "name": "demo.v1.1.0", "image": "example.com/demo:1.1.0",
 "properties": [{"type": "olm.package", "value": {"packageName": "demo", "version": "1.1.0"}}]}
{"schema": "olm.bundle", "package": "demo", "name": "demo.v1.2.0", "image": "example.com/demo:1.2.0",
 "properties": [{"type": "olm.package", "value": {"packageName": "demo", "version": "1.2.0"}}]}
{"schema": "olm.bundle", "package": "demo", "name": "demo.v2.0.0", "image": "example.com/demo:2.0.0",
 "properties": [{"type": "olm.package", "value": {"packageName": "demo", "version": "2.0.0"}}]}
`
	cfg, err := fbc.LoadReader(strings.NewReader(catalog))
	if err != nil {
		panic(err)
	}
	_, report, err := filter.Filter(cfg, spec.CatalogSpec{Packages: []spec.Package{
		{Name: "demo", Channels: []spec.Channel{{Name: "stable", MinVersion: "1.1.0", MaxVersion: "1.2.0"}}},
	}})
	if err != nil {
		panic(err)
	}
	for _, p := range report.Packages {
		for _, c := range p.Channels {
			fmt.Printf("%s/%s: head %s, bundles %v\n", p.Name, c.Name, c.Head, c.Bundles)
		}
	}
	for _, w := range report.Warnings {
		fmt.Println(w.Kind, w.Bundle)
	}

	// A range that matches nothing is an error naming package and channel.
	_, _, err = filter.Filter(cfg, spec.CatalogSpec{Packages: []spec.Package{
		{Name: "demo", Channels: []spec.Channel{{Name: "stable", MinVersion: "9.0.0"}}},
	}})
	fmt.Println(err)
	// Output:
	// demo/stable: head demo.v1.2.0, bundles [demo.v1.2.0]
	// Stranded demo.v1.1.0
	// filter catalog: package "demo" channel "stable": no bundle of the channel is in range >=9.0.0
}
