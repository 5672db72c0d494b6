package sdk

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// ProfileFromEnv writes a CPU profile of this process when the environment
// asks for one, for the benchmarks' flame graphs (bench/profile.sh): with
// HSMBRIDGE_CPUPROFILE set to a directory, the first
// HSMBRIDGE_CPUPROFILE_SECONDS (default 10) after the call go to
// <directory>/<name>.<pid>.pprof. hsmhost passes both variables to its
// plugins. Any failure is printed on stderr and ignored.
func ProfileFromEnv(name string) {
	dir := os.Getenv("HSMBRIDGE_CPUPROFILE")
	if dir == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("HSMBRIDGE_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 10
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s.%d.pprof", name, os.Getpid())))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpu profile:", err)
		return
	}
	time.AfterFunc(time.Duration(secs)*time.Second, func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}
