package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/managedfields"

	"github.com/skiff-sh/skiff/controlplane-lite/apiserver/registry"
	"github.com/skiff-sh/skiff/controlplane-lite/openapi"
)

// The seed's replicaset.yaml.
const seedReplicaSetYAML = `apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: my-replicaset
spec:
  replicas: 2
  selector:
    matchLabels:
      app: my-app
  template:
    metadata:
      labels:
        app: my-app
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
`

func openAPIResources(defs []registry.Definition) []openapi.Resource {
	var out []openapi.Resource
	for _, d := range defs {
		r := openapi.Resource{
			GroupVersion: d.GroupVersionKind.GroupVersion(),
			Plural:       d.GroupResource.Resource,
			Kind:         d.GroupVersionKind.Kind,
			ListKind:     d.ListKind,
			Namespaced:   d.Namespaced,
			Verbs:        d.Verbs,
			Subresources: map[string]openapi.SubresourceInfo{},
		}
		for name, sub := range d.Subresources {
			gvk := sub.GroupVersionKind
			if gvk.Kind == "" {
				gvk = d.GroupVersionKind
			}
			r.Subresources[name] = openapi.SubresourceInfo{GroupVersionKind: gvk, Verbs: sub.Verbs}
		}
		out = append(out, r)
	}
	return out
}

