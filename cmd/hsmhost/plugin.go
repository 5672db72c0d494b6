package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmbridge/hsmbridge/core"
	"github.com/hsmbridge/hsmbridge/internal/config"
	"github.com/hsmbridge/hsmbridge/internal/pluginhost"
	"github.com/hsmbridge/hsmbridge/plugins/sdk"
	"github.com/hsmbridge/hsmbridge/plugins/simulator"
)

// pluginCommand runs `hsmhost plugin list|verify`, and the built-in plugins:
// hsmhost launches itself as `hsmhost plugin simulator` for "builtin:"
// backends, so one binary carries the simulator.
func pluginCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("usage: hsmhost plugin list [--config FILE] | hsmhost plugin verify FILE")
	}
	switch args[0] {
	case "list":
		return pluginList(args[1:], stdout, stderr)
	case "verify":
		return pluginVerify(args[1:], stdout, stderr)
	case "simulator":
		if len(args) != 1 {
			return usagef("usage: hsmhost plugin simulator (started by hsmhost serve, not by hand)")
		}
		sdk.Serve(simulator.NewDefault(), sdk.WithName(simulator.Name), sdk.WithVersion(simulator.Version))
		return nil
	}
	return usagef("unknown plugin command %q (list, verify)", args[0])
}

// pluginVerify prints the SHA-256 to pin a plugin binary with and what it
// declares, having started it as serve would but configured and routed
// nothing to it.
func pluginVerify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plugin verify", stderr, "hsmhost plugin verify FILE")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("plugin verify needs one plugin binary")
	}
	path, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return fmt.Errorf("plugin verify: %w", err)
	}
	fmt.Fprintf(stdout, "plugin:     %s\nsha256:     %s\n", path, sum)
	// Pinned to the sum just read, so the binary started is the one hashed.
	p, err := pluginhost.Probe(pluginhost.Spec{Name: filepath.Base(path), Command: path, SHA256: sum, Logger: probeLogger(stderr)})
	if err != nil {
		return fmt.Errorf("plugin verify: %s is not a usable hsmbridge backend plugin: %w", path, err)
	}
	printDeclared(stdout, "", p)
	fmt.Fprintf(stdout, "pin it in hsmhost.hcl, in its backend block:\n  plugin = %q\n  sha256 = %q\n", path, sum)
	return nil
}

// pluginList shows each configured backend's plugin: its pinned checksum
// and whether the binary on disk matches it, the protocol version and the
// operations it declares (a plugin whose binary does not match is not run).
func pluginList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plugin list", stderr, "hsmhost plugin list [--config FILE]")
	configFlag := fs.String("config", "", "configuration file (default $HSMBRIDGE_CONFIG, else "+config.DefaultPath+" if present, else the built-in default)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("plugin list takes no arguments")
	}
	cfg, path, err := config.Find(*configFlag)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if path == "" {
		path = "the built-in default"
	}
	fmt.Fprintf(stdout, "configuration: %s\n", path)
	failed := 0
	for _, b := range cfg.Backends {
		fmt.Fprintf(stdout, "\nbackend %q (%s)\n", b.Name, b.Where)
		spec := backendSpec(b, exe, probeLogger(stderr))
		fmt.Fprintf(stdout, "  plugin:     %s\n", b.Plugin)
		if _, builtin := b.Builtin(); builtin {
			fmt.Fprintf(stdout, "  sha256:     built into hsmhost (%s)\n", spec.Command)
		} else {
			sum, err := fileSHA256(spec.Command)
			switch {
			case err != nil:
				fmt.Fprintf(stdout, "  sha256:     %v\n", err)
				failed++
				continue
			case b.SHA256 == "":
				fmt.Fprintf(stdout, "  sha256:     not pinned; the binary's is %s\n", sum)
			case strings.EqualFold(b.SHA256, sum):
				fmt.Fprintf(stdout, "  sha256:     pinned %s, the binary matches\n", b.SHA256)
			default:
				fmt.Fprintf(stdout, "  sha256:     pinned %s, the binary DOES NOT MATCH (it is %s); serve refuses it, not run\n", b.SHA256, sum)
				failed++
				continue
			}
		}
		p, err := pluginhost.Probe(spec)
		if err != nil {
			fmt.Fprintf(stdout, "  error:      %v\n", err)
			failed++
			continue
		}
		printDeclared(stdout, "  ", p)
	}
	if failed > 0 {
		return fmt.Errorf("plugin list: %d plugin(s) cannot be used as configured", failed)
	}
	return nil
}

func printDeclared(w io.Writer, indent string, p pluginhost.Probed) {
	d := p.Description
	ops := make([]string, len(d.Operations))
	for i, op := range d.Operations {
		ops[i] = string(op)
	}
	fmt.Fprintf(w, "%sprotocol:   %d\n%sdeclares:   %s %s\n%soperations: %s\n", indent, p.Protocol, indent, d.Name, d.Version, indent, strings.Join(ops, ", "))
	// Schemes may depend on the settings (a PKCS#11 token's mechanisms):
	// what an unconfigured plugin declares may be fewer than serve sees.
	if d.Supports(core.OpSign) {
		fmt.Fprintf(w, "%ssignature schemes (before Configure): %s\n", indent, orNone(d.SignatureSchemes))
	}
	if d.Supports(core.OpDecrypt) {
		fmt.Fprintf(w, "%sencryption schemes (before Configure): %s\n", indent, orNone(d.EncryptionSchemes))
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none declared yet (they follow the settings)"
	}
	return strings.Join(s, ", ")
}

func fileSHA256(path string) (string, error) {
	// Non-blocking, so that a FIFO in the binary's place fails here
	// rather than hanging the command.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// probeLogger shows a probed plugin's own warnings and errors.
func probeLogger(stderr io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Warn, Output: stderr})
}
