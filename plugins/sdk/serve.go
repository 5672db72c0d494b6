package sdk

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/hsmbridge/hsmbridge/plugins/sdk/backendpb"
	"github.com/hsmbridge/hsmbridge/ports"
)

// BackendPlugin is the go-plugin glue for both sides: Impl is set in the
// plugin process and nil in the host.
type BackendPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl ports.KeyLookup
	Name string
	// Version is reported in Describe.
	Version string
	log     hclog.Logger
}

func (p *BackendPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	log := p.log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	pb.RegisterBackendServer(s, &server{impl: p.Impl, name: p.Name, version: p.Version, log: log})
	return nil
}

// GRPCClient returns a *Client that has already fetched the description.
func (p *BackendPlugin) GRPCClient(ctx context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (interface{}, error) {
	return NewClient(ctx, pb.NewBackendClient(cc))
}

// Option adjusts Serve.
type Option func(*BackendPlugin)

// WithName sets the backend's name (default: the binary's file name).
func WithName(name string) Option { return func(p *BackendPlugin) { p.Name = name } }

// WithVersion sets the version the backend reports.
func WithVersion(v string) Option { return func(p *BackendPlugin) { p.Version = v } }

// Serve runs impl as a backend plugin until the host goes away: the host
// stops it, or the host's process ends (the plugin then exits by itself,
// see exitWithParent). Logs go to stderr, where the host's logger picks
// them up.
func Serve(impl ports.KeyLookup, opts ...Option) {
	p := &BackendPlugin{Impl: impl, Name: filepath.Base(os.Args[0]), Version: "dev"}
	for _, o := range opts {
		o(p)
	}
	p.log = Logger(p.Name)
	ProfileFromEnv(p.Name)
	TrimWhenIdle(idleCheck)
	exitWithParent()
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: p},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, serverOptions()...)...)
		},
		Logger: p.log,
	})
}

// Logger is a logger for a plugin's own messages: JSON lines on stderr at
// the host's log level, which hsmhost relays into its log at their level
// under the backend's name (a plain stderr line is logged only at debug).
func Logger(name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name: name, Level: hclog.LevelFromString(os.Getenv("HSMBRIDGE_LOG_LEVEL")),
		Output: os.Stderr, JSONFormat: true,
	})
}

// idleCheck is how often a plugin looks whether it went idle (TrimWhenIdle).
const idleCheck = 5 * time.Second

// Every request is small (a digest and a signature), and a fixed window
// turns off gRPC's bandwidth-delay probing, which otherwise sends a PING
// with many requests and costs a round of wake-ups on each side.
const window = 1 << 20

func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InitialWindowSize(window), grpc.InitialConnWindowSize(window)}
}

// DialOptions are the host side's counterpart of serverOptions.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window)}
}