// enableOpenAPI serves the OpenAPI documents of cfg's Definitions and records
// managedFields with their schemas, as skiff's server does.
func enableOpenAPI(t *testing.T, cfg *Config) {
	t.Helper()
	oa, err := openapi.New(openAPIResources(cfg.Definitions))
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	tc, err := managedfields.NewTypeConverter(oa.Schemas(), false)
	if err != nil {
		t.Fatalf("type converter: %v", err)
	}
	cfg.OpenAPI, cfg.TypeConverter = oa, tc
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// kubectlEnv runs a Server with Run on a local port and returns a kubectl runner
// using an admin kubeconfig for it.
func kubectlEnv(t *testing.T, change func(*Config)) func(args ...string) (string, error) {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed")
	}
	port := freePort(t)
	base := newTestServerWith(t, func(cfg *Config) {
		cfg.BindAddress, cfg.Port = "127.0.0.1", port
		if change != nil {
			change(cfg)
		}
		enableOpenAPI(t, cfg)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- base.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	server := fmt.Sprintf("https://127.0.0.1:%d", port)
	waitReady(t, base.client, server)

	dir := t.TempDir()
	b64 := base64.StdEncoding.EncodeToString
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: admin
  user: {client-certificate-data: %s, client-key-data: %s}
contexts:
- name: skiff
  context: {cluster: skiff, user: admin, namespace: default}
current-context: skiff
`, server, b64(base.ca.pem), b64(base.clientCert), b64(base.clientKey))
	kcPath := writeFile(t, dir, "admin.kubeconfig", []byte(kubeconfig))
	cacheDir := filepath.Join(dir, "cache")
	return func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kcPath, "--cache-dir", cacheDir}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
}

func waitReady(t *testing.T, client *http.Client, server string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not become ready", server)
}

func TestKubectl(t *testing.T) {
	testKubectl(t, kubectlEnv(t, nil))
}

func testKubectl(t *testing.T, kubectl func(args ...string) (string, error)) {
	run := func(args ...string) string {
		t.Helper()
		out, err := kubectl(args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	expect := func(out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, out)
			}
		}
	}

	dir := t.TempDir()
	yamlPath := writeFile(t, dir, "replicaset.yaml", []byte(seedReplicaSetYAML))
	out := run("create", "-f", yamlPath, "-v", "6")
	t.Logf("kubectl create:\n%s", out)
	expect(out, "replicaset.apps/my-replicaset created",
		"POST https://127.0.0.1", "replicasets?fieldManager=kubectl-create&fieldValidation=Strict 201 Created")

	bad := strings.Replace(seedReplicaSetYAML, "  replicas: 2", "  replicas: 2\n  foo: bar", 1)
	out, err := kubectl("create", "-f", writeFile(t, dir, "bad.yaml", []byte(bad)))
	if err == nil {
		t.Error("kubectl create with an unknown field succeeded")
	}
	expect(out, `strict decoding error: unknown field "spec.foo"`)

	getRS := run("get", "rs")
	t.Logf("kubectl get rs:\n%s", getRS)
	expect(getRS, "NAME", "DESIRED", "my-replicaset")
	expect(run("get", "replicasets.apps", "my-replicaset", "-o", "yaml"), "generation: 1", "imagePullPolicy: Always", "uid:")
	expect(run("get", "all"), "my-replicaset")
	expect(run("api-resources"), "replicasets", "rs", "apps/v1", "ReplicaSet")
	expect(run("scale", "rs", "my-replicaset", "--replicas=3"), "scaled")
	expect(run("patch", "rs", "my-replicaset", "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox:1.36"}]}}}}`), "patched")
	expect(run("get", "rs", "my-replicaset", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[*].name}"), "3 ", "nginx", "sidecar")
	expect(run("label", "rs", "my-replicaset", "tier=web"), "labeled")
	expect(run("get", "rs", "-l", "tier=web", "-o", "name"), "replicaset.apps/my-replicaset")
	expect(run("get", "ns"), "default", "kube-system", "kube-node-lease")

	// kubectl get -w prints the rows the watch sends.
	watchOut := make(chan string, 1)
	go func() {
		out, _ := kubectl("get", "rs", "-w", "--request-timeout=8s")
		watchOut <- out
	}()
	// Scale twice, so that a slow kubectl start still sees one change.
	time.Sleep(2 * time.Second)
	run("scale", "rs", "my-replicaset", "--replicas=2")
	time.Sleep(2 * time.Second)
	run("scale", "rs", "my-replicaset", "--replicas=1")
	select {
	case out := <-watchOut:
		t.Logf("kubectl get -w:\n%s", out)
		if strings.Count(out, "my-replicaset") < 2 {
			t.Errorf("kubectl get -w saw:\n%s", out)
		}
	case <-time.After(20 * time.Second):
		t.Error("kubectl get -w did not end")
	}

	// Client-side and server-side apply.
	applyYAML := strings.Replace(seedReplicaSetYAML, "my-replicaset", "applied", 1)
	applyPath := writeFile(t, dir, "apply.yaml", []byte(applyYAML))
	expect(run("apply", "-f", applyPath), "replicaset.apps/applied created")
	expect(run("apply", "-f", writeFile(t, dir, "apply2.yaml", []byte(strings.Replace(applyYAML, "replicas: 2", "replicas: 4", 1)))), "configured")
	ssaPath := writeFile(t, dir, "ssa.yaml", []byte(strings.Replace(seedReplicaSetYAML, "my-replicaset", "ssa", 1)))
	expect(run("apply", "--server-side", "-f", ssaPath), "serverside-applied")
	expect(run("get", "rs", "ssa", "-o", "yaml", "--show-managed-fields"), "manager: kubectl", "operation: Apply", "f:replicas: {}")
	run("scale", "rs", "ssa", "--replicas=5")
	out, err = kubectl("apply", "--server-side", "-f", writeFile(t, dir, "ssa2.yaml", []byte(strings.Replace(seedReplicaSetYAML, "my-replicaset", "ssa", 1))))
	// kubectl scale took spec.replicas: the re-apply conflicts, as on kube-apiserver.
	if err == nil || !strings.Contains(out, "conflict") || !strings.Contains(out, ".spec.replicas") {
		t.Errorf("apply over a scaled replicaset: %v\n%s", err, out)
	}
	expect(run("apply", "--server-side", "--force-conflicts", "-f", ssaPath), "serverside-applied")

	expect(run("auth", "can-i", "delete", "pods"), "yes")
	expect(run("auth", "can-i", "--list"), "*.*")
	expect(run("auth", "whoami"), "admin", "system:masters")
	expect(run("describe", "rs", "my-replicaset"), "Name:", "my-replicaset", "Replicas:")
	expect(run("get", "rs", "-o", "wide"), "CONTAINERS", "nginx")
	expect(run("delete", "rs", "applied"), `replicaset.apps "applied" deleted`)

	expect(run("delete", "rs", "my-replicaset", "--cascade=foreground", "--wait=false"), "deleted")
	out = run("get", "rs", "my-replicaset", "-o", "jsonpath={.metadata.finalizers}")
	expect(out, "foregroundDeletion")
	run("patch", "rs", "my-replicaset", "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	out, _ = kubectl("get", "rs", "my-replicaset")
	expect(out, `replicasets.apps "my-replicaset" not found`)
}
