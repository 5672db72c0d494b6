// Command tlsload is the load client and the report of `make bench-tls`
// (scripts/bench-tls.sh): full TLS handshakes against nginx with a key file
// beside the same with an hsmbridge key.
//
//	tlsload run -addr 127.0.0.1:8443 -cert hsm-p256.crt -tls 1.3 -c 8 -s 5 \
//	    -expect "ok hsm-p256" -proc nginx=1234 -tree nginx=1234 -proc hsmhost=1240 -tree plugin=1240
//	tlsload report results.txt
//	tlsload ports 4
//
// # run
//
// -c goroutines each loop: dial, full handshake at exactly the -tls version,
// one GET, read the response to the end, close. Nothing is ever resumed: the
// client has no session cache and sends no ticket extension, and every
// connection is checked for DidResume. The server's certificate must be the
// -cert file byte for byte (a pin instead of chain verification, which is
// cheaper on the client); crypto/tls checks the server's handshake signature
// with that certificate's key either way, so a completed handshake proves the
// server signed with the key that matches the certificate. The response must
// be a 200 whose body starts with -expect. Any failure is counted and the
// first few are printed; the load goes on.
//
// The first -warmup of load is not counted (each forked nginx worker opens
// its own connection to hsmhost on its first signature). Then, for -s
// seconds, completed connections are counted and the CPU time (utime+stime
// from /proc/<pid>/stat, all threads of a process) of every named process
// is read at the start and at the end of that window: -proc NAME=PID counts
// that process, -tree NAME=PID every descendant of PID (found at both ends
// of the window; a process that exits inside the window loses its share, a
// new one counts from its start), and the client's own process is always
// the group "client". Several flags may name the same group; they add up.
// The machine's own counters (/proc/stat: busy, softirq, steal, idle) are
// read over the same window, so that CPU charged to no process and other
// work on the machine show up beside the groups.
//
// The key exchange is -kex (X25519 by default, one key share); -cpuprofile
// writes the client's profile of the window.
//
// It prints one line of key=value fields on stdout (for report; -label is
// put in front, e.g. "kind=hsm alg=P-256 run=1") and a short line for a
// person on stderr. It exits 1 if any connection failed.
//
// # report
//
// Reads those lines and prints the medians over runs of each (alg, tls,
// kind): handshakes/s, the ratio hsm/file beside the alg's target, and CPU
// microseconds per handshake of each group, with the machine's CPU split
// into what those groups used, softirq, other work, steal and idle. It
// warns when other work overlapped the runs. It exits 1 if any connection in
// any run failed, and with -strict also if a target was missed.
//
// # ports
//
// Prints N TCP ports on 127.0.0.1 that were free a moment ago.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "run":
		runCmd(os.Args[2:])
	case "report":
		reportCmd(os.Args[2:])
	case "ports":
		portsCmd(os.Args[2:])
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tlsload run [flags] | tlsload report [-strict] FILE | tlsload ports N")
	os.Exit(2)
}

// pidFlags collects repeated NAME=PID flags.
type pidFlags []struct {
	name string
	pid  int
}

func (p *pidFlags) String() string { return fmt.Sprint(*p) }

func (p *pidFlags) Set(s string) error {
	name, v, ok := strings.Cut(s, "=")
	pid, err := strconv.Atoi(v)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want NAME=PID, got %q", s)
	}
	*p = append(*p, struct {
		name string
		pid  int
	}{name, pid})
	return nil
}

