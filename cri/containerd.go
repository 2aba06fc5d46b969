package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"k8s.io/klog/v2"
)

// ContainerdConfig configures a child containerd started by StartContainerd.
type ContainerdConfig struct {
	// Binary is the containerd executable; empty means "containerd" from PATH.
	Binary string
	// Address is the gRPC socket containerd listens on (required).
	Address string
	// Root is containerd's persistent root; its log file goes here too (required).
	Root string
	// State is containerd's state directory (required).
	State string
	// ConfigPath is where the generated config is written; empty means Root/config.toml.
	ConfigPath string
}

// Containerd is a containerd daemon started as a child process.
type Containerd struct {
	address string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process is reaped
	waitErr error         // valid after exited is closed
}

const containerdStartTimeout = 30 * time.Second

// StartContainerd writes a containerd 1.6-compatible config (version 2, CRI plugin
// disabled: skiff is the CRI server) and starts containerd with it in its own process
// group, so a Ctrl-C in skiff's terminal does not reach it. It returns once the socket
// answers.
func StartContainerd(ctx context.Context, cfg ContainerdConfig) (*Containerd, error) {
	logger := klog.FromContext(ctx)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.Root, cfg.State, filepath.Dir(cfg.Address), filepath.Dir(cfg.ConfigPath)} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("create containerd directory: %w", err)
		}
	}
	if err := os.WriteFile(cfg.ConfigPath, []byte(containerdTOML(cfg)), 0o644); err != nil {
		return nil, fmt.Errorf("write containerd config: %w", err)
	}
	// A socket left by a crashed daemon would make containerd refuse to start.
	if err := os.Remove(cfg.Address); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale containerd socket: %w", err)
	}
	logPath := filepath.Join(cfg.Root, "containerd.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open containerd log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(cfg.Binary, "--config", cfg.ConfigPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	d := &Containerd{address: cfg.Address, cmd: cmd, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	logger.Info("Started containerd", "pid", cmd.Process.Pid, "address", cfg.Address, "log", logPath)

	if err := d.waitReady(ctx, logPath); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = d.Stop(stopCtx)
		return nil, err
	}
	return d, nil
}

func (cfg *ContainerdConfig) validate() error {
	var errs []error
	if cfg.Binary == "" {
		cfg.Binary = "containerd"
	}
	if cfg.Address == "" {
		errs = append(errs, errors.New("Address is required"))
	}
	if cfg.Root == "" || cfg.State == "" {
		errs = append(errs, errors.New("Root and State are required"))
	}
	if cfg.ConfigPath == "" {
		cfg.ConfigPath = filepath.Join(cfg.Root, "config.toml")
	}
	for _, p := range []string{cfg.Address, cfg.Root, cfg.State, cfg.ConfigPath} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("path %q must be absolute", p))
		}
	}
	// sun_path holds 108 bytes including the terminating NUL.
	if len(cfg.Address) > 107 {
		errs = append(errs, fmt.Errorf("socket path %q is longer than 107 bytes", cfg.Address))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid containerd config: %w", err)
	}
	return nil
}

// containerdTOML renders the daemon config. Everything containerd would otherwise
// share with a system daemon (sockets, opt dir) is placed under our own directories.
func containerdTOML(cfg ContainerdConfig) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\n")
	fmt.Fprintf(&b, "root = %s\nstate = %s\n", q(cfg.Root), q(cfg.State))
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", q("io.containerd.grpc.v1.cri"))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", q(cfg.Address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", q(cfg.Address+".ttrpc"))
	fmt.Fprintf(&b, "\n[debug]\n  address = \"\"\n  level = \"info\"\n")
	fmt.Fprintf(&b, "\n[metrics]\n  address = \"\"\n")
	fmt.Fprintf(&b, "\n[plugins]\n  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %s\n",
		q(filepath.Join(cfg.Root, "opt")))
	return b.String()
}

func (d *Containerd) waitReady(ctx context.Context, logPath string) error {
	ctx, cancel := context.WithTimeout(ctx, containerdStartTimeout)
	defer cancel()
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited during startup (%v); see %s: %s", d.waitErr, logPath, logTail(logPath))
		default:
		}
		if err := probeContainerd(ctx, d.address); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd at %s did not answer: %w; see %s", d.address, ctx.Err(), logPath)
		case <-d.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func probeContainerd(ctx context.Context, address string) error {
	if _, err := os.Stat(address); err != nil {
		return err
	}
	c, err := containerd.New(address, containerd.WithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Version(ctx)
	return err
}

// logTail returns the last lines of a log file for an error message.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

// Address is the daemon's gRPC socket.
func (d *Containerd) Address() string { return d.address }

// Stop sends SIGTERM and waits for containerd to exit, sending SIGKILL if ctx ends
// first. Container shims are separate processes and keep running, so pods survive.
func (d *Containerd) Stop(ctx context.Context) error {
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal containerd: %w", err)
	}
	select {
	case <-d.exited:
	case <-ctx.Done():
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("containerd did not stop in time, killed: %w", ctx.Err())
	}
	_ = os.Remove(d.address)
	return nil
}
