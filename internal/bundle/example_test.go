package bundle_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Render a bundle directory (an unpacked bundle image works the same) and
// add it to a catalog; adding it twice is refused.
func Example() {
	b, place, err := bundle.Render(os.DirFS("testdata/quirks"), "quay.io/example/quirks-bundle:v1.2.3", bundle.DefaultOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Name, "in", b.Package, "with", len(b.Properties), "properties, the last", b.Properties[len(b.Properties)-1].Type)

	cfg := &fbc.DeclarativeConfig{}
	if err := bundle.Add(cfg, b, place); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("default channel:", cfg.Packages[0].DefaultChannel)
	for _, c := range cfg.Channels {
		e := c.Entries[0]
		fmt.Printf("%s: %s replaces %s, skips %v, skipRange %q\n", c.Name, e.Name, e.Replaces, e.Skips, e.SkipRange)
	}

	err = bundle.Add(cfg, b, place)
	fmt.Println(errors.Is(err, bundle.ErrDuplicateName), errors.Is(err, bundle.ErrGraphConflict))
	// Output:
	// quirks.v1.2.3 in quirks with 14 properties, the last olm.csv.metadata
	// default channel: stable
	// stable: quirks.v1.2.3 replaces quirks.v1.2.2, skips [quirks.v1.2.1 quirks.v1.2.0], skipRange ">=1.0.0 <1.2.3"
	// fast: quirks.v1.2.3 replaces quirks.v1.2.2, skips [quirks.v1.2.1 quirks.v1.2.0], skipRange ">=1.0.0 <1.2.3"
	// true true
}