func runCmd(args []string) {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	addr := fs.String("addr", "", "host:port of the TLS server")
	certFile := fs.String("cert", "", "PEM certificate the server must present")
	serverName := fs.String("servername", "localhost", "SNI name")
	version := fs.String("tls", "1.3", "TLS version: 1.2 or 1.3")
	conns := fs.Int("c", 8, "concurrent connections")
	seconds := fs.Float64("s", 5, "seconds measured")
	warmup := fs.Duration("warmup", time.Second, "load before the measured window")
	expect := fs.String("expect", "", "prefix the response body must have")
	label := fs.String("label", "", "key=value fields put in front of the output line")
	hz := fs.Int("hz", 100, "clock ticks per second of /proc/<pid>/stat (getconf CLK_TCK)")
	kex := fs.String("kex", "X25519", "key exchange offered: X25519 or P-256")
	cpuProfile := fs.String("cpuprofile", "", "write the client's CPU profile of the measured window to this file")
	var procs, trees pidFlags
	fs.Var(&procs, "proc", "NAME=PID: count that process's CPU in group NAME (repeatable)")
	fs.Var(&trees, "tree", "NAME=PID: count the CPU of every descendant of PID in group NAME (repeatable)")
	fs.Parse(args)

	var want uint16
	switch *version {
	case "1.2":
		want = tls.VersionTLS12
	case "1.3":
		want = tls.VersionTLS13
	default:
		fail(fmt.Errorf("-tls %q: want 1.2 or 1.3", *version))
	}
	var curves []tls.CurveID
	switch *kex {
	case "X25519":
		curves = []tls.CurveID{tls.X25519, tls.CurveP256}
	case "P-256":
		curves = []tls.CurveID{tls.CurveP256}
	default:
		fail(fmt.Errorf("-kex %q: want X25519 or P-256", *kex))
	}
	pemBytes, err := os.ReadFile(*certFile)
	if err != nil {
		fail(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "CERTIFICATE" {
		fail(fmt.Errorf("%s: no certificate", *certFile))
	}
	pinned := block.Bytes
	conf := &tls.Config{
		ServerName: *serverName,
		MinVersion: want,
		MaxVersion: want,
		// The pin in VerifyConnection replaces chain verification; the
		// handshake signature is verified by crypto/tls regardless.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, pinned) {
				return errors.New("server certificate is not the pinned one")
			}
			return nil
		},
		// No resumption: no cache (nil), no ticket extension.
		SessionTicketsDisabled: true,
		// The -kex key exchange in every row, one key share (Go would also
		// send X25519MLKEM768, which OpenSSL 3.0 does not know). P-256 is
		// always listed: a TLS 1.2 server uses an ECDSA certificate only on
		// a curve the client names.
		CurvePreferences: curves,
	}
	req := []byte("GET / HTTP/1.1\r\nHost: " + *serverName + "\r\nConnection: close\r\n\r\n")

	var (
		measuring  atomic.Bool
		stop       atomic.Bool
		done       atomic.Int64
		failed     atomic.Int64
		mu         sync.Mutex
		firstErrs  []string
		negotiated string
		noteOnce   sync.Once
		wg         sync.WaitGroup
	)
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				cs, err := once(*addr, conf, want, req, *expect)
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, err.Error())
					}
					mu.Unlock()
					time.Sleep(10 * time.Millisecond) // no spinning on a refused port
					continue
				}
				if measuring.Load() {
					done.Add(1)
				}
				noteOnce.Do(func() {
					mu.Lock()
					negotiated = fmt.Sprintf("suite=%s kex=%s", tls.CipherSuiteName(cs.CipherSuite), cs.CurveID)
					mu.Unlock()
				})
			}
		}()
	}

	time.Sleep(*warmup)
	groups := newGroups(procs, trees)
	before, mBefore := groups.sample(), readMachine()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
	}
	t0 := time.Now()
	measuring.Store(true)
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	measuring.Store(false)
	n := done.Load()
	wall := time.Since(t0)
	after, mAfter := groups.sample(), readMachine()
	pprof.StopCPUProfile()
	stop.Store(true)
	wg.Wait()

	rate := float64(n) / wall.Seconds()
	mu.Lock()
	defer mu.Unlock()
	var line strings.Builder
	if *label != "" {
		line.WriteString(*label + " ")
	}
	fmt.Fprintf(&line, "tls=%s handshakes=%d seconds=%.3f rate=%.1f errors=%d gomaxprocs=%d %s",
		*version, n, wall.Seconds(), rate, failed.Load(), runtime.GOMAXPROCS(0), negotiated)
	var human []string
	for _, name := range groups.names {
		us := float64(after.ticks[name]-before.ticks[name]) * 1e6 / float64(*hz)
		fmt.Fprintf(&line, " cpu.%s=%.0f procs.%s=%d", name, us, name, after.procs[name])
		if after.procs[name] != before.procs[name] {
			fmt.Fprintf(&line, " procs_before.%s=%d", name, before.procs[name])
		}
		if n > 0 {
			human = append(human, fmt.Sprintf("%s %.0f", name, us/float64(n)))
		}
	}
	// The whole machine over the same window, from /proc/stat: busy time
	// includes what no process is charged with (softirq work such as
	// loopback TCP, other processes on the machine), steal a hypervisor's.
	tick := 1e6 / float64(*hz)
	fmt.Fprintf(&line, " machine.busy=%.0f machine.softirq=%.0f machine.steal=%.0f machine.idle=%.0f",
		float64(mAfter.busy-mBefore.busy)*tick, float64(mAfter.softirq-mBefore.softirq)*tick,
		float64(mAfter.steal-mBefore.steal)*tick, float64(mAfter.idle-mBefore.idle)*tick)
	fmt.Println(line.String())
	fmt.Fprintf(os.Stderr, "%s tls=%s: %.0f handshakes/s, %d errors; CPU us/handshake: %s; machine busy %.2f CPUs, steal %.2f\n",
		*label, *version, rate, failed.Load(), strings.Join(human, ", "),
		float64(mAfter.busy-mBefore.busy)/float64(*hz)/wall.Seconds(), float64(mAfter.steal-mBefore.steal)/float64(*hz)/wall.Seconds())
	for _, e := range firstErrs {
		fmt.Fprintln(os.Stderr, "  error:", e)
	}
	if failed.Load() > 0 || n == 0 {
		os.Exit(1)
	}
}

