package pluginhost

import (
	"slices"

	"github.com/hashicorp/go-hclog"
)

// relayed is the logger go-plugin relays a plugin's log lines through (and
// logs its own lines with). A plugin writes JSON lines that carry its own
// "@module"; go-plugin passes every field of such a line on as an argument,
// and in hsmhost's JSON format an "@module" argument would replace the
// module that names the backend (hsmhost.backend.<name>.<binary>), so two
// backends of one plugin could not be told apart. It is passed on as
// "plugin_module" instead; everything else goes through as it is.
type relayed struct{ hclog.Logger }

func fixModule(args []any) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "@module" {
			args = slices.Clone(args)
			args[i] = "plugin_module"
			return args
		}
	}
	return args
}

func (l relayed) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, fixModule(args)...)
}
func (l relayed) Trace(msg string, args ...any) { l.Logger.Trace(msg, fixModule(args)...) }
func (l relayed) Debug(msg string, args ...any) { l.Logger.Debug(msg, fixModule(args)...) }
func (l relayed) Info(msg string, args ...any)  { l.Logger.Info(msg, fixModule(args)...) }
func (l relayed) Warn(msg string, args ...any)  { l.Logger.Warn(msg, fixModule(args)...) }
func (l relayed) Error(msg string, args ...any) { l.Logger.Error(msg, fixModule(args)...) }

func (l relayed) Named(name string) hclog.Logger      { return relayed{l.Logger.Named(name)} }
func (l relayed) ResetNamed(name string) hclog.Logger { return relayed{l.Logger.ResetNamed(name)} }
func (l relayed) With(args ...any) hclog.Logger       { return relayed{l.Logger.With(fixModule(args)...)} }
