package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Containerd is a containerd daemon started as a child process, or adopted from an earlier
// skiff that was killed without stopping it.
type Containerd struct {
	address string
	process *os.Process
	exited  chan struct{} // closed once the process is gone
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
	// A skiff killed with -9 leaves its containerd running (its shims hold the pods). A
	// second daemon on the same root would corrupt it, so take the running one over.
	if d, err := adoptContainerd(ctx, cfg); err == nil {
		return d, nil
	} else if !errors.Is(err, errNoContainerd) {
		return nil, err
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
	d := &Containerd{address: cfg.Address, process: cmd.Process, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	logger.Info("Started containerd", "pid", cmd.Process.Pid, "address", cfg.Address, "log", logPath)
	if err := os.WriteFile(pidFile(cfg), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		logger.Error(err, "Writing containerd's pid file; a later start cannot adopt this daemon")
	}

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
	if err := d.process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal containerd: %w", err)
	}
	select {
	case <-d.exited:
	case <-ctx.Done():
		_ = d.process.Kill()
		<-d.exited
		return fmt.Errorf("containerd did not stop in time, killed: %w", ctx.Err())
	}
	_ = os.Remove(d.address)
	return nil
}

var errNoContainerd = errors.New("no containerd of ours is running")

func pidFile(cfg ContainerdConfig) string { return filepath.Join(cfg.State, "skiff-containerd.pid") }

// adoptContainerd returns the daemon an earlier start left running on cfg's socket: the
// pid file names it, its command line names our config, and its socket answers.
func adoptContainerd(ctx context.Context, cfg ContainerdConfig) (*Containerd, error) {
	data, err := os.ReadFile(pidFile(cfg))
	if err != nil {
		return nil, errNoContainerd
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || !runsConfig(pid, cfg.ConfigPath) {
		return nil, errNoContainerd
	}
	if err := probeContainerd(ctx, cfg.Address); err != nil {
		return nil, fmt.Errorf("containerd (pid %d) from an earlier start is running but its socket %s does not answer: %w; stop it before starting skiff", pid, cfg.Address, err)
	}
	process, err := os.FindProcess(pid)
	if err != nil {
		return nil, errNoContainerd
	}
	d := &Containerd{address: cfg.Address, process: process, exited: make(chan struct{})}
	go d.watchAdopted(pid)
	klog.FromContext(ctx).Info("Adopted running containerd", "pid", pid, "address", cfg.Address)
	return d, nil
}

// runsConfig reports whether pid is a live containerd started with configPath.
func runsConfig(pid int, configPath string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || processGone(pid) {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "containerd" && slices.Contains(args, configPath)
}

// processGone reports whether pid has exited (a zombie counts: it is not our child, so
// we cannot reap it).
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) == 0 || fields[0] == "Z" || fields[0] == "X"
}

// watchAdopted closes exited once an adopted daemon, which is not our child, is gone.
func (d *Containerd) watchAdopted(pid int) {
	for !processGone(pid) {
		time.Sleep(100 * time.Millisecond)
	}
	close(d.exited)
}
