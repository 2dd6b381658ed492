// Package greet stands for a third-party module kept in vendor/.
package greet

func Hello(name string) string { return "hello, " + name }
