package volumes

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/record"
)

// fakeMounter records tmpfs mounts instead of making them.
type fakeMounter struct {
	mu     sync.Mutex
	mounts map[string][]string
}

func (f *fakeMounter) MountTmpfs(dir string, opts []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.mounts[dir]; ok {
		return errors.New("already mounted")
	}
	f.mounts[dir] = opts
	return nil
}

func (f *fakeMounter) Unmount(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.mounts, dir)
	return nil
}

func (f *fakeMounter) IsMountPoint(dir string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.mounts[dir]
	return ok, nil
}

func (f *fakeMounter) MountPointsUnder(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for mp := range f.mounts {
		if isWithin(mp, dir) {
			out = append(out, mp)
		}
	}
	return out, nil
}

// fakeSources serves objects from maps, answering NotFound like the apiserver.
type fakeSources struct {
	configMaps map[string]*v1.ConfigMap
	secrets    map[string]*v1.Secret
}

func (s *fakeSources) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	if cm, ok := s.configMaps[ns+"/"+name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (s *fakeSources) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	if sec, ok := s.secrets[ns+"/"+name]; ok {
		return sec, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

type fixture struct {
	m        *Manager
	mounter  *fakeMounter
	sources  *fakeSources
	recorder *record.FakeRecorder
	root     string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		mounter:  &fakeMounter{mounts: map[string][]string{}},
		sources:  &fakeSources{configMaps: map[string]*v1.ConfigMap{}, secrets: map[string]*v1.Secret{}},
		recorder: record.NewFakeRecorder(10),
		root:     t.TempDir(),
	}
	m, err := NewManager(Config{
		RootDir:     f.root,
		Mounter:     f.mounter,
		Recorder:    f.recorder,
		Allocatable: func() v1.ResourceList { return v1.ResourceList{v1.ResourceMemory: resource.MustParse("2Gi")} },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.m = m
	return f
}

func testPod(vols ...v1.Volume) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web", Namespace: "default", UID: "uid-1",
			Labels:      map[string]string{"app": "web", "tier": "front"},
			Annotations: map[string]string{"note": `say "hi"`},
		},
		Spec: v1.PodSpec{
			Containers: []v1.Container{{
				Name: "c",
				Resources: v1.ResourceRequirements{
					Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("500m")},
					Requests: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")},
				},
			}},
			Volumes: vols,
		},
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func (f *fixture) setupOne(t *testing.T, pod *v1.Pod) string {
	t.Helper()
	paths, err := f.m.Setup(t.Context(), pod, f.sources)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return paths[pod.Spec.Volumes[0].Name]
}

func TestNewManagerValidates(t *testing.T) {
	for _, cfg := range []Config{{}, {RootDir: "relative"}} {
		if _, err := NewManager(cfg); err == nil {
			t.Errorf("NewManager(%+v) accepted", cfg)
		}
	}
}

func TestEmptyDir(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}})
	p := f.setupOne(t, pod)
	want := filepath.Join(f.root, "pods", "uid-1", "volumes", "kubernetes.io~empty-dir", "scratch")
	if p != want {
		t.Errorf("path = %s, want %s", p, want)
	}
	if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir %v, %v; want a 0777 dir", info, err)
	}
	if len(f.mounter.mounts) != 0 {
		t.Errorf("disk emptyDir mounted something: %v", f.mounter.mounts)
	}
}

func TestEmptyDirMemory(t *testing.T) {
	f := newFixture(t)
	limit := resource.MustParse("64Mi")
	pod := testPod(v1.Volume{Name: "shm", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory, SizeLimit: &limit}}})
	p := f.setupOne(t, pod)
	if got := f.mounter.mounts[p]; !slices.Equal(got, []string{"size=67108864"}) {
		t.Errorf("tmpfs options = %v, want size=67108864", got)
	}
	// A second sync must not mount again.
	f.setupOne(t, pod)
	if err := f.m.Teardown(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if len(f.mounter.mounts) != 0 {
		t.Errorf("Teardown left mounts %v", f.mounter.mounts)
	}
	if _, err := os.Stat(filepath.Join(f.root, "pods", "uid-1", "volumes")); !os.IsNotExist(err) {
		t.Errorf("Teardown left the volumes dir: %v", err)
	}
}