// once makes one connection: handshake, GET, response, close.
func once(addr string, conf *tls.Config, want uint16, req []byte, expect string) (tls.ConnectionState, error) {
	deadline := time.Now().Add(10 * time.Second)
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer raw.Close()
	raw.SetDeadline(deadline)
	c := tls.Client(raw, conf)
	if err := c.Handshake(); err != nil {
		return tls.ConnectionState{}, fmt.Errorf("handshake: %w", err)
	}
	cs := c.ConnectionState()
	if cs.Version != want {
		return cs, fmt.Errorf("negotiated %s, want %s", tls.VersionName(cs.Version), tls.VersionName(want))
	}
	if cs.DidResume {
		return cs, errors.New("the session was resumed")
	}
	if _, err := c.Write(req); err != nil {
		return cs, fmt.Errorf("write request: %w", err)
	}
	resp, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if err != nil {
		return cs, fmt.Errorf("read response: %w", err)
	}
	head, body, _ := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) {
		status, _, _ := bytes.Cut(head, []byte("\r\n"))
		return cs, fmt.Errorf("response %q", status)
	}
	if !bytes.HasPrefix(body, []byte(expect)) {
		return cs, fmt.Errorf("body %q does not start with %q", body, expect)
	}
	return cs, c.Close()
}

// groups names processes whose CPU time is summed per group name.
type groups struct {
	names []string
	procs pidFlags
	trees pidFlags
}

type sample struct {
	ticks map[string]int64
	procs map[string]int
}

func newGroups(procs, trees pidFlags) *groups {
	g := &groups{trees: trees}
	g.procs = append(slices.Clone(procs), struct {
		name string
		pid  int
	}{"client", os.Getpid()})
	// Names in the order given, the client last.
	for _, p := range append(append(slices.Clone(procs), trees...), g.procs[len(g.procs)-1]) {
		if !slices.Contains(g.names, p.name) {
			g.names = append(g.names, p.name)
		}
	}
	return g
}

// sample reads utime+stime of every process of every group. The process
// table is read once, for -tree.
func (g *groups) sample() sample {
	s := sample{ticks: map[string]int64{}, procs: map[string]int{}}
	table := readProcs()
	children := map[int][]int{}
	for pid, p := range table {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	seen := map[string]map[int]bool{}
	add := func(name string, pid int) {
		p, ok := table[pid]
		if !ok {
			return
		}
		if seen[name] == nil {
			seen[name] = map[int]bool{}
		}
		if seen[name][pid] {
			return
		}
		seen[name][pid] = true
		s.ticks[name] += p.ticks
		s.procs[name]++
	}
	for _, p := range g.procs {
		add(p.name, p.pid)
	}
	for _, t := range g.trees {
		queue := slices.Clone(children[t.pid])
		for len(queue) > 0 {
			pid := queue[0]
			queue = append(queue[1:], children[pid]...)
			add(t.name, pid)
		}
	}
	return s
}

type procStat struct {
	ppid  int
	ticks int64
}

func readProcs() map[int]procStat {
	table := map[int]procStat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readStat(pid); ok {
			table[pid] = p
		}
	}
	return table
}

