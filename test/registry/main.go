package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/skiff-sh/skiff/test/registry/mirror"
	"k8s.io/klog/v2"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		images, extraHosts listFlag
		addr               = flag.String("addr", "127.0.0.1:5000", "address to serve the registry on")
		hostsDir           = flag.String("hosts-dir", "", "write containerd hosts.toml files for the upstream hosts here")
		throttle           = flag.Int64("throttle-bytes-per-second", 0, "serve each blob download at most this fast (0: unthrottled), to make pulls slow")
	)
	flag.Var(&images, "image", "UPSTREAM_REF=OCI_LAYOUT_DIR to serve (repeatable)")
	flag.Var(&extraHosts, "mirror-host", "another upstream host to redirect in --hosts-dir (repeatable)")
	klog.InitFlags(nil)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, *addr, images, extraHosts, *hostsDir, mirror.WithThrottle(*throttle)); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr string, images, extraHosts []string, hostsDir string, opts ...mirror.Option) error {
	layouts := map[string]string{}
	for _, spec := range images {
		ref, dir, ok := strings.Cut(spec, "=")
		if !ok || ref == "" || dir == "" {
			return fmt.Errorf("--image %q: want UPSTREAM_REF=OCI_LAYOUT_DIR", spec)
		}
		layouts[ref] = dir
	}
	m, err := mirror.Start(ctx, addr, layouts, opts...)
	if err != nil {
		return err
	}
	defer m.Close()
	if hostsDir != "" {
		if err := m.WriteHostsDir(hostsDir); err != nil {
			return err
		}
		for _, h := range extraHosts {
			if err := mirror.WriteHostsFile(hostsDir, h, m.URL()); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(os.Stderr, "registry: serving %s for %s\n", m.URL(), strings.Join(m.Hosts(), ", "))
	fmt.Println("ready")

	select {
	case <-ctx.Done():
		return m.Close()
	case err := <-m.Done():
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve: %w", err)
	}
}