func hostPathVolume(p string, t v1.HostPathType) v1.Volume {
	return v1.Volume{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: p, Type: &t}}}
}

func TestHostPathTypes(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(tmp, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	missing := filepath.Join(tmp, "missing")
	cases := []struct {
		path    string
		typ     v1.HostPathType
		wantErr string // empty: success
	}{
		{filepath.Join(tmp, "new/dir"), v1.HostPathDirectoryOrCreate, ""},
		{filepath.Join(tmp, "new/file"), v1.HostPathFileOrCreate, ""},
		{tmp, v1.HostPathDirectory, ""},
		{file, v1.HostPathFile, ""},
		{sock, v1.HostPathSocket, ""},
		{"/dev/null", v1.HostPathCharDev, ""},
		{missing, v1.HostPathUnset, ""},
		{missing, v1.HostPathDirectory, missing + " does not exist"},
		{file, v1.HostPathDirectory, file + " is not a directory"},
		{tmp, v1.HostPathFile, tmp + " is not a file"},
		{file, v1.HostPathSocket, file + " is not a socket file"},
		{file, v1.HostPathCharDev, file + " is not a character device"},
		{"/dev/null", v1.HostPathBlockDev, "/dev/null is not a block device"},
		{file, v1.HostPathDirectoryOrCreate, file + " is not a directory"},
	}
	for _, c := range cases {
		f := newFixture(t)
		paths, err := f.m.Setup(t.Context(), testPod(hostPathVolume(c.path, c.typ)), f.sources)
		if c.wantErr == "" {
			if err != nil || paths["host"] != c.path {
				t.Errorf("%s %s: %v, %v", c.typ, c.path, paths, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), `volume "host"`) {
			t.Errorf("%s %s: err = %v, want it to name the volume and say %q", c.typ, c.path, err, c.wantErr)
		}
	}
	if info, err := os.Stat(filepath.Join(tmp, "new/file")); err != nil || !info.Mode().IsRegular() {
		t.Errorf("FileOrCreate did not create a file: %v", err)
	}
}

func TestConfigMapVolume(t *testing.T) {
	f := newFixture(t)
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{
		Data:       map[string]string{"a.conf": "alpha", "b.conf": "beta"},
		BinaryData: map[string][]byte{"bin": {0, 1, 2}},
	}
	pod := testPod(v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
	}}})
	p := f.setupOne(t, pod)
	if !strings.HasSuffix(p, "/volumes/kubernetes.io~configmap/config") {
		t.Errorf("path = %s", p)
	}
	if got := readFile(t, filepath.Join(p, "a.conf")); got != "alpha" {
		t.Errorf("a.conf = %q", got)
	}
	if got := readFile(t, filepath.Join(p, "bin")); got != "\x00\x01\x02" {
		t.Errorf("bin = %q", got)
	}
	if info, _ := os.Stat(filepath.Join(p, "b.conf")); info.Mode().Perm() != 0o644 {
		t.Errorf("default mode = %v, want 0644", info.Mode().Perm())
	}
	if len(f.mounter.mounts) != 0 {
		t.Errorf("configMap volume mounted a tmpfs: %v", f.mounter.mounts)
	}

	// An edit reaches the file at the next Setup.
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{Data: map[string]string{"a.conf": "changed"}}
	f.setupOne(t, pod)
	if got := readFile(t, filepath.Join(p, "a.conf")); got != "changed" {
		t.Errorf("a.conf after edit = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(p, "b.conf")); !os.IsNotExist(err) {
		t.Errorf("b.conf still there after it left the configMap: %v", err)
	}
}

