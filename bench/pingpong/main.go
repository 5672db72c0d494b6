// Command pingpong measures this machine's floor for one process hop: the
// median round trip of a 40-byte message between two Go processes over a
// Unix socket, doing no work. The bridge makes two such hops per operation
// (application to hsmhost, hsmhost to plugin), so twice this figure is the
// least any two-process design can add here.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"
)

func main() {
	serve := flag.String("serve", "", "internal: echo on this socket")
	n := flag.Int("n", 20000, "round trips")
	flag.Parse()
	if *serve != "" {
		echo(*serve)
		return
	}
	dir, err := os.MkdirTemp("", "pingpong")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	self, _ := os.Executable()
	peer := exec.Command(self, "-serve", sock)
	if err := peer.Start(); err != nil {
		fail(err)
	}
	defer peer.Process.Kill()
	var c net.Conn
	for i := 0; i < 100; i++ {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c == nil {
		fail(err)
	}
	buf := make([]byte, 64)
	lat := make([]time.Duration, *n)
	for i := range lat {
		t := time.Now()
		if _, err := c.Write(buf[:40]); err != nil {
			fail(err)
		}
		if _, err := c.Read(buf); err != nil {
			fail(err)
		}
		lat[i] = time.Since(t)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("process hop floor: Go-to-Go Unix socket round trip p50 %.1f us, p99 %.1f us (%d round trips)\n",
		float64(lat[len(lat)/2])/1e3, float64(lat[len(lat)*99/100])/1e3, *n)
}

func echo(sock string) {
	l, err := net.Listen("unix", sock)
	if err != nil {
		fail(err)
	}
	c, err := l.Accept()
	if err != nil {
		fail(err)
	}
	buf := make([]byte, 64)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		c.Write(buf[:n])
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pingpong:", err)
	os.Exit(1)
}
