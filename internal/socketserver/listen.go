package socketserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrAlreadyRunning means a live hsmhost answers on the socket.
var ErrAlreadyRunning = errors.New("hsmhost is already running")

// SocketConfig says where and how the socket is created.
type SocketConfig struct {
	Path  string
	Mode  os.FileMode // 0 means 0600
	Group string      // group name or numeric id; empty keeps ours
}

// Socket creates the listening socket safely. Start-up is serialised by an
// flock on "<path>.lock", so of two hsmhost processes started together one
// creates the socket and the other finds it alive and steps aside; a socket
// left by a crashed host (nothing answers) is removed.
type Socket struct {
	cfg  SocketConfig
	lock *os.File
	info os.FileInfo // the socket file we created
}

// Prepare makes the parent directory, takes the start-up lock and deals with
// an existing socket. It returns ErrAlreadyRunning (with the lock released)
// if a live server answers there. Call Listen next, or Release on failure.
func Prepare(cfg SocketConfig) (*Socket, error) {
	if cfg.Mode == 0 {
		cfg.Mode = 0o600
	}
	if !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("socket path %q is not absolute", cfg.Path)
	}
	gid := -1
	if cfg.Group != "" {
		g, err := lookupGroup(cfg.Group)
		if err != nil {
			return nil, err
		}
		gid = g
	}
	if err := ensureDir(filepath.Dir(cfg.Path), gid); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(cfg.Path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening start-up lock: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		lf.Close()
		return nil, fmt.Errorf("locking %s: %w", lf.Name(), err)
	}
	s := &Socket{cfg: cfg, lock: lf}
	if err := s.clearStale(); err != nil {
		s.Release()
		return nil, err
	}
	return s, nil
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("socket_group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// ensureDir creates the socket's directory (0700, or 0750 owned by the
// group) and refuses one that another user could swap the socket in.
func ensureDir(dir string, gid int) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		mode := os.FileMode(0o700)
		if gid >= 0 {
			mode = 0o750
		}
		if err := os.MkdirAll(dir, mode); err != nil {
			return fmt.Errorf("creating socket directory: %w", err)
		}
		if err := os.Chmod(dir, mode); err != nil { // MkdirAll applies the umask
			return err
		}
		if gid >= 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				return fmt.Errorf("giving socket directory %s to group %d: %w", dir, gid, err)
			}
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("socket directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if int(st.Uid) != os.Getuid() && st.Uid != 0 {
			return fmt.Errorf("socket directory %s belongs to uid %d, not to us (uid %d): refusing to use it", dir, st.Uid, os.Getuid())
		}
		if fi.Mode()&0o002 != 0 && fi.Mode()&os.ModeSticky == 0 {
			return fmt.Errorf("socket directory %s is writable by everyone: refusing to use it", dir)
		}
	}
	return nil
}

func (s *Socket) clearStale() error {
	fi, err := os.Lstat(s.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s exists and is not a socket: refusing to replace it", s.cfg.Path)
	}
	c, err := net.DialTimeout("unix", s.cfg.Path, 2*time.Second)
	if err == nil {
		c.Close()
		return ErrAlreadyRunning
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("probing existing socket %s: %w", s.cfg.Path, err)
	}
	if err := os.Remove(s.cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

// Listen creates the socket with its mode and group, then releases the
// start-up lock.
func (s *Socket) Listen() (net.Listener, error) {
	defer s.Release()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", s.cfg.Path, err)
	}
	// We remove the file ourselves, and only if it is still ours.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		ln.Close()
		os.Remove(s.cfg.Path)
		return nil, err
	}
	if err := os.Chmod(s.cfg.Path, s.cfg.Mode); err != nil {
		return fail(fmt.Errorf("chmod socket: %w", err))
	}
	if s.cfg.Group != "" {
		gid, err := lookupGroup(s.cfg.Group)
		if err != nil {
			return fail(err)
		}
		if err := os.Chown(s.cfg.Path, -1, gid); err != nil {
			return fail(fmt.Errorf("giving socket to group %s: %w", s.cfg.Group, err))
		}
	}
	s.info, _ = os.Lstat(s.cfg.Path)
	return ln, nil
}

// Release drops the start-up lock (idempotent).
func (s *Socket) Release() {
	if s.lock != nil {
		syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

// Remove deletes the socket file if it is still the one Listen created
// (a newer hsmhost may have replaced it).
func (s *Socket) Remove() {
	if s.info == nil {
		return
	}
	if fi, err := os.Lstat(s.cfg.Path); err == nil && os.SameFile(fi, s.info) {
		os.Remove(s.cfg.Path)
	}
}