func TestConfigMapItemsAndModes(t *testing.T) {
	f := newFixture(t)
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{Data: map[string]string{"a": "1", "b": "2"}}
	mode, defaultMode := int32(0o600), int32(0o440)
	pod := testPod(v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
		DefaultMode:          &defaultMode,
		Items: []v1.KeyToPath{
			{Key: "a", Path: "nested/path/a.txt", Mode: &mode},
			{Key: "b", Path: "b.txt"},
		},
	}}})
	p := f.setupOne(t, pod)
	if got := readFile(t, filepath.Join(p, "nested/path/a.txt")); got != "1" {
		t.Errorf("nested/path/a.txt = %q", got)
	}
	if info, _ := os.Stat(filepath.Join(p, "nested/path/a.txt")); info.Mode().Perm() != 0o600 {
		t.Errorf("item mode = %v, want 0600", info.Mode().Perm())
	}
	if info, _ := os.Stat(filepath.Join(p, "b.txt")); info.Mode().Perm() != 0o440 {
		t.Errorf("defaultMode = %v, want 0440", info.Mode().Perm())
	}
	if _, err := os.Lstat(filepath.Join(p, "a")); !os.IsNotExist(err) {
		t.Errorf("key a projected under its own name despite items: %v", err)
	}

	// A listed key that is missing fails the volume.
	pod.Spec.Volumes[0].ConfigMap.Items = append(pod.Spec.Volumes[0].ConfigMap.Items, v1.KeyToPath{Key: "nope", Path: "nope"})
	if _, err := f.m.Setup(t.Context(), pod, f.sources); err == nil || !strings.Contains(err.Error(), `configmap default/cfg references non-existent config key: nope`) {
		t.Errorf("missing key: err = %v", err)
	}
}

func TestMissingSources(t *testing.T) {
	f := newFixture(t)
	yes := true
	pod := testPod(
		v1.Volume{Name: "x", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "y"}}}},
		v1.Volume{Name: "s", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "z"}}},
		v1.Volume{Name: "opt", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "gone"}, Optional: &yes}}},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	)
	paths, err := f.m.Setup(t.Context(), pod, f.sources)
	var msgs []string
	for _, e := range unjoinErr(err) {
		var se *SetupError
		if !errors.As(e, &se) {
			t.Fatalf("error %v is not a *SetupError", e)
		}
		msgs = append(msgs, e.Error())
	}
	slices.Sort(msgs)
	want := []string{
		`MountVolume.SetUp failed for volume "s" : secret "z" not found`,
		`MountVolume.SetUp failed for volume "x" : configmap "y" not found`,
	}
	if !slices.Equal(msgs, want) {
		t.Errorf("errors = %q, want %q", msgs, want)
	}
	if _, ok := paths["opt"]; !ok {
		t.Errorf("optional missing configMap not set up: %v", paths)
	}
	if _, ok := paths["scratch"]; !ok {
		t.Errorf("a failing volume stopped the others: %v", paths)
	}
	entries, _ := os.ReadDir(paths["opt"])
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "..") {
			t.Errorf("optional missing configMap projected %s", e.Name())
		}
	}
}

