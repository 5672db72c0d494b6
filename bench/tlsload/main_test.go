package main

import (
	"os"
	"os/exec"
	"testing"
)

func TestParseStat(t *testing.T) {
	// A command name with a space and a ')' of its own.
	line := "4242 (a b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 1000 0 0\n"
	p, ok := parseStat([]byte(line))
	if !ok || p.ppid != 17 || p.ticks != 280 {
		t.Fatalf("parseStat = %+v, %v; want ppid 17, 280 ticks", p, ok)
	}
	if _, ok := parseStat([]byte("4242 (x) S 1")); ok {
		t.Fatal("a short line parsed")
	}
}

// A -tree group finds a child started by this process, a -proc group the
// process itself, and the client group is always there.
func TestSampleGroups(t *testing.T) {
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Skip(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	self := os.Getpid()
	g := newGroups(pidFlags{{"self", self}}, pidFlags{{"kids", self}})
	if want := []string{"self", "kids", "client"}; len(g.names) != 3 || g.names[0] != want[0] || g.names[1] != want[1] || g.names[2] != want[2] {
		t.Fatalf("names %v, want %v", g.names, want)
	}
	s := g.sample()
	if s.procs["self"] != 1 || s.procs["client"] != 1 || s.procs["kids"] < 1 {
		t.Fatalf("processes counted: %v", s.procs)
	}
}