// readStat parses /proc/<pid>/stat: the command name is in parentheses and
// may hold spaces, so fields are counted from the last ')'.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, false
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return procStat{ppid: ppid, ticks: ut + st}, true
}

// machine is the first line of /proc/stat, in clock ticks.
type machine struct{ busy, softirq, steal, idle int64 }

func readMachine() machine {
	var m machine
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	// cpu user nice system idle iowait irq softirq steal guest guest_nice
	if len(f) < 9 || f[0] != "cpu" {
		return m
	}
	v := make([]int64, 9)
	for i := 1; i < 9; i++ {
		v[i], _ = strconv.ParseInt(f[i], 10, 64)
	}
	m.busy = v[1] + v[2] + v[3] + v[6] + v[7]
	m.idle = v[4] + v[5]
	m.softirq = v[7]
	m.steal = v[8]
	return m
}

func portsCmd(args []string) {
	n := 1
	if len(args) > 0 {
		var err error
		if n, err = strconv.Atoi(args[0]); err != nil || n < 1 {
			usage()
		}
	}
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fail(err)
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
}

func reportCmd(args []string) {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	strict := fs.Bool("strict", false, "exit 1 if a target is missed")
	targetList := fs.String("targets", "RSA-2048=0.85,P-256=0.90", "ALG=RATIO,...: hsm handshakes/s must be at least RATIO x the file key's")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	targets := map[string]float64{}
	for _, t := range strings.Split(*targetList, ",") {
		alg, v, _ := strings.Cut(t, "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			fail(fmt.Errorf("-targets %q: want ALG=RATIO,...", *targetList))
		}
		targets[alg] = f
	}
	rows, err := readRows(fs.Arg(0))
	if err != nil {
		fail(err)
	}

	// Algorithms, versions and groups in the order first seen.
	var algs, versions, groupNames, notes []string
	runs, errs := 0, 0.0
	for _, r := range rows {
		for _, x := range []struct {
			list *[]string
			v    string
		}{{&algs, r.get("alg")}, {&versions, r.get("tls")}} {
			if !slices.Contains(*x.list, x.v) {
				*x.list = append(*x.list, x.v)
			}
		}
		for _, k := range r.keys {
			if name, ok := strings.CutPrefix(k, "cpu."); ok && !slices.Contains(groupNames, name) {
				groupNames = append(groupNames, name)
			}
			if name, ok := strings.CutPrefix(k, "procs_before."); ok {
				notes = append(notes, fmt.Sprintf("%s's processes changed during run %s of %s %s TLS %s (%s -> %s): its CPU there is approximate",
					name, r.get("run"), r.get("kind"), r.get("alg"), r.get("tls"), r.get(k), r.get("procs."+name)))
			}
		}
		if n, _ := strconv.Atoi(r.get("run")); n > runs {
			runs = n
		}
		errs += r.num("errors")
	}

	// cell returns the median over runs of f for one (alg, tls, kind) and
	// the spread of the runs, (max-min)/median.
	cell := func(alg, v, kind string, f func(row) float64) (float64, float64) {
		var xs []float64
		for _, r := range rows {
			if r.get("alg") == alg && r.get("tls") == v && r.get("kind") == kind {
				if x := f(r); !math.IsNaN(x) && !math.IsInf(x, 0) {
					xs = append(xs, x)
				}
			}
		}
		if len(xs) == 0 {
			return math.NaN(), math.NaN()
		}
		slices.Sort(xs)
		m := xs[len(xs)/2]
		if len(xs)%2 == 0 {
			m = (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
		}
		return m, (xs[len(xs)-1] - xs[0]) / m
	}
	rate := func(r row) float64 { return r.num("rate") }
	perHS := func(g string) func(row) float64 {
		return func(r row) float64 { return r.num("cpu."+g) / r.num("handshakes") }
	}
	server := func(r row) float64 {
		s := 0.0
		for _, g := range groupNames {
			if g != "client" {
				s += perHS(g)(r)
			}
		}
		return s
	}
	total := func(r row) float64 { return server(r) + perHS("client")(r) }
	// CPUs in use: CPU time over wall time.
	cpus := func(key string) func(row) float64 {
		return func(r row) float64 { return r.num(key) / 1e6 / r.num("seconds") }
	}
	counted := func(r row) float64 {
		s := 0.0
		for _, g := range groupNames {
			s += cpus("cpu." + g)(r)
		}
		return s
	}
	// Softirq time is charged to no process (loopback TCP is mostly
	// there); whatever else is busy is other work on the machine.
	softirq := cpus("machine.softirq")
	// Clock ticks make it a little negative at times.
	other := func(r row) float64 { return max(0, cpus("machine.busy")(r)-softirq(r)-counted(r)) }
	kindName := map[string]string{"file": "file", "hsm": "hsmbridge"}

	fmt.Printf("Full TLS handshakes/s, median of %d runs (spread: (max-min)/median over the runs)\n", runs)
	fmt.Printf("%-9s %-4s %10s %6s %15s %6s %7s %7s %7s  %s\n", "alg", "TLS", "file hs/s", "spread", "hsmbridge hs/s",
		"spread", "ratio", "target", "", "CPU ratio")
	var missed []string
	for _, alg := range algs {
		for _, v := range versions {
			fr, fsp := cell(alg, v, "file", rate)
			hr, hsp := cell(alg, v, "hsm", rate)
			ratio := hr / fr
			tcol, verdict := "", ""
			if target, ok := targets[alg]; ok {
				tcol, verdict = fmt.Sprintf(">=%.2fx", target), "met"
				if !(ratio >= target) {
					verdict = "MISSED"
					missed = append(missed, fmt.Sprintf("%s TLS %s (%sx, want >= %.2fx)", alg, v, show(ratio, "%.2f"), target))
				}
			}
			ft, _ := cell(alg, v, "file", total)
			ht, _ := cell(alg, v, "hsm", total)
			fmt.Printf("%-9s %-4s %10s %5s%% %15s %5s%% %6sx %7s %-7s %8sx\n", alg, v, show(fr, "%.0f"), show(100*fsp, "%.0f"),
				show(hr, "%.0f"), show(100*hsp, "%.0f"), show(ratio, "%.2f"), tcol, verdict, show(ft/ht, "%.2f"))
		}
	}
	fmt.Println("CPU ratio: file / hsmbridge CPU per handshake of all processes counted (client included), the")
	fmt.Println("  ratio of rates when both get the same CPU: a saturated machine with no other work on it.")
	if len(missed) == 0 {
		fmt.Println("all targets met")
	} else {
		fmt.Println("targets missed: " + strings.Join(missed, "; "))
	}

	first := rows[0]
	var counts []string
	for _, g := range groupNames {
		counts = append(counts, g+" "+first.get("procs."+g))
	}
	fmt.Println()
	fmt.Printf("CPU microseconds per handshake, each a median of the runs (processes: %s)\n", strings.Join(counts, ", "))
	fmt.Printf("%-9s %-4s %-9s", "alg", "TLS", "key")
	for _, g := range groupNames {
		fmt.Printf(" %8s", g)
	}
	fmt.Printf(" %7s %7s %8s | %s\n", "server", "total", "server x", "CPUs: counted softirq other steal idle client")
	procs, _ := strconv.ParseFloat(first.get("gomaxprocs"), 64)
	var clientBound []string
	for _, alg := range algs {
		for _, v := range versions {
			fileServer, _ := cell(alg, v, "file", server)
			for _, kind := range []string{"file", "hsm"} {
				fmt.Printf("%-9s %-4s %-9s", alg, v, kindName[kind])
				for _, g := range groupNames {
					m, _ := cell(alg, v, kind, perHS(g))
					fmt.Printf(" %8s", show(m, "%.0f"))
				}
				s, _ := cell(alg, v, kind, server)
				t, _ := cell(alg, v, kind, total)
				c, _ := cell(alg, v, kind, counted)
				si, _ := cell(alg, v, kind, softirq)
				o, _ := cell(alg, v, kind, other)
				st, _ := cell(alg, v, kind, cpus("machine.steal"))
				id, _ := cell(alg, v, kind, cpus("machine.idle"))
				cl, _ := cell(alg, v, kind, cpus("cpu.client"))
				fmt.Printf(" %7s %7s %7sx | %13s %7s %5s %5s %4s %6s\n", show(s, "%.0f"), show(t, "%.0f"), show(s/fileServer, "%.2f"),
					show(c, "%.2f"), show(si, "%.2f"), show(o, "%.2f"), show(st, "%.2f"), show(id, "%.2f"), show(cl, "%.2f"))
				if cl >= 0.9*procs {
					clientBound = append(clientBound, fmt.Sprintf("%s %s TLS %s", kindName[kind], alg, v))
				}
			}
		}
	}
	var shares []float64
	for _, r := range rows {
		if x := perHS("client")(r) / total(r); !math.IsNaN(x) {
			shares = append(shares, x)
		}
	}
	slices.Sort(shares)
	fmt.Println("server: every group but the client. server x: server CPU per handshake relative to the file key's,")
	fmt.Println("  what the ratio tends to where the server side alone is CPU-bound (e.g. the client on its own machine).")
	fmt.Printf("CPUs (CPU time / wall time; this machine has %d): counted = the processes above; softirq = kernel work\n", runtime.NumCPU())
	fmt.Println("  charged to no process (loopback TCP); other = the rest of /proc/stat's busy time, i.e. other work on")
	fmt.Println("  this machine (noise: it takes CPU from the rows it overlaps); steal = taken by the hypervisor; idle with")
	fmt.Println("  no other work = the load was latency-bound (an nginx worker waits, blocked, for each remote signature).")
	fmt.Printf("The load client is Go crypto/tls (GOMAXPROCS=%s, %s): each handshake costs it one key exchange (%s)\n",
		first.get("gomaxprocs"), first.get("suite"), first.get("kex"))
	if len(shares) > 0 {
		fmt.Printf("  and a signature check, %.0f%%-%.0f%% of the CPU time counted. On a small machine its share is\n",
			100*shares[0], 100*shares[len(shares)-1])
		fmt.Println("  taken from nginx, which pulls the ratio toward 1, most for P-256 where nginx's own work is small.")
	}
	if len(clientBound) > 0 {
		fmt.Printf("client-bound (the client busy >= 90%% of its GOMAXPROCS, so it set the pace): %s\n",
			strings.Join(clientBound, "; "))
	}
	worst := 0.0
	for _, r := range rows {
		worst = max(worst, other(r))
	}
	if worst > 0.2 {
		fmt.Printf("warning: other work on this machine used up to %.2f CPUs during these runs (column other): the\n", worst)
		fmt.Println("  handshake rates are noisy (see spread); the CPU per handshake figures are less affected.")
	}
	for _, n := range notes {
		fmt.Println("note:", n)
	}
	if errs > 0 {
		fmt.Printf("FAILED: %.0f connections failed (the error lines above)\n", errs)
		os.Exit(1)
	}
	fmt.Println("every connection succeeded")
	if *strict && len(missed) > 0 {
		os.Exit(1)
	}
}

// show formats x, or "-" when there is no figure.
func show(x float64, format string) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

// row is one output line of run; keys keeps the fields' order.
type row struct {
	m    map[string]string
	keys []string
}

func (r row) get(k string) string { return r.m[k] }

func (r row) num(k string) float64 {
	v, err := strconv.ParseFloat(r.m[k], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// readRows reads run's output lines that have kind, alg and tls.
func readRows(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r := row{m: map[string]string{}}
		for _, kv := range strings.Fields(sc.Text()) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				r.m[k] = v
				r.keys = append(r.keys, k)
			}
		}
		if r.get("alg") != "" && r.get("tls") != "" && r.get("kind") != "" {
			rows = append(rows, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no results", path)
	}
	return rows, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tlsload:", err)
	os.Exit(1)
}
