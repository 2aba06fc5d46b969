package main

import (
	"fmt"
	"os"
)

func main() {
	// The exact line is what critest's NoNewPrivs specs compare the container log with.
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
