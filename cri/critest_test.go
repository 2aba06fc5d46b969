package cri

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/skiff-sh/skiff/test/registry/mirror"
)

// TestCritest runs the CRI conformance suite against the server when CRITEST names a
// critest binary (go test -c sigs.k8s.io/cri-tools/cmd/critest), on the real pod
// network. Its images are the stand-ins of `test/images/build.sh OUTDIR critest` when
// CRITEST_IMAGES names their OUTDIR/critest/images.txt (the full set, nginx included,
// which the port-forward specs need), else busybox-based ones built here.
// CRITEST_ARGS adds flags, e.g. -ginkgo.focus=... -ginkgo.skip=...
func TestCritest(t *testing.T) {
	critest := os.Getenv("CRITEST")
	if critest == "" {
		t.Skip("set CRITEST to a critest binary to run the CRI conformance suite")
	}
	requireIntegration(t)
	e := newTestEnv(t)
	e.useRealNetwork()
	if list := os.Getenv("CRITEST_IMAGES"); list != "" {
		e.serveCritestImages(list)
	} else {
		url := e.startRegistry()
		layer := busyboxLayer(t)
		pushImage(t, url, "e2e-test-images/busybox", "1.29-2", layer, busyboxConfig)
		pushStandIns(t, url, layer)
		for _, host := range []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io"} {
			e.mirror(host, url)
		}
	}

	report := filepath.Join(e.dir, "critest.log")
	args := []string{"-runtime-endpoint", "unix://" + e.socket, "-image-endpoint", "unix://" + e.socket,
		"-ginkgo.no-color", "-ginkgo.timeout=60m"}
	args = append(args, strings.Fields(os.Getenv("CRITEST_ARGS"))...)
	out, err := os.Create(report)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(critest, args...)
	cmd.Stdout, cmd.Stderr = out, out
	runErr := cmd.Run()
	out.Close()
	data, _ := os.ReadFile(report)
	if keep := os.Getenv("CRITEST_REPORT"); keep != "" {
		_ = os.WriteFile(keep, data, 0o644)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var summary []string
	for _, l := range lines {
		if strings.Contains(l, "[FAIL]") || strings.HasPrefix(l, "Ran ") || strings.Contains(l, "Passed") {
			summary = append(summary, l)
		}
	}
	t.Logf("critest %s:\n%s", strings.Join(args, " "), strings.Join(summary, "\n"))
	if runErr != nil {
		t.Errorf("critest failed: %v (full output in CRITEST_REPORT if set)", runErr)
	}
}

// serveCritestImages serves the layouts listed in list (UPSTREAM_REF=LAYOUT lines)
// through package mirror and points their registry hosts at it.
func (e *testEnv) serveCritestImages(list string) {
	t := e.t
	data, err := os.ReadFile(list)
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{}
	for _, line := range strings.Fields(string(data)) {
		ref, layout, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: bad line %q", list, line)
		}
		images[ref] = layout
	}
	m, err := mirror.Start(e.ctx, "127.0.0.1:0", images)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	if err := m.WriteHostsDir(e.cfg.RegistryConfigDir); err != nil {
		t.Fatal(err)
	}
	// critest also pulls pause through the old registry name, at the same path.
	if err := mirror.WriteHostsFile(e.cfg.RegistryConfigDir, "k8s.gcr.io", m.URL()); err != nil {
		t.Fatal(err)
	}
}

// pushStandIns serves what critest's image specs pull, built from the busybox layer:
// image names and users matter to those specs, contents do not. Paths are the
// originals minus the registry host, as the mirrors expect.
func pushStandIns(t *testing.T, url string, layer []byte) {
	pause, err := buildPauseImage()
	if err != nil {
		t.Fatal(err)
	}
	pauseCfg := ocispec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535"}
	pushImage(t, url, "pause", "3.9", pause.layer, pauseCfg)
	with := func(env string, user string) ocispec.ImageConfig {
		cfg := busyboxConfig
		cfg.Env = append([]string{"STANDIN=" + env}, busyboxConfig.Env...)
		cfg.User = user
		return cfg
	}
	const repo = "k8s-staging-cri-tools/"
	for i, name := range []string{"test-image-1", "test-image-2", "test-image-3"} {
		pushImage(t, url, repo+name, "latest", layer, with(fmt.Sprint(i), ""))
	}
	for _, tag := range []string{"1", "2", "3"} {
		pushImage(t, url, repo+"test-image-tags", tag, layer, with("tags", ""))
	}
	pushImage(t, url, repo+"test-image-latest", "latest", layer, with("latest", ""))
	pushImage(t, url, repo+"test-image-tag", "test", layer, with("tag", ""))
	pushImage(t, url, repo+"test-image-tag", "all", layer, with("all", ""))
	pushImage(t, url, repo+"test-image-user-uid", "latest", layer, with("uid", "1002"))
	pushImage(t, url, repo+"test-image-user-username", "latest", layer, with("username", "www-data"))
	pushImage(t, url, repo+"test-image-user-uid-group", "latest", layer, with("uid-group", "1003:users"))
	pushImage(t, url, repo+"test-image-user-username-group", "latest", layer, with("username-group", "www-data:users"))
}

// mirror points a registry host at the test registry (host dropped, path kept).
func (e *testEnv) mirror(host, url string) {
	dir := filepath.Join(e.cfg.RegistryConfigDir, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	server := "https://" + host
	if host == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	toml := fmt.Sprintf("server = %q\n\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", server, url)
	if err := os.WriteFile(filepath.Join(dir, "hosts.toml"), []byte(toml), 0o644); err != nil {
		e.t.Fatal(err)
	}
}
