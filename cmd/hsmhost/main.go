// Command hsmhost is hsmbridge's host daemon and its command-line tool.
//
//	hsmhost serve [--config FILE] [--log-level L] [--log-format text|json] [--socket P]
//	hsmhost key create|import|list|show|pubkey|delete|ref ...
//	hsmhost plugin list|verify ...
//	hsmhost plugin simulator      (internal: the built-in simulator plugin)
//	hsmhost version
//
// `serve` runs in the foreground: it starts the configured backend plugins,
// listens on the Unix socket the OpenSSL provider connects to, reloads the
// configuration on SIGHUP and stops cleanly on SIGTERM or SIGINT. The `key`
// commands are clients of a running `serve`, in the manner of
// `az keyvault key ...`.
//
// Exit status: 0 success, 1 the operation failed (the message on stderr
// names the key reference), 2 the command line is wrong.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func hostVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// usageError marks a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

const topUsage = `usage: hsmhost <command> [arguments]

commands:
  serve [--config FILE] [--log-level LEVEL] [--log-format text|json] [--socket PATH]
        run the host in the foreground (SIGHUP reloads the config)
  key create REF [--kty RSA|EC|oct] [--size N] [--curve P-256|P-256K|P-384|P-521] [--ops sign,verify,...]
  key import REF --in KEYFILE [--ops ...]
  key list [PREFIX]
  key show REF
  key pubkey REF
  key delete REF
  key ref REF [--offline] [--out FILE] [--pkcs8=false]
        key commands talk to a running hsmhost; all take [--socket PATH]
  plugin list [--config FILE]
        each configured plugin: pinned sha256 and whether the binary matches, what it declares
  plugin verify FILE
        the sha256 to pin a plugin with and what it declares; nothing is routed to it
  doctor [NAMESPACE ...]
        check credentials, reachability and every key of each namespace
  version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "key":
		err = keyCommand(args[1:], stdout, stderr)
	case "doctor":
		err = doctorCommand(args[1:], stdout, stderr)
	case "plugin":
		err = pluginCommand(args[1:], stdout, stderr)
	case "manpage":
		err = manpageCommand(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "hsmhost %s\n", hostVersion())
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, topUsage)
	default:
		err = usagef("unknown command %q", args[0])
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "hsmhost: %s\n\n%s", ue.msg, topUsage)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "hsmhost: %s\n", err)
		return exitFail
	}
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments (Go's flag package stops at the first positional one), so
// `hsmhost key create REF --kty EC` works. "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, usagef("%s", err)
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	if flagSetMade != nil { // manpage.go reads the flags
		flagSetMade(fs)
	}
	return fs
}
