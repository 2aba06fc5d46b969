// Command skiff is one binary for the whole node stack: `skiff up` runs everything on one
// node, `skiff server`, `skiff agent` and `skiff cri` run the parts separately.
package main

import (
	"os"

	"github.com/skiff-sh/skiff/cmd/skiff/app"
)

func main() {
	if err := app.NewRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