func unjoinErr(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestSecretVolumeOnTmpfs(t *testing.T) {
	f := newFixture(t)
	f.sources.secrets["default/creds"] = &v1.Secret{Data: map[string][]byte{"password": []byte("hunter2")}}
	pod := testPod(v1.Volume{Name: "creds", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "creds"}}})
	p := f.setupOne(t, pod)
	if !strings.HasSuffix(p, "/volumes/kubernetes.io~secret/creds") {
		t.Errorf("path = %s", p)
	}
	if _, ok := f.mounter.mounts[p]; !ok {
		t.Errorf("secret volume not on a tmpfs; mounts %v", f.mounter.mounts)
	}
	if got := readFile(t, filepath.Join(p, "password")); got != "hunter2" {
		t.Errorf("password = %q", got)
	}
	if err := f.m.Teardown(t.Context(), pod.UID); err != nil {
		t.Fatal(err)
	}
	if len(f.mounter.mounts) != 0 {
		t.Errorf("Teardown left mounts %v", f.mounter.mounts)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	f := newFixture(t)
	divisor := resource.MustParse("1Mi")
	item := func(path, field string) v1.DownwardAPIVolumeFile {
		return v1.DownwardAPIVolumeFile{Path: path, FieldRef: &v1.ObjectFieldSelector{FieldPath: field}}
	}
	res := func(path, r string, div resource.Quantity) v1.DownwardAPIVolumeFile {
		return v1.DownwardAPIVolumeFile{Path: path, ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "c", Resource: r, Divisor: div}}
	}
	pod := testPod(v1.Volume{Name: "info", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
		item("name", "metadata.name"),
		item("namespace", "metadata.namespace"),
		item("uid", "metadata.uid"),
		item("labels", "metadata.labels"),
		item("annotations", "metadata.annotations"),
		item("app", "metadata.labels['app']"),
		res("cpu_limit", "limits.cpu", resource.MustParse("1m")),
		res("cpu_limit_cores", "limits.cpu", resource.Quantity{}),
		res("mem_request", "requests.memory", divisor),
		res("mem_limit", "limits.memory", divisor),
	}}}})
	p := f.setupOne(t, pod)
	want := map[string]string{
		"name":            "web",
		"namespace":       "default",
		"uid":             "uid-1",
		"labels":          "app=\"web\"\ntier=\"front\"",
		"annotations":     `note="say \"hi\""`,
		"app":             "web",
		"cpu_limit":       "500",
		"cpu_limit_cores": "1", // 0.5 core, rounded up
		"mem_request":     "64",
		"mem_limit":       "2048", // no limit: the node's allocatable
	}
	for name, w := range want {
		if got := readFile(t, filepath.Join(p, name)); got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
	}

	// Labels are refreshed at the next Setup.
	pod.Labels["tier"] = "back"
	f.setupOne(t, pod)
	if got := readFile(t, filepath.Join(p, "labels")); got != "app=\"web\"\ntier=\"back\"" {
		t.Errorf("labels after change = %q", got)
	}
}

func TestProjectedVolume(t *testing.T) {
	f := newFixture(t)
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{Data: map[string]string{"a": "from-cm"}}
	f.sources.secrets["default/sec"] = &v1.Secret{Data: map[string][]byte{"b": []byte("from-secret")}}
	defaultMode := int32(0o400)
	pod := testPod(v1.Volume{Name: "all", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: &defaultMode,
		Sources: []v1.VolumeProjection{
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
			{Secret: &v1.SecretProjection{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Items: []v1.KeyToPath{{Key: "b", Path: "dir/b"}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "podname", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}},
		},
	}}})
	p := f.setupOne(t, pod)
	for name, w := range map[string]string{"a": "from-cm", "dir/b": "from-secret", "podname": "web"} {
		if got := readFile(t, filepath.Join(p, name)); got != w {
			t.Errorf("%s = %q, want %q", name, got, w)
		}
		if info, _ := os.Stat(filepath.Join(p, name)); info.Mode().Perm() != 0o400 {
			t.Errorf("%s mode = %v, want the volume's defaultMode 0400", name, info.Mode().Perm())
		}
	}
	if _, err := os.Lstat(filepath.Join(p, "token")); !os.IsNotExist(err) {
		t.Errorf("token file exists without a token issuer: %v", err)
	}
	if _, ok := f.mounter.mounts[p]; !ok {
		t.Errorf("projected volume not on a tmpfs")
	}
	select {
	case ev := <-f.recorder.Events:
		if !strings.Contains(ev, "Warning") || !strings.Contains(ev, `serviceAccountToken "token"`) {
			t.Errorf("event = %q", ev)
		}
	default:
		t.Errorf("no event for the skipped token")
	}
	// Only once per volume, not at every sync.
	f.setupOne(t, pod)
	select {
	case ev := <-f.recorder.Events:
		t.Errorf("second event %q", ev)
	default:
	}
}

