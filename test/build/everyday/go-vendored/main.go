package main

import (
	"fmt"

	"example.com/greet"
)

func main() { fmt.Println(greet.Hello("vendored world")) }
