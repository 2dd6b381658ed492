// A command-line tool, as most Go images ship: `version` prints the version stamped in at build
// time, any other command greets. (go-scratch is the HTTP service; a second net/http program
// would only make the suite compile the standard library's network stack again.)
package main

import (
	"fmt"
	"os"
)

var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println(version)
		return
	}
	command := "run"
	if len(os.Args) > 1 {
		command = os.Args[1]
	}
	fmt.Fprintf(os.Stdout, "hello %s: %s\n", version, command)
}