func TestUnsupportedVolume(t *testing.T) {
	f := newFixture(t)
	pod := testPod(v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c"}}})
	_, err := f.m.Setup(t.Context(), pod, f.sources)
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("err = %v, want ErrUnsupported", err)
	}
}

func TestFSGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another group needs root")
	}
	f := newFixture(t)
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{Data: map[string]string{"a": "1"}}
	gid := int64(4321)
	pod := testPod(
		v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
		v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
	)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: &gid}
	paths, err := f.m.Setup(t.Context(), pod, f.sources)
	if err != nil {
		t.Fatal(err)
	}
	check := func(p string, wantMode os.FileMode) {
		t.Helper()
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if st.Gid != uint32(gid) {
			t.Errorf("%s gid = %d, want %d", p, st.Gid, gid)
		}
		if got := info.Mode() & (os.ModePerm | os.ModeSetgid); got != wantMode {
			t.Errorf("%s mode = %v, want %v", p, got, wantMode)
		}
	}
	check(filepath.Join(paths["config"], "a"), 0o644)
	check(paths["scratch"], 0o777|os.ModeSetgid)
}

func TestTmpfsSize(t *testing.T) {
	f := newFixture(t) // 2Gi allocatable
	big, small := resource.MustParse("4Gi"), resource.MustParse("16Mi")
	withLimit := func(p *v1.Pod, q string) *v1.Pod {
		p.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse(q)}
		return p
	}
	cases := []struct {
		name      string
		pod       *v1.Pod
		sizeLimit *resource.Quantity
		want      string
	}{
		{"allocatable", testPod(), nil, "size=2147483648"},
		{"sizeLimit above allocatable", testPod(), &big, "size=2147483648"},
		{"sizeLimit", testPod(), &small, "size=16777216"},
		{"pod limit", withLimit(testPod(), "256Mi"), nil, "size=268435456"},
		{"sizeLimit below pod limit", withLimit(testPod(), "256Mi"), &small, "size=16777216"},
	}
	for _, c := range cases {
		if got := f.m.tmpfsOptions(c.pod, c.sizeLimit); !slices.Equal(got, []string{c.want}) {
			t.Errorf("%s: %v, want %s", c.name, got, c.want)
		}
	}
	m, err := NewManager(Config{RootDir: t.TempDir(), Mounter: f.mounter})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.tmpfsOptions(testPod(), nil); got != nil {
		t.Errorf("nothing known: %v, want the kernel default", got)
	}
}

// A refresh that fails keeps what was published, and says so through the paths map.
func TestFailedRefreshKeepsPublishedFiles(t *testing.T) {
	f := newFixture(t)
	f.sources.configMaps["default/cfg"] = &v1.ConfigMap{Data: map[string]string{"a": "1"}}
	pod := testPod(v1.Volume{Name: "config", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
		LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
	}}})
	p := f.setupOne(t, pod)
	delete(f.sources.configMaps, "default/cfg")
	// A new Manager: what was published before an agent restart counts too.
	m, err := NewManager(Config{RootDir: f.root, Mounter: f.mounter})
	if err != nil {
		t.Fatal(err)
	}
	paths, err := m.Setup(t.Context(), pod, f.sources)
	if err == nil || !strings.Contains(err.Error(), `configmap "cfg" not found`) {
		t.Errorf("err = %v, want the configMap reported missing", err)
	}
	if paths["config"] != p {
		t.Errorf("paths = %v, want the published %s kept", paths, p)
	}
	if got := readFile(t, filepath.Join(p, "a")); got != "1" {
		t.Errorf("a = %q after a failed refresh, want the old content", got)
	}
}
